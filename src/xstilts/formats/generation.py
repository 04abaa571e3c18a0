"""Inference for text-to-text formats: batched generation and rank classification.

Both run on length-sorted batches (longest input first, so padding is small and an
out-of-memory shows on the first batch), under `torch.inference_mode` and bf16 autocast where
asked, with the model in eval mode (restored after), and return results in the original order.
`model` is a TextToTextModel: its `seq2seq` is a transformers encoder-decoder LM.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase
from transformers.modeling_outputs import BaseModelOutput

from xstilts.config.schema import Precision
from xstilts.formats.base import Feature
from xstilts.formats.batching import autocast, pad_targets

IGNORE = -100


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the block; the model's training flag is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices in batches of `batch_size`, longest first (stable on ties).

    Example:
        >>> length_sorted_batches([3, 9, 5, 9], 2)
        [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def encoder_batch(features: list[Feature], tokenizer: PreTrainedTokenizerBase, device: torch.device) -> dict[str, torch.Tensor]:
    """input_ids and attention_mask of some features, padded to the longest."""
    padded = tokenizer.pad([{key: f[key] for key in ("input_ids", "attention_mask")} for f in features], return_tensors="pt")
    return {key: padded[key].to(device) for key in ("input_ids", "attention_mask")}


def generate_texts(
    model: Any,
    features: list[Feature],
    *,
    tokenizer: PreTrainedTokenizerBase,
    device: torch.device,
    precision: Precision,
    batch_size: int,
    max_new_tokens: int,
    num_beams: int = 1,
) -> list[str]:
    """The generated text of every feature's input, in the order of `features`.

    Greedy with `num_beams=1`, beam search otherwise; never sampled, so results are
    deterministic. Special tokens (pad, eos) are dropped from the decoded text.
    """
    texts: list[str] = [""] * len(features)
    with evaluating(model):
        for indices in length_sorted_batches([len(f["input_ids"]) for f in features], batch_size):
            batch = encoder_batch([features[index] for index in indices], tokenizer, device)
            with autocast(device, precision):
                output = model.seq2seq.generate(
                    **batch, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False
                )
            for index, text in zip(indices, tokenizer.batch_decode(output, skip_special_tokens=True), strict=True):
                texts[index] = text.strip()
    return texts


def rank_scores(
    model: Any,
    features: list[Feature],
    candidates: list[list[list[int]]],
    *,
    tokenizer: PreTrainedTokenizerBase,
    device: torch.device,
    precision: Precision,
    batch_size: int,
) -> list[list[float]]:
    """Sequence log-likelihood of every candidate target of every feature's input.

    `candidates[i]` holds the target token ids (eos included) of feature i's options; the
    result's `[i][k]` is the sum over the tokens of option k of log p(token | input, previous
    tokens). The encoder runs once per input: its states are repeated for each option
    (index_select on the batch axis), and the decoder scores all options of a batch at once.
    """
    scores: list[list[float]] = [[] for _ in features]
    with evaluating(model):
        for indices in length_sorted_batches([len(f["input_ids"]) for f in features], batch_size):
            batch = encoder_batch([features[index] for index in indices], tokenizer, device)
            owners = [row for row, index in enumerate(indices) for _ in candidates[index]]
            targets = [target for index in indices for target in candidates[index]]
            if not targets:
                continue
            with autocast(device, precision):
                hidden = model.seq2seq.get_encoder()(**batch).last_hidden_state
            summed = _target_log_likelihoods(model, hidden, batch["attention_mask"], owners, targets, precision)
            position = 0
            for index in indices:
                count = len(candidates[index])
                scores[index] = summed[position : position + count]
                position += count
    return scores


def _target_log_likelihoods(
    model: Any, hidden: torch.Tensor, mask: torch.Tensor, owners: list[int], targets: list[list[int]], precision: Precision
) -> list[float]:
    """Summed token log-likelihoods of each target given the encoder states of its owner row."""
    rows = torch.tensor(owners, device=hidden.device)
    labels = pad_targets(targets).to(hidden.device)
    with autocast(hidden.device, precision):
        logits = model.seq2seq(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden.index_select(0, rows)),
            attention_mask=mask.index_select(0, rows),
            labels=labels,
        ).logits
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    picked = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked.masked_fill(labels == IGNORE, 0.0).sum(dim=-1).tolist()
