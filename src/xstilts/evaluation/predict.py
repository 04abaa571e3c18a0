"""Run a head over a whole split and score it: shared by dev selection and the zero-shot sweep."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from xstilts.config.schema import Precision
from xstilts.data.io import Example
from xstilts.formats.base import Feature, Reduced, ReducedSplit, TaskFormat
from xstilts.formats.batching import autocast, collate, prefetched
from xstilts.models.multitask import MultiTaskModel
from xstilts.models.text_to_text import TextToTextModel
from xstilts.tasks.spec import Metric, TaskSpec


@dataclass
class EvalSplit:
    """The examples of one split of one language and their features."""

    language: str
    split: str
    examples: list[Example]
    features: list[Feature]


@dataclass
class Evaluation:
    predictions: list
    scores: dict[str, float]


@torch.inference_mode()
def head_outputs(
    model: MultiTaskModel,
    head: str,
    features: list[Feature],
    *,
    reduce: Callable[[torch.Tensor, dict[str, torch.Tensor]], Reduced],
    tokenizer: PreTrainedTokenizerBase,
    device: torch.device,
    precision: Precision,
    batch_size: int,
) -> ReducedSplit:
    """`reduce` of the head outputs of every feature, as numpy, in the features' order.

    Features run in batches of similar length (sorted by length, so dynamic padding adds
    little), and each batch's output is reduced where it ran: a split never holds more than
    one batch of full head outputs (a tagging head's [time, labels] would be gigabytes).
    """
    was_training = model.training
    model.eval()
    order = sorted(range(len(features)), key=lambda index: len(features[index]["input_ids"]))
    chunks = []
    # Collated in a background thread while the previous batch runs.
    batches = prefetched(
        collate([features[index] for index in order[start : start + batch_size]], tokenizer, device)
        for start in range(0, len(order), batch_size)
    )
    try:
        for batch in batches:
            with autocast(device, precision):
                output = model(head, batch)
            # Kept on the device until the end: copying each batch out would wait for it to finish.
            chunks.append(reduce(output, batch))
    finally:
        batches.close()
        model.train(was_training)
    return in_order(join_chunks([to_numpy(chunk) for chunk in chunks]), order)


def keep_output(output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The reduction of a format whose head already returns only what decoding needs (MLM)."""
    return output.float()


def to_numpy(reduced: Reduced) -> ReducedSplit:
    if isinstance(reduced, dict):
        return {key: value.cpu().numpy() for key, value in reduced.items()}
    return reduced.cpu().numpy()


def join_chunks(chunks: list[ReducedSplit]) -> ReducedSplit:
    """One array (or dict of arrays) from the batches' reduced outputs, padding axis 1 to the longest batch."""
    if isinstance(chunks[0], dict):
        return {key: np.concatenate(pad_time_axis([chunk[key] for chunk in chunks]), axis=0) for key in chunks[0]}
    return np.concatenate(pad_time_axis(chunks), axis=0)


def pad_time_axis(chunks: list[np.ndarray], fill: float = 0.0) -> list[np.ndarray]:
    """Right-pad axis 1 of every chunk to the longest (per-position outputs such as tagging's
    [batch, time]: batches are padded dynamically, so their time axes differ).

    Per-example outputs ([batch] or [batch, labels]) pass unchanged.
    """
    if chunks[0].ndim < 2:
        return chunks
    longest = max(chunk.shape[1] for chunk in chunks)
    widths = [[(0, 0), (0, longest - chunk.shape[1])] + [(0, 0)] * (chunk.ndim - 2) for chunk in chunks]
    return [np.pad(chunk, width, constant_values=fill) for chunk, width in zip(chunks, widths)]


def in_order(reduced: ReducedSplit, order: list[int]) -> ReducedSplit:
    """Rows given in `order` (row i is feature order[i]) put back into feature order."""
    if isinstance(reduced, dict):
        return {key: in_order(value, order) for key, value in reduced.items()}
    restored = np.empty_like(reduced)
    restored[order] = reduced
    return restored


def predict_split(
    model: MultiTaskModel | TextToTextModel,
    spec: TaskSpec,
    fmt: TaskFormat,
    examples: list[Example],
    features: list[Feature],
    *,
    tokenizer: PreTrainedTokenizerBase,
    device: torch.device,
    precision: Precision,
    batch_size: int,
) -> list:
    """One prediction per example: a text-to-text format predicts itself (ranking or generating
    text with the model); a head's format decodes the reduced head outputs of every feature."""
    predict = getattr(fmt, "predict", None)
    if predict is not None:
        return predict(
            model, features, examples, spec, tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size
        )
    outputs = head_outputs(
        model, spec.head_name, features,
        # A format without `reduce` has a head whose outputs are small already (MLM: two numbers per position).
        reduce=getattr(fmt, "reduce", keep_output),
        tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size,
    )
    return fmt.decode(outputs, features, examples, spec)


def evaluate_split(
    model: MultiTaskModel | TextToTextModel,
    spec: TaskSpec,
    fmt: TaskFormat,
    data: EvalSplit,
    *,
    tokenizer: PreTrainedTokenizerBase,
    device: torch.device,
    precision: Precision,
    batch_size: int,
) -> Evaluation:
    predictions = predict_split(
        model, spec, fmt, data.examples, data.features,
        tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size,
    )
    return Evaluation(predictions=predictions, scores=fmt.score(predictions, data.examples, spec))


def primary_score(scores: dict[str, float], spec: TaskSpec) -> float:
    """The task score the official scorer averages: QA is the mean of EM and F1."""
    if spec.metric in (Metric.SQUAD_EM_F1, Metric.MLQA_EM_F1):
        return (scores["exact_match"] + scores["f1"]) / 2
    return next(iter(scores.values()))
