"""The training loop: one readable function over one or several tasks sharing an encoder.

Everything counts examples, not features: a multiple-choice example is one feature per choice
and a QA, tagging or MLM example one feature per window, but an epoch is one pass over the
examples of all tasks of the phase, a batch holds `batch_size` examples (with all their
features), and mixture sizes and caps are example counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from functools import cached_property, partial

import torch
from rich.progress import Progress
from torch import nn
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from xstilts.config.schema import DevAggregation, MixtureConfig, Mixing, Precision, TrainConfig
from xstilts.evaluation.predict import EvalSplit, evaluate_split, primary_score
from xstilts.formats.base import Feature, TaskFormat
from xstilts.formats.batching import autocast, collate, example_units, prefetched, shuffled_examples
from xstilts.models.multitask import MultiTaskModel
from xstilts.models.runtime import configure_matmul
from xstilts.tasks.spec import TaskSpec
from xstilts.training.distributed import all_reduce_gradients, broadcast_object, is_main, main_writes, rank, shard, world_size
from xstilts.training.optim import build_adamw
from xstilts.training.resume import Checkpointing, StopSignals, TrainingState, after_step, restore
from xstilts.training.samplers import draw_tasks, task_probabilities
from xstilts.training.selection import EpochSnapshots

# bump when a change to training changes the weights it produces; part of every checkpoint key
TRAINING_VERSION = 3


@dataclass
class TrainTask:
    """A task's English training features, and its English dev split for model selection."""

    spec: TaskSpec
    fmt: TaskFormat
    features: list[Feature]
    dev: EvalSplit | None = None

    @cached_property
    def examples(self) -> int:
        """Training examples (not features): what epochs, batches and mixture sizes count."""
        return len(example_units(self.features))


@dataclass
class TrainResult:
    steps: int
    best_epoch: int | None
    best_dev_score: float | None
    dev_history: list[dict[str, float]] = field(default_factory=list)


def total_steps(tasks: list[TrainTask], cfg: TrainConfig) -> tuple[int, int]:
    """(steps per epoch, total steps): an epoch is one pass over the examples of all tasks (their
    sum), an optimiser step takes `batch_size * grad_accum` examples."""
    examples = sum(task.examples for task in tasks)
    per_epoch = max(1, math.ceil(examples / (cfg.batch_size * cfg.grad_accum)))
    steps = max(1, math.ceil(per_epoch * cfg.epochs))
    return per_epoch, min(steps, cfg.max_steps) if cfg.max_steps else steps


def aggregate_dev(scores: dict[str, float], tasks: list[TrainTask], how: DevAggregation) -> float:
    """One number for early stopping: the plain mean, or weighted by dev-set size."""
    weights = {t.spec.name: (len(t.dev.examples) if how is DevAggregation.SIZE_WEIGHTED else 1) for t in tasks if t.dev}
    return sum(scores[name] * weights[name] for name in scores) / sum(weights[name] for name in scores)


def dev_scores(model, tasks, *, tokenizer, device, precision, batch_size) -> dict[str, float]:
    """Each task's English dev score. Under data-parallel training rank 0 scores and sends the
    numbers to the others, so every rank keeps the same epoch (their weights are identical)."""
    if not is_main():
        return broadcast_object(None)
    scores = {
        task.spec.name: primary_score(
            evaluate_split(
                model, task.spec, task.fmt, task.dev,
                tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size,
            ).scores,
            task.spec,
        )
        for task in tasks
        if task.dev is not None
    }
    return broadcast_object(scores)


MicroBatch = list[tuple[int, dict, float]]


def collate_micro_batch(tasks, streams, counts: dict[int, int], *, tokenizer, device) -> MicroBatch:
    """One micro-batch holding `counts[i]` examples of task i: (task index, collated batch, weight
    of the task's loss) per task, each task weighted by its share of the examples.

    Under data-parallel training every rank draws the whole micro-batch (the streams stay in
    step) and trains on its share of the examples, weighted so that the ranks' losses sum to this
    loss (`distributed.shard`); in one process the share is everything, with weight 1.
    """
    total = sum(counts.values())
    examples = {index: [next(streams[index]) for _ in range(count)] for index, count in counts.items()}
    return [
        (index, collate(features, tokenizer, device), counts[index] / total * share)
        for index, (features, share) in shard(examples, rank(), world_size()).items()
    ]


