"""Run a head over a whole split and score it: shared by dev selection and the zero-shot sweep."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from xstilts.config.schema import Precision
from xstilts.data.io import Example
from xstilts.formats.base import Feature, TaskFormat
from xstilts.formats.batching import autocast, batches_in_order, collate
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


@torch.no_grad()
def head_outputs(
    model: MultiTaskModel,
    head: str,
    features: list[Feature],
    *,
    tokenizer: PreTrainedTokenizerBase,
    device: torch.device,
    precision: Precision,
    batch_size: int,
) -> np.ndarray:
    """Head outputs for every feature, in order, as float32 numpy."""
    was_training = model.training
    model.eval()
    chunks = []
    for chunk in batches_in_order(features, batch_size):
        with autocast(device, precision):
            output = model(head, collate(chunk, tokenizer, device))
        chunks.append(output.float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(pad_time_axis(chunks), axis=0)


def pad_time_axis(chunks: list[np.ndarray], fill: float = 0.0) -> list[np.ndarray]:
    """Right-pad axis 1 of every chunk to the longest (per-position outputs such as tagging's
    [batch, time, labels]: batches are padded dynamically, so their time axes differ).

    Per-example outputs ([batch, labels]) share axis 1 already and pass unchanged.
    """
    if chunks[0].ndim < 2:
        return chunks
    longest = max(chunk.shape[1] for chunk in chunks)
    widths = [[(0, 0), (0, longest - chunk.shape[1])] + [(0, 0)] * (chunk.ndim - 2) for chunk in chunks]
    return [np.pad(chunk, width, constant_values=fill) for chunk, width in zip(chunks, widths)]


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
    text with the model); a head's format decodes the head outputs of every feature."""
    predict = getattr(fmt, "predict", None)
    if predict is not None:
        return predict(
            model, features, examples, spec, tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size
        )
    outputs = head_outputs(
        model, spec.head_name, features, tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size
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
