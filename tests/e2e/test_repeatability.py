"""The same command gives the same numbers: on two cold stores, on a warm store (phase 2 from the
cache, the target trained again), and with every checkpoint from the cache, run from another
working directory."""

import shutil

import pytest
import yaml

from clitools import cli
from xstilts.experiments.store import ResultsStore

pytestmark = pytest.mark.slow


@pytest.fixture
def config(tmp_path, nli_fixture, tiny_model):
    # Short training (1.5 epochs): scores still move with the head's initialisation and dropout, so a target
    # trained from other random state gives other rows.
    train = {"epochs": 1.5, "learning_rate": 1e-3, "batch_size": 32, "max_length": 64}
    document = {
        "name": "repeat",
        "model": str(tiny_model),
        "task_specs": [str(nli_fixture["spec"])],
        "data": {"mnli": str(nli_fixture["mnli"]), "toy-xnli": str(nli_fixture["xnli"])},
        "intermediate": {"tasks": ["mnli"], "train": train},
        "target": {"task": "toy-xnli", "train": train, "eval_splits": ["dev", "test"]},
    }
    path = tmp_path / "repeat.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def target_rows(store: ResultsStore, run: str) -> dict[tuple[str, str, str], float]:
    return {(r.language, r.split, r.metric): r.value for r in store.results(run) if r.phase == "target"}


def test_cold_warm_and_cached_runs_give_bit_identical_target_rows(monkeypatch, capsys, tmp_path, config):
    home, other = tmp_path / "a", tmp_path / "b"
    home.mkdir()
    monkeypatch.chdir(home)
    cli(monkeypatch, capsys, "run", config, "--store", "store")  # cold
    cli(monkeypatch, capsys, "run", config, "--store", other / "store")  # another cold store
    # Warm: phase 2 comes from the cache, the target trains again in a process that trained nothing before it.
    for checkpoint in (home / "store" / "checkpoints").glob("target-*"):
        shutil.rmtree(checkpoint)
    cli(monkeypatch, capsys, "run", config, "--store", "store")
    # Every checkpoint from the cache, found from another working directory (the store named relatively).
    elsewhere = home / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cli(monkeypatch, capsys, "run", config, "--store", "../store")

    store, cold_store = ResultsStore(home / "store"), ResultsStore(other / "store")
    cold, warm, cached = (run["run"] for run in store.runs())
    [(phase2, reused_phase2)] = store.checkpoint_uses(cold)
    [(target, reused_target)] = store.checkpoint_uses(cold, "target")
    assert not reused_phase2 and not reused_target
    assert store.checkpoint_uses(warm) == [(phase2, True)] and store.checkpoint_uses(warm, "target") == [(target, False)]
    assert store.checkpoint_uses(cached) == [(phase2, True)] and store.checkpoint_uses(cached, "target") == [(target, True)]
    assert cold_store.checkpoint_uses(cold_store.runs()[0]["run"], "target") == [(target, False)]

    rows = target_rows(store, cold)
    assert set(rows) == {(language, split, "accuracy") for language in ("en", "de", "fr") for split in ("dev", "test")}
    assert target_rows(cold_store, cold_store.runs()[0]["run"]) == rows
    assert target_rows(store, warm) == rows
    assert target_rows(store, cached) == rows
    # The zero-shot languages learned the task (chance is 33.3%).
    assert all(rows[(language, split, "accuracy")] > 50 for language in ("de", "fr") for split in ("dev", "test")), rows
