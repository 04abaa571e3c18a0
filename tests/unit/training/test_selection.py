"""Epoch snapshots for model selection: the average is the exact parameter-wise mean, the oracle
picks per language the epoch with the best dev score, training with snapshots trains the same
weights, and a resumed training ends with the same snapshots as an uninterrupted one."""

import json
import os
import signal

import pytest
import torch
from pydantic import ValidationError
from torch import nn
from transformers import BertConfig, BertModel

from tiny_training import CPU, REGISTRY, pair_examples
from xstilts.config.schema import MixtureConfig, Precision, SelectionConfig, TargetConfig, TrainConfig
from xstilts.errors import UserError
from xstilts.evaluation.predict import EvalSplit
from xstilts.formats.base import get_format
from xstilts.models.multitask import MultiTaskModel
from xstilts.training.loop import TrainTask, train_model
from xstilts.training.resume import Checkpointing, Interrupted
from xstilts.training.selection import (
    MANIFEST, EpochSnapshots, average_state_dicts, averaged_epochs, kept_epochs, mean_tensor, oracle_epochs,
)


# --- the average -------------------------------------------------------------------------------

def test_the_average_is_the_parameter_wise_mean():
    states = [
        {"w": torch.tensor([[1.0, 2.0], [0.5, -1.0]]), "b": torch.tensor([3.0])},
        {"w": torch.tensor([[3.0, 4.0], [1.5, -2.0]]), "b": torch.tensor([4.0])},
        {"w": torch.tensor([[5.0, 9.0], [1.0, 0.0]]), "b": torch.tensor([8.0])},
    ]
    mean = average_state_dicts(states)
    assert torch.equal(mean["w"], torch.tensor([[3.0, 5.0], [1.0, -1.0]]))
    assert torch.equal(mean["b"], torch.tensor([5.0]))
    assert mean["w"].dtype == torch.float32


def test_equal_states_average_to_the_same_weights_bit_for_bit():
    generator = torch.Generator().manual_seed(0)
    state = {"w": torch.randn(64, 33, generator=generator), "half": torch.randn(7, generator=generator).to(torch.bfloat16)}
    for k in (2, 3, 5):
        mean = average_state_dicts([{key: value.clone() for key, value in state.items()} for _ in range(k)])
        assert all(torch.equal(mean[key], state[key]) and mean[key].dtype == state[key].dtype for key in state)


def test_integer_buffers_are_copied_from_the_last_epoch_not_averaged():
    ids = [torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), torch.tensor([5, 6, 8])]
    mean = mean_tensor(ids)
    assert mean.dtype == torch.int64 and torch.equal(mean, torch.tensor([5, 6, 8]))
    assert torch.equal(mean_tensor([torch.tensor([True]), torch.tensor([False])]), torch.tensor([False]))


def test_states_with_other_keys_are_refused():
    with pytest.raises(ValueError, match="different keys"):
        average_state_dicts([{"a": torch.zeros(1)}, {"b": torch.zeros(1)}])


def test_the_kept_and_averaged_epochs():
    assert kept_epochs(5, SelectionConfig(average_last=3)) == [3, 4, 5]
    assert kept_epochs(2, SelectionConfig(average_last=3)) == [1, 2]  # shorter training: every epoch
    assert kept_epochs(4, SelectionConfig(average_last=2, oracle=True)) == [1, 2, 3, 4]
    assert averaged_epochs([1, 2, 3, 4], 2) == [3, 4]


def test_selection_config_defaults_off_and_refuses_an_average_of_one():
    assert not SelectionConfig().enabled and not TargetConfig(task="xnli").selection.enabled
    assert SelectionConfig(average_last=2).enabled and SelectionConfig(oracle=True).enabled
    with pytest.raises(ValidationError, match="at least 2"):
        SelectionConfig(average_last=1)


# --- the oracle --------------------------------------------------------------------------------

