"""The results store: an embedded SQLite database, one row per run x phase x task x language x split x metric.

A run's rows, its per-language errors and its final status are written in one transaction
when it ends, so an interrupted run leaves no partial results: every stored row is final. A
language whose evaluation failed is an error row (with its one-line reason) beside the other
languages' results. The database runs in WAL mode (or, shared by several machines, with the
rollback journal: `journal_mode`) and every connection waits up to `BUSY_TIMEOUT_S` for a lock,
so the worker processes of a study write to it concurrently.

The file is never rewritten whole: SQLite's journal makes each transaction all-or-nothing, so a
killed or failed writer leaves the store as it was before its transaction. A file that is not a
store (truncated, corrupt, another file), a lock held past the busy timeout and a full disk are
one-line errors naming the file (`store_errors`).
"""

from __future__ import annotations

import errno
import functools
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from xstilts.atomic import WriteFault, fault_errno
from xstilts.errors import UserError, did_you_mean
from xstilts.results import ResultRow

DEFAULT_HOME = "xstilts_runs"
DB_FILE = "results.sqlite"
BUSY_TIMEOUT_S = 60.0
JOURNAL_ENV = "XSTILTS_STORE_JOURNAL"

RUNNING, COMPLETED, PARTIAL, FAILED, INTERRUPTED = "running", "completed", "partial", "failed", "interrupted"
STATUSES = (RUNNING, COMPLETED, PARTIAL, FAILED, INTERRUPTED)

# The first release's tables. Every later column is added by `migrate`, for new and old stores
# alike, so one code path builds both and their columns cannot drift apart.
TABLES = (
    "CREATE TABLE IF NOT EXISTS runs (run TEXT PRIMARY KEY, name TEXT NOT NULL, created TEXT NOT NULL,"
    " status TEXT NOT NULL, config TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS results (run TEXT NOT NULL REFERENCES runs(run), phase TEXT NOT NULL,"
    " task TEXT NOT NULL, language TEXT NOT NULL, split TEXT NOT NULL, metric TEXT NOT NULL, value REAL NOT NULL,"
    " PRIMARY KEY (run, phase, task, language, split, metric))",
    "CREATE TABLE IF NOT EXISTS checkpoints (key TEXT PRIMARY KEY, path TEXT NOT NULL, created_by TEXT NOT NULL,"
    " created TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS checkpoint_uses (run TEXT NOT NULL, key TEXT NOT NULL, reused INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS errors (run TEXT NOT NULL REFERENCES runs(run), phase TEXT NOT NULL,"
    " task TEXT NOT NULL, language TEXT NOT NULL, split TEXT NOT NULL, message TEXT NOT NULL)",
)
ADDED_COLUMNS = {
    "checkpoint_uses": {"phase": "TEXT NOT NULL DEFAULT 'intermediate'"},
    # Schema version 1 (studies): `created` stays, equal to `started`, for readers of the first schema.
    "runs": {
        "study": "TEXT", "node": "TEXT", "axes": "TEXT", "started": "TEXT", "finished": "TEXT", "host": "TEXT",
        "pid": "INTEGER", "pid_start": "INTEGER", "message": "TEXT", "versions": "TEXT",
    },
}
INDEXES = ("CREATE INDEX IF NOT EXISTS runs_node ON runs (node)", "CREATE INDEX IF NOT EXISTS runs_study ON runs (study)")
SCHEMA_VERSION = 1  # PRAGMA user_version; stores from before versioning read 0

RUN_KEYS = ("run", "name", "created", "started", "finished", "status", "study", "node", "message", "host", "pid")


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


@dataclass(frozen=True)
class NodeState:
    """What the store knows of a study node: the status of its latest run and that run's story."""

    status: str
    message: str | None
    run: str
    started: str | None
    finished: str | None


