"""Multi-task samplers: how often each task of a mixture is drawn."""

from __future__ import annotations

import torch

from xstilts.config.schema import MixtureConfig, Sampler


def task_probabilities(sizes: dict[str, int], mixture: MixtureConfig) -> list[float]:
    """Probability of drawing each task (in the order of `sizes`), given each task's number of
    training examples (not features: a four-choice example or a QA example in three windows is one).

    Example:
        >>> task_probabilities({"mnli": 400, "squad": 100}, MixtureConfig(sampler="temperature", temperature=2))
        [0.666..., 0.333...]
    """
    if mixture.sampler is Sampler.FIXED:
        weights = [mixture.probabilities[name] for name in sizes]
    elif mixture.sampler is Sampler.UNIFORM:
        weights = [1.0] * len(sizes)
    else:
        capped = [min(size, mixture.example_cap or size) for size in sizes.values()]
        power = 1.0 / mixture.temperature if mixture.sampler is Sampler.TEMPERATURE else 1.0
        weights = [float(size) ** power for size in capped]
    total = sum(weights)
    return [weight / total for weight in weights]


def draw_tasks(probabilities: list[float], draws: int, generator: torch.Generator) -> list[int]:
    """`draws` task indices, drawn up front so a run is reproducible from its seed."""
    if len(probabilities) == 1:
        return [0] * draws
    return torch.multinomial(torch.tensor(probabilities), draws, replacement=True, generator=generator).tolist()
