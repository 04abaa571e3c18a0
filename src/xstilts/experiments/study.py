"""Studies: one YAML file -> a grid of experiments -> a graph of nodes whose shared work is shared.

    prepare  the offline miniature (synthetic data, the tiny models its runs use), when `quickstart:` is set
    phase2   one per distinct phase-2 identity (start model, intermediate config, seeds, data),
             feeding every grid point that needs it
    run      one per grid point: phase 3 and the zero-shot sweep, phase 2 from the cache

Every grid point is validated before anything runs; node ids are stable hashes of what the
nodes compute, so a rerun of the same study finds the nodes already done in the store.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from rich.console import Console

from xstilts.config.loading import describe_validation_error, read_yaml, unshare
from xstilts.config.schema import ExperimentConfig, ModelMode, QuickstartConfig
from xstilts.config.study import StudyConfig, apply_setting, axis_entries, combinations
from xstilts.errors import UserError, did_you_mean
from xstilts.experiments.fingerprint import hash_file, hash_json
from xstilts.experiments.phases import RunContext, intermediate_key, resolved_spec
from xstilts.experiments.quickstart import QUICKSTART_CONFIG, data_folder, find_miniature, prepare_miniature
from xstilts.experiments.run import new_run_id, recorded_run, run_experiment, run_intermediate_only
from xstilts.experiments.store import COMPLETED, FAILED, PARTIAL, NodeState, ResultsStore
from xstilts.tasks.registry import TaskRegistry, load_registry

PREPARE, PHASE2, RUN = "prepare", "phase2", "run"
# Node statuses besides the store's (running, failed, interrupted): done, and pending (never started).
DONE, PENDING = "done", "pending"
# `model` values that name the prepared miniature's models (Miniature fields).
PLACEHOLDERS = {
    "quickstart:initial": "initial", "quickstart:pretrained": "pretrained",
    # research question (a): the tiny T5 (span corruption) and its instruction-trained counterpart
    "quickstart:t5": "t5", "quickstart:t5-instruct": "t5_instruct",
}
T5_PLACEHOLDERS = frozenset({"quickstart:t5", "quickstart:t5-instruct"})
BERT_PLACEHOLDERS = frozenset(PLACEHOLDERS) - T5_PLACEHOLDERS


@dataclass(frozen=True)
class GridPoint:
    """One experiment of the grid: its run name, its axis labels (axis -> label) and config."""

    name: str
    labels: dict[str, str]
    config: ExperimentConfig


@dataclass
class Node:
    """One unit of work. Picklable: executors send it to other processes and machines.

    `config` is the experiment config (JSON form) of a run node, or of the first grid point a
    phase-2 node feeds; `quickstart` is the miniature's config (JSON form) when the study has one.
    """

    id: str
    kind: str
    study: str
    deps: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    config: dict | None = None
    quickstart: dict | None = None
    feeds: int = 0  # grid points that use this node's output (phase-2 nodes)


@dataclass
class Study:
    """A loaded study: its config, grid points and node graph (nodes in dependency order)."""

    config: StudyConfig
    path: Path
    home: Path
    points: list[GridPoint]
    nodes: dict[str, Node]
    quickstart: QuickstartConfig | None = None

    @property
    def name(self) -> str:
        return self.config.name


def load_study(path: Path | str, home: Path | str) -> Study:
    """Read, validate and expand a study file into its grid points and node graph.

    `home` is the results store: the miniature's data folder lives under it, so it is part of
    the configs (and node ids) of a study with `quickstart:`.

    Example:
        >>> study = load_study("configs/studies/quickstart-seeds.yaml", "xstilts_runs")
        >>> len(study.points), sum(node.kind == "phase2" for node in study.nodes.values())
    """
    path, home = Path(path), Path(home).resolve()
    document = read_yaml(path, "study file")
    if not isinstance(document, dict):
        raise UserError(f"{path}: a study file must be a mapping of keys")
    try:
        config = StudyConfig.model_validate(document)
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc, str(path), StudyConfig)) from None
    check_report(config, path)
    quickstart = load_quickstart(config, path)
    points = expand(config, path, base_document(config, path), quickstart and data_map(quickstart, home))
    if quickstart is not None:  # the prepare node builds the model pairs the runs use, and only those
        models = {point.config.model for point in points}
        quickstart = quickstart.model_copy(
            update={"prepare_t5": bool(models & T5_PLACEHOLDERS), "prepare_bert": bool(models & BERT_PLACEHOLDERS)}
        )
    return Study(config, path, home, points, build_graph(config.name, points, quickstart, home), quickstart)


def check_report(config: StudyConfig, path: Path) -> None:
    """The report section may name only axes of the study, and arms that are labels of the arm axis."""
    report, axes = config.report, config.axes
    named = {"report.size.axis": report.size and report.size.axis}
    if "seed_axis" in report.model_fields_set:  # the default "seed" may be absent: one seed, the config's
        named["report.seed_axis"] = report.seed_axis
    if report.baseline or report.control:
        named["report.arm_axis"] = report.arm_axis
    for key, axis in named.items():
        if axis is not None and axis not in axes:
            raise UserError(f"{path}: {key}: no axis {axis!r}{did_you_mean(axis, axes)}")
    if report.arm_axis in axes:
        labels = [label for label, _ in axis_entries(report.arm_axis, axes[report.arm_axis], path)]
        for key in ("baseline", "control"):
            arm = getattr(report, key)
            if arm is not None and arm not in labels:
                raise UserError(f"{path}: report.{key}: {arm!r} is not a label of axis {report.arm_axis!r}{did_you_mean(arm, labels)}")


def base_document(config: StudyConfig, path: Path) -> dict:
    """The base experiment as a mapping (an experiment YAML is read relative to the study file)."""
    if isinstance(config.base, dict):
        return unshare(config.base)
    base_path = config.base if config.base.is_absolute() else path.parent / config.base
    document = read_yaml(base_path, "base experiment config")
    if not isinstance(document, dict):
        raise UserError(f"{base_path}: a config file must be a mapping of keys")
    return document


def load_quickstart(config: StudyConfig, path: Path) -> QuickstartConfig | None:
    """The shipped quickstart config with the study's `quickstart:` settings applied."""
    if config.quickstart is None:
        return None
    document = read_yaml(QUICKSTART_CONFIG, "quickstart config")
    for key, value in config.quickstart.items():
        apply_setting(document, key, value)
    try:
        return QuickstartConfig.model_validate(document)
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc, f"{path}: quickstart", QuickstartConfig)) from None


