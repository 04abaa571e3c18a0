"""Phase 1 in miniature: masked-LM pretraining of an encoder, or span-corruption pretraining of
a T5, on monolingual text.

Used by the quickstart to pretrain tiny models from scratch on the synthetic languages (no
parallel data); the same functions continue MLM on any masked-LM checkpoint and span
corruption on any T5-family checkpoint.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from torch import nn
from transformers import (AutoModelForMaskedLM, AutoModelForSeq2SeqLM, AutoTokenizer, DataCollatorForLanguageModeling,
                          PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup)

from xstilts.config.schema import Precision
from xstilts.data.io import numbered_lines
from xstilts.atomic import atomic_directory
from xstilts.errors import UserError
from xstilts.formats.batching import autocast, pad_targets
from xstilts.formats.span_corruption import corrupt_spans, sentinel_ids
from xstilts.models.runtime import configure_matmul
from xstilts.models.sources import SAFE_LOADING, check_loading_info, quiet_transformers
from xstilts.training.optim import build_adamw


# Bump when pretraining produces other weights from the same inputs (2: the fused AdamW kernel);
# part of the keys of the models it builds.
PRETRAINING_VERSION = 2

def read_sentences(files: list[Path], seed: int) -> list[str]:
    """Every non-empty line of every file, shuffled so batches mix languages."""
    sentences = [line for path in files for _, line in numbered_lines(Path(path)) if line.strip()]
    random.Random(seed).shuffle(sentences)
    return sentences


def masked_lm_loss(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's own MLM loss (mean cross-entropy over masked tokens), with the vocabulary
    projection computed at the masked positions only: the same value, ~1.5x faster steps for
    a tiny model whose head dominates. Models whose head is not one module use their forward.
    """
    heads = (getattr(model, name, None) for name in ("cls", "lm_head"))  # BERT; RoBERTa, XLM-R
    head = next((module for module in heads if isinstance(module, nn.Module)), None)
    if head is None:
        return model(**batch).loss
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    hidden = model.base_model(**inputs).last_hidden_state
    masked = batch["labels"] != -100
    return nn.functional.cross_entropy(head(hidden[masked]).float(), batch["labels"][masked])


def index_batches(count: int, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
    """Endless batches of indices into `count` items: seeded permutations, one after the other.

    Not length-grouped: grouped MLM batches of the quickstart's short sentences (128 sentences of
    5 tokens or of 20) vary fourfold in masked tokens, and at its peak learning rate the tiny
    model came out of pretraining clearly worse (English topic accuracy ~69 instead of ~95).
    """
    order: list[int] = []
    while True:
        if len(order) < batch_size:
            order += torch.randperm(count, generator=generator).tolist()
        batch, order = order[:batch_size], order[batch_size:]
        yield batch


def train_steps(
    model: PreTrainedModel,
    batches: Iterator[dict[str, torch.Tensor]],
    loss_of: Callable[[PreTrainedModel, dict[str, torch.Tensor]], torch.Tensor],
    *,
    steps: int,
    learning_rate: float,
    device: torch.device,
    precision: Precision,
    progress: Progress | None,
    label: str,
) -> None:
    """`steps` AdamW steps (linear schedule, 5% warm-up, gradients clipped at 1) on `batches`;
    raises when the last loss is not finite."""
    configure_matmul(device, precision)
    model.to(device).train()
    optimizer = build_adamw(model, learning_rate=learning_rate, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, max(1, steps // 20), steps)
    bar = progress.add_task(label, total=steps) if progress else None
    for step in range(steps):
        batch = {key: value.to(device) for key, value in next(batches).items()}
        with autocast(device, precision):
            loss = loss_of(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if bar is not None and (step % 10 == 0 or step == steps - 1):
            progress.update(bar, completed=step + 1, description=f"{label} loss {loss.item():.3f}")
    if not math.isfinite(loss.item()):
        raise RuntimeError(f"{label} diverged (loss {loss.item()})")


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> Path:
    with quiet_transformers(), atomic_directory(Path(out_dir)) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)


def pretrain_mlm(
    model_dir: Path,
    text_files: list[Path],
    out_dir: Path,
    *,
    steps: int,
    batch_size: int = 128,
    learning_rate: float = 5e-4,
    max_length: int = 64,
    mask_probability: float = 0.15,
    seed: int = 0,
    device: torch.device = torch.device("cpu"),
    precision: Precision = Precision.FP32,
    progress: Progress | None = None,
) -> Path:
    """Train `model_dir` (a masked LM) with MLM on `text_files` for `steps`; save to `out_dir`.

    Example:
        >>> pretrain_mlm(Path("tiny"), [Path("mlm/en.txt"), Path("mlm/xa.txt")], Path("tiny-mlm"), steps=2000)
    """
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, **SAFE_LOADING.code_kwargs())
    model, info = AutoModelForMaskedLM.from_pretrained(model_dir, output_loading_info=True, **SAFE_LOADING.model_kwargs())
    check_loading_info(info, str(model_dir), strict=True)
    encoded = tokenizer(read_sentences(text_files, seed), truncation=True, max_length=max_length)["input_ids"]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mask_probability)
    orders = index_batches(len(encoded), batch_size, torch.Generator().manual_seed(seed))
    # Masks are drawn by the collator from torch's global generator, seeded above.
    batches = (collator([{"input_ids": encoded[i]} for i in batch]) for batch in orders)
    train_steps(
        model, batches, masked_lm_loss, steps=steps, learning_rate=learning_rate, device=device,
        precision=precision, progress=progress, label="pretrain MLM",
    )
    return save_model(model, tokenizer, out_dir)


def span_corruption_batch(
    sequences: list[list[int]], tokenizer: PreTrainedTokenizerBase, sentinels: list[int], rng: np.random.Generator
) -> dict[str, torch.Tensor]:
    """Inputs (padded), attention mask and labels (-100 padded) of freshly corrupted `sequences`."""
    pairs = [corrupt_spans(ids, sentinel_ids=sentinels, eos_id=tokenizer.eos_token_id, rng=rng) for ids in sequences]
    batch = tokenizer.pad([{"input_ids": inputs} for inputs, _ in pairs], return_tensors="pt")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
            "labels": pad_targets([targets for _, targets in pairs])}


