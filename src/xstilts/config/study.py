"""The typed study schema: a base experiment plus axes, and where the grid runs.

A study expands into one experiment per grid point (`combinations` here; validation and the node
graph in experiments/study.py). Unknown keys and wrong types are errors, like experiment configs.
"""

from __future__ import annotations

import itertools
import math
import re
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from xstilts.config.loading import unshare
from xstilts.config.schema import Strict
from xstilts.errors import UserError


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
        keys = [self.key] if self.key is not None else [key for value in self.values.values() for key in value]
        for key in keys:
            check_dotted_key(key)
        return self


def check_dotted_key(key: Any) -> None:
    """A dotted experiment key such as `target.train.learning_rate` (ValueError otherwise)."""
    if not isinstance(key, str) or not all(part.strip() for part in key.split(".")):
        raise ValueError(f"{key!r} is not a dotted key such as target.train.learning_rate")


class SizeAnalysis(Strict):
    """Size vs degradation (research question e): one score per size, correlated with the size.

    The size of a grid point is its `axis` label read as a number (e.g. intermediate example
    caps 1000, 4000, all = the task's full size given in `full_size`). Degradation is the
    full-split score minus the `subset` score, or with `language` set, the English score minus
    that language's (or, with language: zero-shot, minus the mean over the zero-shot languages).
    """

    axis: str = Field(description="the axis whose labels are the intermediate-set sizes")
    subset: str | None = Field(None, description="subset of the split (split 'test/<subset>'): degradation = full - subset")
    language: str | None = Field(None, description="degradation = English - this language ('zero-shot': the mean over non-English languages)")
    full_size: PositiveInt | None = Field(None, description="the size a non-numeric label (e.g. 'all') stands for")

    @model_validator(mode="after")
    def _one_kind(self) -> SizeAnalysis:
        if (self.subset is None) == (self.language is None):
            raise ValueError("give exactly one of subset (full - subset) and language (English - language)")
        return self


class ReportConfig(Strict):
    """How `xstilts report` reads the study's grid: which axis holds the arms, which arm is the
    baseline and which the control, which axis holds the seeds; every analysis whose axes are
    missing is left out of the report with a note."""

    arm_axis: str = Field("arm", description="the axis whose labels are the arms compared (intermediate tasks, start models ...)")
    baseline: str | None = Field(None, description="the arm every other arm is compared with (typically no intermediate task)")
    control: str | None = Field(None, description="the random-init control arm, if the study has one")
    seed_axis: str | None = Field("seed", description="the axis of seeds; statistics are over its values")
    split: str = Field("test", description="the evaluation split the report is about")
    benchmark: str | None = Field(None, description="xtreme or xtreme-r: add the official group and overall averages")
    group_by: list[str] = Field(
        default_factory=list, description="language properties per-language tables are grouped by: family, script, morphology"
    )
    reference: str | None = Field(None, description="published reference numbers to set beside ours (an id of analysis/data/reference.yaml)")
    size: SizeAnalysis | None = Field(None, description="size vs degradation (research question e)")
    noise_level: float = Field(0.05, gt=0, lt=1, description="significance level below which a paired difference is called real")


# Every grid point is validated before anything runs, and each is a training run: a grid past this
# size is a mistake (or an alias-multiplied file), not a study to expand.
MAX_GRID_POINTS = 10_000


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
    report: ReportConfig = Field(default_factory=ReportConfig, description="how `xstilts report` analyses the study")

    @model_validator(mode="after")
    def _zip_groups(self) -> StudyConfig:
        for key in self.quickstart or {}:
            check_dotted_key(key)
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
        zipped = {axis for group in self.zip for axis in group}
        sizes = [len(axis.values) for name, axis in self.axes.items() if name not in zipped]
        sizes += [len(self.axes[group[0]].values) for group in self.zip if group]
        if math.prod(sizes) > MAX_GRID_POINTS:
            raise ValueError(f"the axes make {math.prod(sizes)} grid points; a study may have at most {MAX_GRID_POINTS}")
        return self


def apply_setting(document: dict, dotted: str, value: Any) -> None:
    """Set `dotted` (a.b.c) in `document`. A mapping merges into an existing mapping, so an axis
    value `target: {task: xnli}` keeps the base's target.train; anything else replaces."""
    parts = dotted.split(".")
    node = document
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
        for key, item in value.items():  # a YAML key may be a number or null: the schema names it
            apply_setting(node[parts[-1]], str(key), item)
    else:
        node[parts[-1]] = unshare(value)


def value_label(value: Any) -> str:
    """A label from an axis value's text: lists join with '+', paths keep their last part."""
    if isinstance(value, list):
        text = "+".join(value_label(item) for item in value) or "none"
    elif isinstance(value, dict):
        text = "+".join(f"{key}{value_label(item)}" for key, item in value.items()) or "none"
    elif value is None or isinstance(value, bool):
        text = str(value).lower()
    else:
        text = str(value)
        text = Path(text).name if "/" in text else text
    return re.sub(r"[^A-Za-z0-9.+=_-]+", "_", text).strip("_") or "_"


def axis_entries(name: str, axis: AxisConfig, path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(label, {dotted key: value}) per value of one axis, in order; labels are unique."""
    if isinstance(axis.values, dict):
        items = list(axis.values.items())
    else:
        items = [(value_label(value), value) for value in axis.values]
    labels = [str(label) for label, _ in items]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise UserError(f"{path}: axis {name!r}: label {repeated[0]!r} names two values (give the values as label: value)")
    if axis.key is None:
        return [(str(label), dict(value)) for label, value in items]
    return [(str(label), {axis.key: value}) for label, value in items]


def combinations(config: StudyConfig, path: Path) -> list[list[tuple[str, str, dict]]]:
    """Every grid point as [(axis, label, settings)] in the axes' order: the product over the
    axes, where the axes of a zip group advance together."""
    entries = {name: axis_entries(name, axis, path) for name, axis in config.axes.items()}
    group_of = {axis: tuple(group) for group in config.zip for axis in group}
    dimensions: list[tuple[str, ...]] = []
    for name in config.axes:
        dimension = group_of.get(name, (name,))
        if dimension not in dimensions:
            dimensions.append(dimension)
    choices = [
        [[(axis, *entries[axis][index]) for axis in dimension] for index in range(len(entries[dimension[0]]))]
        for dimension in dimensions
    ]
    order = list(config.axes)
    return [sorted(itertools.chain(*picked), key=lambda entry: order.index(entry[0])) for picked in itertools.product(*choices)]
