"""The small protocol every task format implements, and the dict that dispatches on Format.

A format knows how to turn examples into model features, which head it needs, how to
compute the training loss, how to reduce one batch of head outputs on the device to what
decoding reads (a label index per position, the n-best span candidates, ...), how to decode
a whole split of reduced outputs back into one prediction per example, and how to score
those predictions with the task's metric.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from xstilts.data.io import Example
from xstilts.config.schema import TextToTextConfig
from xstilts.errors import UserError
from xstilts.tasks.spec import Format, TaskSpec

Feature = dict[str, Any]
# What `reduce` returns for one batch (batch first) and, on the CPU with every batch joined
# in feature order, what `decode` reads: one array, or named arrays.
Reduced = torch.Tensor | dict[str, torch.Tensor]
ReducedSplit = np.ndarray | dict[str, np.ndarray]


class TaskFormat(Protocol):
    """What the training loop and the zero-shot sweep need from a task format."""

    #: bump when featurisation changes, so cached features keyed on it are rebuilt
    version: int

    def featurize(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, max_length: int
    ) -> list[Feature]: ...

    def build_head(self, hidden_size: int, spec: TaskSpec, dropout: float) -> nn.Module: ...

    def loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def reduce(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> Reduced:
        """What decoding needs of one batch of head outputs, computed where the batch ran.

        A split's full head outputs can be gigabytes (tagging keeps [time, labels] per
        feature), so evaluation keeps only this, batch first: a per-position axis 1 may be
        as long as the batch's padded length (splits are joined by padding it at the end).
        """
        ...

    def decode(self, outputs: ReducedSplit, features: list[Feature], examples: list[Example], spec: TaskSpec) -> list:
        """One prediction per example, from the reduced outputs of every feature of the split, in order."""
        ...

    def score(self, predictions: list, examples: list[Example], spec: TaskSpec) -> dict[str, float]: ...


# Format -> "module:OBJECT" implementing TaskFormat, imported on first use (dispatch by Enum,
# never isinstance). Retrieval has no head: it is evaluated on the encoder directly.
FORMATS: dict[Format, str] = {
    Format.PAIR_CLASSIFICATION: "xstilts.formats.classification:PAIR_CLASSIFICATION",
    Format.SINGLE_CLASSIFICATION: "xstilts.formats.classification:SINGLE_CLASSIFICATION",
    Format.TAGGING: "xstilts.formats.tagging:TAGGING",
    Format.SPAN_QA: "xstilts.formats.span_qa:SPAN_QA",
    Format.MULTIPLE_CHOICE: "xstilts.formats.multiple_choice:MULTIPLE_CHOICE",
    Format.MLM: "xstilts.formats.mlm:MLM",
}


# Text-to-text mode: Format -> "module:CLASS" built with the run's TextToTextConfig bound.
TEXT_TO_TEXT_FORMATS: dict[Format, str] = {
    Format.PAIR_CLASSIFICATION: "xstilts.formats.text_to_text:TextClassification",
    Format.SINGLE_CLASSIFICATION: "xstilts.formats.text_to_text:TextClassification",
    Format.MULTIPLE_CHOICE: "xstilts.formats.text_to_text:TextMultipleChoice",
    Format.SPAN_QA: "xstilts.formats.text_to_text:TextSpanQA",
    Format.TAGGING: "xstilts.formats.text_tagging:TextTagging",
}
# Text-to-text formats without settings to bind (nothing is predicted from them).
TEXT_TO_TEXT_FIXED: dict[Format, str] = {
    Format.SPAN_CORRUPTION: "xstilts.formats.span_corruption:SPAN_CORRUPTION",
}


def _load(target: str) -> Any:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def get_format(fmt: Format, text_to_text: TextToTextConfig | None = None) -> TaskFormat:
    """The implementation of a trainable task format.

    Args:
        fmt: the task's format.
        text_to_text: the run's text-to-text settings (`mode: text_to_text`); None: encoder mode.

    Raises:
        UserError: for a format that has no implementation in the mode asked for.
    """
    if text_to_text is not None:
        if fmt in TEXT_TO_TEXT_FIXED:
            return _load(TEXT_TO_TEXT_FIXED[fmt])
        if fmt not in TEXT_TO_TEXT_FORMATS:
            raise UserError(f"task format {fmt.value!r} has no text-to-text form (evaluate it in `mode: encoder`)")
        return _load(TEXT_TO_TEXT_FORMATS[fmt])(text_to_text)
    if fmt is Format.SPAN_CORRUPTION:
        raise UserError(f"task format {fmt.value!r} trains text-to-text models only: set `mode: text_to_text`")
    if fmt not in FORMATS:
        raise UserError(f"task format {fmt.value!r} has no trainable head (evaluate it with `xstilts eval`)")
    return _load(FORMATS[fmt])