def test_the_oracle_picks_per_language_the_epoch_with_the_best_dev_score():
    dev = {
        1: {"de": 50.0, "fr": 70.0, "sw": 10.0},
        2: {"de": 60.0, "fr": 65.0, "sw": 30.0},
        3: {"de": 60.0, "fr": 40.0},  # sw failed at epoch 3; de ties epoch 2: the earlier one
    }
    assert oracle_epochs(dev) == {"de": 2, "fr": 1, "sw": 2}


# --- snapshots on disk -------------------------------------------------------------------------

class Tied(nn.Module):
    """Two names for one matrix (as an MLM decoder and the embeddings) and an integer buffer."""

    def __init__(self, value: float):
        super().__init__()
        self.embed = nn.Parameter(torch.full((3, 2), value))
        self.bias = nn.Parameter(torch.tensor([value, -value]))
        self.decoder = nn.Linear(2, 3, bias=False)
        self.decoder.weight = self.embed
        self.register_buffer("ids", torch.arange(3) + int(value))


def test_snapshots_keep_only_the_needed_epochs_and_average_from_disk(tmp_path):
    snapshots = EpochSnapshots(tmp_path / "snap", SelectionConfig(average_last=2))
    models = [Tied(float(epoch)) for epoch in range(1, 5)]  # built first: nn.Linear draws its initial weights
    rng = torch.get_rng_state()
    for epoch, model in enumerate(models, start=1):
        assert not snapshots.complete()
        snapshots.save(model, epoch, total_epochs=4)
    assert torch.equal(torch.get_rng_state(), rng)  # saving draws no random numbers
    assert sorted(p.name for p in (tmp_path / "snap").iterdir()) == ["epoch-0003.safetensors", "epoch-0004.safetensors", MANIFEST]
    assert snapshots.require() == [3, 4]
    mean = snapshots.average([3, 4])
    assert torch.equal(mean["embed"], torch.full((3, 2), 3.5)) and torch.equal(mean["decoder.weight"], torch.full((3, 2), 3.5))
    assert torch.equal(mean["bias"], torch.tensor([3.5, -3.5])) and torch.equal(mean["ids"], torch.tensor([4, 5, 6]))
    model = Tied(0.0)
    model.load_state_dict(mean)
    assert torch.equal(model.decoder.weight, torch.full((3, 2), 3.5))
    # Another selection on the same training: the oracle needs every epoch, which are not there.
    assert not EpochSnapshots(tmp_path / "snap", SelectionConfig(oracle=True)).complete()
    with pytest.raises(UserError, match="epoch snapshots are missing"):
        EpochSnapshots(tmp_path / "snap", SelectionConfig(oracle=True)).require()
    snapshots.discard()
    assert not (tmp_path / "snap").exists()


def test_a_training_state_resumes_only_a_training_keeping_the_same_epochs(tmp_path):
    suffixes = {
        EpochSnapshots(tmp_path, selection).resume_suffix
        for selection in (SelectionConfig(average_last=2), SelectionConfig(average_last=3), SelectionConfig(oracle=True))
    }
    assert suffixes == {"-epochs-last2", "-epochs-last3", "-epochs-all"}  # and none is "" (no selection)
    assert EpochSnapshots(tmp_path, SelectionConfig(average_last=2, oracle=True)).resume_suffix == "-epochs-all"


def test_kept_snapshots_outlive_the_evaluation(tmp_path):
    snapshots = EpochSnapshots(tmp_path / "snap", SelectionConfig(average_last=2, keep_snapshots=True))
    for epoch in (1, 2):
        snapshots.save(Tied(float(epoch)), epoch, total_epochs=2)
    snapshots.discard()
    assert snapshots.require() == [1, 2]


# --- training with snapshots ------------------------------------------------------------------


def xnli_task(tokenizer) -> TrainTask:
    spec = REGISTRY.get("xnli")
    fmt = get_format(spec.format)
    dev = pair_examples(6, offset=3)
    return TrainTask(
        spec=spec, fmt=fmt, features=fmt.featurize(pair_examples(16), tokenizer, spec, max_length=24),
        dev=EvalSplit("en", "dev", dev, fmt.featurize(dev, tokenizer, spec, max_length=24)),
    )


