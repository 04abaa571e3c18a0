"""Tagging as text-to-text: `"{prefix}: w1 w2 ..."` -> `"TAG1 TAG2 ..."`, aligned back to the words.

A sentence whose input or tag sequence would not fit is never truncated (jiant #1169): its
words are cut into consecutive chunks whose input fits max_length and whose tag sequence fits
the target length (the longest tag's token count times the chunk's words, so labelled and
unlabelled data are cut alike). Chunks of one sentence share `example_index` and record their
words (`word_start`, `word_end`); each word is in exactly one chunk, and alignment gives every
word exactly one prediction (a catch-all UNALIGNED_TAG where the output cannot be read).
"""

from __future__ import annotations

import logging

import torch
from transformers import PreTrainedTokenizerBase

from xstilts.config.schema import Precision
from xstilts.data.io import Example
from xstilts.formats.base import Feature
from xstilts.formats.tagging import TAGGING
from xstilts.formats.text_rendering import (
    UNALIGNED_TAG,
    align_tags,
    find_prompt,
    max_target_length,
    render_input,
    tag_sequence,
    unwrap_target,
    wrap_target,
)
from xstilts.formats.text_to_text import TextToTextFormat, encode_texts
from xstilts.tasks.spec import Prompt, TaskSpec

logger = logging.getLogger(__name__)


class ChunkBudget:
    """Token costs that decide where a sentence is cut: per word (input) and per tag (target)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, prompt: Prompt | None, max_length: int):
        self.tokenizer, self.spec, self.prompt, self.max_length = tokenizer, spec, prompt, max_length
        self.input_room = max_length - self._count(render_input({"tokens": []}, spec, prompt), special=True)
        tag_costs = [self._count(spec.label_word(label)) for label in spec.labels]
        self.tag_cost = max(tag_costs)
        self.target_room = max_target_length(spec) - self._count(wrap_target("", spec, prompt), special=True)

    def _count(self, text: str, special: bool = False) -> int:
        return len(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def chunks(self, words: list[str]) -> list[tuple[int, int]]:
        """Consecutive [start, end) word ranges; a chunk holds at least one word."""
        spans, start, used = [], 0, 0
        for index, word in enumerate(words):
            cost = max(self._count(word), 1)
            fits = used + cost <= self.input_room and (index - start + 1) * self.tag_cost <= self.target_room
            if index > start and not fits:
                spans.append((start, index))
                start, used = index, 0
            used += cost
        if words:
            spans.append((start, len(words)))
        return [piece for span in spans for piece in self._fitted(words, span)]

    def _fitted(self, words: list[str], span: tuple[int, int]) -> list[tuple[int, int]]:
        """The span, halved until its rendered input fits (words counted alone may tokenise
        differently in context); a single word that is too long on its own is truncated."""
        start, end = span
        text = render_input({"tokens": words[start:end]}, self.spec, self.prompt)
        if end - start == 1 or self._count(text, special=True) <= self.max_length:
            return [span]
        middle = (start + end) // 2
        return self._fitted(words, (start, middle)) + self._fitted(words, (middle, end))


class TextTagging(TextToTextFormat):
    """Tagging: words -> one tag word per word."""

    def featurize(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, max_length: int
    ) -> list[Feature]:
        prompt = find_prompt(spec, self.settings.prompt)
        budget = ChunkBudget(tokenizer, spec, prompt, max_length)
        inputs, targets, owners = [], [], []
        for example_index, example in enumerate(examples):
            for start, end in budget.chunks(example["tokens"]):
                inputs.append(render_input({"tokens": example["tokens"][start:end]}, spec, prompt))
                labels = example["labels"]
                targets.append(None if labels is None else wrap_target(tag_sequence(labels[start:end], spec), spec, prompt))
                owners.append((example_index, start, end))
        extras = [{"example_index": index, "word_start": start, "word_end": end} for index, start, end in owners]
        return encode_texts(
            inputs, targets, tokenizer, max_length=max_length, target_length=max_target_length(spec), extras=extras
        )

    def predict(
        self, model, features: list[Feature], examples: list[Example], spec: TaskSpec, *,
        tokenizer: PreTrainedTokenizerBase, device: torch.device, precision: Precision, batch_size: int,
    ) -> list[list[str]]:
        """One tag per word of every example, from the generated tag sequence of each chunk."""
        prompt = find_prompt(spec, self.settings.prompt)
        outputs = self._generate(model, features, spec, tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size)
        predictions: list[list[str | None]] = [[None] * len(example["tokens"]) for example in examples]
        unaligned = 0
        for output, feature in zip(outputs, features, strict=True):
            start, end = feature["word_start"], feature["word_end"]
            tags, missed = align_tags(unwrap_target(output, spec, prompt), end - start, spec)
            predictions[feature["example_index"]][start:end] = tags
            unaligned += missed
        for index, sentence in enumerate(predictions):
            if None in sentence:
                raise RuntimeError(f"example {examples[index].get('id')!r}: word {sentence.index(None)} is in no chunk")
        if unaligned:
            total = sum(len(sentence) for sentence in predictions)
            logger.warning("task %s: %d of %d words could not be aligned to a generated tag (%s)", spec.name, unaligned, total, UNALIGNED_TAG)
        return predictions

    def score(self, predictions: list, examples: list[Example], spec: TaskSpec) -> dict[str, float]:
        """The tagging metric (seqeval F1 or token accuracy), then `unaligned_words` in percent."""
        total = sum(len(sentence) for sentence in predictions)
        unaligned = sum(tag == UNALIGNED_TAG for sentence in predictions for tag in sentence)
        return TAGGING.score(predictions, examples, spec) | {"unaligned_words": 100.0 * unaligned / max(total, 1)}
