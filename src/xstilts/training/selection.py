"""Epoch snapshots for model selection beside English dev: checkpoint averaging and the oracle.

Training writes the end-of-epoch weights it is asked to keep (the last k for averaging, every
epoch for the oracle) to `STORE/selection/target-<key>/epoch-<N>.safetensors`, in host memory
only for the moment of writing: no copy stays on the training device and none stays in memory.
A snapshot is a pure function of the target key and the epoch (training is seeded), so a
resumed run (whose earlier epochs were written before it stopped) or a rerun that trains the
same key again writes the same files. `snapshots.json` lists the epochs once the last one is
written; the set is complete when that file and every listed snapshot exist.

Averaging assumes a model without batch norm (transformer encoders use LayerNorm): every
floating-point tensor of the state dict is averaged; integer and boolean tensors (position or
token-type ids, when a model keeps them in its state dict) are copied from the last epoch.
"""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from xstilts.atomic import atomic_path, atomic_write_text
from xstilts.config.schema import SelectionConfig
from xstilts.errors import UserError

MANIFEST = "snapshots.json"


def kept_epochs(total_epochs: int, selection: SelectionConfig) -> list[int]:
    """The epochs (1-based) whose end-of-epoch weights selection needs: every one for the
    oracle, else the last `average_last` (all of them when training is shorter)."""
    if selection.oracle:
        return list(range(1, total_epochs + 1))
    return list(range(max(1, total_epochs - selection.average_last + 1), total_epochs + 1))


def averaged_epochs(epochs: list[int], average_last: int) -> list[int]:
    """The snapshots the averaged model is the mean of: the last `average_last` of `epochs`."""
    return epochs[-average_last:]


def mean_tensor(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The element-wise mean of equally shaped tensors, summed in float64 and returned in their
    dtype (k equal tensors give that tensor exactly); non-floating tensors: the last one."""
    if not tensors[-1].is_floating_point():
        return tensors[-1].clone()
    total = tensors[0].to(torch.float64, copy=True)
    for tensor in tensors[1:]:
        total += tensor.to(torch.float64)
    return (total / len(tensors)).to(tensors[-1].dtype)


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The parameter-wise mean of state dicts with the same keys (see mean_tensor).

    Raises:
        ValueError: no states, or states with different keys.
    """
    if not states:
        raise ValueError("averaging needs at least one state dict")
    keys = list(states[-1])
    if any(set(state) != set(keys) for state in states):
        raise ValueError("the state dicts to average have different keys")
    return {key: mean_tensor([state[key] for state in states]) for key in keys}


@dataclass(frozen=True)
class EpochSnapshots:
    """The end-of-epoch weights one target training keeps for selection.

    Attributes:
        folder: STORE/selection/target-<key>/.
        selection: what they are kept for (which epochs, whether they outlive the evaluation).
    """

    folder: Path
    selection: SelectionConfig

    def path(self, epoch: int) -> Path:
        return self.folder / f"epoch-{epoch:04d}.safetensors"

    @property
    def resume_suffix(self) -> str:
        """Appended to the phase's resume folder: a saved state resumes only a training that
        kept the same epochs, so the epochs before the resume point are on disk."""
        return "-epochs-all" if self.selection.oracle else f"-epochs-last{self.selection.average_last}"

    def save(self, model: nn.Module, epoch: int, total_epochs: int) -> None:
        """At the end of `epoch`: write its weights if selection needs them (a host copy, freed
        once written); after the last epoch, the manifest. Consumes no random numbers."""
        epochs = kept_epochs(total_epochs, self.selection)
        if epoch in epochs:
            self.folder.mkdir(parents=True, exist_ok=True)
            # Separate contiguous host copies: safetensors refuses shared (tied) tensors.
            state = {key: value.detach().to("cpu", copy=True).contiguous() for key, value in model.state_dict().items()}
            with atomic_path(self.path(epoch)) as temporary:
                save_file(state, str(temporary))
        if epoch == total_epochs:
            atomic_write_text(self.folder / MANIFEST, json.dumps({"epochs": epochs, "total_epochs": total_epochs}))

    def epochs(self) -> list[int] | None:
        """The kept epochs once the set is complete (manifest and every snapshot), else None."""
        manifest = self.folder / MANIFEST
        if not manifest.is_file():
            return None
        # Written by a training that may have kept other epochs (another selection, same key):
        # what counts is whether this selection's epochs are all there.
        wanted = kept_epochs(json.loads(manifest.read_text(encoding="utf-8"))["total_epochs"], self.selection)
        return wanted if all(self.path(epoch).is_file() for epoch in wanted) else None

    def complete(self) -> bool:
        return self.epochs() is not None

    def require(self) -> list[int]:
        """The kept epochs, which training has just written.

        Raises:
            UserError: some are missing (the folder was removed while the training was interrupted).
        """
        epochs = self.epochs()
        if epochs is None:
            raise UserError(f"{self.folder}: epoch snapshots are missing; delete it and the target's resume folder and rerun")
        return epochs

    def load(self, epoch: int) -> dict[str, torch.Tensor]:
        """One epoch's weights, in host memory."""
        return load_file(str(self.path(epoch)))

    def average(self, epochs: list[int]) -> dict[str, torch.Tensor]:
        """The parameter-wise mean of the snapshots of `epochs`, read one tensor name at a time
        from every file, so that memory holds the result and one tensor per epoch, never k models."""
        with ExitStack() as stack:
            files = [stack.enter_context(safe_open(str(self.path(epoch)), framework="pt")) for epoch in epochs]
            keys = list(files[-1].keys())
            if any(set(handle.keys()) != set(keys) for handle in files):
                raise UserError(f"{self.folder}: the epoch snapshots {epochs} hold different tensors")
            return {key: mean_tensor([handle.get_tensor(key) for handle in files]) for key in keys}

    def discard(self) -> None:
        """Remove the snapshots after evaluation, unless the config keeps them."""
        if not self.selection.keep_snapshots:
            shutil.rmtree(self.folder, ignore_errors=True)


def oracle_epochs(dev_scores: dict[int, dict[str, float]]) -> dict[str, int]:
    """Per language, the epoch with the highest dev score of that language (the earliest of
    equal ones); `dev_scores` maps epoch -> language -> score, a language missing from an
    epoch (its evaluation failed) is chosen among the epochs that have it."""
    chosen: dict[str, int] = {}
    best: dict[str, float] = {}
    for epoch in sorted(dev_scores):
        for language, score in dev_scores[epoch].items():
            if language not in best or score > best[language]:
                best[language], chosen[language] = score, epoch
    return chosen
