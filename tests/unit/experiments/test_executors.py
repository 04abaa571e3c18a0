"""The local executors: results and exceptions come back through futures, and a worker process
that dies without a result is that node's failure, not the executor's."""

import math
import os

import pytest

from xstilts.config.study import ExecutorConfig
from xstilts.experiments.executors import ProcessExecutor, SequentialExecutor, WorkerCrashed, build_executor
from xstilts.experiments.scheduler import lone_nodes, run_graph
from xstilts.experiments.store import COMPLETED
from xstilts.experiments.study import RUN, Node, NodeOutcome


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


def thread_settings() -> tuple[int, str]:
    """A worker's torch threads and OpenMP setting (top level: spawned workers unpickle it)."""
    import torch

    return torch.get_num_threads(), os.environ["OMP_NUM_THREADS"]


@pytest.mark.slow  # two spawned interpreters importing torch
def test_a_node_submitted_alone_gets_every_core_and_the_others_a_share():
    executor = ProcessExecutor(2, gpus=[], cores=2)
    shared, alone = executor.submit(thread_settings), executor.submit_alone(thread_settings)
    executor.shutdown()
    assert shared.result() == (1, "1") and alone.result() == (2, "2")


def test_a_lone_node_keeps_its_gpu_and_on_cpu_takes_every_core():
    cpu, gpu = ProcessExecutor(4, gpus=[], cores=6), ProcessExecutor(2, gpus=["3", "5"])
    cpu.shutdown(), gpu.shutdown()
    assert cpu.environments[0]["XSTILTS_TORCH_THREADS"] == "1"
    assert cpu.alone_environment == {"XSTILTS_TORCH_THREADS": "6", "OMP_NUM_THREADS": "6"}
    assert gpu.alone_environment == {}


def chain_and_fan() -> dict[str, Node]:
    spec = [("prepare", ()), ("a", ("prepare",)), ("b", ("prepare",)), ("a1", ("a",)), ("join", ("a1", "b")),
            ("tail", ("join",)), ("x", ("tail",)), ("y", ("tail",))]
    return {name: Node(name, RUN, "s", deps) for name, deps in spec}


def test_lone_nodes_are_those_every_other_node_depends_on_or_follows():
    assert lone_nodes(chain_and_fan()) == {"prepare", "join", "tail"}
    assert lone_nodes({"only": Node("only", RUN, "s")}) == {"only"}
    assert lone_nodes({"a": Node("a", RUN, "s"), "b": Node("b", RUN, "s")}) == set()


class RecordingExecutor(SequentialExecutor):
    """Runs in this process and records which nodes came through `submit_alone`."""

    def __init__(self):
        self.alone: list[str] = []

    def submit_alone(self, fn, *args):
        self.alone.append(args[0].id)
        return self.submit(fn, *args)


def test_the_scheduler_submits_lone_nodes_alone_and_executors_without_it_still_run_them():
    executor = RecordingExecutor()
    outcomes = run_graph(chain_and_fan(), set(chain_and_fan()), executor, 2, "home", fn=completed_node)
    assert executor.alone == ["prepare", "join", "tail"] and len(outcomes) == 8
    plain = run_graph(chain_and_fan(), set(chain_and_fan()), SequentialExecutor(), 2, "home", fn=completed_node)
    assert all(outcome.status == COMPLETED for outcome in plain.values())


def completed_node(node: Node, home: str) -> NodeOutcome:
    return NodeOutcome(node.id, COMPLETED, None, f"run-of-{node.id}")
