"""The store under faults: an old schema migrates in one transaction, and a newer, truncated,
foreign, locked or full store file is a one-line error that changes nothing."""

import re
import sqlite3
import sys
from contextlib import closing

import pytest

from xstilts import cli
from xstilts.atomic import WriteFault
from xstilts.errors import UserError
from xstilts.experiments import store as store_module
from xstilts.experiments.store import SCHEMA_VERSION, ResultsStore
from xstilts.results import ResultRow

from .test_store import OLD_SCHEMA


def rows(run, n=4):
    return [ResultRow(run, "target", "xnli", f"l{index}", "test", "accuracy", float(index)) for index in range(n)]


@pytest.fixture
def filled(tmp_path):
    """A store with two completed runs of 4 rows each, closed (its WAL folded into the file)."""
    store = ResultsStore(tmp_path)
    for run in ("r1", "r2"):
        store.start_run(run, "exp", {"pad": "x" * 3000})
        store.complete_run(run, rows(run), [])
    return store


def cli_error(monkeypatch, capsys, *args):
    """Run `xstilts ARGS` in-process; return (exit code, stderr lines)."""
    monkeypatch.setattr(sys, "argv", ["xstilts", *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    return exited.value.code, capsys.readouterr().err.splitlines()


def columns(db, table):
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def test_a_version_0_store_migrates_in_one_transaction(tmp_path, monkeypatch):
    path = tmp_path / "results.sqlite"
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO runs VALUES ('old', 'exp', '2026-01-02T03:04:05+00:00', 'completed', '{}')")
        db.execute("INSERT INTO results VALUES ('old', 'target', 'xnli', 'de', 'test', 'accuracy', 71.5)")
    before = path.read_bytes()
    # A step that fails after the columns were added: the whole migration rolls back.
    indexes = store_module.INDEXES
    monkeypatch.setattr(store_module, "INDEXES", (*indexes, "CREATE INDEX broken ON no_such_table (x)"))
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        ResultsStore(tmp_path)
    with closing(sqlite3.connect(path)) as db, db:
        assert db.execute("PRAGMA user_version").fetchone() == (0,)
        assert columns(db, "runs") == ["run", "name", "created", "status", "config"]
        assert db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'runs_%'").fetchall() == []
        assert db.execute("SELECT * FROM results").fetchall() == [("old", "target", "xnli", "de", "test", "accuracy", 71.5)]
    assert len(before) > 0
    # Not monkeypatch.undo(): that would also undo conftest's removal of XSTILTS_STORE_JOURNAL.
    monkeypatch.setattr(store_module, "INDEXES", indexes)
    store = ResultsStore(tmp_path)
    with closing(sqlite3.connect(path)) as db, db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert {"study", "node", "axes", "started", "versions"} <= set(columns(db, "runs"))
    assert store.results() == [ResultRow("old", "target", "xnli", "de", "test", "accuracy", 71.5)]
    assert store.runs()[0]["started"] == "2026-01-02T03:04:05+00:00"


def test_a_newer_store_is_one_line_through_the_cli(filled, monkeypatch, capsys):
    with sqlite3.connect(filled.path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    code, lines = cli_error(monkeypatch, capsys, "results", "--store", str(filled.home))
    assert code == 2 and lines == [
        f"error: {filled.path}: results store schema version {SCHEMA_VERSION + 1} is newer than this xstilts knows "
        f"({SCHEMA_VERSION}); upgrade xstilts to read it"
    ]


@pytest.mark.parametrize("damage", ["truncated", "not-a-database"])
def test_a_truncated_or_foreign_store_is_one_line_and_left_as_it_is(filled, monkeypatch, capsys, damage):
    data = filled.path.read_bytes()
    assert len(data) >= 8 * 4096 and not filled.path.with_name("results.sqlite-wal").exists()
    damaged = data[: len(data) // 2] if damage == "truncated" else b"run,task,value\nr1,xnli,0.5\n" * 200
    filled.path.write_bytes(damaged)
    message = re.escape(f"{filled.path} is not a valid results store (truncated or corrupt: ")
    for attempt in (
        lambda: ResultsStore(filled.home),  # opening (migration check) for writing
        lambda: ResultsStore(filled.home, read_only=True).results(),  # reading
        lambda: filled.results(),  # reading through a store opened before the damage
        lambda: filled.complete_run("r3", rows("r3"), []),  # writing through it
    ):
        with pytest.raises(UserError, match=message):
            attempt()
    code, lines = cli_error(monkeypatch, capsys, "results", "--store", str(filled.home))
    assert code == 2 and len(lines) == 1 and re.match("error: " + message, lines[0])
    assert lines[0].endswith("restore it from a backup or move it aside to start a new store")
    assert filled.path.read_bytes() == damaged


def test_a_lock_held_past_the_busy_timeout_is_one_line_and_loses_nothing(filled, monkeypatch, capsys):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(filled.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO runs (run, name, created, status, config) VALUES ('other', 'x', 'x', 'running', '{}')")
    locked = re.escape(f"{filled.path} is locked by another process (waited 0.2 s); nothing was changed")
    with pytest.raises(UserError, match=locked):
        filled.start_run("r3", "exp", {})
    with pytest.raises(UserError, match=locked):
        filled.complete_run("r2", rows("r2", 8), [])
    assert len(filled.results()) == 8  # WAL: readers go on while a writer holds the lock
    holder.execute("COMMIT")
    holder.close()
    assert [run["run"] for run in filled.runs()] == ["r1", "r2", "other"]
    assert filled.results() == rows("r1") + rows("r2")
    filled.start_run("r3", "exp", {})  # the lock released, the same write goes through
    assert filled.status("r3") == "running"


def test_a_lock_blocks_readers_of_a_rollback_journal_store(filled, monkeypatch, capsys):
    monkeypatch.setenv("XSTILTS_STORE_JOURNAL", "delete")
    ResultsStore(filled.home)
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(filled.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("DELETE FROM results")  # uncommitted: must never be seen, nor lost
    code, lines = cli_error(monkeypatch, capsys, "results", "--store", str(filled.home))
    assert code == 2 and len(lines) == 1 and "is locked by another process (waited 0.2 s)" in lines[0]
    holder.execute("ROLLBACK")
    holder.close()
    assert filled.results() == rows("r1") + rows("r2")


def test_a_full_disk_under_the_store_is_a_write_fault_and_keeps_every_earlier_row(filled, monkeypatch):
    connect = sqlite3.connect

    def capped(*args, **kwargs):  # SQLite answers SQLITE_FULL past max_page_count, as on a full disk
        db = connect(*args, **kwargs)
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        return db

    monkeypatch.setattr(store_module.sqlite3, "connect", capped)
    filled.start_run("big", "exp", {})
    many = [ResultRow("big", "target", "xnli", f"l{index}", "test", "accuracy", 1.0) for index in range(20_000)]
    with pytest.raises(WriteFault, match=re.escape(f"cannot write {filled.path}: No space left on device; earlier results are intact")):
        filled.complete_run("big", many, [])
    monkeypatch.undo()
    assert filled.results() == rows("r1") + rows("r2") and filled.status("big") == "running"


def failing_sqlite(monkeypatch, name: str, message: str) -> None:
    """Every statement on a store connection fails with SQLite's error `name`."""
    connect = sqlite3.connect

    class FailingConnection:
        def __init__(self, *args, **kwargs):
            self.db = connect(*args, **kwargs)

        def execute(self, *args):
            error = sqlite3.OperationalError(message)
            error.sqlite_errorname = name
            raise error

        def __getattr__(self, attribute):
            return getattr(self.db, attribute)

    monkeypatch.setattr(store_module.sqlite3, "connect", FailingConnection)


@pytest.mark.parametrize("free", [0, 10 << 30], ids=["disk-full", "disk-fine"])
def test_an_io_error_of_the_store_is_one_line(filled, monkeypatch, free):
    """On a disk with no room even for the WAL index SQLite answers a plain I/O error."""
    failing_sqlite(monkeypatch, "SQLITE_IOERR_SHMSIZE", "disk I/O error")
    monkeypatch.setattr(store_module.shutil, "disk_usage", lambda path: type("Usage", (), {"free": free})())
    expected = (WriteFault, f"cannot write {filled.path}: No space left on device") if free == 0 else (
        UserError, f"{filled.path}: disk I/O error (SQLITE_IOERR_SHMSIZE) reading or writing the results store")
    with pytest.raises(expected[0], match=re.escape(expected[1])):
        ResultsStore(filled.home)


@pytest.mark.parametrize("read_only_fs", [True, False], ids=["read-only-fs", "no-permission"])
def test_a_store_that_cannot_be_written_is_a_write_fault(filled, monkeypatch, read_only_fs):
    failing_sqlite(monkeypatch, "SQLITE_READONLY", "attempt to write a readonly database")
    monkeypatch.setattr(store_module, "read_only_file_system", lambda path: read_only_fs)
    reason = "Read-only file system" if read_only_fs else "Permission denied"
    with pytest.raises(WriteFault, match=re.escape(f"cannot write {filled.path}: {reason}; earlier results are intact")):
        ResultsStore(filled.home)