def load_seq2seq_lm(model_dir: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A local seq2seq LM and its tokenizer, every weight checked (the LM head included)."""
    with quiet_transformers():  # an untied LM head (T5 v1.1, mT5) is reported as a warning; keys are checked here
        model, info = AutoModelForSeq2SeqLM.from_pretrained(
            model_dir, output_loading_info=True, **SAFE_LOADING.model_kwargs()
        )
    check_loading_info(info, str(model_dir), strict=True)
    return model, AutoTokenizer.from_pretrained(model_dir, **SAFE_LOADING.code_kwargs())


def seq2seq_loss(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's own mean token cross-entropy of the targets (labels -100 are skipped)."""
    return model(**batch).loss


def pretrain_span_corruption(
    model_dir: Path,
    text_files: list[Path],
    out_dir: Path,
    *,
    steps: int,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    max_length: int = 64,
    seed: int = 0,
    device: torch.device = torch.device("cpu"),
    precision: Precision = Precision.FP32,
    progress: Progress | None = None,
) -> Path:
    """Train `model_dir` (a T5-family seq2seq LM) with span corruption on `text_files`; save to `out_dir`.

    Each sentence (cut to `max_length - 1` tokens, room for eos) gets new noise every time it is
    drawn (15% of its tokens in spans of mean length 3, formats.span_corruption), from a
    generator seeded with `seed`, as T5 draws noise on the fly; batches mix languages.

    Example:
        >>> pretrain_span_corruption(Path("tiny-t5"), [Path("mlm/en.txt"), Path("mlm/xa.txt")], Path("tiny-t5-sc"), steps=2000)
    """
    torch.manual_seed(seed)
    sentinels = sentinel_ids(AutoTokenizer.from_pretrained(model_dir, **SAFE_LOADING.code_kwargs()))
    if len(sentinels) < 2:
        raise UserError(f"model {str(model_dir)!r}: span corruption needs a T5-style tokenizer (sentinels <extra_id_0>, ...)")
    model, tokenizer = load_seq2seq_lm(model_dir)
    sentences = read_sentences(text_files, seed)
    encoded = tokenizer(sentences, add_special_tokens=False, truncation=True, max_length=max_length - 1)["input_ids"]
    orders = index_batches(len(encoded), batch_size, torch.Generator().manual_seed(seed))
    noise = np.random.default_rng(seed)
    batches = (span_corruption_batch([encoded[i] for i in batch], tokenizer, sentinels, noise) for batch in orders)
    train_steps(
        model, batches, seq2seq_loss, steps=steps, learning_rate=learning_rate, device=device,
        precision=precision, progress=progress, label="pretrain span corruption",
    )
    return save_model(model, tokenizer, out_dir)
