"""Studies: grid expansion (product, zip, labels, keyless axes), validation errors, the node graph
(shared phase-2 nodes), the scheduler on a fake executor, done-ness from the store, the estimates."""

import concurrent.futures
import threading
import time
from pathlib import Path

import pytest
import yaml

from xstilts.config.loading import read_yaml
from xstilts.config.schema import QuickstartConfig
from xstilts.errors import UserError
from xstilts.experiments.executors import SequentialExecutor, worker_environments
from xstilts.experiments.phases import RunContext, intermediate_key, resolved_spec
from xstilts.experiments.quickstart import QUICKSTART_CONFIG
from xstilts.experiments.scheduler import run_graph
from xstilts.experiments.store import COMPLETED, FAILED, ResultsStore
from xstilts.experiments.study import PHASE2, PREPARE, RUN, Node, NodeOutcome, load_study, node_statuses
from xstilts.experiments.study_report import node_steps, plan_summary
from xstilts.tasks.registry import load_registry

ROOT = Path(__file__).resolve().parents[3]
STUDIES = ROOT / "configs" / "studies"
TRAIN = {"epochs": 2, "batch_size": 32, "learning_rate": 1e-3, "max_length": 64}


def write_study(tmp_path: Path, document: dict, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def base(**extra) -> dict:
    return {"model": "hub-model", "intermediate": {"tasks": ["mnli"], "train": TRAIN},
            "target": {"task": "xnli", "train": TRAIN}, **extra}


def kinds(study) -> dict[str, int]:
    counts = {PREPARE: 0, PHASE2: 0, RUN: 0}
    for node in study.nodes.values():
        counts[node.kind] += 1
    return counts


def test_the_grid_is_the_product_of_the_axes_in_order_with_labels(tmp_path):
    path = write_study(tmp_path, {
        "name": "g", "base": base(),
        "axes": {
            "mix": {"key": "intermediate.tasks", "values": {"nli": ["mnli"], "both": ["mnli", "squad"]}},
            "seed": {"key": "seed", "values": [0, 1, 2]},
        },
    })
    study = load_study(path, tmp_path / "home")
    assert [p.name for p in study.points] == [
        "g-nli-0", "g-nli-1", "g-nli-2", "g-both-0", "g-both-1", "g-both-2",
    ]
    assert study.points[4].labels == {"mix": "both", "seed": "1"}
    assert study.points[4].config.intermediate.tasks == ["mnli", "squad"] and study.points[4].config.seed == 1
    # The base's phase-2 training settings stay when an axis sets only the tasks.
    assert study.points[4].config.intermediate.train.learning_rate == 1e-3
    # Lists are labelled by their items, joined with '+'; paths by their last part.
    path = write_study(tmp_path, {"name": "h", "base": base(), "axes": {
        "mix": {"key": "intermediate.tasks", "values": [["mnli"], ["mnli", "squad"]]},
        "model": {"key": "model", "values": ["/models/xlm-r", "bert"]},
    }})
    assert [p.name for p in load_study(path, tmp_path).points] == ["h-mnli-xlm-r", "h-mnli-bert", "h-mnli+squad-xlm-r", "h-mnli+squad-bert"]


def test_zipped_axes_advance_together(tmp_path):
    path = write_study(tmp_path, {
        "name": "z", "base": base(),
        "axes": {
            "target": {"key": "target.task", "values": ["xnli", "pawsx"]},
            "seed": {"key": "seed", "values": [0, 1, 2]},
            "lr": {"key": "target.train.learning_rate", "values": {"small": 1e-5, "large": 3e-5}},
        },
        "zip": [["target", "lr"]],
    })
    points = load_study(path, tmp_path).points
    assert [p.name for p in points] == ["z-xnli-0-small", "z-xnli-1-small", "z-xnli-2-small", "z-pawsx-0-large", "z-pawsx-1-large", "z-pawsx-2-large"]
    assert {(p.config.target.task, p.config.target.train.learning_rate) for p in points} == {("xnli", 1e-5), ("pawsx", 3e-5)}


def test_a_keyless_axis_sets_several_keys_and_can_remove_phase_2(tmp_path):
    path = write_study(tmp_path, {
        "name": "k", "base": base(),
        "axes": {"arm": {"values": {
            "control": {"model": "other-model", "intermediate": None},
            "nli": {"intermediate.tasks": ["mnli"], "intermediate.max_examples": {"mnli": 100}},
        }}},
    })
    control, nli = load_study(path, tmp_path).points
    assert control.config.intermediate is None and control.config.model == "other-model"
    assert nli.config.intermediate.max_examples == {"mnli": 100} and nli.config.model == "hub-model"


def test_base_may_be_an_experiment_file_relative_to_the_study(tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "base.yaml").write_text(yaml.safe_dump({"name": "x", **base()}), encoding="utf-8")
    (tmp_path / "studies").mkdir()
    path = write_study(tmp_path / "studies", {"name": "f", "base": "../exp/base.yaml", "axes": {"seed": {"key": "seed", "values": [3]}}})
    [point] = load_study(path, tmp_path).points
    assert point.name == "f-3" and point.config.seed == 3 and point.config.target.task == "xnli"


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ({"arm": {"values": {"ok": {"intermediate.tasks": ["mnli"]}, "bad": {"intermediate.taks": ["mnli"]}}}},
         "study.yaml: axis arm=bad: unknown key 'intermediate.taks' (did you mean 'intermediate.tasks'?)"),
        ({"seed": {"key": "seed", "values": [0, "x"]}}, "study.yaml: axis seed=x: key 'seed': "),
        ({"target": {"key": "target.task", "values": ["xnli", "xnlii"]}}, "study.yaml: axis target=xnlii: unknown task 'xnlii'"),
        ({"seed": {"key": "seed", "values": {"a": 1, "b": 1}}, "s2": {"key": "seed", "values": [1, "1"]}}, "axis 's2': label '1' names two values"),
        ({"arm": {"values": [1, 2]}}, "an axis without 'key' needs values of the form label -> {dotted.key: value}"),
    ],
)
def test_every_grid_point_is_checked_before_anything_runs_with_one_line_naming_the_axis_value(tmp_path, axes, message):
    path = write_study(tmp_path, {"name": "v", "base": base(), "axes": axes})
    with pytest.raises(UserError) as error:
        load_study(path, tmp_path / "home")
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(path) in str(error.value)
    assert not (tmp_path / "home").exists()  # nothing ran, nothing was written


