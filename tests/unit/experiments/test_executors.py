"""The local executors: results and exceptions come back through futures, and a worker process
that dies without a result is that node's failure, not the executor's."""

import math
import os

import pytest

from xstilts.config.study import ExecutorConfig
from xstilts.experiments.executors import ProcessExecutor, SequentialExecutor, WorkerCrashed, build_executor


@pytest.mark.slow  # five spawned interpreters, each importing torch: seconds each on a busy machine
def test_worker_processes_return_results_carry_exceptions_and_survive_a_crash(tmp_path):
    executor = ProcessExecutor(2, gpus=[], cores=2)
    futures = [executor.submit(math.sqrt, 16.0), executor.submit(os._exit, 3), executor.submit(math.sqrt, -1.0),
               executor.submit(os.getpid), executor.submit(os.getpid)]
    executor.shutdown()
    assert futures[0].result() == 4.0
    assert isinstance(futures[1].exception(), WorkerCrashed) and "exited with code 3" in str(futures[1].exception())
    assert isinstance(futures[2].exception(), ValueError)
    # One fresh process per node: never this one, never the same twice.
    assert len({futures[3].result(), futures[4].result(), os.getpid()}) == 3


def test_the_sequential_executor_runs_in_this_process():
    executor = SequentialExecutor()
    assert executor.submit(os.getpid).result() == os.getpid()
    assert isinstance(executor.submit(math.sqrt, -1.0).exception(), ValueError)


def test_build_executor_picks_by_kind_and_workers(tmp_path):
    assert isinstance(build_executor(ExecutorConfig(), tmp_path), SequentialExecutor)
    executor = build_executor(ExecutorConfig(workers=3), tmp_path)
    assert isinstance(executor, ProcessExecutor) and len(executor.environments) == 3
    executor.shutdown()
    with pytest.raises(ValueError):
        ExecutorConfig(kind="kubernetes")
