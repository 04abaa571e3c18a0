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