def data_map(quickstart: QuickstartConfig, home: Path) -> dict[str, str]:
    """task -> folder of the miniature's benchmark, for the tasks of its `data` map."""
    data = data_folder(quickstart, home / "quickstart")
    return {task: str(data / folder) for task, folder in quickstart.data.items()}


def expand(config: StudyConfig, path: Path, base: dict, miniature_data: dict[str, str] | None) -> list[GridPoint]:
    """Validate every grid point against the experiment schema and the task registry; a
    mistake is one line naming the study file, the grid point's axis labels and the key."""
    points, names = [], set()
    for combination in combinations(config, path):
        document = unshare(base)
        for _, _, settings in combination:
            for key, value in settings.items():
                apply_setting(document, key, value)
        labels = {axis: label for axis, label, _ in combination}
        name = "-".join([config.name, *labels.values()])
        if name in names:
            raise UserError(f"{path}: two grid points are both named {name!r}; give their axes distinct labels")
        names.add(name)
        document["name"] = name
        if miniature_data:
            document["data"] = {**miniature_data, **(document.get("data") or {})}
        points.append(GridPoint(name, labels, absolute_paths(validate_point(document, combination, path))))
    return points


def absolute_paths(config: ExperimentConfig) -> ExperimentConfig:
    """Data folders, spec files and a local model as absolute paths: relative ones are read from
    the working directory (as `xstilts run` reads them), and the nodes may run elsewhere."""
    model = expand_user(config.model, "model")
    return config.model_copy(update={
        "model": str(model.resolve()) if model.exists() else config.model,
        "data": {task: expand_user(folder, f"data.{task}").resolve() for task, folder in config.data.items()},
        "task_specs": [expand_user(spec, "task_specs").resolve() for spec in config.task_specs],
    })


def expand_user(path: Path | str, key: str) -> Path:
    """`path` with a leading ~ or ~user expanded; an unknown user is the key's one-line error."""
    try:
        return Path(path).expanduser()
    except RuntimeError as exc:  # ~name of a user this machine does not have
        raise UserError(f"key {key!r}: {path}: {exc}") from None


def blame(key: str, combination: list[tuple[str, str, dict]]) -> str:
    """The axis values that set `key` (or a section around it), else all of the point's values."""
    hits = [
        f"{axis}={label}" for axis, label, settings in combination
        if any(key == k or key.startswith(f"{k}.") or k.startswith(f"{key}.") for k in settings)
    ]
    return ", ".join(hits or [f"{axis}={label}" for axis, label, _ in combination])


@functools.lru_cache(maxsize=None)
def cached_registry(task_specs: tuple[str, ...]) -> TaskRegistry:
    """The registry of a set of spec files, read once while a study is expanded."""
    return load_registry([Path(spec) for spec in task_specs])


