"""Cluster executors: a study's nodes as Ray tasks or as Slurm jobs (through submitit).

Both implement the Executor interface of experiments/executors.py: `submit(fn, *args)` returns a
`concurrent.futures.Future` of `fn(*args)` and `shutdown()` lets go of the cluster. `fn` is a
picklable top-level function of the package, so the machines that run it need the same xstilts
installed and the store (XSTILTS_HOME) on a file system they share with this one.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import shutil
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import submitit

from xstilts.config.study import ExecutorConfig, SlurmConfig
from xstilts.errors import UserError
from xstilts.experiments.store import COMPLETED, JOURNAL_ENV, ResultsStore

# Variables a node's process needs wherever it lands: offline hub, threads, the store.
PASSED_ENV = ("HF_", "TRANSFORMERS_", "TOKENIZERS_", "XSTILTS_", "OMP_", "MKL_", "CUBLAS_", "PYTHONHASHSEED")
# Slurm sends SIGUSR1 this long before a job's time limit: the training loop saves and stops.
WARNING_S = 120
POLL_S = 1.0


def passed_env() -> dict[str, str]:
    """The variables of this process's environment that the workers get too."""
    return {name: value for name, value in os.environ.items() if name.startswith(PASSED_ENV)}


def call(fn: Callable, *args: Any) -> Any:
    """Run `fn(*args)`: Ray takes only Python functions as tasks, not builtins such as operator.add."""
    return fn(*args)


class RayExecutor:
    """Each node a Ray task: on the cluster at `executor.ray.address`, or on a Ray started here
    for the study with room for `workers` nodes at once. A task whose worker process dies fails
    its future with Ray's WorkerCrashedError; it is not retried (the study's rerun does that).
    On a cluster the store at `home` is switched to the rollback journal (`share_store`); Ray
    keeps its logs in its own session folder (/tmp/ray)."""

    def __init__(self, cfg: ExecutorConfig, home: Path):
        import ray

        self._ray, address = ray, cfg.ray.address
        self._owned = not ray.is_initialized()  # a Ray the caller started is the caller's to stop
        if self._owned:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            if address:
                check_reachable(address)
                share_store(home)
            try:
                ray.init(
                    address=address or "local",  # never a Ray that `ray start` left running here
                    num_cpus=None if address else math.ceil(cfg.workers * cfg.ray.cpus_per_node),
                    include_dashboard=False,
                    log_to_driver=False,  # the nodes' own logs stay in Ray's session folder
                    logging_level="WARNING",
                    runtime_env={"env_vars": passed_env()},
                )
            except ConnectionError as exc:
                raise UserError(f"executor.ray.address {address!r}: no Ray cluster there ({exc})") from None
        self._task = ray.remote(num_cpus=cfg.ray.cpus_per_node, num_gpus=cfg.ray.gpus_per_node, max_retries=0)(call)

    def submit(self, fn: Callable, *args: Any) -> concurrent.futures.Future:
        return self._task.remote(fn, *args).future()

    def shutdown(self) -> None:
        """Disconnect from the cluster, and stop the Ray this executor started (and its tasks)."""
        if self._owned:
            self._ray.shutdown()


def share_store(home: Path) -> None:
    """Nodes on other machines write to the store too: switch it from WAL (one host only) to the
    rollback journal, here and, through the environment they inherit, in every node."""
    os.environ[JOURNAL_ENV] = "delete"
    ResultsStore(home)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a host:port nothing listens on: Ray itself retries such an address for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # 'auto' and the like: ray.init looks it up and raises ConnectionError
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UserError(f"executor.ray.address {address!r}: cannot connect ({exc.strerror or exc})") from None


def slurm_parameters(slurm: SlurmConfig) -> dict[str, Any]:
    """submitit's parameters for one job per node (None values are left to the cluster)."""
    return {
        "name": "xstilts",
        "timeout_min": slurm.time_minutes,
        "gpus_per_node": slurm.gpus_per_node,
        "cpus_per_task": slurm.cpus_per_task,
        "mem_gb": slurm.mem_gb,
        "slurm_partition": slurm.partition,
        "slurm_account": slurm.account,
        "slurm_additional_parameters": {"signal": f"USR1@{WARNING_S}", **slurm.extra},
    }


