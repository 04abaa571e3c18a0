"""Span corruption, T5's pretraining objective, as a text-to-text task (text-to-text mode only).

Raffel et al. 2020 (section 3.1.4; `random_spans_noise_mask` and `span_corruption` in
google-research/text-to-text-transfer-transformer, t5/data/preprocessors.py): about 15% of a
text's tokens, in spans of mean length 3, are noise. The input keeps the other tokens and puts
one sentinel (`<extra_id_0>`, `<extra_id_1>`, ... in order) where each noise span was; the
target lists each sentinel followed by the span it replaced. Both end with eos:

    tokens   a b c d e f g h
    input    a b <extra_id_0> e f <extra_id_1> </s>
    target   <extra_id_0> c d <extra_id_1> g h </s>

Noise spans sit anywhere (T5's `random_roll`), also at the start or the end. Mixed into intermediate or target training at a small share, it is the known
mitigation of mT5's "accidental translation" (Xue et al. 2021, section 5; `target.auxiliary`).

Data: the masked-LM tasks' plain text (`text_lines` reader: one sentence per line, every
language of the spec). Noise is drawn once per example from a generator seeded by the
example's position and text, so features are a pure function of the examples and the
tokenizer (every cache key over them holds); a line longer than `max_length` is cut into
consecutive windows, each corrupted on its own. The task is only trained: `predict` and
`score` raise.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from xstilts.data.io import Example
from xstilts.errors import UserError
from xstilts.formats.base import Feature
from xstilts.formats.windows import consecutive_spans
from xstilts.tasks.spec import TaskSpec

IGNORE = -100
NOISE_DENSITY = 0.15
MEAN_NOISE_SPAN_LENGTH = 3.0
NOISE_SEED = 20191023  # fixed: the noise is part of the data, not of the run's seed


def sentinel_tokens(count: int) -> list[str]:
    """T5's sentinel token strings, in the order span corruption uses them."""
    return [f"<extra_id_{index}>" for index in range(count)]


def sentinel_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The ids of `<extra_id_0>`, `<extra_id_1>`, ... in `tokenizer`, up to the first one it lacks."""
    vocabulary = tokenizer.get_vocab()
    ids = []
    while f"<extra_id_{len(ids)}>" in vocabulary:
        ids.append(vocabulary[f"<extra_id_{len(ids)}>"])
    return ids


def random_segmentation(num_items: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Lengths of `num_segments` non-empty segments that sum to `num_items`, uniformly at random."""
    first_in_segment = np.zeros(num_items, dtype=np.int64)
    # Segment starts after the first item: num_segments - 1 of the num_items - 1 other positions.
    first_in_segment[1 + rng.permutation(num_items - 1)[: num_segments - 1]] = 1
    return np.bincount(np.cumsum(first_in_segment), minlength=num_segments)


def random_spans_noise_mask(
    length: int, *, noise_density: float, mean_noise_span_length: float, max_spans: int, rng: np.random.Generator
) -> np.ndarray:
    """Which of `length` (>= 2) positions are noise: T5's `random_spans_noise_mask` with
    `random_roll=True`. Non-noise and noise spans alternate, then the mask is rolled by a
    random offset: without the roll, a sequence short enough for one noise span (a sentence)
    would always lose its last tokens. The roll may cut one span in two, so there are at most
    `max_spans` + 1 noise spans."""
    num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    num_spans = min(max(int(round(num_noise / mean_noise_span_length)), 1), max_spans)
    noise = random_segmentation(num_noise, num_spans, rng)
    kept = random_segmentation(length - num_noise, num_spans, rng)
    lengths = np.stack([kept, noise], axis=1).reshape(-1)
    mask = np.repeat(np.tile([False, True], num_spans), lengths)
    return np.roll(mask, int(rng.integers(length)))


