import sqlite3
from pathlib import Path

import pytest

from xstilts.errors import UserError
from xstilts.experiments.store import ErrorRow, ResultsStore, store_home
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


def test_a_checkpoint_is_found_from_another_working_directory(tmp_path, monkeypatch):
    (tmp_path / "project" / "store" / "checkpoints" / "phase2-k").mkdir(parents=True)
    (tmp_path / "project" / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    ResultsStore("store").record_checkpoint("k", Path("store/checkpoints/phase2-k"), "r1")
    monkeypatch.chdir(tmp_path / "project" / "sub")
    assert ResultsStore("../store").find_checkpoint("k") == tmp_path / "project" / "store" / "checkpoints" / "phase2-k"


def test_a_run_with_errors_is_partial_and_keeps_its_other_rows(tmp_path):
    store = ResultsStore(tmp_path)
    store.start_run("r1", "exp", {})
    rows = [ResultRow("r1", "target", "xnli", "de", "test", "accuracy", 80.0)]
    error = ErrorRow("r1", "target", "xnli", "fr", "test", "test-fr.tsv:91: expected 3 fields", "Traceback ...")
    assert store.complete_run("r1", rows, [error]) == "partial"
    assert store.results("r1") == rows and store.status("r1") == "partial"
    assert store.errors("r1") == [ErrorRow("r1", "target", "xnli", "fr", "test", "test-fr.tsv:91: expected 3 fields")]
    store.start_run("r2", "exp", {})
    assert store.complete_run("r2", rows[:0], []) == "completed" and store.errors("r2") == []
    with pytest.raises(UserError, match="no completed run 'r1'"):
        store.run_dir("r1")  # a partial run is not exported as a submission


def test_checkpoint_uses_per_phase_and_a_store_from_before_the_phase_column(tmp_path):
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        db.execute("CREATE TABLE checkpoint_uses (run TEXT NOT NULL, key TEXT NOT NULL, reused INTEGER NOT NULL)")
        db.execute("INSERT INTO checkpoint_uses VALUES ('old', 'k0', 1)")
    store = ResultsStore(tmp_path)
    store.record_checkpoint_use("r1", "k1", reused=False)
    store.record_checkpoint_use("r1", "t1", reused=True, phase="target")
    assert store.checkpoint_uses("old") == [("k0", True)]
    assert store.checkpoint_uses("r1") == [("k1", False)] and store.checkpoint_uses("r1", "target") == [("t1", True)]
