"""Resume inside a run: a phase's training state, saved every N steps and on SIGTERM/SIGUSR1.

A state is one directory, `<folder>/step-<K>/`, written through `atomic_directory`: a kill while
it is written leaves the previous complete state, and only complete states have a `step-` name.
It holds the tensors (weights, optimiser moments, the best weights kept for early stopping, the
torch RNG states) in `tensors.safetensors` and everything else in `state.json`; nothing is pickled.

The streams of examples and the multi-task draws are not saved: a resumed run rebuilds them from
the seed and replays the examples the saved steps consumed, and the data-order generator must
then be exactly where it was saved (checked), so the data order continues exactly.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from xstilts.atomic import atomic_directory
from xstilts.errors import UserError
from xstilts.training.distributed import broadcast_object, main_writes

STATE_FILE = "state.json"
TENSORS_FILE = "tensors.safetensors"
STATE_VERSION = 1
# What Slurm sends before pre-empting or at the end of a job's time (with --signal), and what
# `kill` and most schedulers send first.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Interrupted(UserError):
    """Training stopped on a signal after saving its state; re-running the same command resumes."""


@dataclass(frozen=True)
class Checkpointing:
    """Where a phase saves its training state, how often, and how it announces a resume.

    Attributes:
        folder: STORE/resume/<phase>-<key>/, one per content key.
        every: save after every `every` optimiser steps; None saves only on a stop signal.
        phase: the phase's name in console lines and messages.
        log: prints one console line.
    """

    folder: Path
    every: int | None = 500
    phase: str = "training"
    log: Callable[[str], None] = print

    def due(self, step: int, steps: int) -> bool:
        """A periodic save after `step`; none after the last step (the phase's checkpoint follows)."""
        return self.every is not None and step % self.every == 0 and step < steps


@dataclass
class TrainingState:
    """Everything an optimiser step reads and changes, besides the data: a saved one continues a run exactly."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    data_order: torch.Generator
    step: int = 0
    dev_history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_dev_score: float | None = None
    best_weights: dict[str, torch.Tensor] | None = None


class StopSignals:
    """While entered, SIGTERM and SIGUSR1 only record that they came (`received`): the loop saves
    at the end of its step and stops. Handlers are installed only in the main thread (Python
    allows no other) and the previous ones are put back on exit."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if self.enabled and threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._record)
        return self

    def _record(self, number: int, frame: Any) -> None:
        self.received = number

    def __exit__(self, *exc_info: Any) -> None:
        for number, handler in self._previous.items():
            # None: a handler installed outside Python; the default is the closest we can restore.
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()


def after_step(state: TrainingState, checkpointing: Checkpointing, steps: int, stop: StopSignals) -> None:
    """Save when a periodic save is due or a stop signal came; after a signal, raise Interrupted.

    Raises:
        Interrupted: SIGTERM or SIGUSR1 arrived during this step; the state is saved.
    """
    received = broadcast_object(stop.received)  # data-parallel: every rank stops where rank 0 saw the signal
    if received is None and not checkpointing.due(state.step, steps):
        return
    main_writes(save_state, state, checkpointing.folder)  # data-parallel: rank 0 writes, the others wait
    if received is not None:
        raise Interrupted(
            f"{checkpointing.phase} training stopped by {signal.Signals(received).name} after step {state.step} "
            f"of {steps}; its state is saved in {checkpointing.folder}: re-running the same command resumes from there"
        )


def save_state(state: TrainingState, folder: Path) -> Path:
    """Write `state` as `folder/step-<K>/` in one rename, then remove the older states."""
    target = Path(folder) / f"step-{state.step:08d}"
    with atomic_directory(target) as tmp:
        save_file(state_tensors(state), str(tmp / TENSORS_FILE))
        (tmp / STATE_FILE).write_text(json.dumps(state_document(state), indent=1), encoding="utf-8")
    for older in Path(folder).glob("step-*"):
        if older != target:
            discard_state(older)
    return target


def latest_state(folder: Path) -> Path | None:
    """The newest complete state in `folder` (temporary `.step-*` folders of an interrupted write are ignored)."""
    states = sorted(path for path in Path(folder).glob("step-*") if (path / STATE_FILE).is_file())
    return states[-1] if states else None


def saved_step(folder: Path) -> int | None:
    """The step of the newest complete state in `folder`, if any."""
    path = latest_state(folder)
    return None if path is None else json.loads((path / STATE_FILE).read_text(encoding="utf-8"))["step"]


def discard_state(folder: Path) -> None:
    """Remove a saved state, or a phase's folder of them once its final checkpoint is saved.

    Renamed to a dot name first, so that a kill while it is removed leaves no half-removed
    `step-` folder (the dot-named rest is ignored: see `latest_state`).
    """
    folder = Path(folder)
    doomed = folder.with_name(f".{folder.name}.removed-{secrets.token_hex(4)}")
    try:
        os.replace(folder, doomed)
    except FileNotFoundError:
        return
    except OSError:
        doomed = folder  # not renamable (permissions): removed in place
    shutil.rmtree(doomed, ignore_errors=True)


def restore(state: TrainingState, folder: Path, replay: Callable[[int], None]) -> bool:
    """Load the newest state in `folder` into `state` (model, optimiser, scheduler, every RNG and
    the loop's bookkeeping); return False when there is none.

    `replay(K)` must consume the examples of the first K steps from the streams, which were
    rebuilt from the seed; the data-order generator must then be where it was saved.

    Raises:
        UserError: the saved state does not fit this model or this data.
    """
    path = latest_state(folder)
    if path is None:
        return False
    document = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    tensors = load_file(str(path / TENSORS_FILE))
    replay(document["step"])
    if not torch.equal(state.data_order.get_state(), tensors["rng/data"]):
        raise UserError(
            f"{path}: the saved training state does not match this phase's data order; "
            f"delete {folder} to train this phase from the start"
        )
    load_weights(state.model, prefixed(tensors, "model/"), path)
    state.optimizer.load_state_dict(optimizer_state(document["optimizer"], tensors, state.optimizer))
    state.scheduler.load_state_dict(document["scheduler"])
    state.step, state.dev_history = document["step"], document["dev_history"]
    state.best_epoch, state.best_dev_score = document["best_epoch"], document["best_dev_score"]
    state.best_weights = prefixed(tensors, "best/") if document["has_best_weights"] else None
    set_rng_states(document["rng"], tensors)
    return True


def state_tensors(state: TrainingState) -> dict[str, torch.Tensor]:
    """Every tensor of a state, by name; copies, so tied weights are separate tensors as safetensors requires."""
    tensors = {f"model/{key}": value for key, value in state.model.state_dict().items()}
    tensors.update({f"best/{key}": value for key, value in (state.best_weights or {}).items()})
    for index, entries in state.optimizer.state_dict()["state"].items():
        tensors.update({f"optimizer/{index}/{name}": value for name, value in entries.items() if torch.is_tensor(value)})
    tensors["rng/torch"] = torch.get_rng_state()
    tensors["rng/data"] = state.data_order.get_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors.update({f"rng/cuda/{index}": value for index, value in enumerate(torch.cuda.get_rng_state_all())})
    return {key: value.detach().to("cpu", copy=True).contiguous() for key, value in tensors.items()}


def state_document(state: TrainingState) -> dict[str, Any]:
    """Everything of a state that is not a tensor, as JSON (floats round-trip exactly)."""
    optimizer = state.optimizer.state_dict()
    numpy_state = np.random.get_state()
    return {
        "version": STATE_VERSION,
        "step": state.step,
        "dev_history": state.dev_history,
        "best_epoch": state.best_epoch,
        "best_dev_score": state.best_dev_score,
        "has_best_weights": state.best_weights is not None,
        "optimizer": {
            "param_groups": optimizer["param_groups"],
            "state": {
                str(index): {name: value for name, value in entries.items() if not torch.is_tensor(value)}
                for index, entries in optimizer["state"].items()
            },
        },
        "scheduler": state.scheduler.state_dict(),
        "rng": {
            "python": random.getstate(),
            "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
            "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() and torch.cuda.is_initialized() else 0,
        },
    }


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    """Load the saved weights strictly: a state of another architecture is an error naming its folder."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise UserError(f"{path}: the saved training state does not fit this model ({first})") from None


def optimizer_state(document: dict, tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> dict:
    """The optimiser's state_dict from its JSON part and its tensors; JSON lists that the
    optimiser keeps as tuples (AdamW's betas) become tuples again."""
    state: dict[int, dict] = {int(index): dict(entries) for index, entries in document["state"].items()}
    for key, value in prefixed(tensors, "optimizer/").items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    groups = [
        {key: tuple(value) if isinstance(current.get(key), tuple) else value for key, value in saved.items()}
        for saved, current in zip(document["param_groups"], optimizer.param_groups)
    ]
    return {"state": state, "param_groups": groups}


def set_rng_states(rng: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Put back the global RNGs: torch (CPU, and CUDA when it was saved), Python and numpy."""
    torch.set_rng_state(tensors["rng/torch"])
    if rng["cuda_devices"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[f"rng/cuda/{index}"] for index in range(rng["cuda_devices"])])
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
