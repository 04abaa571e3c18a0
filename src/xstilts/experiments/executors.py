"""Where the nodes of a study run: one interface, several executors.

An executor takes a picklable top-level function and its arguments and returns a
`concurrent.futures.Future` of its result. The scheduler (experiments/scheduler.py) submits
`study.execute_node(node, home)`, which returns a small outcome and never raises for a user's
mistake; a future that ends in an exception (a bug, a crashed worker process) is a failed node.

- `SequentialExecutor`: in this process, one node at a time (`--workers 1`).
- `ProcessExecutor`: one fresh process (spawn) per node, at most N at once. On a machine with
  GPUs each slot owns one visible GPU (CUDA_VISIBLE_DEVICES); on CPU each process gets
  cores // N torch threads, so N workers do not oversubscribe the cores, except a node submitted
  with `submit_alone` (the scheduler's word that nothing else can run meanwhile, such as a
  study's prepare node): it gets every core, not a share of them beside idle ones.
- Ray and Slurm: `xstilts.experiments.cluster` (imported only when asked for).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from xstilts.atomic import WriteFault
from xstilts.config.study import ExecutorConfig, ExecutorKind


class Executor(Protocol):
    """Runs `fn(*args)` somewhere and hands back a future of its result."""

    def submit(self, fn: Callable, *args: Any) -> concurrent.futures.Future:
        """Start (or queue) `fn(*args)`; `fn` is a picklable top-level function.

        An executor that can widen one node's share of the machine also has
        `submit_alone(fn, *args)`, used for a node that never runs beside another.
        """
        ...

    def shutdown(self) -> None:
        """Wait for what was submitted and release the workers."""
        ...


class WorkerCrashed(RuntimeError):
    """A worker process ended without returning a result (killed, out of memory, segfault)."""


class SequentialExecutor:
    """Runs each function at once, in this process: the future is done when submit returns."""

    def submit(self, fn: Callable, *args: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args))
        except (Exception, WriteFault) as exc:  # noqa: BLE001 - a bug or a full disk is that node's failure
            future.set_exception(exc)
        return future

    def shutdown(self) -> None:
        return None


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (none on a CPU machine)."""
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [entry.strip() for entry in listed.split(",") if entry.strip()][: torch.cuda.device_count()]
    return [str(index) for index in range(torch.cuda.device_count())]


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask: a Slurm or container limit)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_environments(workers: int, gpus: list[str], cores: int) -> list[dict[str, str]]:
    """The environment of each worker slot: a GPU each (round-robin when there are more workers
    than GPUs), else an equal share of the CPU cores as torch threads."""
    if gpus:
        return [{"CUDA_VISIBLE_DEVICES": gpus[slot % len(gpus)]} for slot in range(workers)]
    return [thread_environment(max(1, cores // workers)) for _ in range(workers)]


def thread_environment(threads: int) -> dict[str, str]:
    """A CPU worker's environment for `threads` torch threads (OpenMP's pool included)."""
    return {"XSTILTS_TORCH_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}


def _die_with_parent(parent: int) -> None:
    """Ask Linux to send SIGTERM to this process when the process that started it dies, so a
    killed `xstilts study run` leaves no orphan training on (SIGTERM lets training save)."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _child(connection, parent: int, env: dict[str, str], fn: Callable, args: tuple) -> None:
    """A worker process: set its environment, run `fn(*args)`, send back ("ok", result) or
    ("error", exception)."""
    _die_with_parent(parent)
    os.environ.update(env)
    if "XSTILTS_TORCH_THREADS" in env:
        import torch

        torch.set_num_threads(int(env["XSTILTS_TORCH_THREADS"]))
    try:
        message = ("ok", fn(*args))
    except (Exception, WriteFault) as exc:  # noqa: BLE001 - the parent turns it into the node's failure
        message = ("error", exc)
    try:
        connection.send(message)
    except Exception as exc:  # noqa: BLE001 - an unpicklable result or exception
        connection.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
    connection.close()


class ProcessExecutor:
    """One spawned process per submitted function, at most `workers` at once.

    A fresh process per node isolates nodes (memory, CUDA state, a crash ends only its node).
    One dispatcher thread starts and watches every process: Linux's parent-death signal is tied
    to the thread that started a child, so that thread lives as long as the executor.
    """

    def __init__(self, workers: int, gpus: list[str] | None = None, cores: int | None = None):
        gpus = visible_gpus() if gpus is None else gpus
        cores = cores or available_cores()
        self.environments = worker_environments(workers, gpus, cores)
        # A lone node keeps its slot's GPU; on CPU it takes every core.
        self.alone_environment = {} if gpus else thread_environment(cores)
        self._context = multiprocessing.get_context("spawn")
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._dispatch, name="xstilts-executor", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable, *args: Any) -> concurrent.futures.Future:
        if self._closed:
            raise RuntimeError("submit after shutdown")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((future, fn, args, False))
        return future

    def submit_alone(self, fn: Callable, *args: Any) -> concurrent.futures.Future:
        """As `submit`, for a node the caller runs with nothing beside it: on CPU it gets every core.

        The thread count is the caller's promise, not a check: it makes a node's thread count
        (and so its floating-point sums) depend on the graph, never on timing.
        """
        if self._closed:
            raise RuntimeError("submit after shutdown")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((future, fn, args, True))
        return future

    def shutdown(self) -> None:
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def _dispatch(self) -> None:
        free = list(range(len(self.environments)))
        waiting: deque = deque()
        running: dict[Any, tuple] = {}  # connection -> (process, future, slot)
        stopping = False
        while True:
            while waiting and free:
                running.update(self._start(free.pop(0), *waiting.popleft()))
            if not running:
                if stopping:
                    return
                items = [self._queue.get()]  # nothing to watch: sleep until the next submission
            else:
                items = []
                while not self._queue.empty():
                    items.append(self._queue.get_nowait())
                watched = [*running, *(process.sentinel for process, _, _ in running.values())]
                ready = set(multiprocessing.connection.wait(watched, timeout=0.2))
                for connection in [c for c, (p, _, _) in running.items() if c in ready or p.sentinel in ready]:
                    free.append(self._collect(connection, *running.pop(connection)))
            for item in items:
                if item is None:
                    stopping = True
                else:
                    waiting.append(item)

    def _start(self, slot: int, future: concurrent.futures.Future, fn: Callable, args: tuple, alone: bool) -> dict:
        receiver, sender = self._context.Pipe(duplex=False)
        env = {**self.environments[slot], **(self.alone_environment if alone else {})}
        process = self._context.Process(target=_child, args=(sender, os.getpid(), env, fn, args), daemon=False)
        process.start()
        sender.close()  # the child holds its end: a dead child closes the pipe
        return {receiver: (process, future, slot)}

    @staticmethod
    def _collect(connection, process, future: concurrent.futures.Future, slot: int) -> int:
        """Set the future from what the child sent, or a crash when it sent nothing; free its slot."""
        try:
            kind, value = connection.recv()
        except (EOFError, OSError):
            kind, value = "crash", None
        except Exception as exc:  # noqa: BLE001 - an exception the parent cannot unpickle
            kind, value = "error", RuntimeError(f"{type(exc).__name__}: {exc}")
        process.join()
        connection.close()
        if kind == "ok":
            future.set_result(value)
        elif kind == "error":
            future.set_exception(value)
        else:
            future.set_exception(WorkerCrashed(f"worker process {process.pid} exited with code {process.exitcode} without a result"))
        return slot


def build_executor(cfg: ExecutorConfig, home: Path) -> Executor:
    """The executor `cfg` names: local (in this process for 1 worker, else worker processes),
    Ray or Slurm (experiments/cluster.py)."""
    if cfg.kind is ExecutorKind.RAY:
        from xstilts.experiments.cluster import RayExecutor

        return RayExecutor(cfg, home)
    if cfg.kind is ExecutorKind.SLURM:
        from xstilts.experiments.cluster import SlurmExecutor

        return SlurmExecutor(cfg, home)
    return SequentialExecutor() if cfg.workers == 1 else ProcessExecutor(cfg.workers)
