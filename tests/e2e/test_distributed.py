"""Data-parallel training under torchrun, on CPU with gloo and 2 processes: the ranks' weights
stay identical and match one process training on the same data at the same global batch, and
`torchrun ... xstilts run` records exactly one run whose rows match a one-process run.

Run as a script (`python -m torch.distributed.run ... test_distributed.py OUT`), this file trains
the cases below and saves each rank's final weights to OUT/rank<R>.pt.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "training"))
from clitools import cli  # noqa: E402
from test_loop import build_model, train_task  # noqa: E402  (the loop tests' tiny BERT and data)
from tiny_training import WORDS  # noqa: E402

from xstilts.config.schema import MixtureConfig, Precision, TrainConfig  # noqa: E402
from xstilts.experiments.store import ResultsStore  # noqa: E402
from xstilts.models.tiny import train_wordpiece_tokenizer  # noqa: E402
from xstilts.training import resume  # noqa: E402
from xstilts.training.distributed import process_group, rank  # noqa: E402
from xstilts.training.loop import train_model  # noqa: E402

pytestmark = pytest.mark.slow
VENV_BIN = Path(sys.executable).parent

# name -> (tasks with their example counts, mixture, training settings): a global batch that
# does not split evenly, mixed batches in which a rank may hold no example of a task (multiple
# choice, QA windows), and one task per step (the other head unused on every rank: no update).
CASES = {
    "pairs": ({"xnli": 16}, MixtureConfig(), {"batch_size": 5, "grad_accum": 2, "max_steps": 3}),
    "mixed": ({"xnli": 8, "squad": 6, "hellaswag": 6}, MixtureConfig(mixing="mixed_batch"), {"batch_size": 5, "max_steps": 4}),
    "task_per_step": ({"xnli": 8, "panx": 8}, MixtureConfig(mixing="task_per_step"), {"batch_size": 4, "max_steps": 4}),
}
LEARNING_RATE = 1e-3
# Biases added alike to every score a softmax compares: an attention key's (every position, for
# one query), a multiple-choice scorer's (every choice), QA's (every position). The loss ignores
# them, so their gradient is rounding noise, which AdamW scales to steps of up to lr.
SCORE_SHIFTS = ("attention.self.key.bias", "hellaswag.out_proj.bias", "squad.qa_outputs.bias")


def train_cases(out: Path) -> None:
    """Train every case from the same seed, saving the training state (for resuming) after every
    step into OUT/resume-<case>; save this rank's final weights and the steps it saved a state at."""
    tokenizer = train_wordpiece_tokenizer([" ".join(WORDS)] * 20, vocab_size=120)
    saved, save_state = [], resume.save_state
    resume.save_state = lambda state, folder: saved.append(state.step) or save_state(state, folder)
    weights = {}
    for name, (counts, mixture, train) in CASES.items():
        tasks = [train_task(task, count, tokenizer) for task, count in counts.items()]
        model = build_model(tokenizer, tasks)
        cfg = TrainConfig(learning_rate=LEARNING_RATE, warmup_ratio=0.0, epochs=1, weight_decay=0.1, **train)
        checkpointing = resume.Checkpointing(out / f"resume-{name}", every=1, phase=name, log=lambda line: None)
        train_model(
            model, tasks, cfg, tokenizer=tokenizer, device=torch.device("cpu"), precision=Precision.FP32,
            mixture=mixture, seed=0, checkpointing=checkpointing,
        )
        weights[name] = {key: value.detach().clone() for key, value in model.state_dict().items()}
    torch.save({"weights": weights, "saved": saved}, out / f"rank{rank()}.pt")


