import sqlite3

import pytest

from xstilts.experiments.store import ResultsStore, store_home
from xstilts.results import ResultRow


def test_rows_round_trip_and_filter(tmp_path):
    store = ResultsStore(tmp_path)
    store.start_run("r1", "exp", {"a": 1})
    store.add_results([ResultRow("r1", "target", "xnli", "de", "test", "accuracy", 0.5)])
    store.start_run("r2", "exp", {})
    store.add_results([ResultRow("r2", "target", "xnli", "fr", "test", "accuracy", 0.25)])
    assert [r.value for r in store.results()] == [0.5, 0.25]
    assert store.results("r2") == [ResultRow("r2", "target", "xnli", "fr", "test", "accuracy", 0.25)]


def test_a_failing_batch_writes_nothing(tmp_path):
    store = ResultsStore(tmp_path)
    store.start_run("r1", "exp", {})
    bad = [ResultRow("r1", "target", "xnli", "de", "test", "accuracy", 0.5), ResultRow("r1", "t", "x", "y", "z", "m", "nan?")]
    with pytest.raises(ValueError):
        store.add_results(bad)
    assert store.results() == []


def test_store_home_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("XSTILTS_HOME", raising=False)
    assert str(store_home()) == "xstilts_runs"
    monkeypatch.setenv("XSTILTS_HOME", str(tmp_path / "env"))
    assert store_home() == tmp_path / "env"
    assert store_home(tmp_path / "flag") == tmp_path / "flag"


def test_checkpoint_registry(tmp_path):
    store = ResultsStore(tmp_path)
    (tmp_path / "ck").mkdir()
    assert store.find_checkpoint("k") is None
    store.record_checkpoint("k", tmp_path / "ck", "r1")
    assert store.find_checkpoint("k") == tmp_path / "ck"
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT created_by FROM checkpoints").fetchone() == ("r1",)


def test_runs_come_in_start_order_within_one_second(tmp_path):
    # Run ids end in a random suffix, and `created` has second resolution: two runs started in
    # the same second must still list in the order they started.
    store = ResultsStore(tmp_path)
    for run in ("exp-20261201-120000-ffff", "exp-20261201-120000-0000", "exp-20261201-120000-8888"):
        store.start_run(run, "exp", {})
    assert [run["run"] for run in store.runs()] == [
        "exp-20261201-120000-ffff", "exp-20261201-120000-0000", "exp-20261201-120000-8888"]
