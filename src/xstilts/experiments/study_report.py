"""What `xstilts study plan` and `xstilts study status` print: the nodes, their state and the work.

The work of a node is its optimiser steps, from the same arithmetic as the training loop
(examples of all tasks x epochs / (batch size x grad accumulation), capped by max_steps); a
node whose data is not on disk (hub data, a miniature not generated yet) reads "?".
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

from rich.table import Table

from xstilts.config.schema import ExperimentConfig, TrainConfig
from xstilts.data.loading import load_examples
from xstilts.errors import UserError
from xstilts.experiments.phases import intermediate_language
from xstilts.experiments.study import DONE, FAILED, PHASE2, PLACEHOLDERS, PREPARE, RUN, Node, NodeStatus, Study
from xstilts.tasks.registry import load_registry
from xstilts.tasks.spec import Format
from xstilts.training.loop import total_steps


@lru_cache(maxsize=None)
def train_examples(task: str, data_dir: str, language: str, specs: tuple[str, ...]) -> int:
    """How many English training examples a task's local data holds."""
    spec = load_registry([Path(p) for p in specs]).get(task)
    return len(load_examples(spec, "train", language, Path(data_dir)))


def phase_steps(config: ExperimentConfig, tasks: dict[str, str], train: TrainConfig, caps: dict[str, int]) -> int | None:
    """Optimiser steps of a phase over `tasks` (task -> language), or None when some task's data
    is not on disk."""
    counts = []
    for task, language in tasks.items():
        data = config.data.get(task)
        if data is None or not Path(data).is_dir():
            return None
        try:
            count = train_examples(task, str(data), language, tuple(map(str, config.task_specs)))
        except (UserError, OSError):
            return None
        limit = caps.get(task) or train.max_train_examples
        counts.append(SimpleNamespace(examples=min(count, limit) if limit else count))
    return total_steps(counts, train)[1]


def node_steps(node: Node) -> int | None:
    """Training steps of a node: pretraining steps (prepare: MLM, span corruption), phase 2's or
    phase 3's steps."""
    if node.kind == PREPARE:
        return sum(steps for _, steps in pretraining(node.quickstart))
    config = ExperimentConfig.model_validate(node.config)
    registry = load_registry(config.task_specs)
    if node.kind == PHASE2:
        phase = config.intermediate
        tasks = {name: intermediate_language(registry.get(name), phase) for name in phase.tasks}
        return phase_steps(config, tasks, phase.train, phase.max_examples)
    spec = registry.get(config.target.task)
    if spec.format is Format.RETRIEVAL:  # the encoder is evaluated as it is
        return 0
    return phase_steps(config, {spec.name: spec.train_language}, config.target.train, {})


def pretraining(quickstart: dict) -> list[tuple[str, int]]:
    """The prepare node's pretraining runs: (tiny model and objective, steps)."""
    runs = []
    if quickstart.get("prepare_bert", True):
        runs.append(("tiny BERT MLM", quickstart["pretrain"]["steps"]))
    if quickstart.get("prepare_t5", False):  # then its instruction training, counted in epochs
        runs.append(("tiny T5 span corruption", quickstart["t5"]["pretrain"]["steps"]))
    return runs


def model_label(model: str) -> str:
    return model if model in PLACEHOLDERS or "/" not in model else Path(model).name


def describe(node: Node) -> str:
    """What a node trains: the miniature, or model -> mixture -> target."""
    if node.kind == PREPARE:
        models = ", ".join(f"{name} {steps} steps" for name, steps in pretraining(node.quickstart))
        return f"miniature: synthetic data, {models}"
    config = node.config
    parts = [model_label(config["model"])]
    if config.get("intermediate"):
        parts.append("+".join(config["intermediate"]["tasks"]))
    if node.kind != PHASE2:
        parts.append(config["target"]["task"])
    return " -> ".join(parts)


def node_table(study: Study, statuses: dict[str, NodeStatus], steps: dict[str, int | None] | None = None) -> Table:
    """One row per node: kind, id, status, what it trains, labels, dependencies (and steps)."""
    columns = ["kind", "node", "status", "trains", "labels", "needs", *(["steps"] if steps is not None else []), "reason"]
    table = Table(*columns, title=f"study {study.name}: {len(study.points)} grid points")
    for node in study.nodes.values():
        status = statuses[node.id]
        labels = " ".join([*node.labels.values(), *([f"(feeds {node.feeds})"] if node.kind != RUN else [])])
        cells = [node.kind, node.id, status.status, describe(node), labels, " ".join(node.deps) or "-"]
        if steps is not None:
            cells.append("?" if steps[node.id] is None else str(steps[node.id]))
        table.add_row(*cells, status.message or "")
    return table


def plan_summary(study: Study, statuses: dict[str, NodeStatus], steps: dict[str, int | None]) -> str:
    """'N nodes, M to run, ~S training steps' over the nodes to run (unknown ones named)."""
    todo = [node for node in study.nodes if statuses[node].status != DONE]
    known = sum(steps[node] or 0 for node in todo)
    unknown = sum(steps[node] is None for node in todo)
    extra = f" (+ {unknown} nodes of unknown size: their data is on the hub or not on disk yet)" if unknown else ""
    return f"{len(study.nodes)} nodes, {len(todo)} to run, ~{known:,} training steps{extra}"


def status_summary(statuses: dict[str, NodeStatus]) -> str:
    """'N nodes: a done, b running, ...' in a fixed order."""
    counts = Counter(status.status for status in statuses.values())
    order = [DONE, "running", FAILED, "interrupted", "pending"]
    return f"{len(statuses)} nodes: " + ", ".join(f"{counts[name]} {name}" for name in order if counts[name])
