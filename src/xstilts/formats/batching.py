"""Padding collation and the batch iterators the loop and the evaluator share."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from transformers import PreTrainedTokenizerBase

from xstilts.formats.base import Feature

TENSOR_KEYS = ("input_ids", "attention_mask", "token_type_ids", "labels")


def collate(features: list[Feature], tokenizer: PreTrainedTokenizerBase, device: torch.device) -> dict:
    """Pad a list of features to the longest one (dynamic padding keeps CPU steps short)."""
    model_inputs = [{key: f[key] for key in ("input_ids", "attention_mask", "token_type_ids") if key in f} for f in features]
    batch = tokenizer.pad(model_inputs, return_tensors="pt")
    if "labels" in features[0]:
        batch["labels"] = collate_labels([f["labels"] for f in features], batch["input_ids"].shape[1], tokenizer.padding_side)
    return {key: value.to(device) for key, value in batch.items() if key in TENSOR_KEYS}


def collate_labels(labels: list, length: int, padding_side: str) -> torch.Tensor:
    """Stack per-example labels; per-position label lists (tagging) are padded with -100 like the inputs."""
    if not isinstance(labels[0], list):
        return torch.tensor(labels)
    pads = [[-100] * (length - len(row)) for row in labels]
    return torch.tensor([pad + row if padding_side == "left" else row + pad for row, pad in zip(labels, pads)])


def batches_in_order(features: list[Feature], batch_size: int) -> Iterator[list[Feature]]:
    for start in range(0, len(features), batch_size):
        yield features[start : start + batch_size]


def shuffle_units(features: list[Feature]) -> list[list[int]]:
    """Indices grouped into the units a batch must not split: the choices of one
    multiple-choice example share a `group`; any other feature is a unit of its own."""
    if not features or "group" not in features[0]:
        return [[index] for index in range(len(features))]
    units: dict[int, list[int]] = {}
    for index, feature in enumerate(features):
        units.setdefault(feature["group"], []).append(index)
    return list(units.values())


def shuffled_examples(features: list[Feature], generator: torch.Generator) -> Iterator[list[Feature]]:
    """Endless stream of units (a list of features each) in a new random order each pass."""
    units = shuffle_units(features)
    while True:
        for unit in torch.randperm(len(units), generator=generator).tolist():
            yield [features[index] for index in units[unit]]


def take(stream: Iterator[list[Feature]], units: int) -> list[Feature]:
    """The features of the next `units` units of a stream."""
    return [feature for _ in range(units) for feature in next(stream)]
