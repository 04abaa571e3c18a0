"""The store under concurrent writers: separate processes, as a study's workers are."""

import multiprocessing
import sqlite3

from xstilts.experiments.store import COMPLETED, ResultsStore
from xstilts.results import ResultRow

WORKERS, RUNS_PER_WORKER, ROWS_PER_RUN = 4, 40, 30  # 1,200 rows per worker, 4,800 in all


def write_runs(home: str, worker: int, barrier) -> None:
    """One worker: open the store (a fresh file: every worker races to create and migrate it),
    then record runs as nodes do, start_run then complete_run with all of a run's rows."""
    barrier.wait()
    store = ResultsStore(home)
    for index in range(RUNS_PER_WORKER):
        run = f"w{worker}-r{index}"
        store.start_run(run, "grid", {}, study="s", node=run, axes={"worker": str(worker)})
        rows = [ResultRow(run, "target", "t", f"l{row}", "test", "accuracy", worker * 1e6 + index * 1e3 + row)
                for row in range(ROWS_PER_RUN)]
        store.complete_run(run, rows, [])


def test_four_writer_processes_lose_no_row_and_every_run_completes(tmp_path):
    home = tmp_path / "store"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    workers = [context.Process(target=write_runs, args=(str(home), worker, barrier)) for worker in range(WORKERS)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=300)
    assert [process.exitcode for process in workers] == [0] * WORKERS

    store = ResultsStore(home)
    rows = store.results()
    assert len(rows) == WORKERS * RUNS_PER_WORKER * ROWS_PER_RUN
    assert sorted(row.value for row in rows) == sorted(
        worker * 1e6 + index * 1e3 + row
        for worker in range(WORKERS) for index in range(RUNS_PER_WORKER) for row in range(ROWS_PER_RUN))
    runs = store.runs(study="s")
    assert len(runs) == WORKERS * RUNS_PER_WORKER and {run["status"] for run in runs} == {COMPLETED}
    assert all(run["finished"] and run["message"] is None for run in runs)
    assert len(store.results(axes={"worker": "2"})) == RUNS_PER_WORKER * ROWS_PER_RUN
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
