"""Padding collation and the batch iterators the loop and the evaluator share."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch
from transformers import PreTrainedTokenizerBase

from xstilts.config.schema import Precision
from xstilts.formats.base import Feature

T = TypeVar("T")

# Length grouping sorts chunks of this many batches (HF Trainer's megabatch of 50).
GROUP_BATCHES = 50

TENSOR_KEYS = ("input_ids", "attention_mask", "token_type_ids", "labels")


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """bf16 autocast where asked (weights stay fp32, so no loss scaling is needed); the same
    context for training, evaluation and generation."""
    if precision is Precision.BF16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def collate(features: list[Feature], tokenizer: PreTrainedTokenizerBase, device: torch.device) -> dict:
    """Pad a list of features to the longest one (dynamic padding keeps CPU steps short)."""
    model_inputs = [{key: f[key] for key in ("input_ids", "attention_mask", "token_type_ids") if key in f} for f in features]
    batch = tokenizer.pad(model_inputs, return_tensors="pt")
    if "target_ids" in features[0]:  # text-to-text: the target tokens, right-padded with -100 (ignored)
        batch["labels"] = pad_targets([f["target_ids"] for f in features])
    elif "labels" in features[0]:
        batch["labels"] = collate_labels(features, batch["input_ids"].shape[1], tokenizer.padding_side)
    return {key: value.to(device) for key, value in batch.items() if key in TENSOR_KEYS}


def is_per_position(features: list[Feature]) -> bool:
    """Whether `labels` holds one label per input position (tagging, MLM), padded like the inputs.

    Labels that are lists of another length are per-example (QA `[start, end]`, a multiple-choice
    `[group, choices, is correct]` triple) and must never be padded.
    """
    return all(isinstance(f["labels"], list) and len(f["labels"]) == len(f["input_ids"]) for f in features)


def collate_labels(features: list[Feature], length: int, padding_side: str) -> torch.Tensor:
    """The features' `labels` as one tensor: per-position labels padded with -100 on the
    tokenizer's padding side up to `length`; any other labels (ints, fixed-size lists) stacked as they are."""
    labels = [f["labels"] for f in features]
    if not is_per_position(features):
        return torch.tensor(labels)
    pads = [[-100] * (length - len(row)) for row in labels]
    return torch.tensor([pad + row if padding_side == "left" else row + pad for row, pad in zip(labels, pads)])


def pad_targets(targets: list[list[int]]) -> torch.Tensor:
    """Target token ids of a text-to-text batch as one tensor, right-padded with -100: the loss
    skips the padding, and transformers' T5 turns -100 into the pad id for the decoder inputs."""
    longest = max(len(target) for target in targets)
    return torch.tensor([target + [-100] * (longest - len(target)) for target in targets])


def batches_in_order(features: list[Feature], batch_size: int) -> Iterator[list[Feature]]:
    for start in range(0, len(features), batch_size):
        yield features[start : start + batch_size]


# The keys formats put on a feature to name the example it belongs to: the choices of a
# multiple-choice example share `group`; the windows of a QA, tagging or MLM example share
# `example_index`. A feature with neither (classification) is an example of its own.
EXAMPLE_KEYS = ("group", "example_index")


def example_units(features: list[Feature]) -> list[list[int]]:
    """Feature indices grouped by example, in order of first appearance: the units that
    epochs, mixture sizes and batches count, and that a batch never splits."""
    key = next((key for key in EXAMPLE_KEYS if features and key in features[0]), None)
    if key is None:
        return [[index] for index in range(len(features))]
    units: dict[int, list[int]] = {}
    for index, feature in enumerate(features):
        units.setdefault(feature[key], []).append(index)
    return list(units.values())


def feature_length(feature: Feature) -> int:
    """Tokens a feature puts into a batch: its input, plus its target in text-to-text mode."""
    return len(feature["input_ids"]) + len(feature.get("target_ids", ()))


def shuffled_examples(
    features: list[Feature], generator: torch.Generator, *, batch_size: int | None = None
) -> Iterator[list[Feature]]:
    """Endless stream of examples (the list of features of each) in a new random order each pass.

    With `batch_size` (length grouping, as HF's `group_by_length`), each pass is cut into chunks
    of `GROUP_BATCHES` batches in the random order, each chunk is sorted by length, cut into
    batches, and the pass's batches are shuffled: `batch_size` consecutive examples (a batch)
    have similar lengths, so dynamic padding adds little, and no pass runs from long to short.
    An example's length is that of its longest feature (the choices of a multiple-choice
    example, the windows of a long one, stay together).
    """
    units = example_units(features)
    lengths = [max(feature_length(features[index]) for index in unit) for unit in units] if batch_size else []
    while True:
        order = torch.randperm(len(units), generator=generator).tolist()
        if batch_size:
            order = length_grouped(order, lengths, batch_size, generator)
        for unit in order:
            yield [features[index] for index in units[unit]]


def length_grouped(order: list[int], lengths: list[int], batch_size: int, generator: torch.Generator) -> list[int]:
    """`order` cut into chunks of `GROUP_BATCHES` batches, each chunk sorted by `lengths` (stable:
    equal lengths keep their random order) and cut into batches, then the batches shuffled."""
    group = batch_size * GROUP_BATCHES
    chunks = (order[start : start + group] for start in range(0, len(order), group))
    order = [item for chunk in chunks for item in sorted(chunk, key=lambda item: -lengths[item])]
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    return [item for batch in torch.randperm(len(batches), generator=generator).tolist() for item in batches[batch]]


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """`items`, computed up to `depth` ahead in a background thread: the next batches are
    collated and padded (Python work) while the model runs forward and backward (torch releases
    the GIL). One worker calls `next` in order, so the items and their order are unchanged."""
    end = object()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = deque(pool.submit(next, items, end) for _ in range(depth))
        while (item := pending.popleft().result()) is not end:
            pending.append(pool.submit(next, items, end))
            yield item


def take(stream: Iterator[list[Feature]], examples: int) -> list[Feature]:
    """The features of the next `examples` examples of a stream."""
    return [feature for _ in range(examples) for feature in next(stream)]
