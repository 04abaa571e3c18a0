"""Data-parallel sharding without processes: each rank's share of a micro-batch (whole examples)
and its loss weight, such that the ranks' losses and gradients sum to the single-process ones."""

import sys
from pathlib import Path

import pytest
import torch

from xstilts.config.schema import Precision
from xstilts.errors import UserError
from xstilts.formats.batching import collate, shuffled_examples
from xstilts.training.distributed import check_batch_size, shard
from xstilts.training.loop import collate_micro_batch, micro_batch_loss

sys.path.insert(0, str(Path(__file__).parent))
from test_loop import BUILDERS, build_model, train_task  # noqa: E402  (the loop tests' tiny model and data)
from tiny_training import CPU  # noqa: E402


def examples_of(task, count: int, seed: int = 0) -> list[list[dict]]:
    stream = shuffled_examples(task.features, torch.Generator().manual_seed(seed))
    return [next(stream) for _ in range(count)]


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("name", list(BUILDERS))
def test_shards_hold_whole_examples_and_their_weighted_losses_sum_to_the_batch_loss(tokenizer, name, world):
    # Examples of very different sizes (QA 1-3 windows, tagging 4-28 words): a share of the
    # examples is not the same share of the loss terms (windows, labelled positions).
    task = train_task(name, 7, tokenizer)
    model = build_model(tokenizer, [task]).eval()
    examples = examples_of(task, 7)
    whole = collate([f for example in examples for f in example], tokenizer, CPU)
    expected = task.fmt.loss(model(task.spec.head_name, whole), whole)
    shares = [shard({0: examples}, rank, world) for rank in range(world)]
    assert all(0 in share for share in shares)  # 7 examples over at most 3 ranks: each holds some
    assert [f for share in shares for f in share[0][0]] == [f for example in examples for f in example]
    if name != "xnli":  # no example's choices or windows are cut between two ranks
        owners = [{f.get("example_index", f.get("group")) for f in share[0][0]} for share in shares]
        assert sum(len(ids) for ids in owners) == len(set().union(*owners)) == 7
    total = 0.0
    for share in shares:
        features, weight = share[0]
        batch = collate(features, tokenizer, CPU)
        total = total + task.fmt.loss(model(task.spec.head_name, batch), batch) * weight
    torch.testing.assert_close(total, expected)
    if name in ("squad", "panx", "mlm-multilingual"):  # here a share of the examples is not that share of the loss
        example_shares = [len({f.get("example_index") for f in share[0][0]}) / 7 for share in shares]
        assert [share[0][1] for share in shares] != pytest.approx(example_shares)


def test_one_process_keeps_every_example_with_weight_one(tokenizer):
    task = train_task("squad", 4, tokenizer)
    examples = examples_of(task, 4)
    assert shard({0: examples}, 0, 1) == {0: ([f for example in examples for f in example], 1.0)}


def ranks_loss_and_gradients(model, tasks, tokenizer, counts, monkeypatch, rank: int, world: int):
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))
    streams = [shuffled_examples(task.features, torch.Generator().manual_seed(3)) for task in tasks]
    micro_batch = collate_micro_batch(tasks, streams, counts, tokenizer=tokenizer, device=CPU)
    loss = micro_batch_loss(model, tasks, micro_batch, device=CPU, precision=Precision.FP32)
    model.zero_grad(set_to_none=True)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("world", [2, 3])
def test_a_mixed_micro_batch_split_over_ranks_sums_to_the_one_process_loss_and_gradient(tokenizer, monkeypatch, world):
    # A pair, three QA examples (1 to 3 windows) and three tagging examples: with 2 or 3 ranks some rank
    # holds no example of some task (its head unused there), and the per-task weights still add up.
    tasks = [train_task("xnli", 6, tokenizer), train_task("squad", 4, tokenizer), train_task("panx", 5, tokenizer)]
    model = build_model(tokenizer, tasks)
    counts = {0: 1, 1: 3, 2: 3}
    expected_loss, expected_grads = ranks_loss_and_gradients(model, tasks, tokenizer, counts, monkeypatch, 0, 1)
    results = [ranks_loss_and_gradients(model, tasks, tokenizer, counts, monkeypatch, rank, world) for rank in range(world)]
    assert any(len(grads) < len(expected_grads) for _, grads in results)  # some rank left a head unused
    torch.testing.assert_close(sum(loss for loss, _ in results), expected_loss)
    for name, grad in expected_grads.items():
        summed = sum(grads[name] for _, grads in results if name in grads)
        torch.testing.assert_close(summed, grad, atol=1e-6, rtol=1e-5, msg=name)


def test_a_global_batch_smaller_than_the_number_of_processes_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    check_batch_size(4, "target.train.batch_size")
    with pytest.raises(UserError, match=r"key 'target.train.batch_size': batch_size 3 .* 4 processes"):
        check_batch_size(3, "target.train.batch_size")