def store_home(explicit: Path | str | None = None) -> Path:
    """`--store PATH`, else $XSTILTS_HOME, else ./xstilts_runs in the working directory."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XSTILTS_HOME") or DEFAULT_HOME)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str | None]:
    """The versions a run's numbers depend on, read from package metadata (no heavy imports)."""
    versions: dict[str, str | None] = {}
    for package in ("xstilts", "torch", "transformers"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    versions["python"] = platform.python_version()
    return versions


def process_start(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a process from /proc, None without /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[19])  # stat fields 3 (state) and 22 (starttime)


def process_gone(host: str | None, pid: int | None, pid_start: int | None) -> bool:
    """Whether the process that recorded a run has ended. Only a process of this host can be
    checked; a pid now held by another process (its start time differs) or a zombie counts as ended."""
    if host != socket.gethostname() or not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # the pid exists and belongs to another user
    stat = process_start(pid)
    if stat is None:
        return False
    state, started = stat
    return state in ("Z", "X") or (pid_start is not None and started != pid_start)


def journal_mode() -> str:
    """The store's journal: WAL (the default) needs every process that opens the file on one
    host (they share memory); a store shared by several machines (Slurm jobs, a Ray cluster)
    uses SQLite's rollback journal, which needs only working file locks on the shared file system."""
    mode = os.environ.get(JOURNAL_ENV, "wal").lower()
    if mode not in ("wal", "delete"):
        raise UserError(f"${JOURNAL_ENV}={mode!r}: use 'wal' (one machine) or 'delete' (a store shared by several machines)")
    return mode


def set_journal_mode(db: sqlite3.Connection) -> None:
    """Switch the file to `journal_mode()` (a property of the file: set once, later connections use it).

    The switch needs the file to itself and SQLite answers "locked" (or keeps the old mode)
    at once rather than waiting on the busy timeout, so openers racing on a store retry until it.
    """
    wanted = journal_mode()
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while db.execute("PRAGMA journal_mode").fetchone()[0] != wanted:
        if time.monotonic() > deadline:
            raise UserError(f"cannot switch the store to journal mode {wanted!r}: another process keeps it open")
        try:
            db.execute(f"PRAGMA journal_mode={wanted}")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
        time.sleep(0.02)


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring a store to SCHEMA_VERSION in one immediate transaction; refuse a newer one.

    `db` must be in autocommit mode. Concurrent openers queue on the write lock, and the
    version is read again under it, so each migration step runs once.
    """
    if check_version(db, path) == SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        if check_version(db, path) < SCHEMA_VERSION:
            for statement in TABLES:
                db.execute(statement)
            for table, columns in ADDED_COLUMNS.items():
                present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                for column, declaration in columns.items():
                    if column not in present:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            db.execute("UPDATE runs SET started = created WHERE started IS NULL")
            for statement in INDEXES:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def check_version(db: sqlite3.Connection, path: Path) -> int:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{path}: results store schema version {version} is newer than this xstilts knows ({SCHEMA_VERSION}); "
            "upgrade xstilts to read it"
        )
    return version


CORRUPT_CODES = ("SQLITE_NOTADB", "SQLITE_CORRUPT")
LOCKED_CODES = ("SQLITE_BUSY", "SQLITE_LOCKED")


@contextmanager
def store_errors(path: Path) -> Iterator[None]:
    """SQLite's and the file system's errors about the store file itself as one-line errors naming
    it; anything else (a bug in a query) keeps its traceback."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith(CORRUPT_CODES):
            raise UserError(
                f"{path} is not a valid results store (truncated or corrupt: {exc}); "
                "restore it from a backup or move it aside to start a new store"
            ) from None
        if name.startswith(LOCKED_CODES):
            raise UserError(
                f"{path} is locked by another process (waited {BUSY_TIMEOUT_S:g} s); nothing was changed: "
                "retry once that process is done"
            ) from None
        # A full disk shows as SQLITE_FULL, or, when even the WAL index cannot grow, as an I/O error.
        if name.startswith("SQLITE_FULL") or (name.startswith("SQLITE_IOERR") and disk_full(path)):
            raise WriteFault(path, errno.ENOSPC) from exc
        if name.startswith("SQLITE_IOERR"):
            raise UserError(f"{path}: disk I/O error ({name}) reading or writing the results store; check its disk") from exc
        if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
            raise WriteFault(path, errno.EROFS if read_only_file_system(path) else errno.EACCES) from exc
        raise
    except OSError as exc:
        code = fault_errno(exc)
        if code is None:
            raise
        raise WriteFault(exc.filename or path, code) from exc


def disk_full(path: Path, margin: int = 1 << 20) -> bool:
    """Whether the disk that holds `path` has less than `margin` bytes free."""
    try:
        return shutil.disk_usage(path.parent).free < margin
    except OSError:
        return False


def read_only_file_system(path: Path) -> bool:
    try:
        return bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def filter_clause(**filters) -> tuple[str, list]:
    """A WHERE clause over a row table `t` joined with `runs`, for the filters that are set.

    `axes` ({name: label}) matches the run's JSON axes; json_each rather than a json_extract
    path keeps any axis name (dots, quotes) literal.
    """
    clauses, params = [], []
    for column in ("run", "task", "language", "split"):
        if filters.get(column) is not None:
            clauses.append(f"t.{column} = ?")
            params.append(filters[column])
    if filters.get("study") is not None:
        clauses.append("runs.study = ?")
        params.append(filters["study"])
    for name, label in (filters.get("axes") or {}).items():
        clauses.append("EXISTS (SELECT 1 FROM json_each(runs.axes) AS a WHERE a.key = ? AND a.value = ?)")
        params.extend((name, str(label)))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class ResultsStore:
    """Runs, their result rows and the phase-2 checkpoints they built or reused.

    Args:
        home: the store folder; the database is HOME/results.sqlite.
        read_only: every write is a no-op and nothing is created or migrated (the non-main
            ranks of data-parallel training); reads see the file when it exists, else nothing.
    """

    def __init__(self, home: Path | str, read_only: bool = False):
        self.home = Path(home)
        self.path = self.home / DB_FILE
        self.read_only = read_only
        if read_only:
            return
        with store_errors(self.path):
            self.home.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            try:
                set_journal_mode(db)
                migrate(db, self.path)
            finally:
                db.close()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success, rolls back on error, and is always closed.

        Writes take the write lock when their transaction begins (IMMEDIATE), and `timeout`
        is SQLite's busy timeout: a writer waits for another instead of failing.
        """
        with store_errors(self.path):
            db = self._open()
            db.row_factory = sqlite3.Row
            try:
                with db:
                    yield db
            finally:
                db.close()

    def _open(self) -> sqlite3.Connection:
        if not self.read_only:
            return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level="IMMEDIATE")
        if not self.path.exists():
            db = sqlite3.connect(":memory:", isolation_level=None)  # no store yet: empty tables answer
            migrate(db, self.path)
            return db
        db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            if check_version(db, self.path) < SCHEMA_VERSION:
                raise UserError(f"{self.path}: written by an older xstilts; open it once read-write to migrate it")
        except BaseException:
            db.close()
            raise
        return db

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

    def start_run(
        self, run: str, name: str, config: dict, *, study: str | None = None, node: str | None = None,
        axes: dict[str, str] | None = None,
    ) -> None:
        """Record a run as running, with the process (host, pid, its start time) that runs it.

        Args:
            study, node: the study and graph node it belongs to (None for a plain run).
            axes: axis name -> value label of its grid point, kept in order; labels are text.
        """
        if self.read_only:
            return
        started, pid = now(), os.getpid()
        stat = process_start(pid)
        axes_json = None if axes is None else json.dumps({str(k): str(v) for k, v in axes.items()})
        with self._connect() as db:
            db.execute(
                "INSERT INTO runs (run, name, created, started, status, config, study, node, axes, host, pid, pid_start,"
                " versions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run, name, started, started, RUNNING, json.dumps(config, sort_keys=True), study, node, axes_json,
                 socket.gethostname(), pid, stat and stat[1], json.dumps(package_versions())),
            )

    def finish_run(self, run: str, status: str, message: str | None = None) -> None:
        """Set a run's final status and its one-line reason (failed or interrupted runs)."""
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}; expected one of {STATUSES}")
        if self.read_only:
            return
        message = " ".join(message.split()) if message else None
        with self._connect() as db:
            db.execute("UPDATE runs SET status = ?, finished = ?, message = ? WHERE run = ?", (status, now(), message, run))

    def add_results(self, rows: Iterable[ResultRow]) -> None:
        """All rows in one transaction: either every row of a phase lands or none does."""
        if self.read_only:
            return
        with self._connect() as db:
            self._insert_results(db, rows)

    @staticmethod
    def _insert_results(db: sqlite3.Connection, rows: Iterable[ResultRow]) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO results (run, phase, task, language, split, metric, value) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(r.run, r.phase, r.task, r.language, r.split, r.metric, float(r.value)) for r in rows],
        )

    def complete_run(self, run: str, rows: Iterable[ResultRow], errors: Iterable[ErrorRow]) -> str:
        """Store a run's rows and errors and set its status (partial when any evaluation
        failed, else completed) and finish time in one transaction; return the status."""
        errors = list(errors)
        status = PARTIAL if errors else COMPLETED
        if self.read_only:
            return status
        with self._connect() as db:
            self._insert_results(db, rows)
            db.executemany(
                "INSERT INTO errors (run, phase, task, language, split, message) VALUES (?, ?, ?, ?, ?, ?)",
                [(e.run, e.phase, e.task, e.language, e.split, e.message) for e in errors],
            )
            db.execute("UPDATE runs SET status = ?, finished = ?, message = NULL WHERE run = ?", (status, now(), run))
        return status

    def _rows(self, select: str, table: str, order: str, filters: dict) -> list[sqlite3.Row]:
        clause, params = filter_clause(**filters)
        query = f"SELECT {select} FROM {table} AS t LEFT JOIN runs ON runs.run = t.run{clause} ORDER BY {order}"
        with self._connect() as db:
            return db.execute(query, params).fetchall()

    def errors(self, run: str | None = None, **filters) -> list[ErrorRow]:
        """The failed evaluations, of one run or of all; filters as in `results`."""
        rows = self._rows("t.run, t.phase, t.task, t.language, t.split, t.message", "errors", "t.rowid", {"run": run, **filters})
        return [ErrorRow(*row) for row in rows]

    def results(
        self, run: str | None = None, *, study: str | None = None, axes: dict[str, str] | None = None,
        task: str | None = None, language: str | None = None, split: str | None = None,
    ) -> list[ResultRow]:
        """Stored rows, all final (written when their run ended), filtered by every argument given.

        `axes` keeps the runs whose grid point has every given axis at the given label.
        """
        rows = self._rows(
            "t.run, t.phase, t.task, t.language, t.split, t.metric, t.value", "results",
            "t.run, t.phase, t.task, t.split, t.metric, t.language",
            {"run": run, "study": study, "axes": axes, "task": task, "language": language, "split": split},
        )
        return [ResultRow(*row) for row in rows]

    def status(self, run: str) -> str | None:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs WHERE run = ?", (run,)).fetchall()
        return self._describe(rows)[0]["status"] if rows else None

    def runs(self, study: str | None = None) -> list[dict]:
        """Every run (of one study), in start order: run, name, created (= started), started,
        finished, status, study, node, axes (dict or None), message, host, pid, versions."""
        query, params = "SELECT * FROM runs", ()
        if study is not None:
            query, params = query + " WHERE study = ?", (study,)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY created, rowid", params).fetchall()
        return self._describe(rows)

    def configs(self, study: str | None = None) -> dict[str, dict]:
        """run -> the config it was started with (as stored by `start_run`), of one study or all."""
        query, params = "SELECT run, config FROM runs", ()
        if study is not None:
            query, params = query + " WHERE study = ?", (study,)
        with self._connect() as db:
            return {run: json.loads(config) for run, config in db.execute(query, params).fetchall()}

    def node_states(self, nodes: Iterable[str]) -> dict[str, NodeState]:
        """The state of the latest run of each node that has one."""
        latest = (
            "SELECT * FROM runs WHERE rowid IN (SELECT max(rowid) FROM runs"
            " WHERE node IN (SELECT value FROM json_each(?)) GROUP BY node)"
        )
        with self._connect() as db:
            rows = db.execute(latest, (json.dumps(list(nodes)),)).fetchall()
        return {
            entry["node"]: NodeState(entry["status"], entry["message"], entry["run"], entry["started"], entry["finished"])
            for entry in self._describe(rows)
        }

    def _describe(self, rows: list[sqlite3.Row]) -> list[dict]:
        """Rows of `runs` as dicts. A running run whose process has ended reads as interrupted,
        and is stored so (only if still running: a run that finished meanwhile keeps its status);
        its `finished` stays empty, since when the process died is not known."""
        entries, gone = [], []
        for row in rows:
            entry = {key: row[key] for key in RUN_KEYS}
            entry["axes"] = json.loads(row["axes"]) if row["axes"] else None
            entry["versions"] = json.loads(row["versions"]) if row["versions"] else None
            if entry["status"] == RUNNING and process_gone(row["host"], row["pid"], row["pid_start"]):
                entry.update(status=INTERRUPTED, message=f"process {row['pid']} on {row['host']} ended without finishing (killed?)")
                gone.append((entry["message"], entry["run"]))
            entries.append(entry)
        if gone and not self.read_only:
            with self._connect() as db:
                db.executemany(f"UPDATE runs SET status = '{INTERRUPTED}', message = ? WHERE run = ? AND status = '{RUNNING}'", gone)
        return entries

    def find_checkpoint(self, key: str) -> Path | None:
        with self._connect() as db:
            row = db.execute("SELECT path FROM checkpoints WHERE key = ?", (key,)).fetchone()
        return Path(row[0]) if row and Path(row[0]).exists() else None

    def record_checkpoint(self, key: str, path: Path, run: str) -> None:
        """Register a content-keyed checkpoint under its absolute path, so that runs started
        from any working directory find it."""
        if self.read_only:
            return
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO checkpoints (key, path, created_by, created) VALUES (?, ?, ?, ?)",
                (key, str(Path(path).resolve()), run, now()),
            )

    def record_checkpoint_use(self, run: str, key: str, reused: bool, phase: str = "intermediate") -> None:
        if self.read_only:
            return
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
