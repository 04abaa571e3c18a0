"""Hand-made head outputs through a format's `reduce`, as evaluation runs it on one batch."""

import numpy as np
import torch

from xstilts.evaluation.predict import to_numpy
from xstilts.formats.base import Feature, ReducedSplit, TaskFormat


def reduced(fmt: TaskFormat, outputs: np.ndarray, features: list[Feature]) -> ReducedSplit:
    """`fmt.reduce` of outputs [features, ...] as numpy; per-position outputs [features, time, ...]
    are masked past each feature's own length, as collate's attention mask does."""
    mask = torch.zeros(outputs.shape[:2], dtype=torch.long)
    for row, feature in enumerate(features):
        mask[row, : len(feature["input_ids"])] = 1
    return to_numpy(fmt.reduce(torch.from_numpy(outputs), {"attention_mask": mask}))
