"""`xstilts study run` on the local executor, end to end on the tiny NLI fixture: 2 worker
processes give exactly the rows of 1 in-process worker, phase 2 trains once per distinct config,
a node that fails fails only its dependants, and a rerun after a failure or a SIGKILL runs only
what is missing."""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from clitools import run as study_cli
from fixtures_nli import write_fixture
from xstilts.experiments.executors import available_cores, worker_environments
from xstilts.experiments.store import COMPLETED, INTERRUPTED, ResultsStore
from xstilts.experiments.study import PHASE2, RUN, load_study

pytestmark = pytest.mark.slow

TRAIN = {"epochs": 4, "learning_rate": 1e-3, "batch_size": 32, "max_length": 48}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict:
    """A smaller copy of the NLI fixture (the session's tiny model knows its words): the nodes
    here train a few steps each, so the tests measure scheduling, not training."""
    return write_fixture(tmp_path_factory.mktemp("small-nli"), n_train=240, n_eval=30)


def write_study(folder: Path, name: str, fixture: dict, model: Path, axes: dict) -> Path:
    document = {
        "name": name,
        "base": {
            "model": str(model), "task_specs": [str(fixture["spec"])],
            "data": {"mnli": str(fixture["mnli"]), "toy-xnli": str(fixture["xnli"]), "toy-para": str(fixture["para"])},
            "intermediate": {"tasks": ["mnli"], "train": TRAIN},
            "target": {"task": "toy-xnli", "train": TRAIN, "eval_splits": ["dev", "test"]},
        },
        "axes": axes,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def target_rows(store: ResultsStore, study: str) -> dict[tuple, float]:
    """Rows keyed by the run's name (its grid point), not its id (which has a time stamp)."""
    names = {run["run"]: run["name"] for run in store.runs(study=study)}
    return {(names[r.run], r.phase, r.task, r.language, r.split, r.metric): r.value for r in store.results(study=study)}


def test_two_workers_match_one_worker_share_phase_2_and_a_failure_stays_with_its_dependants(
    monkeypatch, capsys, tmp_path, small, tiny_model
):
    broken = tmp_path / "broken-mnli"
    broken.mkdir()
    spec = write_study(tmp_path, "grid", small, tiny_model, {
        "arm": {"values": {
            "none": {"intermediate": None},
            "nli": {"intermediate.tasks": ["mnli"]},
            "broken": {"intermediate.tasks": ["mnli"], "data.mnli": str(broken)},  # no files: its phase 2 fails
        }},
        "target": {"values": {
            "xnli": {"target.task": "toy-xnli"},
            "para": {"target.task": "toy-para", "target.eval_splits": ["dev"]},
        }},
    })
    study = load_study(spec, tmp_path / "two")
    phase2 = {node.labels["arm"]: node.id for node in study.nodes.values() if node.kind == PHASE2}
    runs = {tuple(node.labels.values()): node.id for node in study.nodes.values() if node.kind == RUN}
    assert set(phase2) == {"nli", "broken"} and len(runs) == 6

    code, out, err = study_cli(monkeypatch, capsys, "study", "run", spec, "--workers", "2", "--store", tmp_path / "two")
    assert code == 2, err
    store = ResultsStore(tmp_path / "two")
    states = store.node_states(list(study.nodes))
    good = [node for labels, node in runs.items() if labels[0] != "broken"]
    assert all(states[node].status == COMPLETED for node in [*good, phase2["nli"]])
    assert states[phase2["broken"]].status == "failed" and "file not found" in states[phase2["broken"]].message
    assert runs[("broken", "xnli")] not in states and runs[("broken", "para")] not in states  # never started
    failed_lines = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert len(failed_lines) == 3 and sum(f"dependency {phase2['broken']} failed: " in line for line in failed_lines) == 2

    # Phase 2 of the nli arm trained once, by its own node, and both of its targets reused it.
    uses = {run["node"]: store.checkpoint_uses(run["run"]) for run in store.runs(study="grid")}
    [(key, reused)] = uses[phase2["nli"]]
    assert not reused
    assert uses[runs[("nli", "xnli")]] == uses[runs[("nli", "para")]] == [(key, True)]
    assert uses[runs[("none", "xnli")]] == []

    # One worker in this process, with the workers' torch threads: the same rows, exactly.
    threads = torch.get_num_threads()
    torch.set_num_threads(int(worker_environments(2, [], available_cores())[0]["XSTILTS_TORCH_THREADS"]))
    try:
        code, _, err = study_cli(monkeypatch, capsys, "study", "run", spec, "--workers", "1", "--store", tmp_path / "one")
    finally:
        torch.set_num_threads(threads)
    assert code == 2, err
    rows = target_rows(store, "grid")
    assert len(rows) == 2 * 3 * 2 + 2 + 1  # xnli: 2 arms x 3 languages x 2 splits; para: 2 arms x en dev; nli phase-2 dev
    assert target_rows(ResultsStore(tmp_path / "one"), "grid") == rows
    # The fixture is learnable: the trained arms beat chance (33%) on the zero-shot languages.
    assert all(rows[(f"grid-{arm}-xnli", "target", "toy-xnli", language, "test", "accuracy")] > 40
               for arm in ("none", "nli") for language in ("de", "fr")), rows

    # Fixed: the rerun runs only what is missing. The broken arm's phase 2 is now the nli arm's
    # content (same examples, another folder), so its checkpoint is in the cache and only the
    # two missing targets run.
    for file in small["mnli"].iterdir():
        shutil.copy(file, broken / file.name)
    before = len(store.runs(study="grid"))
    code, out, err = study_cli(monkeypatch, capsys, "study", "run", spec, "--workers", "2", "--store", tmp_path / "two")
    assert code == 0, err
    started = store.runs(study="grid")[before:]
    assert sorted(run["node"] for run in started) == sorted([runs[("broken", "xnli")], runs[("broken", "para")]])
    assert all(run["status"] == COMPLETED for run in started)
    rows = target_rows(store, "grid")
    assert rows[("grid-broken-xnli", "target", "toy-xnli", "de", "test", "accuracy")] == rows[("grid-nli-xnli", "target", "toy-xnli", "de", "test", "accuracy")]
    code, out, _ = study_cli(monkeypatch, capsys, "study", "status", spec, "--store", tmp_path / "two")
    assert code == 0 and "8 nodes: 8 done" in out


def test_a_killed_study_run_resumes_without_redoing_completed_nodes(monkeypatch, capsys, tmp_path, small, tiny_model):
    spec = write_study(tmp_path, "killed", small, tiny_model, {
        "arm": {"values": {"none": {"intermediate": None}}},
        "seed": {"key": "seed", "values": [0, 1, 2, 3]},
    })
    study = load_study(spec, tmp_path / "store")
    store = ResultsStore(tmp_path / "store")
    log = (tmp_path / "first.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "xstilts.cli", "study", "run", str(spec), "--workers", "2", "--store", str(tmp_path / "store")],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )
    deadline = time.monotonic() + 600
    while not any(state.status == COMPLETED for state in store.node_states(list(study.nodes)).values()):
        assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    log.close()
    done_before = {node for node, state in store.node_states(list(study.nodes)).items() if state.status == COMPLETED}
    assert 1 <= len(done_before) < len(study.nodes)

    # The workers die with the study process (no orphan keeps training): what was running reads interrupted.
    deadline = time.monotonic() + 60
    while any(run["status"] == "running" for run in store.runs(study="killed")):
        assert time.monotonic() < deadline, store.runs(study="killed")
        time.sleep(0.5)
    runs = store.runs(study="killed")
    assert all(run["status"] in (COMPLETED, INTERRUPTED) for run in runs), runs

    code, _, err = study_cli(monkeypatch, capsys, "study", "run", spec, "--workers", "2", "--store", tmp_path / "store")
    assert code == 0, err
    runs = store.runs(study="killed")
    per_node = Counter(run["node"] for run in runs)
    assert all(per_node[node] == 1 for node in done_before)  # completed nodes were not run again
    assert all(state.status == COMPLETED for state in store.node_states(list(study.nodes)).values())
    assert {run["node"] for run in runs if run["status"] == COMPLETED} == set(study.nodes)