def validate_point(document: dict, combination: list[tuple[str, str, dict]], path: Path) -> ExperimentConfig:
    try:
        config = ExperimentConfig.model_validate(document)
    except ValidationError as exc:
        key = ".".join(str(part) for part in exc.errors()[0]["loc"] if not isinstance(part, int))
        raise UserError(describe_validation_error(exc, f"{path}: axis {blame(key, combination)}", ExperimentConfig)) from None
    model = config.model
    if model.startswith("quickstart:") and model not in PLACEHOLDERS:
        raise UserError(
            f"{path}: axis {blame('model', combination)}: key 'model': unknown placeholder {model!r}"
            f"{did_you_mean(model, PLACEHOLDERS)}"
        )
    try:
        registry = cached_registry(tuple(str(spec) for spec in config.task_specs))
        for task in [config.target.task, *(config.intermediate.tasks if config.intermediate else [])]:
            registry.get(task)
    except UserError as exc:
        raise UserError(f"{path}: axis {blame('target.task', combination)}: {exc}") from None
    return config


def task_specs_identity(config: ExperimentConfig) -> list[str]:
    """The extra spec files by absolute path and content (a changed spec is another phase 2)."""
    return [f"{Path(p).resolve()}:{hash_file(p) if Path(p).is_file() else 'missing'}" for p in config.task_specs]


def phase2_identity(config: ExperimentConfig, prepare: str | None) -> dict:
    """What phase 2 computes: the same fields its checkpoint key covers, in the study's terms
    (a placeholder model is the placeholder of the prepare node, resolved only at run time)."""
    phase = config.intermediate
    model = f"{config.model}@{prepare}" if config.model in PLACEHOLDERS else config.model
    return {
        "model": model, "model_revision": config.model_revision, "intermediate": phase.model_dump(mode="json"),
        "seed": config.seed, "data_seed": config.data_seed, "precision": config.precision.value,
        "data": {task: str(Path(config.data[task]).resolve()) if task in config.data else None for task in phase.tasks},
        "task_specs": task_specs_identity(config),
        # As run_key_parts: text-to-text mode and its prompt change the training text (encoder ids unchanged).
        **({"text_to_text": {"mode": config.mode.value, "prompt": config.text_to_text.prompt}}
           if config.mode is ModelMode.TEXT_TO_TEXT else {}),
    }


def node_id(kind: str, identity: Any) -> str:
    return f"{kind}-{hash_json(identity)[:12]}"


def build_graph(study: str, points: list[GridPoint], quickstart: QuickstartConfig | None, home: Path) -> dict[str, Node]:
    """prepare (if any) -> one phase-2 node per distinct phase-2 identity -> one run node per point."""
    nodes: dict[str, Node] = {}
    miniature = quickstart and quickstart.model_dump(mode="json")
    prepare = None
    if quickstart is not None:
        prepare = node_id(PREPARE, {"quickstart": miniature, "workdir": str(home / "quickstart")})
        nodes[prepare] = Node(prepare, PREPARE, study, quickstart=miniature, feeds=len(points))
    runs = []
    for point in points:
        deps = [prepare] if prepare else []
        config = point.config.model_dump(mode="json")
        if point.config.intermediate is not None:
            phase2 = node_id(PHASE2, phase2_identity(point.config, prepare))
            if phase2 not in nodes:
                nodes[phase2] = Node(phase2, PHASE2, study, tuple(deps), dict(point.labels), config, miniature)
            shared = nodes[phase2]  # its labels: those of every grid point it feeds
            shared.labels = {axis: label for axis, label in shared.labels.items() if point.labels.get(axis) == label}
            shared.feeds += 1
            deps.append(phase2)
        run = node_id(RUN, {"study": study, "config": config})
        runs.append(Node(run, RUN, study, tuple(deps), dict(point.labels), config, miniature, feeds=1))
    nodes.update((node.id, node) for node in runs)
    return nodes


@dataclass(frozen=True)
class NodeOutcome:
    """What executing a node gave: completed or failed (with the one-line reason), and its run."""

    node: str
    status: str
    message: str | None = None
    run: str | None = None


@dataclass(frozen=True)
class NodeStatus:
    """A node's state before or after a study run: done, running, failed, interrupted or pending."""

    status: str
    message: str | None = None
    run: str | None = None


def workdir(home: Path) -> Path:
    """Where a study's miniature is prepared: the same place `xstilts quickstart` uses."""
    return Path(home) / "quickstart"


def resolved_config(node: Node, home: Path) -> ExperimentConfig:
    """A node's experiment config with a placeholder model replaced by the prepared model."""
    config = dict(node.config)
    if config["model"] in PLACEHOLDERS:
        miniature = find_miniature(QuickstartConfig.model_validate(node.quickstart), workdir(home))
        if miniature is None:
            raise UserError(f"node {node.id}: the miniature is not prepared (its prepare node has not completed)")
        config["model"] = str(getattr(miniature, PLACEHOLDERS[config["model"]]))
    if node.kind == PHASE2:
        config["name"] = f"{node.study}-{node.id}"
    return ExperimentConfig.model_validate(config)