def step_micro_batches(
    tasks, streams, draws: list[int], cfg: TrainConfig, mixing: Mixing, steps: range, *, tokenizer, device
) -> Iterator[list[MicroBatch]]:
    """The `grad_accum` collated micro-batches of each step in `steps`, in order."""
    per_step = draws_per_step(cfg, mixing)
    for step in steps:
        step_draws = draws[(step - 1) * per_step : step * per_step]
        yield [
            collate_micro_batch(
                tasks, streams, micro_batch_counts(step_draws, micro, cfg.batch_size, mixing), tokenizer=tokenizer, device=device
            )
            for micro in range(cfg.grad_accum)
        ]


def micro_batch_loss(model, tasks, micro_batch: MicroBatch, *, device, precision) -> torch.Tensor:
    """The weighted sum of the task losses of one micro-batch."""
    loss = 0.0
    for index, batch, weight in micro_batch:
        task = tasks[index]
        with autocast(device, precision):
            loss = loss + task.fmt.loss(model(task.spec.head_name, batch), batch) * weight
    return loss


def draws_per_step(cfg: TrainConfig, mixing: Mixing) -> int:
    """Task draws per optimiser step: one (all its micro-batches share the task), or one per example."""
    return 1 if mixing is Mixing.TASK_PER_STEP else cfg.batch_size * cfg.grad_accum


def micro_batch_counts(step_draws: list[int], micro: int, batch_size: int, mixing: Mixing) -> dict[int, int]:
    """Examples per task in micro-batch `micro` of a step: the step's one task, or the draws of its slice."""
    if mixing is Mixing.TASK_PER_STEP:
        return {step_draws[0]: batch_size}
    chunk = step_draws[micro * batch_size : (micro + 1) * batch_size]
    return {index: chunk.count(index) for index in sorted(set(chunk))}


def accumulate_gradients(model, tasks, micro_batches: list[MicroBatch], *, device, precision) -> tuple[torch.Tensor, set[int]]:
    """Backward over the micro-batches of one step; returns the step's loss (the mean over its
    micro-batches, as its gradient is) and the tasks it trained."""
    step_loss, trained = torch.zeros((), device=device), set()
    for micro_batch in micro_batches:
        loss = micro_batch_loss(model, tasks, micro_batch, device=device, precision=precision)
        (loss / len(micro_batches)).backward()
        step_loss = step_loss + loss.detach().float() / len(micro_batches)
        trained |= {index for index, _, _ in micro_batch}
    # Data-parallel: the ranks' gradients summed into each (a no-op in one process), before clipping.
    step_loss = all_reduce_gradients([p for p in model.parameters() if p.requires_grad], step_loss)
    return step_loss, trained


