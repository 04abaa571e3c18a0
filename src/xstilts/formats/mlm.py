"""Continued multilingual masked-LM as one more task of an intermediate mixture (the paper's
baseline (i), REFERENCE §1), scored by accuracy on the masked positions and perplexity.

Data: plain text, one sentence per line. The `text_lines` reader takes a file, or a folder
holding `{language}.txt` for every language of the spec (all read, in the spec's order):
a multilingual MLM task trains on all its languages at once, whatever its train_language,
so its spec's path names the split folder (`{split}`) rather than one language's file.

Masking is static and seeded per example (and window) index, as in the original BERT data
preparation, so features are a pure function of the examples and the tokenizer and every
cache key over them holds: 15% of the non-special tokens are selected; of those 80% become
the mask token, 10% a uniformly random vocabulary id, 10% stay unchanged (the recipe of
transformers' DataCollatorForLanguageModeling). Labels are -100 except at selected
positions. A long line is cut into consecutive windows, never truncated.

The head is the BERT prediction head: a transform (dense + activation + LayerNorm), a decoder
tied to the encoder's input embeddings, and a per-token output bias. The head alone is built
from `hidden_size`; binding it to the encoder (`bind_encoder`, before training or loading)
ties the decoder, sizes the bias to the vocabulary and takes the activation and LayerNorm
epsilon from the encoder's config, as BERT's, RoBERTa's and DistilBERT's own heads do. Tying
needs no vocabulary-sized matrix of its own: the checkpoint's head file holds the transform
and the bias, never the embedding matrix again. A start model's own pretrained head is
copied into this class (models.sources.load_masked_lm); with `freeze_embeddings` the tied
decoder is frozen too. To keep evaluation outputs small
(a split's outputs are concatenated), the head returns per position only the gold token's
log-probability and the predicted token id, computed at masked positions.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase
from transformers.activations import ACT2FN

from xstilts.data.io import Example, numbered_lines
from xstilts.errors import UserError
from xstilts.formats.base import Feature
from xstilts.formats.windows import SpecialTokens, consecutive_spans
from xstilts.tasks.spec import TaskSpec

IGNORE = -100
MASK_PROBABILITY = 0.15
MASK_SEED = 20200527  # fixed: masks are part of the data, not of the run's seed


def read_text_lines(path: Path, spec: TaskSpec) -> list[Example]:
    """Examples `{"id", "text", "language"}`, one per non-blank line of a file or of every
    `{language}.txt` of the spec's languages in a folder."""
    if path.is_dir():
        files = [(language, path / f"{language}.txt") for language in spec.languages]
    else:
        files = [(path.stem, path)]
    examples = []
    for language, file in files:
        for number, line in numbered_lines(file):
            if line.strip():
                examples.append({"id": f"{language}-{number}", "text": line.strip(), "language": language})
    return examples


def mask_tokens(
    ids: list[int], rng: np.random.Generator, *, vocab_size: int, mask_id: int, special_ids: set[int]
) -> tuple[list[int], list[int]]:
    """(inputs, labels) for one window: 15% of non-special ids selected, then 80/10/10.

    The draws are made for every position in a fixed order (selection, action, random id),
    so the result depends only on `ids` and the generator's seed.
    """
    selected = rng.random(len(ids)) < MASK_PROBABILITY
    action = rng.random(len(ids))
    random_ids = rng.integers(vocab_size, size=len(ids))
    inputs, labels = [], []
    for position, token in enumerate(ids):
        if not selected[position] or token in special_ids:
            inputs.append(token)
            labels.append(IGNORE)
            continue
        labels.append(token)
        if action[position] < 0.8:
            inputs.append(mask_id)
        elif action[position] < 0.9:
            inputs.append(int(random_ids[position]))
        else:
            inputs.append(token)
    return inputs, labels


