"""A real `xstilts run` killed at a random training step (SIGKILL, or SIGTERM as Slurm sends before
pre-emption) reads as interrupted in the store, with no rows; re-running the same command resumes
from the last saved state and ends with exactly the rows of an uninterrupted run.

The step is drawn with random.Random(seed); set XSTILTS_KILL_SEED to replay a failure (every
assertion message names the seed and the step)."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import torch
from safetensors.torch import load_file

from xstilts.experiments.store import ResultsStore
from xstilts.training.resume import saved_step

pytestmark = pytest.mark.slow

TRAIN = {"epochs": 1.5, "learning_rate": 1e-3, "batch_size": 32, "max_length": 64}
# 600 English examples, 32 a step: 29 steps over 1.5 epochs; the mixture's 1000 examples: 48.
PHASE2_STEPS = {"single": 29, "multi": 48}
TARGET_STEPS = 29


def write_config(folder: Path, nli_fixture: dict, tiny_model: Path, kind: str) -> Path:
    tasks = ["mnli"] if kind == "single" else ["mnli", "toy-para"]
    intermediate = {"tasks": tasks, "train": TRAIN}
    if kind == "multi":
        intermediate.update(mixture={"sampler": "temperature", "temperature": 2.0, "mixing": "task_per_step"}, max_examples={"toy-para": 400})
    document = {
        "name": f"kill-{kind}",
        "model": str(tiny_model),
        "task_specs": [str(nli_fixture["spec"])],
        "data": {"mnli": str(nli_fixture["mnli"]), "toy-para": str(nli_fixture["para"]), "toy-xnli": str(nli_fixture["xnli"])},
        "intermediate": intermediate,
        "target": {"task": "toy-xnli", "train": TRAIN, "eval_splits": ["dev", "test"]},
        "device": "cpu",
    }
    path = folder / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def command(config: Path, store: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "xstilts.cli", "run", str(config), "--store", str(store), *overrides]


def rows(store: Path, run: str) -> dict[tuple, float]:
    return {(r.phase, r.task, r.language, r.split, r.metric): r.value for r in ResultsStore(store).results(run)}


def run_to_end(config: Path, store: Path, *overrides: str) -> tuple[str, dict[tuple, float], str]:
    """Run the command to its end; return its run id, its rows and its stderr."""
    done = subprocess.run(command(config, store, *overrides), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    run = ResultsStore(store).runs()[-1]
    assert run["status"] == "completed", run
    return run["run"], rows(store, run["run"]), done.stderr


def weights(store: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Every trained checkpoint's tensors (encoder and heads), by checkpoint folder (phase and content key)."""
    root = store / "checkpoints"
    paths = sorted(root.glob("*/*.safetensors")) + sorted(root.glob("*/encoder/*.safetensors"))
    return {str(path.relative_to(root)): load_file(str(path)) for path in paths}


def assert_same_weights(store: Path, reference: Path, context: str) -> None:
    """The checkpoints equal, bit for bit, the uninterrupted run's (the keys match: checkpoint_every is in none)."""
    actual, expected = weights(store), weights(reference)
    assert actual and actual.keys() <= expected.keys(), (context, sorted(actual), sorted(expected))
    for name, tensors in actual.items():
        assert tensors.keys() == expected[name].keys(), (context, name)
        different = [key for key in tensors if not torch.equal(tensors[key], expected[name][key])]
        assert not different, (context, name, different)


def state_step(store: Path, phase: str) -> int | None:
    """The step of the newest saved training state of `phase` (phase2 or target), if any."""
    for folder in (store / "resume").glob(f"{phase}-*"):
        try:
            return saved_step(folder)
        except (FileNotFoundError, ValueError):  # a state replaced while being read
            return None
    return None


