import importlib.metadata
import os
import platform
import re
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from unittest.mock import ANY

import pytest

from xstilts.errors import UserError
from xstilts.experiments.store import (
    COMPLETED, FAILED, INTERRUPTED, PARTIAL, RUNNING, SCHEMA_VERSION, ErrorRow, NodeState, ResultsStore, process_start,
    store_home,
)
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


# The schema before versioning, verbatim; stores made by it (with or without the later
# checkpoint_uses.phase column) must open, migrate in place and keep every row readable.
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    run TEXT NOT NULL REFERENCES runs(run),
    phase TEXT NOT NULL,
    task TEXT NOT NULL,
    language TEXT NOT NULL,
    split TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run, phase, task, language, split, metric)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    key TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoint_uses (
    run TEXT NOT NULL,
    key TEXT NOT NULL,
    reused INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS errors (
    run TEXT NOT NULL REFERENCES runs(run),
    phase TEXT NOT NULL,
    task TEXT NOT NULL,
    language TEXT NOT NULL,
    split TEXT NOT NULL,
    message TEXT NOT NULL
);
"""
OLD_PHASE_COLUMN = "ALTER TABLE checkpoint_uses ADD COLUMN phase TEXT NOT NULL DEFAULT 'intermediate'"


@pytest.mark.parametrize("with_phase", [False, True], ids=["first-release", "with-phase-column"])
def test_an_old_store_is_migrated_in_place_and_keeps_its_rows(tmp_path, with_phase):
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        db.executescript(OLD_SCHEMA + (OLD_PHASE_COLUMN + ";" if with_phase else ""))
        db.execute("INSERT INTO runs VALUES ('old', 'exp', '2026-01-02T03:04:05+00:00', 'partial', '{\"seed\": 1}')")
        db.execute("INSERT INTO results VALUES ('old', 'target', 'xnli', 'de', 'test', 'accuracy', 71.5)")
        db.execute("INSERT INTO errors VALUES ('old', 'target', 'xnli', 'fr', 'test', 'bad file')")
        db.execute("INSERT INTO checkpoints VALUES ('k', ?, 'old', '2026-01-02T03:04:05+00:00')", (str(tmp_path),))
        db.execute("INSERT INTO checkpoint_uses (run, key, reused) VALUES ('old', 'k', 0)")
    store = ResultsStore(tmp_path)
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (1,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    [old] = store.runs()
    assert old == {"run": "old", "name": "exp", "created": "2026-01-02T03:04:05+00:00",
                   "started": "2026-01-02T03:04:05+00:00", "finished": None, "status": "partial", "study": None,
                   "node": None, "axes": None, "message": None, "host": None, "pid": None, "versions": None}
    assert store.results() == [ResultRow("old", "target", "xnli", "de", "test", "accuracy", 71.5)]
    assert store.errors("old") == [ErrorRow("old", "target", "xnli", "fr", "test", "bad file")]
    assert store.find_checkpoint("k") == tmp_path and store.checkpoint_uses("old") == [("k", False)]
    store.start_run("new", "exp", {}, study="s", node="run/0", axes={"arm": "nli"})
    store.complete_run("new", [ResultRow("new", "target", "xnli", "de", "test", "accuracy", 80.0)], [])
    assert [run["status"] for run in ResultsStore(tmp_path).runs()] == ["partial", "completed"]
    assert [row.value for row in store.results(study="s")] == [80.0]


def test_a_store_from_a_newer_xstilts_is_refused_with_one_line(tmp_path):
    ResultsStore(tmp_path)
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        db.execute("PRAGMA user_version = 7")
    message = f"{tmp_path / 'results.sqlite'}: results store schema version 7 is newer than this xstilts knows (1)"
    with pytest.raises(UserError, match=re.escape(message)):
        ResultsStore(tmp_path)
    with pytest.raises(UserError, match=re.escape(message)):
        ResultsStore(tmp_path, read_only=True).runs()


def test_wal_mode_and_a_busy_timeout_on_every_connection(tmp_path):
    store = ResultsStore(tmp_path)
    with store._connect() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 60_000


def test_a_store_shared_by_several_machines_uses_the_rollback_journal(tmp_path, monkeypatch):
    ResultsStore(tmp_path).add_results([ResultRow("r", "target", "xnli", "de", "test", "accuracy", 50.0)])
    monkeypatch.setenv("XSTILTS_STORE_JOURNAL", "delete")  # what the Slurm and Ray-cluster executors set
    store = ResultsStore(tmp_path)
    with store._connect() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not (tmp_path / "results.sqlite-wal").exists()
    assert [row.value for row in store.results()] == [50.0]
    monkeypatch.setenv("XSTILTS_STORE_JOURNAL", "nfs")
    with pytest.raises(UserError, match=r"^\$XSTILTS_STORE_JOURNAL='nfs': use 'wal' .* or 'delete' "):
        ResultsStore(tmp_path)


def test_a_run_records_its_process_versions_and_grid_point(tmp_path):
    store = ResultsStore(tmp_path)
    store.start_run("r1", "exp", {"seed": 0}, study="grid", node="run/arm=nli", axes={"arm": "nli", "seed": 0})
    [run] = store.runs()
    assert run["status"] == RUNNING and run["started"] == run["created"] and run["finished"] is None
    assert (run["study"], run["node"], run["axes"]) == ("grid", "run/arm=nli", {"arm": "nli", "seed": "0"})
    assert (run["host"], run["pid"]) == (socket.gethostname(), os.getpid())  # this process: alive, still running
    assert run["versions"] == {"xstilts": importlib.metadata.version("xstilts"), "torch": importlib.metadata.version("torch"),
                               "transformers": importlib.metadata.version("transformers"), "python": platform.python_version()}
    store.finish_run("r1", FAILED, "CUDA out of memory.\nTried to allocate 2 GiB")
    [run] = store.runs()
    assert run["status"] == FAILED and run["message"] == "CUDA out of memory. Tried to allocate 2 GiB" and run["finished"]
    with pytest.raises(ValueError, match="unknown run status 'done'"):
        store.finish_run("r1", "done")


def test_a_run_whose_process_died_reads_and_is_stored_interrupted(tmp_path):
    code = "import os, sys; from xstilts.experiments.store import ResultsStore; " \
           "ResultsStore(sys.argv[1]).start_run('killed', 'exp', {}, node='n'); os._exit(9)"
    child = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    assert child.returncode == 9
    store = ResultsStore(tmp_path)
    message = f"process {pid_of(store, 'killed')} on {socket.gethostname()} ended without finishing (killed?)"
    assert ResultsStore(tmp_path, read_only=True).status("killed") == INTERRUPTED
    assert raw_status(store, "killed") == (RUNNING, None)  # a read-only store only reads
    assert store.node_states(["n", "other"]) == {"n": NodeState(INTERRUPTED, message, "killed", ANY, None)}
    assert raw_status(store, "killed") == (INTERRUPTED, message)
    assert store.runs()[0]["status"] == INTERRUPTED and store.status("killed") == INTERRUPTED


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times come from /proc")
def test_a_reused_pid_or_a_zombie_does_not_keep_a_dead_run_running(tmp_path):
    store = ResultsStore(tmp_path)
    for run in ("reused", "mine", "elsewhere"):
        store.start_run(run, "exp", {})
    with sqlite3.connect(store.path) as db:  # our pid, recorded by an earlier process that held it
        db.execute("UPDATE runs SET pid_start = pid_start - 1 WHERE run = 'reused'")
        db.execute("UPDATE runs SET host = 'gpu-node-7', pid = 1 WHERE run = 'elsewhere'")  # cannot be checked here
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while process_start(zombie.pid)[0] != "Z" and time.monotonic() < deadline:  # exited, not yet reaped
        time.sleep(0.05)
    store.start_run("zombie", "exp", {})
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE runs SET pid = ?, pid_start = ? WHERE run = 'zombie'", (zombie.pid, process_start(zombie.pid)[1]))
    statuses = {run["run"]: run["status"] for run in store.runs()}
    zombie.wait()
    assert statuses == {"reused": INTERRUPTED, "mine": RUNNING, "elsewhere": RUNNING, "zombie": INTERRUPTED}


def test_node_states_are_those_of_each_nodes_latest_run(tmp_path):
    store = ResultsStore(tmp_path)
    store.start_run("a1", "exp", {}, node="a")
    store.finish_run("a1", FAILED, "boom")
    store.start_run("a2", "exp", {}, node="a")
    store.start_run("b1", "exp", {}, node="b")
    store.complete_run("b1", [], [ErrorRow("b1", "target", "x", "de", "test", "bad")])
    states = store.node_states(iter(["a", "b", "c"]))
    assert set(states) == {"a", "b"}
    assert (states["a"].status, states["a"].run, states["a"].message, states["a"].finished) == (RUNNING, "a2", None, None)
    assert (states["b"].status, states["b"].run, states["b"].message) == (PARTIAL, "b1", None) and states["b"].finished
    assert store.node_states([]) == {}


def test_a_read_only_store_writes_nothing_and_creates_no_file(tmp_path):
    reader = ResultsStore(tmp_path / "none", read_only=True)
    reader.start_run("r1", "exp", {})
    assert reader.complete_run("r1", [ResultRow("r1", "target", "x", "de", "test", "m", 1.0)], []) == COMPLETED
    reader.finish_run("r1", FAILED, "x")
    reader.record_checkpoint("k", tmp_path, "r1")
    reader.record_checkpoint_use("r1", "k", reused=False)
    reader.add_results([ResultRow("r1", "target", "x", "de", "test", "m", 1.0)])
    assert not (tmp_path / "none").exists()
    assert (reader.runs(), reader.results(), reader.errors(), reader.status("r1"), reader.find_checkpoint("k")) == ([], [], [], None, None)
    assert reader.node_states(["n"]) == {}

    writer = ResultsStore(tmp_path / "store")
    writer.start_run("r1", "exp", {})
    writer.complete_run("r1", [ResultRow("r1", "target", "x", "de", "test", "m", 1.0)], [])
    before = sorted(path.name for path in (tmp_path / "store").iterdir())
    reader = ResultsStore(tmp_path / "store", read_only=True)
    reader.start_run("r2", "exp", {})
    reader.complete_run("r1", [ResultRow("r1", "target", "x", "fr", "test", "m", 2.0)], [])
    reader.finish_run("r1", FAILED)
    assert [run["run"] for run in reader.runs()] == ["r1"] and reader.status("r1") == COMPLETED
    assert [row.value for row in writer.results()] == [1.0]
    assert sorted(path.name for path in (tmp_path / "store").iterdir()) == before


def test_results_and_errors_filter_by_study_axes_task_language_and_split(tmp_path):
    store = ResultsStore(tmp_path)
    for run, study, axes in (("r1", "s", {"arm": "nli", "seed": "0"}), ("r2", "s", {"arm": "qa", "seed": "0"}),
                             ("r3", "t", {"arm": "nli"}), ("r4", None, None)):
        store.start_run(run, "exp", {}, study=study, axes=axes)
        rows = [ResultRow(run, "target", task, language, split, "accuracy", float(index))
                for index, (task, language, split) in enumerate([("x", "de", "test"), ("x", "fr", "dev"), ("y", "de", "test")])]
        store.complete_run(run, rows, [ErrorRow(run, "target", "x", "sw", "test", "bad")])
    assert {row.run for row in store.results(study="s")} == {"r1", "r2"}
    assert {row.run for row in store.results(axes={"arm": "nli"})} == {"r1", "r3"}
    assert {row.run for row in store.results(study="s", axes={"arm": "nli", "seed": "0"})} == {"r1"}
    assert store.results(axes={"arm": "nli", "seed": "1"}) == []
    assert store.results("r2", task="x", language="de", split="test") == [ResultRow("r2", "target", "x", "de", "test", "accuracy", 0.0)]
    assert [(row.run, row.language) for row in store.results(language="fr", study="t")] == [("r3", "fr")]
    assert [error.run for error in store.errors(study="s")] == ["r1", "r2"]
    assert [error.run for error in store.errors("r4")] == ["r4"] and store.errors(language="de") == []
    assert [run["run"] for run in store.runs(study="s")] == ["r1", "r2"]


def pid_of(store: ResultsStore, run: str) -> int:
    with sqlite3.connect(store.path) as db:
        return db.execute("SELECT pid FROM runs WHERE run = ?", (run,)).fetchone()[0]


def raw_status(store: ResultsStore, run: str) -> tuple:
    with sqlite3.connect(store.path) as db:
        return db.execute("SELECT status, message FROM runs WHERE run = ?", (run,)).fetchone()
