"""Seed summaries and paired tests: hand-computed p-values, verdicts, the accuracy fast path."""

from __future__ import annotations

import numpy as np
import pytest

from xstilts.analysis.statistics import (
    BETTER, TOO_FEW_EXAMPLES, TOO_FEW_SEEDS, WITHIN_NOISE, WORSE, Records, bootstrap_p_value,
    paired_over_examples, paired_over_seeds, resampled_scores, summarize,
)
from xstilts.errors import UserError
from xstilts.evaluation.records import score_records, write_records
from xstilts.tasks.registry import load_registry

REGISTRY = load_registry()
LABELS = ["entailment", "neutral", "contradiction"]


def classification(predictions: list[str], labels: list[str], name: str = "a") -> Records:
    examples = [{"id": str(i), "text_a": f"p{i}", "text_b": f"h{i}", "label": label} for i, label in enumerate(labels)]
    return Records(name, examples, list(predictions))


def test_summarize_mean_sd_and_interval():
    summary = summarize([1.0, 2.0, 3.0])
    assert (summary.n, summary.mean, summary.sd) == (3, 2.0, 1.0)
    assert 1.0 <= summary.low < 2.0 < summary.high <= 3.0
    assert summarize([1.0, 2.0, 3.0]) == summary  # seeded: the same interval every time


def test_summarize_one_two_and_no_values():
    assert summarize([5.0]) == summarize([5.0]) and summarize([5.0]).sd is None
    assert (summarize([5.0]).n, summarize([5.0]).mean, summarize([5.0]).low) == (1, 5.0, None)
    assert summarize([]).n == 0 and summarize([]).mean is None
    two = summarize([4.0, 6.0])
    assert (two.mean, two.sd) == (5.0, pytest.approx(2 ** 0.5))
    assert 4.0 <= two.low <= two.high <= 6.0
    same = summarize([4.0, 4.0])
    assert (same.sd, same.low, same.high) == (0.0, 4.0, 4.0)


def t2_p_value(t: float) -> float:
    """Two-sided p of Student's t with 2 degrees of freedom, in closed form: 1 - |t| / sqrt(t^2 + 2)."""
    return 1 - abs(t) / (t * t + 2) ** 0.5


def test_paired_t_test_p_value_by_hand():
    # Differences (1, 2, 3): mean 2, sd 1, t = 2 / (1 / sqrt 3).
    result = paired_over_seeds({0: 3.0, 1: 4.0, 2: 5.0}, {0: 2.0, 1: 2.0, 2: 2.0})
    assert (result.n, result.mean_diff) == (3, 2.0)
    assert result.p_value == pytest.approx(t2_p_value(2 * 3 ** 0.5))  # 0.074
    assert result.verdict == WITHIN_NOISE
    assert 1.0 <= result.low <= result.high <= 3.0
    # Differences (1, -2, 3): mean 2/3, sd sqrt(114 / 18).
    mixed = paired_over_seeds({0: 1.0, 1: -2.0, 2: 3.0}, {0: 0.0, 1: 0.0, 2: 0.0})
    assert mixed.p_value == pytest.approx(t2_p_value((2 / 3) / ((114 / 18) ** 0.5 / 3 ** 0.5)))


def test_the_same_difference_in_every_seed_has_no_noise():
    result = paired_over_seeds({s: 60.0 + s for s in range(5)}, {s: 10.0 + s for s in range(5)})
    assert (result.mean_diff, result.p_value, result.low, result.high, result.verdict) == (50.0, 0.0, 50.0, 50.0, BETTER)
    assert paired_over_seeds({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}).verdict == WITHIN_NOISE


def test_only_seeds_present_in_both_are_paired():
    result = paired_over_seeds({0: 3.0, 1: 4.0, 2: 5.0, 7: 100.0}, {0: 2.0, 1: 2.0, 2: 2.0, 9: -100.0})
    assert (result.n, result.mean_diff) == (3, 2.0)
    assert result.p_value == pytest.approx(t2_p_value(2 * 3 ** 0.5))


def test_too_few_seeds():
    one = paired_over_seeds({0: 3.0, 1: 1.0}, {0: 2.0})
    assert (one.n, one.mean_diff, one.p_value, one.verdict) == (1, 1.0, None, TOO_FEW_SEEDS)
    assert paired_over_seeds({0: 1.0}, {1: 1.0}).verdict == TOO_FEW_SEEDS


