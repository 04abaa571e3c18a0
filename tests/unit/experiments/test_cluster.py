"""The Ray and Slurm executors on standard-library functions: results and exceptions through the
future, a killed worker, an unreachable cluster, the sbatch script built from a SlurmConfig, and a
job requeued after Slurm's warning signal. Ray runs locally; Slurm through submitit's local
executor, or a stand-in `sbatch` that records the script it is given."""

from __future__ import annotations

import math
import operator
import os
import signal
import socket
import stat
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cloudpickle
import pytest

from xstilts.config.study import ExecutorConfig
from xstilts.errors import UserError
from xstilts.experiments.cluster import RayExecutor, SlurmExecutor, check_reachable, passed_env
from xstilts.experiments.store import ResultsStore
from xstilts.training.resume import StopSignals

TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_passed_env_keeps_what_nodes_need(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XSTILTS_HOME", "/shared/store")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("SOME_SECRET_TOKEN", "x")
    env = passed_env()
    assert env["HF_HUB_OFFLINE"] == "1" and env["XSTILTS_HOME"] == "/shared/store" and env["OMP_NUM_THREADS"] == "3"
    assert "SOME_SECRET_TOKEN" not in env and "PATH" not in env


def test_unreachable_ray_address_is_one_line_naming_it():
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(UserError, match=f"executor.ray.address '{address}': cannot connect") as error:
        RayExecutor(ExecutorConfig(kind="ray", ray={"address": address}), Path("."))
    assert "\n" not in str(error.value) and time.monotonic() - started < 10
    with pytest.raises(UserError, match="ray://127.0.0.1"):
        check_reachable(f"ray://127.0.0.1:{free_port()}")


# Starting a local Ray takes 5-15 s on 2 busy cores: one Ray for the module, its tests slow.
@pytest.fixture(scope="module")
def ray_executor():
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    executor = RayExecutor(ExecutorConfig(kind="ray", workers=2), Path("."))
    yield executor
    executor.shutdown()
    assert not ray.is_initialized()


@pytest.mark.slow
def test_ray_results_come_back_through_futures(ray_executor):
    import ray

    futures = [ray_executor.submit(math.factorial, n) for n in range(6)]
    assert [future.result(timeout=TIMEOUT_S) for future in futures] == [1, 1, 2, 6, 24, 120]
    assert ray_executor.submit(operator.add, 2, 3).result(timeout=TIMEOUT_S) == 5
    assert ray.cluster_resources()["CPU"] == 2  # workers=2 at one CPU per node
    assert ray.get_runtime_context().runtime_env["env_vars"]["HF_HUB_OFFLINE"] == "1"  # conftest sets it


@pytest.mark.slow
def test_ray_task_exception_reaches_the_future(ray_executor):
    with pytest.raises(ValueError, match="not defined for negative values"):
        ray_executor.submit(math.factorial, -1).result(timeout=TIMEOUT_S)


@pytest.mark.slow
def test_ray_killed_worker_fails_its_future(ray_executor):
    from ray.exceptions import WorkerCrashedError

    with pytest.raises(WorkerCrashedError):
        ray_executor.submit(signal.raise_signal, signal.SIGKILL).result(timeout=TIMEOUT_S)
    assert ray_executor.submit(operator.mul, 6, 7).result(timeout=TIMEOUT_S) == 42  # the executor goes on


def local_slurm(tmp_path, **slurm) -> SlurmExecutor:
    return SlurmExecutor(ExecutorConfig(kind="slurm", workers=2, slurm={"local": True, "gpus_per_node": 0, **slurm}), tmp_path)


def test_slurm_local_results_and_task_exceptions(tmp_path):
    executor = local_slurm(tmp_path)
    try:
        added, failing = executor.submit(operator.add, 2, 3), executor.submit(math.factorial, -1)
        assert added.result(timeout=TIMEOUT_S) == 5
        with pytest.raises(RuntimeError, match=r"ValueError: factorial\(\) not defined for negative values \(log: ") as error:
            failing.result(timeout=TIMEOUT_S)
    finally:
        executor.shutdown()
    log = Path(str(error.value).rsplit("(log: ", 1)[1].rstrip(")"))
    assert log.parent == tmp_path / "slurm" and "ValueError" in log.read_text()


@pytest.mark.slow
def test_slurm_killed_job_fails_its_future(tmp_path):
    executor = local_slurm(tmp_path)
    try:
        # submitit waits 15 s for a result file a slow shared file system may not show yet
        with pytest.raises(RuntimeError, match=r"has not produced any output \(state: .*\) \(log: ") as error:
            executor.submit(signal.raise_signal, signal.SIGKILL).result(timeout=TIMEOUT_S)
        assert "\n" not in str(error.value)
    finally:
        executor.shutdown()


def stop_once(marker: str) -> str:
    """Stands in for a node whose training Slurm warns once: the first run's training loop
    takes SIGUSR1 with its own handler (saves, stops); the requeued run completes."""
    path = Path(marker)
    runs = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(runs))
    if runs == 1:
        with StopSignals() as stop:
            os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.received == signal.SIGUSR1
        return "stopped"
    return f"completed in run {runs}"


