"""Batched generation and rank scoring of text-to-text models (formats/generation.py)."""

import pytest
import torch

from tiny_t5 import ScriptedModel, build_tiny_t5, build_tokenizer
from xstilts.config.schema import Precision
from xstilts.formats.generation import generate_texts, length_sorted_batches, rank_scores

TEXTS = ["a b c d e", "a", "b c", "c d e f g h i", "d e f"]
DEVICE = torch.device("cpu")


def features_of(tokenizer, texts):
    return [dict(tokenizer(text)) for text in texts]


def test_length_sorted_batches():
    assert length_sorted_batches([3, 9, 5, 9, 1], 2) == [[1, 3], [2, 0], [4]]
    assert length_sorted_batches([], 4) == []


def test_generation_order_is_restored_after_length_sorting():
    tokenizer = build_tokenizer(TEXTS + ["x y z"])
    answers = {text: f"x {text}" for text in TEXTS}  # each input gets its own output
    model = ScriptedModel(tokenizer, answers)
    model.train()
    outputs = generate_texts(
        model, features_of(tokenizer, TEXTS), tokenizer=tokenizer, device=DEVICE, precision=Precision.FP32,
        batch_size=2, max_new_tokens=7, num_beams=3,
    )
    assert outputs == [f"x {text}" for text in TEXTS]
    # batches were longest first, and generation was greedy/beam without sampling, as asked
    assert model.seq2seq.batches == [["c d e f g h i", "a b c d e"], ["d e f", "b c"], ["a"]]
    assert model.seq2seq.kwargs[0] == {"max_new_tokens": 7, "num_beams": 3, "do_sample": False}
    assert model.training  # the training flag is restored


def test_batched_generation_equals_one_at_a_time_on_a_tiny_t5():
    tokenizer = build_tokenizer(TEXTS)
    model = build_tiny_t5(tokenizer, seed=3)
    # An untrained model mostly ends at once: make it say something, so outputs differ by input.
    model.seq2seq.generation_config.min_new_tokens = 4
    model.seq2seq.generation_config.suppress_tokens = [tokenizer.pad_token_id, tokenizer.unk_token_id]
    features = features_of(tokenizer, TEXTS)
    settings = dict(tokenizer=tokenizer, device=DEVICE, precision=Precision.FP32, max_new_tokens=5)
    batched = generate_texts(model, features, batch_size=3, **settings)
    alone = [generate_texts(model, [feature], batch_size=1, **settings)[0] for feature in features]
    assert batched == alone
    assert len(set(batched)) > 1  # a random model that said one thing everywhere would test nothing


def independent_log_likelihood(model, input_ids: list[int], target: list[int]) -> float:
    """Sum of target-token log-likelihoods from the model's own mean loss (one pair at a time)."""
    with torch.no_grad():
        loss = model.seq2seq(input_ids=torch.tensor([input_ids]), labels=torch.tensor([target])).loss
    return -float(loss) * len(target)


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_rank_scores_are_sequence_log_likelihoods(batch_size):
    tokenizer = build_tokenizer(TEXTS + ["yes no maybe so"])
    model = build_tiny_t5(tokenizer, seed=1)
    features = features_of(tokenizer, TEXTS)
    options = [["yes", "no"], ["maybe so", "no", "yes"], ["so"], ["yes no maybe", "no"], ["maybe", "yes"]]
    candidates = [[tokenizer(option)["input_ids"] for option in row] for row in options]
    scores = rank_scores(
        model, features, candidates, tokenizer=tokenizer, device=DEVICE, precision=Precision.FP32, batch_size=batch_size
    )
    for feature, row, got in zip(features, candidates, scores, strict=True):
        expected = [independent_log_likelihood(model, feature["input_ids"], target) for target in row]
        assert got == pytest.approx(expected, abs=1e-4)
        assert all(value < 0 for value in got)