def test_six_seeds_all_ahead_is_better_only_below_alpha():
    # Differences 1..6: mean 3.5, sd sqrt(3.5), t = 3.5 / (sqrt(3.5) / sqrt 6) = 4.58 with 5 df: p = 0.0059.
    a = {seed: 10.0 + seed for seed in range(6)}
    b = {seed: 9.0 for seed in range(6)}
    result = paired_over_seeds(a, b, alpha=0.05)
    assert (result.mean_diff, result.verdict) == (3.5, BETTER)
    assert result.p_value == pytest.approx(0.005934, abs=1e-5)
    assert result.low > 0
    assert paired_over_seeds(b, a, alpha=0.05).verdict == WORSE
    assert paired_over_seeds(a, b, alpha=0.005).verdict == WITHIN_NOISE


def test_identical_seeds_are_within_noise():
    result = paired_over_seeds({0: 5.0, 1: 6.0}, {0: 5.0, 1: 6.0})
    assert (result.mean_diff, result.low, result.high, result.p_value, result.verdict) == (0.0, 0.0, 0.0, 1.0, WITHIN_NOISE)


def test_identical_runs_give_zero_difference():
    spec = REGISTRY.get("xnli")
    labels = [LABELS[i % 3] for i in range(40)]
    predictions = [LABELS[(i * 7) % 3] for i in range(40)]
    result = paired_over_examples(spec, classification(predictions, labels), classification(predictions, labels, "b"))
    assert (result.n, result.mean_diff, result.low, result.high, result.p_value) == (40, 0.0, 0.0, 0.0, 1.0)
    assert result.verdict == WITHIN_NOISE


def test_all_right_vs_half_right_is_better():
    spec = REGISTRY.get("xnli")
    labels = [LABELS[i % 3] for i in range(100)]
    half = [label if i % 2 else "neutral" if label != "neutral" else "entailment" for i, label in enumerate(labels)]
    right, wrong = classification(labels, labels), classification(half, labels, "b")
    result = paired_over_examples(spec, right, wrong, n_resamples=1000, seed=3)
    assert (result.n, result.mean_diff) == (100, 50.0)
    # No resample has the half-right run ahead: p = 2 * (0 + 1) / (1000 + 1).
    assert result.p_value == pytest.approx(2 / 1001) and result.p_value < 0.01
    assert result.verdict == BETTER and result.low > 0
    assert paired_over_examples(spec, wrong, right, n_resamples=1000, seed=3).verdict == WORSE


def test_accuracy_fast_path_equals_rescoring():
    spec = REGISTRY.get("xnli")
    rng = np.random.default_rng(1)
    labels = [LABELS[i] for i in rng.integers(0, 3, 57)]
    records = classification([LABELS[i] for i in rng.integers(0, 3, 57)], labels)
    indices = rng.integers(0, 57, size=(50, 57))
    fast = resampled_scores(spec, records, "score", indices)
    generic = resampled_scores(spec, records, "score", indices, vectorised=False)
    assert np.array_equal(fast, generic)
    assert generic[0] == score_records(spec, records.examples, records.predictions, list(indices[0]))["accuracy"]


@pytest.mark.parametrize(("task", "tags", "metric"), [
    ("panx", ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG", "B-ORG"], "score"),
    ("udpos", ["NOUN", "VERB", "ADJ", "DET", "PUNCT"], "f1"),  # POS tags read as chunks, as the official scorer does
    ("ud-feats", ["_", "Number=Sing", "Number=Plur|Case=Nom"], "score"),  # token accuracy
])
def test_tagging_fast_path_equals_rescoring(task, tags, metric):
    spec = REGISTRY.get(task).model_copy(update={"labels": tags if len(set(tags)) == len(tags) else sorted(set(tags))})
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 9, 80)
    gold = [[tags[i] for i in rng.integers(0, len(tags), n)] for n in lengths]
    examples = [{"id": str(i), "tokens": ["w"] * len(labels), "labels": labels} for i, labels in enumerate(gold)]
    # Mostly right, with some tags changed, so samples have every kind of count.
    predictions = [[tag if rng.random() < 0.7 else tags[rng.integers(0, len(tags))] for tag in labels] for labels in gold]
    records = Records("a", examples, predictions)
    indices = np.vstack([rng.integers(0, 80, size=(40, 80)), np.zeros((1, 80), dtype=int)])
    fast = resampled_scores(spec, records, metric, indices)
    assert np.array_equal(fast, resampled_scores(spec, records, metric, indices, vectorised=False))
    assert len(set(fast.tolist())) > 10