def test_an_unknown_study_key_and_an_unknown_placeholder_are_one_line_errors(tmp_path):
    path = write_study(tmp_path, {"name": "v", "base": base(), "axes": {"seed": {"key": "seed", "values": [0]}}, "zipp": []})
    with pytest.raises(UserError, match=r"study.yaml: unknown key 'zipp' \(did you mean 'zip'\?\)"):
        load_study(path, tmp_path)
    path = write_study(tmp_path, {"name": "v", "base": base(model="quickstart:pretraind"), "quickstart": {},
                                  "axes": {"seed": {"key": "seed", "values": [0]}}})
    with pytest.raises(UserError, match="key 'model': unknown placeholder 'quickstart:pretraind' \\(did you mean 'quickstart:pretrained'\\?\\)"):
        load_study(path, tmp_path)


def test_nine_mixtures_by_nine_targets_train_nine_phase_2_models(tmp_path):
    study = load_study(STUDIES / "paper-9x9.yaml", tmp_path)
    assert kinds(study) == {PREPARE: 0, PHASE2: 9, RUN: 81}
    phase2 = {node.id: node for node in study.nodes.values() if node.kind == PHASE2}
    assert all(node.feeds == 9 for node in phase2.values())
    runs = [node for node in study.nodes.values() if node.kind == RUN]
    for node in runs:
        [dep] = node.deps
        assert phase2[dep].config["intermediate"] == node.config["intermediate"]
    assert len({node.id for node in runs}) == 81
    # Ids are stable hashes: the same file gives the same ids; the study's name is part of run ids only.
    assert list(load_study(STUDIES / "paper-9x9.yaml", tmp_path).nodes) == list(study.nodes)
    document = read_yaml(STUDIES / "paper-9x9.yaml", "study")
    renamed = load_study(write_study(tmp_path, {**document, "name": "other"}), tmp_path)
    assert {n.id for n in renamed.nodes.values() if n.kind == PHASE2} == set(phase2)
    assert not {n.id for n in renamed.nodes.values() if n.kind == RUN} & {n.id for n in runs}


