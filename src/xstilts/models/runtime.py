"""Device, precision and seeding: the same code path on a CPU laptop and a bf16 GPU."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from xstilts.config.schema import Device, Precision
from xstilts.errors import UserError


def resolve_device(device: Device) -> torch.device:
    """The configured device; under torchrun with several processes, a CUDA device is the one
    of this process's LOCAL_RANK (one GPU per process)."""
    if device is Device.AUTO:
        device = Device.CUDA if torch.cuda.is_available() else Device.CPU
    if device is Device.CUDA and not torch.cuda.is_available():
        raise UserError("device=cuda but no CUDA device is available (use device=auto or device=cpu)")
    if device is Device.CUDA and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(device.value)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def configure_matmul(device: torch.device, precision: Precision) -> None:
    """Let CUDA fp32 matrix products use TensorFloat-32 exactly when the run asks for
    `precision: tf32` (a process-wide switch, set by each phase); nothing changes on a CPU."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision is Precision.TF32


def run_device(device: Device, precision: Precision) -> torch.device:
    """The device of a run, with its matrix-product precision set (`configure_matmul`)."""
    resolved = resolve_device(device)
    configure_matmul(resolved, precision)
    return resolved