def torchrun(*args) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 ARGS` (standalone: a free port of its own), one thread per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *map(str, args)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def test_two_ranks_stay_in_sync_and_match_one_process_at_the_same_global_batch(tmp_path):
    torchrun(__file__, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single"
    single.mkdir()
    subprocess.run([sys.executable, __file__, single], env=env, check=True, timeout=600)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    reference = torch.load(single / "rank0.pt")
    # Rank 0 alone saved the resume states (after every step but the last), as one process does.
    assert ranks[0]["saved"] == reference["saved"] == [1, 1, 2, 3, 1, 2, 3]  # steps 2, 4, 4 of the cases
    assert ranks[1]["saved"] == []
    ranks, reference = [r["weights"] for r in ranks], reference["weights"]
    for name, (_, _, train) in CASES.items():
        for key, value in reference[name].items():
            assert torch.equal(ranks[0][name][key], ranks[1][name][key]), (name, key)
            # The ranks' weighted gradients summed are one process's gradient up to the order of
            # fp32 sums: after a few AdamW steps the weights differ by ~1e-7 (measured <= 1.5e-7).
            atol = LEARNING_RATE * train["max_steps"] if key.endswith(SCORE_SHIFTS) else 1e-5
            torch.testing.assert_close(ranks[0][name][key], value, atol=atol, rtol=0, msg=f"{name} {key}")


@pytest.fixture
def config(tmp_path, nli_fixture, tiny_model):
    # Without dropout (the tiny model's and the heads'), two processes and one draw the same
    # random numbers for the same weights; only the order of fp32 sums differs.
    model = tmp_path / "tiny-no-dropout"
    shutil.copytree(tiny_model, model)
    settings = json.loads((model / "config.json").read_text(encoding="utf-8"))
    settings.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model / "config.json").write_text(json.dumps(settings), encoding="utf-8")
    train = {"epochs": 1.5, "learning_rate": 1e-3, "batch_size": 32, "max_length": 64, "dropout": 0.0}
    document = {
        "name": "ddp",
        "model": str(model),
        "task_specs": [str(nli_fixture["spec"])],
        "data": {"mnli": str(nli_fixture["mnli"]), "toy-xnli": str(nli_fixture["xnli"])},
        "intermediate": {"tasks": ["mnli"], "train": train},
        "target": {"task": "toy-xnli", "train": train, "eval_splits": ["dev", "test"]},
        "checkpoint_every": 10,  # resume states at steps 10 and 20 of each phase, written by rank 0
    }
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def assert_close_weights(path: Path, reference: Path) -> None:
    """Measured after the 2 x 29 AdamW steps of both phases: <= 4e-7 apart, but for SCORE_SHIFTS
    (up to lr a step)."""
    weights, expected = load_file(path), load_file(reference)
    assert weights.keys() == expected.keys()
    for key, value in expected.items():
        atol = LEARNING_RATE * 2 * 29 if key.endswith(SCORE_SHIFTS) else 1e-5
        torch.testing.assert_close(weights[key], value, atol=atol, rtol=0, msg=f"{path} {key}")


def test_torchrun_xstilts_run_records_one_run_close_to_one_process(monkeypatch, capsys, tmp_path, config):
    torchrun("--no-python", VENV_BIN / "xstilts", "run", config, "--store", tmp_path / "ddp")
    cli(monkeypatch, capsys, "run", config, "--store", tmp_path / "single")
    ddp, single = ResultsStore(tmp_path / "ddp"), ResultsStore(tmp_path / "single")
    [run] = ddp.runs()  # rank 1 wrote no run, no rows, no directory
    assert run["status"] == "completed"
    assert [path.name for path in (tmp_path / "ddp" / "runs").iterdir()] == [run["run"]]
    assert not list((tmp_path / "ddp" / "resume").glob("*/step-*"))  # discarded once each checkpoint was saved
    checkpoints = sorted(path.name for path in (tmp_path / "ddp" / "checkpoints").iterdir())
    assert [name.split("-")[0] for name in checkpoints] == ["phase2", "target"]
    for name in checkpoints:  # the same keys as one process's, and the same weights up to fp32 sums
        for part in ("heads.safetensors", "encoder/model.safetensors"):
            assert_close_weights(tmp_path / "ddp" / "checkpoints" / name / part, tmp_path / "single" / "checkpoints" / name / part)
    rows = {(r.phase, r.language, r.split): r.value for r in ddp.results(run["run"])}
    expected = {(r.phase, r.language, r.split): r.value for r in single.results(single.runs()[0]["run"])}
    assert set(rows) == set(expected) == {("intermediate", "en", "dev")} | {
        ("target", language, split) for language in ("en", "de", "fr") for split in ("dev", "test")
    }
    # Weights within ~1e-6 of each other: a prediction flips only for an example whose margin is
    # that small, so each accuracy (over 90 examples) is within one example of the other run's.
    for key, value in expected.items():
        assert abs(rows[key] - value) <= 100 / 90 + 1e-9, (key, rows[key], value)
    assert all(rows[("target", language, split)] > 50 for language in ("de", "fr") for split in ("dev", "test")), rows


if __name__ == "__main__":
    with process_group(torch.device("cpu")):
        train_cases(Path(sys.argv[1]))