def corrupt_spans(
    token_ids: list[int],
    *,
    noise_density: float = NOISE_DENSITY,
    mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
    sentinel_ids: list[int],
    eos_id: int,
    rng: np.random.Generator,
) -> tuple[list[int], list[int]]:
    """(input ids, target ids) of one token sequence (without eos) under span corruption.

    Noise spans are replaced in the input by `sentinel_ids[0]`, `sentinel_ids[1]`, ... in
    order; the target is each sentinel followed by its span; both end with `eos_id`. A
    sequence of one token (or none) has no noise: its target is eos alone.

    Example:
        >>> corrupt_spans([5, 6, 7, 8, 9, 10, 11, 12], sentinel_ids=[99, 98], eos_id=1,
        ...               rng=np.random.default_rng(0), noise_density=0.5)
        ([5, 6, 7, 8, 99, 1], [99, 9, 10, 11, 12, 1])
    """
    if len(sentinel_ids) < 2:
        raise ValueError("span corruption needs at least two sentinel ids")
    tokens = list(token_ids)
    if len(tokens) < 2:
        return tokens + [eos_id], [eos_id]
    mask = random_spans_noise_mask(
        len(tokens), noise_density=noise_density, mean_noise_span_length=mean_noise_span_length,
        max_spans=len(sentinel_ids) - 1, rng=rng,
    )
    inputs, targets, span = [], [], -1
    for position, (token, is_noise) in enumerate(zip(tokens, mask.tolist(), strict=True)):
        if not is_noise:
            inputs.append(token)
            continue
        if position == 0 or not mask[position - 1]:  # a new noise span: the next sentinel
            span += 1
            inputs.append(sentinel_ids[span])
            targets.append(sentinel_ids[span])
        targets.append(token)
    return inputs + [eos_id], targets + [eos_id]


def example_rng(example_index: int, window: int, text: str) -> np.random.Generator:
    """The noise generator of one window of one example: its position and its text decide it."""
    digest = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([NOISE_SEED, example_index, window, digest])


class SpanCorruption:
    """The TaskFormat of text -> (text with sentinels, the spans they replaced)."""

    version = 1

    def featurize(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, max_length: int
    ) -> list[Feature]:
        """One feature per window of `max_length - 1` tokens (room for eos; the sentinels take
        no more room than the noise they replace): input_ids, attention_mask, target_ids,
        example_index."""
        sentinels = sentinel_ids(tokenizer)
        if not sentinels or tokenizer.eos_token_id is None:
            raise UserError(f"task {spec.name!r}: span corruption needs a T5-style tokenizer (<extra_id_0>... and eos)")
        if max_length < 3:
            raise UserError(f"task {spec.name!r}: max_length {max_length} leaves no room for span corruption")
        encoded = tokenizer([example["text"] for example in examples], add_special_tokens=False, verbose=False)
        features = []
        for example_index, (example, ids) in enumerate(zip(examples, encoded["input_ids"], strict=True)):
            for window, (start, end) in enumerate(consecutive_spans(len(ids), max_length - 1)):
                inputs, targets = corrupt_spans(
                    ids[start:end], sentinel_ids=sentinels, eos_id=tokenizer.eos_token_id,
                    rng=example_rng(example_index, window, example["text"]),
                )
                features.append(
                    {"input_ids": inputs, "attention_mask": [1] * len(inputs), "target_ids": targets, "example_index": example_index}
                )
        return features

    def build_head(self, hidden_size: int, spec: TaskSpec, dropout: float) -> nn.Module:
        raise RuntimeError("span corruption is a text-to-text task: the language-model head serves it, there is no task head")

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean token cross-entropy of the targets (padding, -100, is skipped)."""
        return nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=IGNORE
        )

    def predict(self, model, features, examples, spec: TaskSpec, **settings) -> list:
        raise UserError(f"task {spec.name!r}: span corruption is trained only (a mixture's auxiliary task), never evaluated")

    def decode(self, outputs, features: list[Feature], examples: list[Example], spec: TaskSpec) -> list:
        raise UserError(f"task {spec.name!r}: span corruption is trained only (a mixture's auxiliary task), never evaluated")

    def score(self, predictions: list, examples: list[Example], spec: TaskSpec) -> dict[str, float]:
        raise UserError(f"task {spec.name!r}: span corruption is trained only (a mixture's auxiliary task), never scored")


SPAN_CORRUPTION = SpanCorruption()