def warned_after_completing(marker: str) -> SimpleNamespace:
    """A node that Slurm warns after its training: it completes, and must not run again."""
    path = Path(marker)
    runs = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(runs))
    os.kill(os.getpid(), signal.SIGUSR1)
    return SimpleNamespace(status="completed", runs=runs)


@pytest.mark.slow
def test_slurm_job_warned_during_training_is_requeued(tmp_path):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job's process cannot import this test module
    executor = local_slurm(tmp_path)
    try:
        stopped = executor.submit(stop_once, str(tmp_path / "stopped"))
        completed = executor.submit(warned_after_completing, str(tmp_path / "completed"))
        assert stopped.result(timeout=TIMEOUT_S) == "completed in run 2"
        assert completed.result(timeout=TIMEOUT_S).runs == 1
    finally:
        executor.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


ACCEPT = 'echo "Submitted batch job 4242"'


def stand_in_slurm(folder: Path, reply: str = ACCEPT) -> Path:
    """`sbatch` that copies the script it is given to folder/script.sh and replies like Slurm,
    and an `srun` for submitit to find."""
    folder.mkdir()
    scripts = {"sbatch": f'#!/bin/sh\ncp "$1" {folder}/script.sh\n{reply}\n', "srun": "#!/bin/sh\nexit 1\n"}
    for name, text in scripts.items():
        (folder / name).write_text(text)
        (folder / name).chmod((folder / name).stat().st_mode | stat.S_IEXEC)
    return folder


def test_sbatch_script_carries_the_slurm_config(tmp_path, monkeypatch):
    bin_dir = stand_in_slurm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("XSTILTS_STORE_JOURNAL", raising=False)
    slurm = {"partition": "gpu", "time_minutes": 90, "gpus_per_node": 2, "cpus_per_task": 6, "mem_gb": 48,
             "account": "nlp", "extra": {"constraint": "a100", "qos": "high"}}
    executor = SlurmExecutor(ExecutorConfig(kind="slurm", slurm=slurm), tmp_path / "home")
    try:
        executor.submit(operator.add, 1, 2)
    finally:
        executor.shutdown()
    lines = set((bin_dir / "script.sh").read_text().splitlines())
    expected = {"--partition=gpu", "--time=90", "--gpus-per-node=2", "--cpus-per-task=6", "--mem=48GB",
                "--account=nlp", "--constraint=a100", "--qos=high", "--signal=USR1@120", "--job-name=xstilts"}
    assert {f"#SBATCH {flag}" for flag in expected} <= lines
    assert any(line.startswith(f"#SBATCH --output={tmp_path / 'home' / 'slurm'}/") for line in lines)
    # Jobs on other machines write to the store: not in WAL mode, which needs one host.
    assert os.environ["XSTILTS_STORE_JOURNAL"] == "delete"
    with ResultsStore(tmp_path / "home")._connect() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_slurm_without_sbatch_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match=r"^sbatch not found: .*set executor.slurm.local=true to try locally$"):
        SlurmExecutor(ExecutorConfig(kind="slurm"), tmp_path)


def test_a_job_sbatch_refuses_is_one_line(tmp_path, monkeypatch):
    refuse = 'echo "sbatch: error: invalid partition specified: nope" >&2; exit 1'
    monkeypatch.setenv("PATH", f"{stand_in_slurm(tmp_path / 'bin', refuse)}{os.pathsep}{os.environ['PATH']}")
    executor = SlurmExecutor(ExecutorConfig(kind="slurm", slurm={"partition": "nope"}), tmp_path / "home")
    try:
        with pytest.raises(UserError, match=r"^sbatch refused the job: sbatch: error: invalid partition specified: nope \(check executor.slurm"):
            executor.submit(operator.add, 1, 2)
    finally:
        executor.shutdown()
