"""The results store: an embedded SQLite database, one row per run x phase x task x language x split x metric.

A run's rows, its per-language errors and its final status are written in one transaction
when it ends, so an interrupted run leaves no partial results. A language whose evaluation
failed is an error row (with its one-line reason) beside the other languages' results.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from xstilts.errors import UserError, did_you_mean
from xstilts.results import ResultRow

DEFAULT_HOME = "xstilts_runs"
DB_FILE = "results.sqlite"

SCHEMA = """
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
# Added after the first release: stores created before it get the column on open.
CHECKPOINT_USE_PHASE = "ALTER TABLE checkpoint_uses ADD COLUMN phase TEXT NOT NULL DEFAULT 'intermediate'"

COMPLETED, PARTIAL, FAILED = "completed", "partial", "failed"


@dataclass(frozen=True)
class ErrorRow:
    """One evaluation that failed: the (split, language) it was for and a one-line reason.

    `detail` (the traceback) goes to the run directory's errors.json, not to the store.
    """

    run: str
    phase: str
    task: str
    language: str
    split: str
    message: str
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def store_home(explicit: Path | str | None = None) -> Path:
    """`--store PATH`, else $XSTILTS_HOME, else ./xstilts_runs in the working directory."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XSTILTS_HOME") or DEFAULT_HOME)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ResultsStore:
    """Runs, their result rows and the phase-2 checkpoints they built or reused."""

    def __init__(self, home: Path | str):
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.path = self.home / DB_FILE
        with self._connect() as db:
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(checkpoint_uses)")}
            if "phase" not in columns:
                db.execute(CHECKPOINT_USE_PHASE)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success, rolls back on error, and is always closed."""
        db = sqlite3.connect(self.path, timeout=60)
        try:
            with db:
                yield db
        finally:
            db.close()

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def checkpoints_dir(self) -> Path:
        return self.home / "checkpoints"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def run_dir(self, run: str) -> Path:
        """The folder of a completed run; unknown ids get a near-match suggestion."""
        known = [entry["run"] for entry in self.runs() if entry["status"] == COMPLETED]
        if run not in known:
            raise UserError(f"no completed run {run!r} in {self.path}{did_you_mean(run, known)}")
        return self.runs_dir / run

    def start_run(self, run: str, name: str, config: dict) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO runs (run, name, created, status, config) VALUES (?, ?, ?, ?, ?)",
                (run, name, now(), "running", json.dumps(config, sort_keys=True)),
            )

    def finish_run(self, run: str, status: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE runs SET status = ? WHERE run = ?", (status, run))

    def add_results(self, rows: Iterable[ResultRow]) -> None:
        """All rows in one transaction: either every row of a phase lands or none does."""
        with self._connect() as db:
            self._insert_results(db, rows)

    @staticmethod
    def _insert_results(db: sqlite3.Connection, rows: Iterable[ResultRow]) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(r.run, r.phase, r.task, r.language, r.split, r.metric, float(r.value)) for r in rows],
        )

    def complete_run(self, run: str, rows: Iterable[ResultRow], errors: Iterable[ErrorRow]) -> str:
        """Store a run's rows and errors and set its status (partial when any evaluation
        failed, else completed) in one transaction; return the status."""
        errors = list(errors)
        status = PARTIAL if errors else COMPLETED
        with self._connect() as db:
            self._insert_results(db, rows)
            db.executemany(
                "INSERT INTO errors VALUES (?, ?, ?, ?, ?, ?)",
                [(e.run, e.phase, e.task, e.language, e.split, e.message) for e in errors],
            )
            db.execute("UPDATE runs SET status = ? WHERE run = ?", (status, run))
        return status

    def errors(self, run: str | None = None) -> list[ErrorRow]:
        """The failed evaluations, of one run or of all."""
        query = "SELECT run, phase, task, language, split, message FROM errors"
        params: tuple = ()
        if run:
            query += " WHERE run = ?"
            params = (run,)
        query += " ORDER BY rowid"
        with self._connect() as db:
            return [ErrorRow(*row) for row in db.execute(query, params)]

    def status(self, run: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT status FROM runs WHERE run = ?", (run,)).fetchone()
        return row[0] if row else None

    def results(self, run: str | None = None) -> list[ResultRow]:
        query = "SELECT run, phase, task, language, split, metric, value FROM results"
        params: tuple = ()
        if run:
            query += " WHERE run = ?"
            params = (run,)
        query += " ORDER BY run, phase, task, split, metric, language"
        with self._connect() as db:
            return [ResultRow(*row) for row in db.execute(query, params)]

    def runs(self) -> list[dict]:
        with self._connect() as db:
            rows = db.execute("SELECT run, name, created, status FROM runs ORDER BY created, rowid").fetchall()
        return [dict(zip(("run", "name", "created", "status"), row)) for row in rows]

    def find_checkpoint(self, key: str) -> Path | None:
        with self._connect() as db:
            row = db.execute("SELECT path FROM checkpoints WHERE key = ?", (key,)).fetchone()
        return Path(row[0]) if row and Path(row[0]).exists() else None

    def record_checkpoint(self, key: str, path: Path, run: str) -> None:
        """Register a content-keyed checkpoint under its absolute path, so that runs started
        from any working directory find it."""
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?)", (key, str(Path(path).resolve()), run, now())
            )

    def record_checkpoint_use(self, run: str, key: str, reused: bool, phase: str = "intermediate") -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO checkpoint_uses (run, key, reused, phase) VALUES (?, ?, ?, ?)", (run, key, int(reused), phase)
            )

    def checkpoint_uses(self, run: str, phase: str = "intermediate") -> list[tuple[str, bool]]:
        """(key, reused) of the checkpoints of `phase` (intermediate or target) a run used."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT key, reused FROM checkpoint_uses WHERE run = ? AND phase = ? ORDER BY rowid", (run, phase)
            ).fetchall()
        return [(key, bool(reused)) for key, reused in rows]