class SlurmExecutor:
    """Each node a Slurm job submitted through submitit, its files in HOME/slurm/ (<job id>_*).

    With `executor.slurm.local`, submitit's local executor runs the jobs as processes here.
    A node that SIGUSR1 stopped (Slurm's warning before the time limit, and at pre-emption where
    the cluster sends it then: training saves its state and stops) is requeued and resumes from
    that state; SIGTERM alone (scancel) does not requeue. `shutdown()` stops waiting for
    the jobs but never cancels them: jobs already submitted keep running (`scancel` them), and
    the store records the nodes they complete for `xstilts study status` and the next run.
    """

    def __init__(self, cfg: ExecutorConfig, home: Path):
        if not cfg.slurm.local and shutil.which("sbatch") is None:
            raise UserError("sbatch not found: executor.kind is slurm on a machine without Slurm; set executor.slurm.local=true to try locally")
        if not cfg.slurm.local:
            share_store(home)
        self._executor = submitit.AutoExecutor(folder=Path(home) / "slurm", cluster="local" if cfg.slurm.local else "slurm")
        self._executor.update_parameters(**slurm_parameters(cfg.slurm))
        self._pending: list[tuple[Any, concurrent.futures.Future]] = []
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="xstilts-slurm", daemon=True)
        self._watcher.start()

    def submit(self, fn: Callable, *args: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_running_or_notify_cancel()  # a submitted job is not cancelled through its future
        try:
            job = self._executor.submit(Requeueable(fn), *args)
        except submitit.core.utils.FailedJobError as exc:  # sbatch said no: its own words, one line
            reason = " ".join(str(exc).split()) or "no reason given"
            raise UserError(f"sbatch refused the job: {reason} (check executor.slurm: partition, account, extra)") from None
        with self._lock:
            self._pending.append((job, future))
        return future

    def shutdown(self) -> None:
        self._stop.set()
        self._watcher.join()

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            with self._lock:
                done = [entry for entry in self._pending if entry[0].done()]
                self._pending = [entry for entry in self._pending if entry not in done]
            for job, future in done:
                try:
                    future.set_result(job.result())
                except Exception as exc:  # noqa: BLE001 - the job's failure is its node's
                    future.set_exception(JobFailed(f"job {job.job_id}: {failure_line(exc)} (log: {job.paths.stderr})"))


class JobFailed(RuntimeError):
    """A Slurm job raised or ended without a result; the message names its log."""


def failure_line(exc: Exception) -> str:
    """Why a job failed, in one line: the exception line of the task's traceback (which submitit
    puts between two rulers), or the two lines of submitit's own message before the log it
    quotes (a killed job: "Job J ... has not produced any output (state: S)")."""
    parts = str(exc).split("-" * 22)
    if isinstance(exc, submitit.core.utils.FailedJobError) and len(parts) >= 3:
        lines = [line.strip() for line in parts[1].splitlines() if line.strip()]
        return lines[-1] if lines else type(exc).__name__
    return " ".join(" ".join(str(exc).splitlines()[:2]).split()) or type(exc).__name__


class Requeueable(submitit.helpers.Checkpointable):
    """A node as a submitit job, put back in the queue when Slurm's warning (SIGUSR1) stopped it.

    While it trains, the training loop takes SIGUSR1 with its own handler (it saves its state and
    the node ends failed), so the signal is noticed through set_wakeup_fd, which every Python-level
    handler writes to. A node that completed anyway is not requeued. checkpoint() is
    Checkpointable's: submitit resubmits the same callable with the same arguments.
    """

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        # SIGUSR1 outside training: the pipe records it, and the node must not die of it.
        previous_fd, previous_handler = signal.set_wakeup_fd(write), signal.signal(signal.SIGUSR1, lambda *_: None)
        try:
            result = self.fn(*args)
            try:
                warned = signal.SIGUSR1 in os.read(read, 4096)
            except BlockingIOError:  # nothing written: no signal came
                warned = False
        finally:
            signal.set_wakeup_fd(previous_fd)
            signal.signal(signal.SIGUSR1, previous_handler)
            os.close(read)
            os.close(write)
        if warned and getattr(result, "status", None) != COMPLETED:
            # As if Slurm had sent submitit's own pre-emption signal: submitit calls checkpoint()
            # and requeues the job (a time limit counts against the timeouts it allows).
            signal.raise_signal(signal.Signals[f"SIG{submitit.JobEnvironment.USR_SIG}"])
        return result
