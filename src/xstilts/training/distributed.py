"""Data-parallel training of one run under torchrun: which rank this is, the share of a
micro-batch it trains on, and the gradient sum that keeps every rank's weights identical.

Everything follows torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); without it, or with
one process, every function here is a no-op and training is exactly the single-process loop.
Every rank draws the same tasks and examples from the seed, so each sees the same global
micro-batch of `batch_size` examples and keeps a contiguous slice of it (whole examples: the
choices of a multiple-choice example and the windows of a QA or tagging example stay together).
Rank 0 alone writes checkpoints, the store and the run directory (`is_main`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist

from xstilts.errors import UserError
from xstilts.formats.base import Feature
from xstilts.formats.batching import is_per_position
from xstilts.formats.windows import IGNORE

# How long a rank waits in a collective: the others wait while rank 0 alone scores a dev set or
# writes a checkpoint (NCCL's default, 10 minutes, is short for a large dev set on a large model).
TIMEOUT = timedelta(hours=1)
# Elements per all-reduce call (64 MiB of fp32): few calls, without a second copy of a large model's gradients.
BUCKET_ELEMENTS = 1 << 24


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    """Whether this process writes (checkpoints, resume state, the store, run directories)."""
    return rank() == 0


@contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Join torchrun's process group for the duration (nccl on CUDA, gloo on CPU); no-op in one process."""
    if not is_distributed() or dist.is_initialized():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device, timeout=TIMEOUT)
    else:
        dist.init_process_group("gloo", timeout=TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (e.g. for the checkpoint rank 0 is writing)."""
    if is_distributed():
        dist.barrier()


def main_writes(write: Callable[..., object], *args, **kwargs) -> None:
    """`write(*args, **kwargs)` on rank 0 only; every rank waits until it is done (a checkpoint
    that every rank loads next, say). In one process: just `write`."""
    if is_main():
        write(*args, **kwargs)
    barrier()


def broadcast_object(value):
    """Rank 0's `value` on every rank, so that all take the same decision (reuse a checkpoint,
    keep an epoch); `value` itself in one process."""
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def check_batch_size(batch_size: int, key: str) -> None:
    """Every rank needs at least one example of each micro-batch (`batch_size` is the global batch)."""
    if batch_size < world_size():
        raise UserError(
            f"key {key!r}: batch_size {batch_size} is the global micro-batch and cannot be split across "
            f"{world_size()} processes; use at least {world_size()} (or fewer processes)"
        )


def loss_terms(examples: list[list[Feature]]) -> int:
    """How many terms a format's training loss averages over (see each format's `loss`):
    labelled positions for tagging and MLM, windows for span QA, examples otherwise."""
    features = [feature for example in examples for feature in example]
    if is_per_position(features):
        return sum(label != IGNORE for feature in features for label in feature["labels"])
    if "example_index" in features[0]:
        return len(features)
    return len(examples)


def shard(examples: dict[int, list[list[Feature]]], rank: int, world: int) -> dict[int, tuple[list[Feature], float]]:
    """This rank's features of a micro-batch (task index -> its examples) and the weight of each
    task's loss here: the share of the task's loss terms it holds. A task's mean loss over a
    share, times that share, summed over ranks, is the task's mean loss over the whole micro-batch."""
    if world == 1:
        return {index: ([f for example in task for f in example], 1.0) for index, task in examples.items()}
    ordered = [(index, example) for index, task in examples.items() for example in task]
    check_batch_size(len(ordered), "batch_size")
    mine: dict[int, list[list[Feature]]] = {}
    for index, example in ordered[rank * len(ordered) // world : (rank + 1) * len(ordered) // world]:
        mine.setdefault(index, []).append(example)
    return {
        index: ([f for example in task for f in example], loss_terms(task) / max(1, loss_terms(examples[index])))
        for index, task in mine.items()
    }


def buckets(parameters: list[torch.nn.Parameter]) -> Iterator[list[torch.nn.Parameter]]:
    bucket, size = [], 0
    for parameter in parameters:
        if bucket and size + parameter.numel() > BUCKET_ELEMENTS:
            yield bucket
            bucket, size = [], 0
        bucket.append(parameter)
        size += parameter.numel()
    if bucket:
        yield bucket


def all_reduce_gradients(parameters: list[torch.nn.Parameter], loss: torch.Tensor) -> torch.Tensor:
    """Sum the ranks' gradients into every rank and return the summed loss.

    Each rank's loss is already weighted by its share of the micro-batch (`shard`), so the sum,
    not the mean, is the single-process gradient. A parameter that no rank used keeps
    `grad=None` (AdamW then skips it, weight decay included, as in one process); one used on
    some ranks only is reduced with zeros from the others. Not DistributedDataParallel: it
    expects one forward per backward and the same parameters used on every rank, while a
    micro-batch here runs one forward per task and a rank may hold no example of a task.
    """
    if not is_distributed():
        return loss
    used = [parameter.grad is not None for parameter in parameters]
    header = torch.tensor([*used, 0.0], dtype=torch.float32, device=loss.device)
    header[-1] = loss.detach().float()
    dist.all_reduce(header)
    reduced = [parameter for parameter, count in zip(parameters, header[:-1].tolist()) if count > 0]
    for bucket in buckets(reduced):
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in bucket])
        dist.all_reduce(flat)
        for parameter, grad in zip(bucket, flat.split([p.numel() for p in bucket])):
            parameter.grad = grad.view_as(parameter)
    return header[-1]
