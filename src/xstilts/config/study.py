"""The typed study schema: a base experiment plus axes, and where the grid runs.

A study expands into one experiment per grid point (see experiments/study.py). Unknown keys and
wrong types are errors, like experiment configs.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from xstilts.config.schema import Strict


class ExecutorKind(str, Enum):
    """Where the nodes of a study run."""

    LOCAL = "local"
    RAY = "ray"
    SLURM = "slurm"


class RayConfig(Strict):
    """Ray: an existing cluster, or a Ray started on this machine for the study."""

    address: str | None = Field(None, description="address of a running Ray cluster ('auto' or host:port); unset: start a local Ray")
    cpus_per_node: PositiveFloat = Field(1.0, description="CPUs Ray reserves for each node of the study")
    gpus_per_node: NonNegativeFloat = Field(0.0, description="GPUs Ray reserves for each node of the study")


class SlurmConfig(Strict):
    """Slurm through submitit: one job per node of the study."""

    partition: str | None = Field(None, description="Slurm partition (unset: the cluster's default)")
    time_minutes: PositiveInt = Field(240, description="time limit of each job")
    gpus_per_node: NonNegativeInt = Field(1, description="GPUs per job")
    cpus_per_task: PositiveInt = Field(8, description="CPUs per job")
    mem_gb: PositiveFloat = Field(32.0, description="memory per job")
    account: str | None = Field(None, description="Slurm account to charge")
    extra: dict[str, str] = Field(default_factory=dict, description="further sbatch parameters, e.g. {constraint: a100}")
    local: bool = Field(False, description="run the jobs through submitit's local executor (no Slurm: tests, debugging)")


class ExecutorConfig(Strict):
    """The executor a study uses (`xstilts study run --executor/--workers` override it)."""

    kind: ExecutorKind = ExecutorKind.LOCAL
    workers: PositiveInt = Field(
        1, description="nodes run at once (local: worker processes, 1 = in this process; ray, slurm: jobs in flight)"
    )
    ray: RayConfig = Field(default_factory=RayConfig)
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)


class AxisConfig(Strict):
    """One axis of the grid: a config key and its values, each with a label.

    With `key`, each value is that key's value (`key: seed, values: [0, 1, 2]`); without it, each
    value is a mapping of dotted keys to values, so one axis value can set several keys
    (`control: {model: ..., intermediate: null}`). Values given as a mapping are labelled by
    their names (`nli: [mnli]`); a list is labelled by each value's text.
    """

    key: str | None = Field(None, description="dotted experiment key the axis sets, e.g. intermediate.tasks")
    values: list[Any] | dict[str, Any] = Field(description="the axis values: a list, or label -> value")

    @model_validator(mode="after")
    def _values(self) -> AxisConfig:
        if not self.values:
            raise ValueError("an axis needs at least one value")
        if self.key is None and not (isinstance(self.values, dict) and all(isinstance(v, dict) for v in self.values.values())):
            raise ValueError("an axis without 'key' needs values of the form label -> {dotted.key: value}")
        return self


class StudyConfig(Strict):
    """A grid of experiments: `base` with every combination of the axes' values."""

    name: str = Field(description="study name; the runs of the study are named after it and their axis labels")
    base: dict[str, Any] | Path = Field(description="the experiment every grid point starts from: a mapping, or an experiment YAML (relative to the study file)")
    axes: dict[str, AxisConfig] = Field(min_length=1, description="axis name -> axis; the grid is their product")
    zip: list[list[str]] = Field(
        default_factory=list, description="groups of axes whose values go together, position by position (equal lengths)"
    )
    quickstart: dict[str, Any] | None = Field(
        None,
        description="prepare the offline miniature (quickstart config overrides): its synthetic data for every task "
        "of its `data` map, and the models 'quickstart:initial' (random init) and 'quickstart:pretrained' (after MLM)",
    )
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)

    @model_validator(mode="after")
    def _zip_groups(self) -> StudyConfig:
        seen: set[str] = set()
        for group in self.zip:
            for axis in group:
                if axis not in self.axes:
                    raise ValueError(f"zip names axis {axis!r}, which is not in axes")
                if axis in seen:
                    raise ValueError(f"axis {axis!r} is in two zip groups")
                seen.add(axis)
            lengths = {len(self.axes[axis].values) for axis in group}
            if len(lengths) > 1:
                raise ValueError(f"zipped axes {group} have different numbers of values")
        return self