def stop_at_step(config: Path, store: Path, phase: str, step: int, number: int, context: str) -> tuple[int, str, int]:
    """Start the command with a state saved every step; once the state of `phase` reaches `step`,
    send signal `number`; return the exit code, the stderr and the step of the state it left."""
    log = store.parent / "stopped.stderr"  # a file, not a pipe: a full pipe would block the run
    with open(log, "w") as stderr:
        process = subprocess.Popen(command(config, store, "checkpoint_every=1"), stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 900
        while (state_step(store, phase) or 0) < step:
            assert process.poll() is None, f"{context}: the run ended before step {step}: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{context}: no state of step {step} within 15 minutes"
            time.sleep(0.005)
        process.send_signal(number)
        process.wait(timeout=300)
    left = state_step(store, phase)
    assert left is not None and left >= step, f"{context}: state left at step {left}"
    return process.returncode, log.read_text(), left


@pytest.fixture(scope="module")
def configs(tmp_path_factory, nli_fixture, tiny_model) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("configs")
    return {kind: write_config(folder, nli_fixture, tiny_model, kind) for kind in ("single", "multi")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, configs) -> dict[str, tuple[dict[tuple, float], Path]]:
    """Each config's rows and store from an uninterrupted run in a store of its own (default checkpoint_every)."""
    result = {}
    for kind, config in configs.items():
        store = tmp_path_factory.mktemp(f"reference-{kind}") / "store"
        result[kind] = run_to_end(config, store)[1], store
    return result


@pytest.fixture
def kill_seed() -> int:
    return int(os.environ.get("XSTILTS_KILL_SEED") or random.SystemRandom().randrange(2**32))


@pytest.mark.parametrize("kind", ["single", "multi"])
def test_a_run_killed_in_phase2_resumes_to_the_same_rows(tmp_path, configs, uninterrupted, kill_seed, kind):
    steps = PHASE2_STEPS[kind]
    step = random.Random(kill_seed).randint(1, steps - 3)  # states are saved up to step steps-1
    store = tmp_path / "store"
    code, _, left = stop_at_step(configs[kind], store, "phase2", step, signal.SIGKILL, f"seed {kill_seed}, step {step}")
    context = f"seed {kill_seed}, kill at step {step}, state of step {left}"
    assert code == -signal.SIGKILL, context

    [killed] = ResultsStore(store).runs()
    assert killed["status"] == "interrupted", (context, killed)
    assert ResultsStore(store).results(killed["run"]) == [], context

    run, resumed, stderr = run_to_end(configs[kind], store, "checkpoint_every=1")
    assert f"resuming intermediate from step {left} of {steps}" in stderr, (context, stderr[-3000:])
    expected, reference = uninterrupted[kind]
    assert resumed == expected, context
    assert_same_weights(store, reference, context)
    print(f"{kind}: {context}: {len(resumed)} rows equal, checkpoints bit-identical")  # evidence, with pytest -rP
    assert {key[0] for key in resumed} == {"intermediate", "target"}
    assert not (store / "resume").exists() or not any((store / "resume").iterdir()), context


def test_a_run_stopped_by_sigterm_in_target_training_resumes_to_the_same_rows(tmp_path, configs, uninterrupted, kill_seed):
    step = random.Random(kill_seed).randint(1, TARGET_STEPS - 4)
    store = tmp_path / "store"
    code, stderr, left = stop_at_step(configs["single"], store, "target", step, signal.SIGTERM, f"seed {kill_seed}, step {step}")
    context = f"seed {kill_seed}, SIGTERM at step {step}, state of step {left}"
    assert code == 2, (context, stderr[-3000:])
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, (context, stderr[-3000:])
    assert re.fullmatch(
        rf"error: target training stopped by SIGTERM after step {left} of {TARGET_STEPS}; its state is saved in "
        rf"\S+/resume/target-\w+: re-running the same command resumes from there",
        errors[0],
    ), (context, errors[0])

    [stopped] = ResultsStore(store).runs()
    assert (stopped["status"], stopped["message"]) == ("interrupted", errors[0].removeprefix("error: ")), context
    assert ResultsStore(store).results(stopped["run"]) == [], context

    run, resumed, stderr = run_to_end(configs["single"], store, "checkpoint_every=1")
    assert f"resuming target from step {left} of {TARGET_STEPS}" in stderr, (context, stderr[-3000:])
    assert "intermediate: reusing checkpoint" in stderr, context
    # The phase-2 dev rows belong to the run that trained phase 2 (the stopped one, which stores none):
    # the resumed run has the target's rows, equal to the uninterrupted run's.
    expected, reference = uninterrupted["single"]
    assert resumed == {key: value for key, value in expected.items() if key[0] == "target"}, context
    assert_same_weights(store, reference, context)
    print(f"{context}: {len(resumed)} target rows equal, checkpoints bit-identical")  # evidence, with pytest -rP