def run_prepare(node: Node, home: Path, console: Console) -> str:
    """Prepare the miniature as a run of the study (so that its failure has a stored reason)."""
    store = ResultsStore(home)
    with recorded_run(store, f"{node.study}-{node.id}", node.quickstart, study=node.study, node=node.id) as (run, *_):
        prepare_miniature(QuickstartConfig.model_validate(node.quickstart), workdir(home), console)
    return run


def execute_node(node: Node, home: str) -> NodeOutcome:
    """Run one node, in whatever process the executor chose. A user's mistake (a missing file, a
    partial run) is a failed outcome with its one-line reason, never an exception, so futures
    carry outcomes; a bug still raises (the scheduler reports it as the node's failure)."""
    console, path = Console(stderr=True), Path(home)
    store = ResultsStore(path)
    latest = store.node_states([node.id]).get(node.id)
    try:
        if node.kind == PREPARE:
            run = run_prepare(node, path, console)
        elif node.kind == PHASE2:
            config = resolved_config(node, path)
            run = run_intermediate_only(config, path, console, config.name, study=node.study, node=node.id)
        else:
            config = resolved_config(node, path)
            run = run_experiment(config, home=path, console=console, study=node.study, node=node.id, axes=node.labels)
    except UserError as exc:
        now = store.node_states([node.id]).get(node.id)
        if now is None or now == latest:  # failed in the checks before its run was recorded
            return NodeOutcome(node.id, FAILED, one_line(exc), record_failure(store, node, one_line(exc)))
        return NodeOutcome(node.id, FAILED, one_line(exc), now.run)
    return NodeOutcome(node.id, COMPLETED, None, run)


def record_failure(store: ResultsStore, node: Node, message: str) -> str:
    """A failed run for a node that failed before its run started, so that status shows why."""
    name = node.config["name"] if node.kind == RUN else f"{node.study}-{node.id}"
    run = new_run_id(name)
    axes = node.labels if node.kind == RUN else None
    store.start_run(run, name, node.config or node.quickstart, study=node.study, node=node.id, axes=axes)
    store.finish_run(run, FAILED, message=message)
    return run


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def phase2_checkpoint(node: Node, home: Path, store: ResultsStore) -> Path | None:
    """The cached checkpoint of a phase-2 node, found by its real content key. Computed only
    when the start model is on disk and every task's data is local (a hub model's fingerprint
    needs the network); otherwise the store's record of the node decides."""
    try:
        config = resolved_config(node, home)
        if not Path(config.model).exists() or any(task not in config.data for task in config.intermediate.tasks):
            return None
        registry = load_registry(config.task_specs)
        ctx = RunContext("plan", config, registry, store, home, torch.device("cpu"), Console(stderr=True))
        specs = [resolved_spec(name, ctx) for name in config.intermediate.tasks]
        return store.find_checkpoint(intermediate_key(config.intermediate, specs, ctx))
    except (UserError, OSError):
        return None


def is_done(node: Node, study: Study, store: ResultsStore, state: NodeState | None) -> bool:
    if node.kind == PREPARE:  # its folders are its result, whatever the store says
        return find_miniature(study.quickstart, workdir(study.home)) is not None
    if state is not None and state.status == COMPLETED:
        return True
    return node.kind == PHASE2 and phase2_checkpoint(node, study.home, store) is not None


def node_statuses(study: Study, store: ResultsStore) -> dict[str, NodeStatus]:
    """Every node's status from the store and the checkpoint cache, in dependency order. A node
    whose dependency failed reads failed, naming the dependency that failed first and why."""
    recorded = store.node_states(list(study.nodes))
    statuses: dict[str, NodeStatus] = {}
    causes: dict[str, str] = {}  # failed node -> the reason its dependants fail with
    for node in study.nodes.values():
        state = recorded.get(node.id)
        failed_deps = [dep for dep in node.deps if dep in causes]
        if is_done(node, study, store, state):
            status = NodeStatus(DONE, None, state and state.run)
        elif failed_deps:
            status = NodeStatus(FAILED, causes[failed_deps[0]], state and state.run)
        elif state is None:
            status = NodeStatus(PENDING)
        else:
            status = NodeStatus(FAILED if state.status == PARTIAL else state.status, state.message, state.run)
        if status.status == FAILED:
            causes[node.id] = causes[failed_deps[0]] if failed_deps else f"dependency {node.id} failed: {status.message}"
        statuses[node.id] = status
    return statuses
