"""Phase 1 in miniature: masked-LM pretraining of an encoder on monolingual text.

Used by the quickstart to pretrain a tiny model from scratch on the synthetic languages
(no parallel data); the same function continues MLM on any masked-LM checkpoint.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import torch
from rich.progress import Progress
from torch import nn
from transformers import (AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling, PreTrainedModel,
                          get_linear_schedule_with_warmup)

from xstilts.config.schema import Precision
from xstilts.data.io import numbered_lines
from xstilts.atomic import atomic_directory
from xstilts.models.sources import check_loading_info
from xstilts.models.runtime import autocast
from xstilts.training.optim import build_adamw


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
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model, info = AutoModelForMaskedLM.from_pretrained(model_dir, output_loading_info=True)
    check_loading_info(info, str(model_dir), strict=True)
    encoded = tokenizer(read_sentences(text_files, seed), truncation=True, max_length=max_length)["input_ids"]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mask_probability)
    optimizer = build_adamw(model, learning_rate=learning_rate, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, max(1, steps // 20), steps)
    generator = torch.Generator().manual_seed(seed)
    model.to(device).train()
    bar = progress.add_task("pretrain MLM", total=steps) if progress else None
    order: list[int] = []
    for step in range(steps):
        if len(order) < batch_size:
            order += torch.randperm(len(encoded), generator=generator).tolist()
        batch_ids, order = order[:batch_size], order[batch_size:]
        batch = {k: v.to(device) for k, v in collator([{"input_ids": encoded[i]} for i in batch_ids]).items()}
        with autocast(device, precision):
            loss = masked_lm_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if bar is not None and (step % 10 == 0 or step == steps - 1):
            progress.update(bar, completed=step + 1, description=f"pretrain MLM loss {loss.item():.3f}")
    if not math.isfinite(loss.item()):
        raise RuntimeError(f"MLM pretraining diverged (loss {loss.item()})")
    with atomic_directory(Path(out_dir)) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)
