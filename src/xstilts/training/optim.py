"""The optimiser every training phase uses (target, intermediate and MLM pretraining)."""

from __future__ import annotations

import torch
from torch import nn
from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS
from transformers.trainer_pt_utils import get_parameter_names

# The name patterns HF Trainer.get_decay_parameter_names passes next to ALL_LAYERNORM_LAYERS.
NO_DECAY_NAME_PATTERNS = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


def build_adamw(model: nn.Module, *, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, without weight decay on biases and LayerNorm weights
    (the HF Trainer, XTREME and jiant recipe), chosen by transformers' own helper; the fused
    AdamW kernel, on any device."""
    decayed = set(get_parameter_names(model, ALL_LAYERNORM_LAYERS, NO_DECAY_NAME_PATTERNS))
    trainable = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    groups = [
        {"params": [p for name, p in trainable if name in decayed], "weight_decay": weight_decay},
        {"params": [p for name, p in trainable if name not in decayed], "weight_decay": 0.0},
    ]
    # The fused kernel (CPU and CUDA): one pass over all parameters instead of several per tensor.
    return torch.optim.AdamW([group for group in groups if group["params"]], lr=learning_rate, fused=True)