def fake_node(node: Node, home: str) -> NodeOutcome:
    """A stand-in for execute_node: node 'a' fails as a user's mistake would, 'bug' raises."""
    if node.id == "a":
        return NodeOutcome(node.id, FAILED, "data/x/train.tsv: file not found")
    if node.id == "bug":
        raise ValueError("a bug in one node")
    return NodeOutcome(node.id, COMPLETED, None, f"run-of-{node.id}")


def graph() -> dict[str, Node]:
    spec = [("p", ()), ("a", ("p",)), ("b", ("p",)), ("r1", ("a",)), ("r2", ("a", "b")), ("r3", ("b",)),
            ("bug", ("b",)), ("z", ("r1",)), ("after-bug", ("bug",))]
    return {name: Node(name, RUN, "s", deps) for name, deps in spec}


def test_a_failing_node_fails_its_dependants_only_and_the_study_goes_on():
    events = []
    outcomes = run_graph(graph(), set(graph()) - {"p"}, SequentialExecutor(), 1, "home", fn=fake_node,
                         on_event=lambda event: events.append((event.kind, event.node.id)))
    assert "p" not in outcomes  # done already: not run again
    status = {node: (outcome.status, outcome.message) for node, outcome in outcomes.items()}
    assert status["a"] == (FAILED, "data/x/train.tsv: file not found")
    assert status["r1"] == status["r2"] == status["z"] == (FAILED, "dependency a failed: data/x/train.tsv: file not found")
    assert status["b"] == status["r3"] == (COMPLETED, None)
    assert status["bug"] == (FAILED, "ValueError: a bug in one node")
    assert status["after-bug"] == (FAILED, "dependency bug failed: ValueError: a bug in one node")
    assert outcomes["r3"].run == "run-of-r3"
    started = [node for kind, node in events if kind == "started"]
    assert set(started) == {"a", "b", "r3", "bug"}  # no dependant of a failed node ever starts