class MaskedLMHead(nn.Module):
    """Transform (dense + activation + LayerNorm), then logits against the tied input embeddings
    plus the output bias, at masked positions only.

    Output [batch, time, 2]: the gold token's log-probability and the predicted id, zero
    where nothing is masked.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=1e-12)
        # Vocabulary-sized, so it is created when the head is bound to an encoder.
        self.register_parameter("bias", None)
        self.activation: nn.Module = ACT2FN["gelu"]
        # A tuple, so the shared embedding is neither a submodule nor saved with the head.
        self._embeddings: tuple[nn.Embedding, ...] = ()

    def bind_encoder(self, encoder: nn.Module) -> None:
        """Tie the decoder to `encoder`'s input embeddings, size the bias (zeros, as BERT's) and
        take the activation and LayerNorm epsilon from its config (BERT and RoBERTa: `hidden_act`,
        `layer_norm_eps`; DistilBERT: `activation`). Called before a saved head is loaded."""
        embeddings = encoder.get_input_embeddings()
        config = getattr(encoder, "config", None)
        activation = getattr(config, "hidden_act", None) or getattr(config, "activation", None) or "gelu"
        self.activation = ACT2FN[activation] if isinstance(activation, str) else activation
        self.layer_norm.eps = getattr(config, "layer_norm_eps", 1e-12)
        vocabulary = embeddings.weight.shape[0]
        if self.bias is None:
            weight = embeddings.weight
            self.bias = nn.Parameter(torch.zeros(vocabulary, dtype=weight.dtype, device=weight.device))
        elif self.bias.shape != (vocabulary,):
            raise ValueError(f"MLM head bias has {self.bias.shape[0]} entries, the encoder's vocabulary {vocabulary}")
        self._embeddings = (embeddings,)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits of `[..., hidden]` states (float32)."""
        if not self._embeddings:
            raise RuntimeError("the MLM head is not bound to an encoder (MaskedLMHead.bind_encoder)")
        states = self.layer_norm(self.activation(self.dense(hidden)))
        return (states @ self._embeddings[0].weight.t() + self.bias).float()

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["labels"]
        masked = labels != IGNORE
        logits = self.logits(hidden[masked])
        gold = logits.log_softmax(dim=-1).gather(1, labels[masked].unsqueeze(1)).squeeze(1)
        output = torch.zeros(*labels.shape, 2, device=hidden.device, dtype=torch.float32)
        output[masked] = torch.stack([gold, logits.argmax(dim=-1).float()], dim=-1)
        return output


class MaskedLM:
    """The TaskFormat for text -> its own masked tokens."""

    version = 2  # 2: the head has BERT's output bias (checkpoints of version 1 lack it)

    def featurize(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, max_length: int
    ) -> list[Feature]:
        if tokenizer.mask_token_id is None:
            raise UserError(f"task {spec.name!r}: the tokenizer has no mask token")
        frame = SpecialTokens.of(tokenizer)
        size = frame.room(max_length)
        if size < 1:
            raise UserError(f"max_length {max_length} leaves no room for text next to the special tokens")
        encoded = tokenizer([example["text"] for example in examples], add_special_tokens=False, verbose=False)
        special_ids = set(tokenizer.all_special_ids)
        features = []
        for example_index, ids in enumerate(encoded["input_ids"]):
            for window, (start, end) in enumerate(consecutive_spans(len(ids), size)):
                rng = np.random.default_rng([MASK_SEED, example_index, window])
                inputs, labels = mask_tokens(
                    ids[start:end], rng,
                    vocab_size=len(tokenizer), mask_id=tokenizer.mask_token_id, special_ids=special_ids,
                )
                feature = frame.inputs(inputs)
                feature.update(labels=frame.pad(labels), example_index=example_index)
                features.append(feature)
        return features

    def build_head(self, hidden_size: int, spec: TaskSpec, dropout: float) -> nn.Module:
        return MaskedLMHead(hidden_size)

    def loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # Mean negative log-likelihood over masked positions; a batch without any is zero, not NaN.
        return -output[..., 0].sum() / (batch["labels"] != IGNORE).sum().clamp(min=1)

    def decode(self, outputs: np.ndarray, features: list[Feature], examples: list[Example], spec: TaskSpec) -> list:
        """Per example: the gold and predicted ids and the gold log-probability of each masked token."""
        predictions = [{"gold": [], "predicted": [], "log_probs": []} for _ in examples]
        for row, feature in zip(outputs, features, strict=True):
            entry = predictions[feature["example_index"]]
            for position, label in enumerate(feature["labels"]):
                if label != IGNORE:
                    entry["gold"].append(label)
                    entry["predicted"].append(int(row[position, 1]))
                    entry["log_probs"].append(float(row[position, 0]))
        return predictions

    def score(self, predictions: list, examples: list[Example], spec: TaskSpec) -> dict[str, float]:
        gold = [token for entry in predictions for token in entry["gold"]]
        if not gold:
            raise UserError(f"task {spec.name!r}: no masked tokens to score (the split is too small)")
        correct = sum(g == p for entry in predictions for g, p in zip(entry["gold"], entry["predicted"]))
        log_probs = [value for entry in predictions for value in entry["log_probs"]]
        return {"accuracy": 100.0 * correct / len(gold), "perplexity": math.exp(-sum(log_probs) / len(log_probs))}


MLM = MaskedLM()
