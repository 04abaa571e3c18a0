"""Windows of subwords framed by a tokenizer's special tokens: the one place that knows how a
window becomes model inputs, shared by the formats that cut long inputs themselves (tagging,
masked LM) and by span QA, whose windows the tokenizer cuts.

A window's per-position arrays (labels, word indices) are built over its subwords only and
padded here over the special tokens, so every format lines them up with `input_ids` the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

from xstilts.formats.base import Feature

IGNORE = -100
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class SpecialTokens:
    """The ids a tokenizer puts before and after one sequence, and whether it emits token_type_ids.

    Example:
        >>> frame = SpecialTokens.of(tokenizer)      # BERT: prefix [CLS], suffix [SEP]
        >>> frame.inputs([7, 8])["input_ids"]
        [101, 7, 8, 102]
    """

    prefix: list[int]
    suffix: list[int]
    with_types: bool

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase) -> SpecialTokens:
        """Read them off the tokenizer's own encoding of a one-word sequence."""
        probe = tokenizer(["a"], is_split_into_words=True)
        positions = [p for p, word in enumerate(probe.word_ids()) if word is not None]
        ids = probe["input_ids"]
        return cls(ids[: positions[0]], ids[positions[-1] + 1 :], "token_type_ids" in probe)

    def room(self, max_length: int) -> int:
        """How many subwords fit in one window of `max_length` positions."""
        return max_length - len(self.prefix) - len(self.suffix)

    def inputs(self, ids: list[int]) -> Feature:
        """Model inputs of one window: the subword ids between the special tokens."""
        input_ids = self.prefix + list(ids) + self.suffix
        feature: Feature = {"input_ids": input_ids, "attention_mask": [1] * len(input_ids)}
        if self.with_types:
            feature["token_type_ids"] = [0] * len(input_ids)
        return feature

    def pad(self, values: list[Any], fill: Any = IGNORE) -> list[Any]:
        """A per-subword array of one window, extended with `fill` over the special tokens."""
        return [fill] * len(self.prefix) + list(values) + [fill] * len(self.suffix)


def model_inputs(encoded: Any, index: int) -> Feature:
    """The model inputs of row `index` of a batch encoding (windows the tokenizer cut itself)."""
    return {key: encoded[key][index] for key in MODEL_INPUTS if key in encoded}


def window_spans(length: int, size: int) -> list[tuple[int, int]]:
    """Overlapping [start, end) windows of at most `size` positions covering `length` positions.

    Windows advance by half their size, so every position away from the sequence ends has at
    least a quarter window of context on each side in some window; the last window is
    aligned to the end.

    Example:
        >>> window_spans(10, 4)
        [(0, 4), (2, 6), (4, 8), (6, 10)]
    """
    if length <= size:
        return [(0, length)]
    stride = max(1, size // 2)
    starts = list(range(0, length - size, stride)) + [length - size]
    return [(start, start + size) for start in starts]


def consecutive_spans(length: int, size: int) -> list[tuple[int, int]]:
    """Back-to-back [start, end) windows of at most `size` positions (the last may be shorter).

    Example:
        >>> consecutive_spans(10, 4)
        [(0, 4), (4, 8), (8, 10)]
    """
    return [(start, min(start + size, length)) for start in range(0, length, size)]


def owning_window(position: int, spans: list[tuple[int, int]]) -> int:
    """The window that predicts `position`: most context on its poorer side, earliest on ties."""
    best, best_context = -1, -1
    for index, (start, end) in enumerate(spans):
        if start <= position < end:
            context = min(position - start, end - 1 - position)
            if context > best_context:
                best, best_context = index, context
    return best
