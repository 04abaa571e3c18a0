"""Resume inside a run: a training stopped after step k (by SIGUSR1, or killed after a periodic
save) and resumed in a fresh model ends with exactly the weights, dev history and best epoch of
an uninterrupted one; a half-written state is never loaded; signal handlers are put back."""

import json
import os
import signal
import threading

import pytest
import torch
from transformers import BertConfig, BertModel

from tiny_training import CPU, HIDDEN, REGISTRY, WORDS, pair_examples
from xstilts.config.schema import MixtureConfig, Precision, TrainConfig
from xstilts.errors import UserError
from xstilts.evaluation.predict import EvalSplit
from xstilts.formats.base import get_format
from xstilts.models.multitask import MultiTaskModel
from xstilts.training import loop, resume
from xstilts.training.loop import TrainTask, train_model
from xstilts.training.resume import Checkpointing, Interrupted, StopSignals, latest_state, saved_step


def choice_examples(n: int, offset: int = 0) -> list[dict]:
    return [
        {"id": str(i), "context": "the cat sat", "question": "", "choices": [WORDS[(i + c + offset) % len(WORDS)] for c in range(4)], "label": i % 4}
        for i in range(n)
    ]


def mlm_examples(n: int, offset: int = 0) -> list[dict]:
    return [{"text": " ".join(WORDS[(i + offset) % 5 :] * (1 + i % 3))} for i in range(n)]


BUILDERS = {"xnli": pair_examples, "hellaswag": choice_examples, "mlm-multilingual": mlm_examples}
SIZES = {"xnli": 16, "hellaswag": 8, "mlm-multilingual": 6}


def train_task(name: str, tokenizer) -> TrainTask:
    """A task with a real English dev split (evaluated after every epoch), except masked-LM."""
    spec = REGISTRY.get(name)
    fmt = get_format(spec.format)
    dev = BUILDERS[name](6, offset=3)
    return TrainTask(
        spec=spec, fmt=fmt, features=fmt.featurize(BUILDERS[name](SIZES[name]), tokenizer, spec, max_length=24),
        dev=None if name == "mlm-multilingual" else EvalSplit("en", "dev", dev, fmt.featurize(dev, tokenizer, spec, max_length=24)),
    )


def build_model(tokenizer, tasks: list[TrainTask], extra_head: bool = False) -> MultiTaskModel:
    """A one-layer BERT with dropout (so the global RNG matters), built the same way every time."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, pad_token_id=tokenizer.pad_token_id,
    )
    heads = {task.spec.head_name: task.fmt.build_head(HIDDEN, task.spec, 0.1) for task in tasks}
    if extra_head:
        spec = REGISTRY.get("pawsx")
        heads["extra"] = get_format(spec.format).build_head(HIDDEN, spec, 0.1)
    model = MultiTaskModel(BertModel(config, add_pooling_layer=False), heads)
    model.bind_heads()
    return model


class Steps:
    """Stands in for rich's Progress: follows the step (a resumed bar starts at the saved one),
    sends SIGUSR1 to this very process after step `signal_at`, and raises (a kill) after `crash_at`."""

    current: "Steps | None" = None

    def __init__(self, signal_at: int | None = None, crash_at: int | None = None):
        self.step, self.signal_at, self.crash_at = 0, signal_at, crash_at

    def add_task(self, description: str, total: int) -> int:
        Steps.current = self
        return 0

    def update(self, task: int, advance: int = 1, completed: int | None = None, description: str = "") -> None:
        self.step = completed if completed is not None else self.step + advance
        if completed is None and self.step == self.signal_at:
            os.kill(os.getpid(), signal.SIGUSR1)
        if completed is None and self.step == self.crash_at:
            raise KeyboardInterrupt("killed")


def train(model, tasks, tokenizer, folder=None, every=None, progress=None, log=None, seed=0, mixture=None, **settings):
    cfg = TrainConfig(**{"learning_rate": 1e-3, "warmup_ratio": 0.2, "epochs": 3, "batch_size": 4, **settings})
    checkpointing = Checkpointing(folder, every=every, phase="test", log=(log.append if log is not None else print)) if folder else None
    return train_model(
        model, tasks, cfg, tokenizer=tokenizer, device=CPU, precision=Precision.FP32, mixture=mixture or MixtureConfig(),
        seed=seed, progress=progress or Steps(), checkpointing=checkpointing,
    )


def assert_same_weights(actual: dict, expected: dict, what: str = "final weights") -> None:
    assert actual.keys() == expected.keys()
    different = [key for key in expected if not torch.equal(actual[key], expected[key])]
    assert not different, f"{what} differ: {different}"


class DevWeights:
    """Wraps the loop's dev evaluation (the real one, or scores scripted by step) and keeps the
    weights at each evaluation by step: with early stopping the final weights may be an early
    epoch's, so runs are compared at every epoch they trained, not only at the end."""

    def __init__(self, monkeypatch, script: dict[int, float] | None = None):
        self.by_step: dict[int, dict] = {}
        real = loop.dev_scores

        def recording(model, tasks, **kwargs):
            step = Steps.current.step
            self.by_step[step] = {key: value.detach().clone() for key, value in model.state_dict().items()}
            return {tasks[0].spec.name: script[step]} if script else real(model, tasks, **kwargs)

        monkeypatch.setattr(loop, "dev_scores", recording)

    def take(self) -> dict[int, dict]:
        taken, self.by_step = self.by_step, {}
        return taken


