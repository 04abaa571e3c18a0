"""Token tagging (UDPOS, PAN-X, and the UD FEATS / CCG intermediate tasks): one label per input
word, scored by seqeval F1 on the official 0..100 scale (UDPOS, PAN-X), or by token accuracy
where the tags are not BIO chunks (UD FEATS strings, CCG supertags: `metric: token_accuracy`).

Words are tokenised as pre-split words; the first subword of each word carries its label and
the others are ignored (-100), as in XTREME's `utils_tag.py`. A sentence longer than the
model's window is never truncated (jiant #1169: truncated tokens got no prediction): it is
cut into overlapping windows of subwords, and each word is predicted from exactly one
window, the one where its first subword has the most context on both sides. Every word
therefore gets exactly one prediction, however long the sentence.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from xstilts.data.io import Example
from xstilts.errors import UserError
from xstilts.metrics import check_labelled, seqeval_f1, seqeval_precision, seqeval_recall, token_accuracy
from xstilts.formats.base import Feature
from xstilts.formats.windows import IGNORE, SpecialTokens, owning_window, window_spans
from xstilts.tasks.spec import Metric, TaskSpec


class TokenTaggingHead(nn.Module):
    """Dropout + linear over every position: logits [batch, time, labels]."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.dropout(hidden))


def _subwords(words: list[str], tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int | None]]:
    """Subword ids of pre-split words and the word each belongs to.

    A word that tokenises to nothing (a zero-width or control character the normaliser
    removes, an empty string) is replaced by the unknown token, as XTREME's `utils_tag.py`
    does, so the model still sees a position for it and predicts its label in context.
    """
    encoded = tokenizer(words, is_split_into_words=True, add_special_tokens=False, verbose=False)
    word_ids = encoded.word_ids()
    missing = set(range(len(words))) - set(word_ids)
    if missing:
        if tokenizer.unk_token is None:
            raise UserError(f"word {words[min(missing)]!r} has no subwords and the tokenizer has no unknown token")
        words = [tokenizer.unk_token if index in missing else word for index, word in enumerate(words)]
        encoded = tokenizer(words, is_split_into_words=True, add_special_tokens=False, verbose=False)
        word_ids = encoded.word_ids()
    return encoded["input_ids"], word_ids


def _first_subwords(word_ids: list[int | None]) -> dict[int, int]:
    """Word index -> position of its first subword."""
    first: dict[int, int] = {}
    for position, word in enumerate(word_ids):
        if word is not None and word not in first:
            first[word] = position
    return first


class Tagging:
    """The TaskFormat for tokens -> one label per token."""

    version = 1

    def featurize(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, max_length: int
    ) -> list[Feature]:
        """Windows of subwords; each feature records its example and, per position, the word it predicts.

        `word_index[p]` is the word predicted at position p, -1 where nothing is predicted
        (special tokens, non-first subwords, words another window predicts); `labels`
        follows the same mask with -100.
        """
        if tokenizer.padding_side != "right":
            raise UserError("tagging needs a tokenizer that pads on the right (decode reads positions from the left)")
        frame = SpecialTokens.of(tokenizer)
        size = frame.room(max_length)
        if size < 2:
            raise UserError(f"max_length {max_length} leaves {size} subwords per window for tagging; use at least {max_length - size + 2}")
        label_ids = {label: index for index, label in enumerate(spec.labels)}
        features = []
        for example_index, example in enumerate(examples):
            ids, word_ids = _subwords(example["tokens"], tokenizer)
            first = _first_subwords(word_ids)
            spans = window_spans(len(ids), size)
            owner = {word: (owning_window(position, spans), position) for word, position in first.items()}
            for window, (start, end) in enumerate(spans):
                word_index = [-1] * (end - start)
                for word, (owner_window, position) in owner.items():
                    if owner_window == window:
                        word_index[position - start] = word
                feature = frame.inputs(ids[start:end])
                if example["labels"] is not None:
                    feature["labels"] = frame.pad([IGNORE if word < 0 else label_ids[example["labels"][word]] for word in word_index])
                feature.update(example_index=example_index, word_index=frame.pad(word_index, fill=-1))
                features.append(feature)
        return features

    def build_head(self, hidden_size: int, spec: TaskSpec, dropout: float) -> nn.Module:
        return TokenTaggingHead(hidden_size, len(spec.labels), dropout)

    def loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["labels"]
        # Summed then divided, so a batch whose words are all predicted by other windows
        # contributes zero instead of NaN.
        total = nn.functional.cross_entropy(
            output.float().reshape(-1, output.shape[-1]), labels.reshape(-1), ignore_index=IGNORE, reduction="sum"
        )
        return total / (labels != IGNORE).sum().clamp(min=1)

    def reduce(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The best label index per position, [batch, time] int32: a few bytes per position
        whatever the number of labels (CCG has ~1,360)."""
        return output.argmax(dim=-1).to(torch.int32)

    def decode(self, outputs: np.ndarray, features: list[Feature], examples: list[Example], spec: TaskSpec) -> list:
        """One label per token of every example, reassembled from the windows that own each word.

        `outputs` holds `reduce`'s label index per position of every feature, [features, time].
        """
        predictions: list[list[str | None]] = [[None] * len(example["tokens"]) for example in examples]
        for row, feature in zip(outputs, features, strict=True):
            sentence = predictions[feature["example_index"]]
            for position, word in enumerate(feature["word_index"]):
                if word >= 0:
                    sentence[word] = spec.labels[row[position]]
        for index, sentence in enumerate(predictions):
            if None in sentence:
                raise RuntimeError(f"example {examples[index]['id']!r}: word {sentence.index(None)} got no prediction")
        return predictions

    def score(self, predictions: list, examples: list[Example], spec: TaskSpec) -> dict[str, float]:
        """seqeval F1 (with precision and recall), or token accuracy where the spec asks for it."""
        gold = [example["labels"] for example in examples]
        check_labelled(gold, f"task {spec.name!r}")
        if spec.metric is Metric.TOKEN_ACCURACY:
            return {"accuracy": 100.0 * token_accuracy(predictions, gold)}
        return {
            "f1": 100.0 * seqeval_f1(predictions, gold),
            "precision": 100.0 * seqeval_precision(predictions, gold),
            "recall": 100.0 * seqeval_recall(predictions, gold),
        }


TAGGING = Tagging()