def build_model(tokenizer, task: TrainTask) -> MultiTaskModel:
    """A one-layer BERT with dropout (so the global RNG matters), built the same way every time."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, pad_token_id=tokenizer.pad_token_id,
    )
    model = MultiTaskModel(BertModel(config, add_pooling_layer=False), {task.spec.head_name: task.fmt.build_head(16, task.spec, 0.1)})
    model.bind_heads()
    return model


class SignalAt:
    """Stands in for rich's Progress: sends SIGUSR1 to this process after step `step`."""

    def __init__(self, step: int | None = None):
        self.done, self.step = 0, step

    def add_task(self, description: str, total: int) -> int:
        return 0

    def update(self, task: int, advance: int = 1, completed: int | None = None, description: str = "") -> None:
        self.done = completed if completed is not None else self.done + advance
        if completed is None and self.done == self.step:
            os.kill(os.getpid(), signal.SIGUSR1)


def train(tokenizer, snapshots=None, folder=None, progress=None):
    """4 epochs of 4 steps (16 examples, 4 a batch); returns the model and its result."""
    task = xnli_task(tokenizer)
    model = build_model(tokenizer, task)
    cfg = TrainConfig(learning_rate=1e-3, warmup_ratio=0.2, epochs=4, batch_size=4)
    checkpointing = Checkpointing(folder, every=None, phase="test", log=lambda line: None) if folder else None
    result = train_model(
        model, [task], cfg, tokenizer=tokenizer, device=CPU, precision=Precision.FP32, mixture=MixtureConfig(), seed=0,
        progress=progress or SignalAt(), checkpointing=checkpointing, snapshots=snapshots,
    )
    return model, result


def test_snapshots_change_nothing_in_training_and_hold_each_epochs_end(tokenizer, tmp_path):
    plain, plain_result = train(tokenizer)
    rng_after_plain = torch.get_rng_state()
    every = EpochSnapshots(tmp_path / "all", SelectionConfig(oracle=True))
    model, result = train(tokenizer, every)
    assert torch.equal(torch.get_rng_state(), rng_after_plain)
    assert all(torch.equal(value, plain.state_dict()[key]) for key, value in model.state_dict().items())
    assert (result.best_epoch, result.dev_history) == (plain_result.best_epoch, plain_result.dev_history)
    assert every.require() == [1, 2, 3, 4]
    assert json.loads((tmp_path / "all" / MANIFEST).read_text()) == {"epochs": [1, 2, 3, 4], "total_epochs": 4}
    # The epochs differ from each other (they are end-of-epoch states, not the selected one)...
    assert not torch.equal(every.load(1)["encoder.embeddings.word_embeddings.weight"], every.load(4)["encoder.embeddings.word_embeddings.weight"])
    # ...and a training keeping the last two writes exactly the same last two.
    last = EpochSnapshots(tmp_path / "last", SelectionConfig(average_last=2))
    train(tokenizer, last)
    assert last.require() == [3, 4]
    for epoch in (3, 4):
        assert all(torch.equal(value, every.load(epoch)[key]) for key, value in last.load(epoch).items())
    assert not last.path(1).exists() and not last.path(2).exists()


@pytest.mark.parametrize("stop", [6, 8])  # mid-epoch 2, and just after epoch 2's snapshot
def test_a_resumed_training_ends_with_the_snapshots_of_an_uninterrupted_one(tokenizer, tmp_path, stop):
    reference = EpochSnapshots(tmp_path / "reference", SelectionConfig(oracle=True))
    train(tokenizer, reference)
    resumed = EpochSnapshots(tmp_path / "resumed", SelectionConfig(oracle=True))
    with pytest.raises(Interrupted):
        train(tokenizer, resumed, folder=tmp_path / "state", progress=SignalAt(stop))
    assert not resumed.complete() and resumed.path(1).exists() and not resumed.path(3).exists()
    train(tokenizer, resumed, folder=tmp_path / "state")
    assert resumed.require() == [1, 2, 3, 4]
    for epoch in (1, 2, 3, 4):
        expected = reference.load(epoch)
        assert all(torch.equal(value, expected[key]) for key, value in resumed.load(epoch).items()), epoch
