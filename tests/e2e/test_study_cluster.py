"""`xstilts study run` through Ray (a local Ray, 2 workers) and Slurm (submitit's local executor),
end to end on the tiny NLI fixture: every node completes, in processes other than this one, and
the rows equal those of the local sequential executor exactly."""

import os
import sys
from pathlib import Path

import pytest
import torch
import yaml

from fixtures_nli import write_fixture
from xstilts.cli import main
from xstilts.experiments import scheduler
from xstilts.experiments.executors import build_executor
from xstilts.experiments.store import COMPLETED, ResultsStore
from xstilts.experiments.study import PHASE2, load_study

pytestmark = pytest.mark.slow

TRAIN = {"epochs": 2, "learning_rate": 1e-3, "batch_size": 32, "max_length": 48}


@pytest.fixture(scope="module")
def study_spec(tmp_path_factory, tiny_model) -> Path:
    """Arms none and nli on toy-xnli: a phase-2 node and the two run nodes, one depending on it."""
    folder = tmp_path_factory.mktemp("cluster-study")
    fixture = write_fixture(folder / "data", n_train=240, n_eval=30)
    document = {
        "name": "cluster",
        "base": {
            "model": str(tiny_model), "task_specs": [str(fixture["spec"])],
            "data": {"mnli": str(fixture["mnli"]), "toy-xnli": str(fixture["xnli"])},
            "intermediate": {"tasks": ["mnli"], "train": TRAIN},
            "target": {"task": "toy-xnli", "train": TRAIN, "eval_splits": ["dev", "test"]},
        },
        "axes": {"arm": {"values": {"none": {"intermediate": None}, "nli": {"intermediate.tasks": ["mnli"]}}}},
        "executor": {"slurm": {"local": True, "gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 2}},
    }
    path = folder / "cluster.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def run_study(monkeypatch, capsys, spec: Path, home: Path, *options: str) -> ResultsStore:
    """`xstilts study run SPEC --store HOME OPTIONS` in this process; it must succeed."""
    monkeypatch.setattr(sys, "argv", ["xstilts", "study", "run", str(spec), "--store", str(home), *options])
    try:
        main()
    except SystemExit as exit_:
        assert exit_.code in (0, None), capsys.readouterr().err
    capsys.readouterr()
    return ResultsStore(home)


def rows_by_name(store: ResultsStore) -> dict[tuple, float]:
    """Rows keyed by the run's name (its grid point), not its id (which has a time stamp)."""
    names = {run["run"]: run["name"] for run in store.runs(study="cluster")}
    return {(names[r.run], r.phase, r.task, r.language, r.split, r.metric): r.value for r in store.results(study="cluster")}


def test_ray_and_slurm_give_the_rows_of_the_local_sequential_executor(monkeypatch, capsys, tmp_path, study_spec):
    # One torch thread everywhere: Ray and submitit's workers get it from the environment, this
    # process from set_num_threads; numbers are exactly equal only within one thread setting.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    built = []  # the executor each run used, as `--executor` chose it

    def recording_build(cfg, home):
        built.append(type(executor := build_executor(cfg, home)).__name__)
        return executor

    monkeypatch.setattr(scheduler, "build_executor", recording_build)
    nodes = list(load_study(study_spec, tmp_path / "local").nodes.values())
    assert len(nodes) == 3 and sum(node.kind == PHASE2 for node in nodes) == 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = rows_by_name(run_study(monkeypatch, capsys, study_spec, tmp_path / "local", "--executor", "local", "--workers", "1"))
    finally:
        torch.set_num_threads(threads)
    assert len(local) == 2 * 3 * 2 + 1  # 2 arms x 3 languages x 2 splits, and phase 2's dev row

    for executor, workers in (("ray", "2"), ("slurm", "2")):
        store = run_study(monkeypatch, capsys, study_spec, tmp_path / executor, "--executor", executor, "--workers", workers)
        states = store.node_states([node.id for node in nodes])
        assert [states[node.id].status for node in nodes] == [COMPLETED] * 3, (executor, states)
        assert all(run["pid"] != os.getpid() for run in store.runs(study="cluster")), executor  # ran elsewhere
        assert rows_by_name(store) == local, executor
    assert built == ["SequentialExecutor", "RayExecutor", "SlurmExecutor"]
    assert len(list((tmp_path / "slurm" / "slurm").glob("*_0_result.pkl"))) == 3  # submitit's files in HOME/slurm/
