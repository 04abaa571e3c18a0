"""The training loop's accounting: epochs, batches and mixtures count examples (not features),
gradient accumulation, the logged loss, early stopping and AdamW's weight-decay groups."""

import copy
import math
import re

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel

from tiny_training import CPU, HIDDEN, REGISTRY, WORDS, pair_examples
from xstilts.config.schema import MixtureConfig, Precision, TrainConfig
from xstilts.evaluation.predict import EvalSplit
from xstilts.formats.base import get_format
from xstilts.formats.batching import collate, shuffled_examples
from xstilts.models.multitask import MultiTaskModel
from xstilts.training import loop
from xstilts.training.loop import TrainTask, collate_micro_batch, micro_batch_loss, total_steps, train_model
from xstilts.training.optim import build_adamw


def choice_examples(n: int) -> list[dict]:
    return [
        {"id": str(i), "context": "the cat sat", "question": "", "choices": [WORDS[(i + c) % len(WORDS)] for c in range(4)], "label": i % 4}
        for i in range(n)
    ]


def qa_examples(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        context = " ".join(["the cat sat on a mat"] * (1 + 4 * (i % 3))) + " under the big red tree"
        rows.append({"id": str(i), "question": "where is it", "context": context,
                     "answers": [{"text": "big red tree", "answer_start": context.index("big red tree")}]})
    return rows


def tag_examples(n: int) -> list[dict]:
    return [{"id": str(i), "tokens": (WORDS * 2)[: 4 + 12 * (i % 3)], "labels": ["O", "B-PER"] * (2 + 6 * (i % 3))} for i in range(n)]


def mlm_examples(n: int) -> list[dict]:
    return [{"text": " ".join(WORDS * (1 + i % 3))} for i in range(n)]


BUILDERS = {"xnli": pair_examples, "hellaswag": choice_examples, "squad": qa_examples, "panx": tag_examples, "mlm-multilingual": mlm_examples}


def train_task(name: str, n: int, tokenizer, dev: bool = False) -> TrainTask:
    spec = REGISTRY.get(name)
    fmt = get_format(spec.format)
    features = fmt.featurize(BUILDERS[name](n), tokenizer, spec, max_length=24)
    return TrainTask(spec=spec, fmt=fmt, features=features, dev=EvalSplit("en", "dev", [], []) if dev else None)


def build_model(tokenizer, tasks: list[TrainTask], seed: int = 0) -> MultiTaskModel:
    """A one-layer BERT without dropout, with the tasks' heads (dropout 0 too)."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=tokenizer.pad_token_id,
    )
    heads = {task.spec.head_name: task.fmt.build_head(HIDDEN, task.spec, 0.0) for task in tasks}
    model = MultiTaskModel(BertModel(config, add_pooling_layer=False), heads)
    model.bind_heads()
    return model


def run(model, tasks, tokenizer, progress=None, mixture=None, **train) -> loop.TrainResult:
    cfg = TrainConfig(**{"learning_rate": 1e-3, "warmup_ratio": 0.0, "epochs": 1, **train})
    return train_model(
        model, tasks, cfg, tokenizer=tokenizer, device=CPU, precision=Precision.FP32,
        mixture=mixture or MixtureConfig(), seed=0, progress=progress,
    )


class RecordingProgress:
    """Stands in for rich's Progress and keeps every description the loop logs."""

    def __init__(self):
        self.descriptions: list[str] = []

    def add_task(self, description: str, total: int) -> int:
        return 0

    def update(self, task: int, advance: int = 1, description: str = "") -> None:
        self.descriptions.append(description)

    def losses(self) -> list[float]:
        return [float(re.search(r"loss (\S+)", text).group(1)) for text in self.descriptions]


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("batch_size, grad_accum", [(4, 1), (2, 2), (3, 1)])
def test_steps_per_epoch_count_examples_for_every_format(tokenizer, name, batch_size, grad_accum):
    task = train_task(name, 10, tokenizer)
    if name != "xnli":  # one feature per choice or window: the count must still be 10 examples
        assert len(task.features) > 10
    cfg = TrainConfig(batch_size=batch_size, grad_accum=grad_accum, epochs=2)
    per_epoch = math.ceil(10 / (batch_size * grad_accum))
    assert task.examples == 10
    assert total_steps([task], cfg) == (per_epoch, 2 * per_epoch)


def test_an_epoch_of_a_mixture_is_the_sum_of_its_tasks_examples(tokenizer):
    tasks = [train_task("xnli", 10, tokenizer), train_task("hellaswag", 6, tokenizer), train_task("squad", 5, tokenizer)]
    assert total_steps(tasks, TrainConfig(batch_size=4, epochs=1.5)) == (6, 9)


def test_grad_accumulation_gives_the_same_update_and_logs_the_mean_loss(tokenizer):
    task = train_task("xnli", 16, tokenizer)
    model = build_model(tokenizer, [task])
    with torch.no_grad():  # a confident random head, so that examples' losses differ widely
        model.heads["nli"].out_proj.weight.mul_(30)
    whole, split = copy.deepcopy(model), copy.deepcopy(model)
    logs = RecordingProgress(), RecordingProgress()
    run(whole, [task], tokenizer, progress=logs[0], batch_size=8, grad_accum=1)
    run(split, [task], tokenizer, progress=logs[1], batch_size=4, grad_accum=2)
    assert len(logs[0].descriptions) == len(logs[1].descriptions) == 2
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(split.state_dict()[key], value, atol=1e-6, rtol=1e-5)
    # The logged loss of a step is the mean over its micro-batches, i.e. the loss over the 8 examples.
    assert logs[1].losses() == pytest.approx(logs[0].losses(), abs=1.1e-3)


def test_early_stopping_restores_the_best_epochs_weights(tokenizer, monkeypatch):
    task = train_task("hellaswag", 6, tokenizer, dev=True)  # 24 features, 6 examples
    model = build_model(tokenizer, [task])
    scripted, seen = iter([0.2, 0.9, 0.4]), []

    def scripted_dev_scores(model, tasks, **kwargs):
        seen.append({key: value.detach().clone() for key, value in model.state_dict().items()})
        return {"hellaswag": next(scripted)}

    monkeypatch.setattr(loop, "dev_scores", scripted_dev_scores)
    result = run(model, [task], tokenizer, batch_size=2, epochs=3)
    assert result.steps == 9 and [row["step"] for row in result.dev_history] == [3, 6, 9]
    assert (result.best_epoch, result.best_dev_score) == (2, 0.9)
    final = model.state_dict()
    assert all(torch.equal(final[key], seen[1][key]) for key in final)
    assert any(not torch.equal(seen[1][key], seen[2][key]) for key in final)


def test_a_mixed_micro_batch_weights_each_task_by_its_share_of_examples(tokenizer):
    # Three pairs and one QA example of several windows: the micro-batch {pairs: 3, QA: 1} holds
    # every feature of both tasks, the pairs weighted 3/4 and the QA example (all its windows) 1/4.
    qa = train_task("squad", 3, tokenizer)
    qa.features = [feature for feature in qa.features if feature["example_index"] == 2]
    assert len(qa.features) > 1
    tasks = [train_task("xnli", 3, tokenizer), qa]
    model = build_model(tokenizer, tasks).eval()
    streams = [shuffled_examples(task.features, torch.Generator().manual_seed(1)) for task in tasks]
    micro_batch = collate_micro_batch(tasks, streams, {0: 3, 1: 1}, tokenizer=tokenizer, device=CPU)
    loss = micro_batch_loss(model, tasks, micro_batch, device=CPU, precision=Precision.FP32)
    pair, qa = (collate(task.features, tokenizer, CPU) for task in tasks)
    expected = 0.75 * tasks[0].fmt.loss(model("nli", pair), pair) + 0.25 * tasks[1].fmt.loss(model("squad", qa), qa)
    torch.testing.assert_close(loss, expected)


def record_counts(monkeypatch) -> list[dict[int, int]]:
    """Replace the micro-batches by empty ones with a constant loss, and keep the examples each task got."""
    seen = []

    def counting_micro_batch(tasks, streams, counts, **kwargs):
        seen.append(counts)
        return [(index, {}, 1.0) for index in counts]

    monkeypatch.setattr(loop, "collate_micro_batch", counting_micro_batch)
    monkeypatch.setattr(loop, "micro_batch_loss", lambda *args, **kwargs: torch.zeros((), requires_grad=True))
    return seen


@pytest.mark.parametrize(
    "mixture, steps",
    [(MixtureConfig(mixing="mixed_batch"), 150), (MixtureConfig(mixing="task_per_step", example_cap=100), 600)],
)
def test_tasks_are_drawn_in_proportion_to_their_examples(tokenizer, monkeypatch, mixture, steps):
    # 30 four-choice examples (120 features) against 10 pairs: p = 30/40 by examples (not 120/130;
    # with a cap of 100 examples, not min(120, 100)/110).
    tasks = [train_task("hellaswag", 30, tokenizer), train_task("xnli", 10, tokenizer)]
    seen = record_counts(monkeypatch)
    run(build_model(tokenizer, tasks), tasks, tokenizer, mixture=mixture, batch_size=8, epochs=1000, max_steps=steps)
    drawn = [sum(counts.get(index, 0) for counts in seen) for index in range(2)]
    assert sum(drawn) == 8 * steps
    assert drawn[0] / sum(drawn) == pytest.approx(0.75, abs=0.05)


def no_decay_names(model: nn.Module) -> set[str]:
    """Biases and the weights of LayerNorm modules, by module type and attribute (the oracle)."""
    norms = {name for name, module in model.named_modules() if isinstance(module, nn.LayerNorm)}
    names = {name for name, _ in model.named_parameters()}
    return {name for name in names if name.endswith(".bias") or name.rsplit(".", 1)[0] in norms}


def test_adamw_does_not_decay_biases_and_layernorm_weights(tokenizer, monkeypatch):
    tasks = [train_task("xnli", 4, tokenizer), train_task("mlm-multilingual", 2, tokenizer)]  # the MLM head has a LayerNorm
    model = build_model(tokenizer, tasks)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    monkeypatch.setattr(loop, "micro_batch_loss", lambda model, *args, **kwargs: 0.0 * sum(p.sum() for p in model.parameters()))
    # Zero gradients: one AdamW step only applies the decoupled decay, p <- p * (1 - lr * wd).
    run(model, tasks, tokenizer, learning_rate=0.1, weight_decay=0.5, max_steps=1)
    exempt = no_decay_names(model)
    assert any("LayerNorm" in name for name in exempt) and any("layer_norm" in name for name in exempt)
    for name, parameter in model.named_parameters():
        expected = before[name] if name in exempt else before[name] * 0.95
        torch.testing.assert_close(parameter.detach(), expected, msg=name)


def test_frozen_parameters_are_in_no_group(tokenizer):
    task = train_task("xnli", 4, tokenizer)
    model = build_model(tokenizer, [task])
    model.freeze_word_embeddings()
    groups = build_adamw(model, learning_rate=1e-3, weight_decay=0.01).param_groups
    grouped = [id(p) for group in groups for p in group["params"]]
    assert id(model.encoder.get_input_embeddings().weight) not in grouped
    assert len(grouped) == len([p for p in model.parameters() if p.requires_grad])


@pytest.mark.slow
def test_a_compiled_model_trains_to_the_same_weights_and_keeps_its_parameter_names(tokenizer):
    # torch.compile (inductor, compiled here on the CPU: about a minute) only fuses kernels.
    tasks = [train_task("xnli", 64, tokenizer)]
    plain, compiled = build_model(tokenizer, tasks), build_model(tokenizer, tasks)
    run(plain, tasks, tokenizer, batch_size=8)
    run(compiled, tasks, tokenizer, batch_size=8, compile=True)
    assert list(compiled.state_dict()) == list(plain.state_dict())
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(compiled.state_dict()[key], value, atol=1e-5, rtol=1e-4, msg=key)