def replay_steps(streams, draws: list[int], cfg: TrainConfig, mixing: Mixing, steps: int) -> None:
    """Consume from the streams the examples of the first `steps` steps, computing nothing:
    a resumed run's data order continues where the saved run stopped."""
    per_step = draws_per_step(cfg, mixing)
    for start in range(0, steps * per_step, per_step):
        for micro in range(cfg.grad_accum):
            # In micro_batch_loss's order: by task, as micro_batch_counts lists them.
            for index, count in micro_batch_counts(draws[start : start + per_step], micro, cfg.batch_size, mixing).items():
                for _ in range(count):
                    next(streams[index])


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the weights in host memory: early stopping keeps one without a second model on the device."""
    return {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}


def train_model(
    model: MultiTaskModel,
    tasks: list[TrainTask],
    cfg: TrainConfig,
    *,
    tokenizer: PreTrainedTokenizerBase,
    device: torch.device,
    precision: Precision,
    mixture: MixtureConfig,
    seed: int,
    progress: Progress | None = None,
    checkpointing: Checkpointing | None = None,
    snapshots: EpochSnapshots | None = None,
) -> TrainResult:
    """Train `model` in place; with dev splits, keep the epoch with the best English dev score.

    With `checkpointing`, a state saved in its folder is resumed from, the state is saved every
    `checkpointing.every` steps, and SIGTERM or SIGUSR1 saves it at the end of the step and raises
    `Interrupted`; the weights are the same as without interruption, bit for bit. With
    `snapshots`, the end-of-epoch weights that model selection needs are written to disk
    (rank 0); that changes nothing in training.
    """
    generator = torch.Generator().manual_seed(seed)
    configure_matmul(device, precision)
    model.to(device).train()
    if cfg.freeze_embeddings:
        model.freeze_word_embeddings()
    if cfg.compile:
        model.backbone.compile(dynamic=True)  # in place: parameter names, and so checkpoints, are unchanged
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_adamw(model, learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay)
    per_epoch, steps = total_steps(tasks, cfg)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
    # Each stream shuffles with a generator of its own, seeded from the run's: a stream read
    # ahead by the prefetching thread leaves the run's generator (saved with a resume state) alone.
    # Grouped by the examples of a step, so `grad_accum` changes how a step is split, not its examples.
    grouped = cfg.batch_size * cfg.grad_accum if cfg.group_by_length else None
    streams = [
        shuffled_examples(task.features, torch.Generator().manual_seed(stream_seed), batch_size=grouped)
        for task, stream_seed in zip(tasks, torch.randint(2**62, (len(tasks),), generator=generator).tolist())
    ]
    probabilities = task_probabilities({t.spec.name: t.examples for t in tasks}, mixture)
    # Draws are made up front from the seed: one task per optimiser step (all its micro-batches
    # share it), or one task per example for mixed batches.
    draws = draw_tasks(probabilities, steps * draws_per_step(cfg, mixture.mixing), generator)
    state = TrainingState(model, optimizer, scheduler, generator)
    if checkpointing and restore(state, checkpointing.folder, replay=partial(replay_steps, streams, draws, cfg, mixture.mixing)):
        checkpointing.log(f"resuming {checkpointing.phase} from step {state.step} of {steps}")
    bar = progress.add_task("train " + "+".join(t.spec.name for t in tasks), total=steps) if progress else None
    if bar is not None and state.step:
        progress.update(bar, completed=state.step)

    remaining = range(state.step + 1, steps + 1)
    batches = prefetched(step_micro_batches(tasks, streams, draws, cfg, mixture.mixing, remaining, tokenizer=tokenizer, device=device))
    with StopSignals(enabled=checkpointing is not None) as stop, closing(batches):
        for step, micro_batches in zip(remaining, batches):
            step_loss, trained = accumulate_gradients(model, tasks, micro_batches, device=device, precision=precision)
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if bar is not None:
                names = "+".join(tasks[i].spec.name for i in sorted(trained))
                progress.update(bar, advance=1, description=f"train {names} loss {float(step_loss):.3f}")

            end_of_epoch = step % per_epoch == 0 or step == steps
            if cfg.eval_every_epoch and end_of_epoch and any(t.dev for t in tasks):
                scores = dev_scores(model, tasks, tokenizer=tokenizer, device=device, precision=precision, batch_size=cfg.batch_size * 2)
                score = aggregate_dev(scores, tasks, mixture.dev_aggregation)
                state.dev_history.append({"step": step, "mean": score, **scores})
                if state.best_dev_score is None or score > state.best_dev_score:
                    state.best_dev_score, state.best_epoch = score, math.ceil(step / per_epoch)
                    # Early stopping on English dev: remember the best weights, restore them at the end.
                    state.best_weights = cpu_state(model)
            if snapshots is not None and end_of_epoch:
                main_writes(snapshots.save, model, math.ceil(step / per_epoch), math.ceil(steps / per_epoch))
            state.step = step
            if checkpointing:
                after_step(state, checkpointing, steps, stop)

    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    model.eval()
    return TrainResult(steps=steps, best_epoch=state.best_epoch, best_dev_score=state.best_dev_score, dev_history=state.dev_history)