def assert_same_run(resumed, result, reference, expected, resumed_evaluations: dict, reference_evaluations: dict) -> None:
    """Final weights, result (dev history, best epoch and score) and the weights at every epoch the resumed run trained."""
    assert result == expected  # ==, not approximately
    assert_same_weights(resumed.state_dict(), reference.state_dict())
    assert resumed_evaluations and set(resumed_evaluations) <= set(reference_evaluations)
    for step, weights in resumed_evaluations.items():
        assert_same_weights(weights, reference_evaluations[step], f"weights after step {step}")


CASES = {
    "single": (["xnli"], MixtureConfig(), {}),
    "task_per_step": (["xnli", "hellaswag"], MixtureConfig(mixing="task_per_step"), {}),
    "mixed_batch": (["xnli", "hellaswag"], MixtureConfig(mixing="mixed_batch"), {}),
    "grad_accum_2": (["xnli", "hellaswag"], MixtureConfig(mixing="mixed_batch"), {"batch_size": 2, "grad_accum": 2}),
    # The MLM head's decoder is the input embedding matrix: tied weights are saved as two tensors.
    "masked_lm": (["xnli", "mlm-multilingual"], MixtureConfig(mixing="mixed_batch"), {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_stopped_by_a_signal_and_resumed_equals_uninterrupted(tokenizer, tmp_path, monkeypatch, case):
    names, mixture, settings = CASES[case]
    tasks = [train_task(name, tokenizer) for name in names]
    dev = DevWeights(monkeypatch)
    reference = build_model(tokenizer, tasks)
    expected, evaluations = train(reference, tasks, tokenizer, mixture=mixture, **settings), dev.take()
    assert expected.steps > 8 and len(expected.dev_history) == 3

    folder, log = tmp_path / "resume", []
    with pytest.raises(Interrupted) as stopped:
        train(build_model(tokenizer, tasks), tasks, tokenizer, folder, progress=Steps(signal_at=5), log=log, mixture=mixture, **settings)
    message = str(stopped.value)
    assert "SIGUSR1 after step 5 of" in message and str(folder) in message and "re-running the same command resumes" in message
    assert saved_step(folder) == 5 and [path.name for path in folder.iterdir()] == ["step-00000005"]
    dev.take()

    resumed = build_model(tokenizer, tasks)  # a fresh start, as a rerun builds it
    progress = Steps()
    result = train(resumed, tasks, tokenizer, folder, progress=progress, log=log, mixture=mixture, **settings)
    assert log == [f"resuming test from step 5 of {expected.steps}"]
    assert progress.step == expected.steps
    assert_same_run(resumed, result, reference, expected, dev.take(), evaluations)


@pytest.mark.parametrize("stop", [6, 10])
def test_early_stopping_keeps_an_earlier_best_epoch_across_a_resume(tokenizer, tmp_path, monkeypatch, stop):
    # Dev scores by step: epoch 2 (step 8) is the best, before the last; the stop falls before it (6) or after it (10).
    dev = DevWeights(monkeypatch, script={4: 0.2, 8: 0.9, 12: 0.4, 16: 0.5})
    tasks = [train_task("xnli", tokenizer)]
    reference = build_model(tokenizer, tasks)
    expected, evaluations = train(reference, tasks, tokenizer, epochs=4), dev.take()
    assert (expected.steps, expected.best_epoch, expected.best_dev_score) == (16, 2, 0.9)

    folder = tmp_path / "resume"
    with pytest.raises(Interrupted):
        train(build_model(tokenizer, tasks), tasks, tokenizer, folder, progress=Steps(signal_at=stop), epochs=4)
    state = json.loads((latest_state(folder) / resume.STATE_FILE).read_text())
    assert state["has_best_weights"] and state["best_epoch"] == (2 if stop > 8 else 1)
    dev.take()
    resumed = build_model(tokenizer, tasks)
    result = train(resumed, tasks, tokenizer, folder, epochs=4)
    assert_same_run(resumed, result, reference, expected, dev.take(), evaluations)
    assert_same_weights(resumed.state_dict(), evaluations[8])


def test_a_kill_resumes_from_the_last_periodic_save(tokenizer, tmp_path, monkeypatch):
    tasks = [train_task("xnli", tokenizer), train_task("hellaswag", tokenizer)]
    dev = DevWeights(monkeypatch)
    reference = build_model(tokenizer, tasks)
    expected, evaluations = train(reference, tasks, tokenizer), dev.take()

    folder = tmp_path / "resume"
    with pytest.raises(KeyboardInterrupt):  # no save at the kill: the last periodic one (step 6) is what is left
        train(build_model(tokenizer, tasks), tasks, tokenizer, folder, every=3, progress=Steps(crash_at=8))
    assert [path.name for path in folder.iterdir()] == ["step-00000006"]
    dev.take()
    log = []
    resumed = build_model(tokenizer, tasks)
    result = train(resumed, tasks, tokenizer, folder, every=3, log=log)
    assert log == [f"resuming test from step 6 of {expected.steps}"]
    assert_same_run(resumed, result, reference, expected, dev.take(), evaluations)
    # No periodic save after the last step: the phase's own checkpoint follows it.
    assert saved_step(folder) == 3 * ((expected.steps - 1) // 3)


def test_a_half_written_state_is_never_loaded(tokenizer, tmp_path, monkeypatch):
    tasks = [train_task("xnli", tokenizer)]
    dev = DevWeights(monkeypatch)
    reference = build_model(tokenizer, tasks)
    expected, evaluations = train(reference, tasks, tokenizer), dev.take()

    folder, real_save = tmp_path / "resume", resume.save_file
    saves = []

    def crashing_save(tensors, path):
        saves.append(path)
        if len(saves) == 2:  # the second state (step 4) crashes half-way through its tensors file
            real_save(tensors, path)
            with open(path, "r+b") as handle:
                handle.truncate(os.path.getsize(path) // 2)
            raise OSError("No space left on device")
        real_save(tensors, path)

    monkeypatch.setattr(resume, "save_file", crashing_save)
    with pytest.raises(OSError, match="No space left"):
        train(build_model(tokenizer, tasks), tasks, tokenizer, folder, every=2)
    monkeypatch.setattr(resume, "save_file", real_save)
    assert [path.name for path in folder.iterdir()] == ["step-00000002"]
    # What a SIGKILL during a write leaves: the temporary folder of a newer state, with a state.json
    # and a truncated tensors file. It is not a state.
    leftover = folder / ".step-00000004.x1y2z3"
    leftover.mkdir()
    (leftover / resume.STATE_FILE).write_text(json.dumps({"step": 4}))
    (leftover / resume.TENSORS_FILE).write_bytes(b"\x00" * 16)
    dev.take()
    log = []
    resumed = build_model(tokenizer, tasks)
    result = train(resumed, tasks, tokenizer, folder, every=2, log=log)
    assert log == [f"resuming test from step 2 of {expected.steps}"]
    assert_same_run(resumed, result, reference, expected, dev.take(), evaluations)


def test_a_state_of_other_data_or_another_model_is_refused(tokenizer, tmp_path):
    tasks = [train_task("xnli", tokenizer)]
    folder = tmp_path / "resume"
    with pytest.raises(Interrupted):
        train(build_model(tokenizer, tasks), tasks, tokenizer, folder, progress=Steps(signal_at=3))
    with pytest.raises(UserError, match="does not match this phase's data order; delete"):
        train(build_model(tokenizer, tasks), tasks, tokenizer, folder, seed=1)
    with pytest.raises(UserError, match=r"does not fit this model \(.*extra"):
        train(build_model(tokenizer, tasks, extra_head=True), tasks, tokenizer, folder)


def test_signals_only_set_a_flag_and_the_previous_handlers_come_back():
    def previous(number, frame):
        raise AssertionError("the previous handler ran while the loop's was installed")

    before = signal.signal(signal.SIGTERM, previous)
    try:
        with StopSignals() as stop:
            signal.raise_signal(signal.SIGTERM)
            assert stop.received == signal.SIGTERM
            signal.raise_signal(signal.SIGUSR1)
            assert stop.received == signal.SIGUSR1
        assert signal.getsignal(signal.SIGTERM) is previous
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)


def test_training_with_checkpointing_runs_outside_the_main_thread(tokenizer, tmp_path):
    # Python installs signal handlers only from the main thread: elsewhere the loop installs
    # none (periodic saves still happen) instead of failing.
    tasks = [train_task("xnli", tokenizer)]
    outcome = {}

    def work():
        try:
            outcome["result"] = train(build_model(tokenizer, tasks), tasks, tokenizer, tmp_path / "resume", every=4)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].steps == 12 and saved_step(tmp_path / "resume") == 8
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