class ThreadExecutor:
    """Runs nodes on threads and records how many were in flight at once and in what order they ended."""

    def __init__(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(8)
        self.lock, self.running, self.most, self.ended = threading.Lock(), 0, 0, []

    def submit(self, fn, *args):
        def call():
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
            time.sleep(0.05)
            with self.lock:
                self.running -= 1
                self.ended.append(args[0].id)
            return fn(*args)
        return self.pool.submit(call)

    def shutdown(self):
        self.pool.shutdown()


def test_the_scheduler_keeps_at_most_limit_nodes_in_flight_and_starts_a_node_after_its_dependencies():
    nodes = {f"n{i}": Node(f"n{i}", RUN, "s", ("root",)) for i in range(6)}
    nodes = {"root": Node("root", PHASE2, "s"), **nodes, "last": Node("last", RUN, "s", ("n0", "n5"))}
    executor = ThreadExecutor()
    outcomes = run_graph(nodes, set(nodes), executor, 2, "home", fn=fake_node)
    executor.shutdown()
    assert all(outcome.status == COMPLETED for outcome in outcomes.values()) and len(outcomes) == 8
    assert executor.most == 2
    assert executor.ended[0] == "root" and executor.ended[-1] == "last"


def study_in(tmp_path, document: dict, home: Path):
    return load_study(write_study(tmp_path, document), home)


def test_done_running_failed_and_pending_come_from_the_store(tmp_path):
    home = tmp_path / "home"
    study = study_in(tmp_path, {"name": "d", "base": base(), "axes": {
        "mix": {"key": "intermediate.tasks", "values": {"nli": ["mnli"], "qa": ["squad"]}},
        "seed": {"key": "seed", "values": [0, 1]},
    }}, home)
    phase2 = [node for node in study.nodes.values() if node.kind == PHASE2]
    runs = [node for node in study.nodes.values() if node.kind == RUN]
    assert [len(phase2), len(runs)] == [4, 4]
    nli, qa = phase2[0], phase2[2]  # seed 0 of each mixture
    nli_run, qa_run, other_run = runs[0], runs[2], runs[1]
    assert nli_run.deps == (nli.id,) and qa_run.deps == (qa.id,)
    store = ResultsStore(home)
    assert {status.status for status in node_statuses(study, store).values()} == {"pending"}
    store.start_run("r1", "x", {}, study="d", node=nli.id)
    store.complete_run("r1", [], [])
    store.start_run("r2", "x", {}, study="d", node=qa.id)
    store.finish_run("r2", FAILED, message="data/squad/train.json: file not found")
    store.start_run("r3", "x", {}, study="d", node=nli_run.id)  # this (live) process runs it
    store.start_run("r4", "x", {}, study="d", node=other_run.id)
    store.finish_run("r4", FAILED, message="first try failed")
    store.start_run("r5", "x", {}, study="d", node=other_run.id)  # the latest run of a node decides
    store.complete_run("r5", [], [])
    statuses = node_statuses(study, store)
    assert (statuses[nli.id].status, statuses[nli.id].run) == ("done", "r1")
    assert (statuses[qa.id].status, statuses[qa.id].message) == (FAILED, "data/squad/train.json: file not found")
    assert (statuses[qa_run.id].status, statuses[qa_run.id].message) == (
        FAILED, f"dependency {qa.id} failed: data/squad/train.json: file not found")
    assert statuses[nli_run.id].status == "running"
    assert statuses[other_run.id].status == "done"
    assert statuses[runs[3].id].status == "pending"


def test_a_phase_2_node_is_done_when_its_checkpoint_is_in_the_cache(tmp_path, nli_fixture, tiny_model):
    home = tmp_path / "home"
    document = {"name": "c", "base": base(model=str(tiny_model), task_specs=[str(nli_fixture["spec"])],
                                          data={"mnli": str(nli_fixture["mnli"]), "toy-xnli": str(nli_fixture["xnli"])},
                                          target={"task": "toy-xnli", "train": TRAIN}),
                "axes": {"seed": {"key": "seed", "values": [0, 1]}}}
    study = study_in(tmp_path, document, home)
    store = ResultsStore(home)
    seed0, seed1 = (node for node in study.nodes.values() if node.kind == PHASE2)
    assert node_statuses(study, store)[seed0.id].status == "pending"
    # The key run_intermediate_phase computes for seed 0's config (e.g. an earlier `xstilts run` trained it).
    config = study.points[0].config
    ctx = RunContext("earlier", config, load_registry(config.task_specs), store, tmp_path, None, None)
    key = intermediate_key(config.intermediate, [resolved_spec("mnli", ctx)], ctx)
    (tmp_path / "ckpt").mkdir()
    store.record_checkpoint(key, tmp_path / "ckpt", "earlier")
    statuses = node_statuses(study, store)
    assert statuses[seed0.id].status == "done" and statuses[seed1.id].status == "pending"


def test_the_plan_estimates_training_steps_from_local_data_and_marks_hub_data_unknown(tmp_path, nli_fixture):
    document = {"name": "e", "base": base(task_specs=[str(nli_fixture["spec"])],
                                          data={"mnli": str(nli_fixture["mnli"]), "toy-xnli": str(nli_fixture["xnli"])},
                                          target={"task": "toy-xnli", "train": TRAIN}),
                "axes": {"arm": {"values": {
                    "full": {"intermediate.tasks": ["mnli"]},
                    "small": {"intermediate.max_examples": {"mnli": 100}},
                    "capped": {"intermediate.train.max_steps": 5},
                    "hub": {"intermediate.tasks": ["qqp"]},
                }}}}
    study = study_in(tmp_path, document, tmp_path / "home")
    steps = {node.id: node_steps(node) for node in study.nodes.values()}
    phase2 = [steps[node.id] for node in study.nodes.values() if node.kind == PHASE2]
    runs = [steps[node.id] for node in study.nodes.values() if node.kind == RUN]
    # 600 training examples, batch 32: 19 steps an epoch, 2 epochs; 100 examples: 4 an epoch.
    assert phase2 == [38, 8, 5, None] and runs == [38, 38, 38, 38]
    statuses = node_statuses(study, ResultsStore(tmp_path / "home"))
    assert plan_summary(study, statuses, steps) == "8 nodes, 8 to run, ~203 training steps (+ 1 nodes of unknown size: their data is on the hub or not on disk yet)"


def test_the_shipped_seeds_study_prepares_the_miniature_once_with_the_quickstarts_settings(tmp_path):
    study = load_study(STUDIES / "quickstart-seeds.yaml", tmp_path)
    assert kinds(study) == {PREPARE: 1, PHASE2: 15, RUN: 100}  # 3 intermediate arms x 5 seeds
    [prepare] = [node.id for node in study.nodes.values() if node.kind == PREPARE]
    assert all(prepare in node.deps for node in study.nodes.values() if node.kind != PREPARE)
    shipped = QuickstartConfig.model_validate(read_yaml(QUICKSTART_CONFIG, "quickstart"))
    assert study.quickstart == shipped
    arms = {}
    for point in study.points:
        arms.setdefault(point.labels["arm"], set()).add((point.config.model, tuple(point.config.intermediate.tasks) if point.config.intermediate else ()))
        assert point.config.target.train == shipped.target_train and point.config.target.eval_splits == shipped.eval_splits
        assert point.config.intermediate is None or point.config.intermediate.train == shipped.intermediate_train
        assert point.config.data["synth-topic"].parent.parent == tmp_path.resolve() / "quickstart"
    expected = {name: {("quickstart:pretrained", tuple(tasks))} for name, tasks in shipped.arms.items()}
    assert arms == {"control": {("quickstart:initial", ())}, **expected}
    assert {point.config.seed for point in study.points} == {0, 1, 2, 3, 4}
    assert {point.config.target.task for point in study.points} == set(shipped.targets)


def test_workers_get_a_gpu_each_or_an_equal_share_of_the_cores():
    assert worker_environments(3, ["4", "7"], cores=16) == [
        {"CUDA_VISIBLE_DEVICES": "4"}, {"CUDA_VISIBLE_DEVICES": "7"}, {"CUDA_VISIBLE_DEVICES": "4"}]
    assert worker_environments(2, [], cores=5) == [{"XSTILTS_TORCH_THREADS": "2", "OMP_NUM_THREADS": "2"}] * 2
    assert worker_environments(4, [], cores=2)[0]["XSTILTS_TORCH_THREADS"] == "1"


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_study_expands_and_every_grid_point_validates(tmp_path, path):
    study = load_study(path, tmp_path)
    assert len(study.points) >= 2 and kinds(study)[RUN] == len(study.points)
    assert all(point.name.startswith(f"{study.name}-") for point in study.points)


def test_relative_paths_are_read_from_the_working_directory_and_kept_absolute(tmp_path, monkeypatch):
    (tmp_path / "models" / "mine").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    path = write_study(tmp_path, {"name": "p", "base": base(model="models/mine", data={"mnli": "data/mnli"}),
                                  "axes": {"seed": {"key": "seed", "values": [0]}}})
    [point] = load_study(path, "home").points
    assert point.config.model == str(tmp_path / "models" / "mine")
    assert point.config.data == {"mnli": tmp_path / "data" / "mnli"}
    # A hub id stays a hub id.
    path = write_study(tmp_path, {"name": "h", "base": base(), "axes": {"seed": {"key": "seed", "values": [0]}}})
    assert load_study(path, "home").points[0].config.model == "hub-model"


def test_the_report_section_names_only_axes_and_arms_of_the_study(tmp_path):
    base = {"name": "r", "model": "m", "target": {"task": "xnli"}}
    axes = {"arm": {"key": "intermediate.tasks", "values": {"none": [], "nli": ["mnli"]}}}
    for report, message in (
        ({"baseline": "nonee"}, "report.baseline: 'nonee' is not a label of axis 'arm' (did you mean 'none'?)"),
        ({"seed_axis": "seeds"}, "report.seed_axis: no axis 'seeds'"),
        ({"arm_axis": "arms", "baseline": "none"}, "report.arm_axis: no axis 'arms' (did you mean 'arm'?)"),
    ):
        path = tmp_path / "study.yaml"
        path.write_text(yaml.safe_dump({"name": "r", "base": base, "axes": axes, "report": report}), encoding="utf-8")
        with pytest.raises(UserError) as caught:
            load_study(path, tmp_path / "store")
        assert str(caught.value) == f"{path}: {message}"