def test_tagging_is_rescored_at_corpus_level():
    spec = REGISTRY.get("panx")
    gold = [["B-PER", "I-PER", "O"], ["B-LOC", "O", "B-ORG"]]
    examples = [{"id": str(i), "tokens": ["w"] * 3, "labels": labels} for i, labels in enumerate(gold)]
    a = Records("a", examples, [["B-PER", "I-PER", "O"], ["B-LOC", "O", "O"]])  # 2 of 3 entities, no false one
    b = Records("b", examples, [["O", "O", "O"], ["B-LOC", "O", "B-ORG"]])  # 2 of 3 entities, no false one
    # Corpus-level F1 is 2PR/(P+R) = 2 * 1 * (2/3) / (1 + 2/3) = 0.8 for both; the per-sentence
    # mean would differ (a: (1 + 2/3)/2, b: (0 + 1)/2).
    result = paired_over_examples(spec, a, b, metric="f1", n_resamples=200)
    assert result.mean_diff == pytest.approx(0.0)
    assert score_records(spec, a.examples, a.predictions)["f1"] == pytest.approx(80.0)
    # Sentence 0 twice: 2 of 2 entities; sentence 1 twice: 2 of 4 (P 1, R 1/2, F1 2/3); both: 0.8.
    indices = np.array([[0, 0], [1, 1], [0, 1]])
    assert resampled_scores(spec, a, "f1", indices) == pytest.approx([100.0, 200 / 3, 80.0])


def test_qa_score_is_mean_of_exact_match_and_f1():
    spec = REGISTRY.get("xquad")
    examples = [
        {"id": "q1", "context": "the red house", "question": "which?", "answers": [{"text": "red house", "answer_start": 4}]},
        {"id": "q2", "context": "a blue car", "question": "what?", "answers": [{"text": "blue car", "answer_start": 2}]},
    ]
    a = Records("a", examples, ["red house", "blue"])  # EM 50, F1 (100 + 2/3*100)/2
    b = Records("b", examples, ["", ""])
    result = paired_over_examples(spec, a, b, n_resamples=100)
    f1 = (100 + 200 / 3) / 2
    assert result.mean_diff == pytest.approx((50 + f1) / 2)


def test_mismatched_records_name_both_files(tmp_path):
    spec = REGISTRY.get("xnli")
    a, b = tmp_path / "a.records.jsonl", tmp_path / "b.records.jsonl"
    labelled = classification(["neutral"] * 3, ["neutral"] * 3)
    write_records(a, labelled.examples, labelled.predictions)
    write_records(b, labelled.examples[:2], labelled.predictions[:2])
    with pytest.raises(UserError, match=r"a\.records\.jsonl has 3 examples but .*b\.records\.jsonl has 2"):
        paired_over_examples(spec, Records.read(a), Records.read(b))
    other = [dict(example, id=f"x{i}") for i, example in enumerate(labelled.examples)]
    write_records(b, other, labelled.predictions)
    with pytest.raises(UserError, match=r"a\.records\.jsonl and .*b\.records\.jsonl: item 1 differs"):
        paired_over_examples(spec, Records.read(a), Records.read(b))


def test_unknown_metric_and_one_example():
    spec = REGISTRY.get("xnli")
    one = classification(["neutral"], ["neutral"])
    assert paired_over_examples(spec, one, one).verdict == TOO_FEW_EXAMPLES
    with pytest.raises(UserError, match="no metric 'acuracy'.*accuracy"):
        paired_over_examples(spec, one, one, metric="acuracy")


def test_bootstrap_p_value_counts_sign_flips():
    assert bootstrap_p_value(2.0, np.array([1.0, 2.0, 3.0, -1.0])) == pytest.approx(2 * 2 / 5)
    assert bootstrap_p_value(-2.0, np.array([-1.0, -2.0, -3.0, -4.0])) == pytest.approx(2 / 5)
    assert bootstrap_p_value(1.0, np.array([0.0, -1.0, 0.0, 1.0])) == 1.0
    assert bootstrap_p_value(0.0, np.array([1.0])) == 1.0
