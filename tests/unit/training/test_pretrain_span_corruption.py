"""Span-corruption pretraining of a tiny T5: learns (the loss on held-out noise falls), repeatable
from the seed, saves a model that reloads with every key."""

import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from xstilts.errors import UserError
from xstilts.formats.span_corruption import sentinel_ids
from xstilts.models.tiny import build_tiny_model, build_tiny_t5
from xstilts.training.pretrain import load_seq2seq_lm, pretrain_span_corruption, span_corruption_batch

WORDS = "the a baker cook eats bakes sees pear bread soup in on garden kitchen quickly today".split()


def sentences(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))) + " ." for _ in range(count)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sc")
    text = folder / "en.txt"
    text.write_text("\n".join(sentences(400)) + "\n", encoding="utf-8")
    model = build_tiny_t5(folder / "t5", sentences(400), vocab_size=60, d_model=32, num_layers=1, num_heads=2, d_ff=64)
    return model, text


def held_out_loss(model_dir) -> float:
    """Mean loss on fixed corrupted batches of sentences the training never saw."""
    model, tokenizer = load_seq2seq_lm(model_dir)
    ids = tokenizer(sentences(64, seed=99), add_special_tokens=False)["input_ids"]
    batch = span_corruption_batch(ids, tokenizer, sentinel_ids(tokenizer), np.random.default_rng(5))
    model.eval()
    with torch.no_grad():
        return model(**batch).loss.item()


def test_batch_has_eos_terminated_inputs_and_padded_targets(corpus):
    _, tokenizer = load_seq2seq_lm(corpus[0])
    ids = tokenizer(["the baker eats a pear in the garden .", "a cook ."], add_special_tokens=False)["input_ids"]
    batch = span_corruption_batch(ids, tokenizer, sentinel_ids(tokenizer), np.random.default_rng(0))
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    assert [int(batch["input_ids"][row, lengths[row] - 1]) for row in range(2)] == [tokenizer.eos_token_id] * 2
    targets = (batch["labels"] != -100).sum(dim=1).tolist()
    assert [int(batch["labels"][row, targets[row] - 1]) for row in range(2)] == [tokenizer.eos_token_id] * 2
    assert int(batch["labels"][0, 0]) == int(batch["labels"][1, 0]) == sentinel_ids(tokenizer)[0]  # <extra_id_0> first


@pytest.mark.slow
def test_pretraining_lowers_the_loss_and_is_repeatable(corpus, tmp_path):
    model, text = corpus
    trained = pretrain_span_corruption(model, [text], tmp_path / "a", steps=60, batch_size=32, learning_rate=3e-3, max_length=24, seed=1)
    before, after = held_out_loss(model), held_out_loss(trained)
    assert after < 0.75 * before, (before, after)
    again = pretrain_span_corruption(model, [text], tmp_path / "b", steps=60, batch_size=32, learning_rate=3e-3, max_length=24, seed=1)
    first, second = load_file(trained / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys() and "lm_head.weight" in first
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_few_steps_change_every_weight_matrix_and_reload_strictly(corpus, tmp_path):
    model, text = corpus
    out = pretrain_span_corruption(model, [text], tmp_path / "c", steps=3, batch_size=8, max_length=16, seed=0)
    before, after = load_file(model / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    changed = [key for key in before if not torch.equal(before[key], after[key])]
    assert "lm_head.weight" in changed and "shared.weight" in changed and len(changed) == len(before)
    load_seq2seq_lm(out)  # every key present, none unexpected


def test_an_encoder_without_sentinels_is_one_line(tmp_path):
    bert = build_tiny_model(tmp_path / "bert", sentences(50), vocab_size=80, hidden_size=32, num_layers=1, num_heads=2)
    text = tmp_path / "en.txt"
    text.write_text("a cook .\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"span corruption needs a T5-style tokenizer \(sentinels <extra_id_0>"):
        pretrain_span_corruption(bert, [text], tmp_path / "out", steps=1, batch_size=1)
