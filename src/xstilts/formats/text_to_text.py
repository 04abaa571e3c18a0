"""Text-to-text task formats (T5, mT5, FLAN-T5, mT0): every task reads and writes text.

One format per task format, bound to the run's TextToTextConfig by `base.get_format`. Each
featurises an example as input text -> target text (text_rendering.py), trains with the token
cross-entropy of the target, predicts in the form the encoder format's `decode` returns, and
scores with the encoder format's scorer-exact metrics, followed by text-to-text diagnostics
(percentages):

- classification / multiple choice: with `scoring: rank`, the label word (option) with the
  highest sequence log-likelihood; with `scoring: generate`, free generation matched exactly
  (white space normalised) against the label words (options). An output that matches none is
  the prediction INVALID_LABEL (multiple choice: -1), which never equals a gold label, so it
  counts as wrong; `invalid_outputs` reports their share;
- span QA: the generated answer (`wrong_script`, `not_in_context`: see qa_diagnostics);
- tagging (text_tagging.py): a generated tag sequence aligned back to the words.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from xstilts.config.schema import Precision, Scoring, TextToTextConfig
from xstilts.data.io import Example, is_labelled
from xstilts.formats.base import Feature
from xstilts.formats.classification import PAIR_CLASSIFICATION
from xstilts.formats.generation import generate_texts, rank_scores
from xstilts.formats.multiple_choice import MULTIPLE_CHOICE
from xstilts.formats.span_qa import SPAN_QA, allows_no_answer
from xstilts.formats.text_rendering import (
    default_target,
    find_prompt,
    max_target_length,
    read_answer,
    render_input,
    unwrap_target,
    wrap_target,
)
from xstilts.formats.text_scripts import qa_diagnostics
from xstilts.tasks.spec import TaskSpec

IGNORE = -100
# The prediction of a generated output that matches no label word: never a label.
INVALID_LABEL = "<invalid>"
INVALID_CHOICE = -1


def normalise_space(text: str) -> str:
    return " ".join(text.split())


def encode_texts(
    inputs: list[str],
    targets: list[str | None],
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int,
    target_length: int,
    extras: list[Feature] | None = None,
) -> list[Feature]:
    """Features of input/target texts: the input cut to `max_length` tokens and the target to
    `target_length` (both keep the tokenizer's closing eos); no `target_ids` where the target
    is None (an unlabelled example, predicted only). `extras[i]` is added to feature i
    (default: `example_index` i, one feature per example)."""
    if not inputs:
        return []
    encoded = tokenizer(inputs, truncation=True, max_length=max_length)
    labelled = [index for index, target in enumerate(targets) if target is not None]
    target_ids = tokenizer([targets[index] for index in labelled], truncation=True, max_length=target_length)["input_ids"] if labelled else []
    by_index = dict(zip(labelled, target_ids, strict=True))
    features = []
    for index in range(len(inputs)):
        feature: Feature = {"input_ids": encoded["input_ids"][index], "attention_mask": encoded["attention_mask"][index]}
        if index in by_index:
            feature["target_ids"] = by_index[index]
        feature.update(extras[index] if extras is not None else {"example_index": index})
        features.append(feature)
    return features


def target_token_ids(texts: list[str], tokenizer: PreTrainedTokenizerBase) -> list[list[int]]:
    """Token ids (eos included) of candidate targets, uncut: a ranked option is scored whole."""
    return tokenizer(texts)["input_ids"] if texts else []


class TextToTextFormat:
    """What every text-to-text format shares: one feature per example, token cross-entropy."""

    version = 1

    def __init__(self, settings: TextToTextConfig):
        self.settings = settings

    def max_new_tokens(self, spec: TaskSpec) -> int:
        """The settings' max_new_tokens, else the spec's max_target_length, else the format's default."""
        return self.settings.max_new_tokens or max_target_length(spec)

    def featurize(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, max_length: int
    ) -> list[Feature]:
        prompt = find_prompt(spec, self.settings.prompt)
        allow = allows_no_answer(spec, examples)
        inputs = [render_input(example, spec, prompt) for example in examples]
        targets = [
            wrap_target(default_target(example, spec, allow), spec, prompt) if is_labelled(example) else None
            for example in examples
        ]
        return encode_texts(inputs, targets, tokenizer, max_length=max_length, target_length=max_target_length(spec))

    def build_head(self, hidden_size: int, spec: TaskSpec, dropout: float) -> nn.Module:
        raise RuntimeError("text-to-text formats have no task head: the language-model head serves every task")

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean token cross-entropy of the targets (padding, -100, is skipped)."""
        return nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=IGNORE
        )

    def _generate(self, model, features, spec, *, tokenizer, device, precision, batch_size) -> list[str]:
        return generate_texts(
            model, features, tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size,
            max_new_tokens=self.max_new_tokens(spec), num_beams=self.settings.num_beams,
        )

    def _choose(self, model, features, options: list[list[str]], spec, *, tokenizer, device, precision, batch_size) -> list[int]:
        """Per example, the index of the chosen option text (rank or exact match; -1: none matches)."""
        prompt = find_prompt(spec, self.settings.prompt)
        if self.settings.scoring is Scoring.RANK:
            candidates = [target_token_ids([wrap_target(text, spec, prompt) for text in texts], tokenizer) for texts in options]
            scores = rank_scores(
                model, features, candidates, tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size
            )
            return [max(range(len(row)), key=row.__getitem__) for row in scores]
        outputs = self._generate(model, features, spec, tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size)
        chosen = []
        for output, texts in zip(outputs, options, strict=True):
            answer = normalise_space(unwrap_target(output, spec, prompt))
            matches = [index for index, text in enumerate(texts) if normalise_space(text) == answer]
            chosen.append(matches[0] if matches else INVALID_CHOICE)
        return chosen

    def _invalid_share(self, predictions: list, invalid) -> dict[str, float]:
        if self.settings.scoring is not Scoring.GENERATE:
            return {}
        return {"invalid_outputs": 100.0 * sum(p == invalid for p in predictions) / max(len(predictions), 1)}


class TextClassification(TextToTextFormat):
    """Sentence (pair) classification: input text -> label word."""

    def predict(
        self, model, features: list[Feature], examples: list[Example], spec: TaskSpec, *,
        tokenizer: PreTrainedTokenizerBase, device: torch.device, precision: Precision, batch_size: int,
    ) -> list[str]:
        words = [spec.label_word(label) for label in spec.labels]
        chosen = self._choose(
            model, features, [words] * len(features), spec,
            tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size,
        )
        return [spec.labels[index] if index >= 0 else INVALID_LABEL for index in chosen]

    def score(self, predictions: list, examples: list[Example], spec: TaskSpec) -> dict[str, float]:
        return PAIR_CLASSIFICATION.score(predictions, examples, spec) | self._invalid_share(predictions, INVALID_LABEL)


class TextMultipleChoice(TextToTextFormat):
    """Multiple choice: context, question and numbered choices -> the correct choice's text."""

    def predict(
        self, model, features: list[Feature], examples: list[Example], spec: TaskSpec, *,
        tokenizer: PreTrainedTokenizerBase, device: torch.device, precision: Precision, batch_size: int,
    ) -> list[int]:
        return self._choose(
            model, features, [example["choices"] for example in examples], spec,
            tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size,
        )

    def score(self, predictions: list, examples: list[Example], spec: TaskSpec) -> dict[str, float]:
        return MULTIPLE_CHOICE.score(predictions, examples, spec) | self._invalid_share(predictions, INVALID_CHOICE)


class TextSpanQA(TextToTextFormat):
    """Extractive QA as generation: question and context -> the answer text.

    The context is truncated, not windowed: the input is cut at max_length tokens, and the
    question comes first, so only the context's tail is lost. Windowing would need a choice
    between the answers generated from different windows; with XTREME's 384 tokens most
    paragraphs fit whole. A training example whose answer lies in the cut tail keeps its target.
    """

    def predict(
        self, model, features: list[Feature], examples: list[Example], spec: TaskSpec, *,
        tokenizer: PreTrainedTokenizerBase, device: torch.device, precision: Precision, batch_size: int,
    ) -> list[str]:
        prompt, allow = find_prompt(spec, self.settings.prompt), allows_no_answer(spec, examples)
        outputs = self._generate(model, features, spec, tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size)
        return [read_answer(output, spec, prompt, allow) for output in outputs]

    def score(self, predictions: list, examples: list[Example], spec: TaskSpec) -> dict[str, float]:
        return SPAN_QA.score(predictions, examples, spec) | qa_diagnostics(predictions, examples)
