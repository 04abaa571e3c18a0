"""Seed statistics and paired tests between two arms, over seeds and over per-example records.

Everything is seeded and deterministic: the same inputs give the same intervals and p-values.
A difference is called "better" or "worse" only when its p-value is below `alpha` AND its 95%
interval excludes zero; anything else is "within noise" and is labelled, never ranked.

- `summarize`: mean, sample standard deviation and a 95% percentile-bootstrap interval of the
  mean over seeds (scipy.stats.bootstrap).
- `paired_over_seeds`: the paired t-test of the per-seed differences (scipy.stats.ttest_1samp on
  the differences), with a bootstrap interval of their mean.
- `paired_over_examples`: the paired bootstrap over examples (Koehn 2004; Berg-Kirkpatrick et
  al. 2012): both runs are rescored on the SAME resampled example indices with the format's own
  scorer (corpus-level F1 and EM, not per-example averages). The p-value is two-sided: twice
  the share of resamples whose difference does not have the observed sign, with the usual +1
  correction ((k + 1) / (N + 1)), capped at 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats
from seqeval.metrics.sequence_labeling import get_entities

from xstilts.errors import UserError, did_you_mean
from xstilts.evaluation.records import read_records, score_records
from xstilts.evaluation.scorer import task_score
from xstilts.tasks.spec import Format, Metric, TaskSpec

BETTER, WORSE, WITHIN_NOISE = "better", "worse", "within noise"
TOO_FEW_SEEDS, TOO_FEW_EXAMPLES = "too few seeds", "too few examples"
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999
SCORE = "score"  # the task score (scorer.task_score) rather than one of the format's metrics
# Formats whose score is the share of examples predicted right: resampled without rescoring.
_ACCURACY_FORMATS = (Format.PAIR_CLASSIFICATION, Format.SINGLE_CLASSIFICATION, Format.MULTIPLE_CHOICE)


@dataclass(frozen=True)
class Summary:
    """A value over seeds: n, mean, sample standard deviation and the 95% bootstrap interval of
    the mean (sd and interval None for one seed; everything but n None for none)."""

    n: int
    mean: float | None
    sd: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Comparison:
    """A paired difference A - B: n (seeds or examples), the mean difference, its 95% interval,
    the two-sided p-value, how it was computed, and the verdict (better/worse/within noise/too few)."""

    n: int
    mean_diff: float | None
    low: float | None
    high: float | None
    p_value: float | None
    method: str
    verdict: str


@dataclass(frozen=True)
class Records:
    """A records file's examples and predictions (evaluation/records.py), with its path for errors."""

    path: Path
    examples: list
    predictions: list

    @classmethod
    def read(cls, path: Path | str) -> Records:
        examples, predictions = read_records(Path(path))
        return cls(Path(path), examples, predictions)


def summarize(values: Sequence[float], seed: int = 0) -> Summary:
    """Mean, sample sd (ddof=1) and 95% percentile-bootstrap interval of the mean of `values`."""
    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        return Summary(0, None, None, None, None)
    mean = float(data.mean())
    if data.size == 1:
        return Summary(1, mean, None, None, None)
    low, high = _bootstrap_interval(data, seed)
    return Summary(int(data.size), mean, float(data.std(ddof=1)), low, high)


def paired_over_seeds(a: Mapping, b: Mapping, alpha: float = 0.05, seed: int = 0) -> Comparison:
    """A - B over the seeds present in both ({seed: value} each): paired t-test of the mean
    difference (scipy.stats.ttest_rel) and a 95% bootstrap interval of it.

    Why a t-test rather than an exact sign-flip permutation test: with n seeds the smallest
    two-sided permutation p-value is 2/2^n (0.0625 for 5 seeds), so a 5-seed study could never
    separate even a 50-point difference from noise. Equal non-zero differences in every seed
    have no spread: p = 0.
    """
    seeds = sorted(set(a) & set(b), key=str)
    diffs = np.array([a[key] - b[key] for key in seeds], dtype=float)
    n = len(seeds)
    method = f"paired over {n} seeds: paired t-test (df {n - 1}), percentile bootstrap CI"
    if n < 2:
        return Comparison(n, float(diffs[0]) if n else None, None, None, None, method, TOO_FEW_SEEDS)
    if np.all(diffs == diffs[0]):
        p_value = 0.0 if diffs[0] != 0 else 1.0
    else:
        p_value = float(stats.ttest_1samp(diffs, 0.0).pvalue)
    low, high = _bootstrap_interval(diffs, seed)
    mean = float(diffs.mean())
    return Comparison(n, mean, low, high, p_value, method, verdict(mean, low, high, p_value, alpha))


def paired_over_examples(
    spec: TaskSpec, records_a: Records, records_b: Records, metric: str = SCORE, n_resamples: int = 1000,
    seed: int = 0, alpha: float = 0.05,
) -> Comparison:
    """A - B on the same examples: paired bootstrap over example indices (see the module doc).

    Args:
        spec: the task (its format scores the records).
        records_a, records_b: the two runs' records of the same (task, split, language).
        metric: one of the format's metrics ("accuracy", "f1", "exact_match" ...) or "score".

    Raises:
        UserError: the two files do not hold the same items, or `metric` is not the format's.
    """
    check_same_items(records_a, records_b)
    n = len(records_a.examples)
    method = f"paired bootstrap over {n} examples ({n_resamples} resamples, rescored with the task's scorer)"
    observed = _metric(spec, records_a, None, metric) - _metric(spec, records_b, None, metric)
    if n < 2:
        return Comparison(n, observed if n else None, None, None, None, method, TOO_FEW_EXAMPLES)
    indices = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    diffs = resampled_scores(spec, records_a, metric, indices) - resampled_scores(spec, records_b, metric, indices)
    low, high = (float(value) for value in np.percentile(diffs, [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)]))
    p_value = bootstrap_p_value(observed, diffs)
    return Comparison(n, observed, low, high, p_value, method, verdict(observed, low, high, p_value, alpha))


def resampled_scores(spec: TaskSpec, records: Records, metric: str, indices: np.ndarray, vectorised: bool = True) -> np.ndarray:
    """`metric` of `records` on each row of `indices` (one bootstrap sample per row).

    Accuracy (classification, multiple choice, token accuracy) and seqeval F1 are computed with
    numpy from per-example counts, which add up over a sample exactly as the scorer counts them
    (seqeval never joins entities across sentences), giving the same numbers as rescoring; every
    other metric is rescored with `score_records`.
    """
    counts = _example_counts(spec, records, metric) if vectorised else None
    if counts is None:
        return np.array([_metric(spec, records, sample, metric) for sample in indices], dtype=float)
    sums = [column[indices].sum(axis=1) for column in counts]
    if len(sums) == 2:  # (right, total)
        return 100.0 * (sums[0] / sums[1])
    return 100.0 * _seqeval_micro_f1(*sums)


def _example_counts(spec: TaskSpec, records: Records, metric: str) -> list[np.ndarray] | None:
    """Per-example sufficient statistics of the metric: [right, total] for accuracies,
    [true positives, predicted, gold entities] for seqeval F1; None for any other metric."""
    pairs = list(zip(records.predictions, records.examples, strict=True))
    if spec.format in _ACCURACY_FORMATS and metric in (SCORE, "accuracy"):
        return [np.array([p == e["label"] for p, e in pairs], dtype=np.int64), np.ones(len(pairs), dtype=np.int64)]
    if spec.format is not Format.TAGGING:
        return None
    if spec.metric is Metric.TOKEN_ACCURACY and metric in (SCORE, "accuracy"):
        right = [sum(int(p == g) for p, g in zip(pred, e["labels"], strict=True)) for pred, e in pairs]
        return [np.array(right, dtype=np.int64), np.array([len(e["labels"]) for _, e in pairs], dtype=np.int64)]
    if spec.metric is Metric.SEQEVAL_F1 and metric in (SCORE, "f1"):
        rows = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # seqeval warns on every non-BIO tag (POS tags), as in metrics.py
            for pred, example in pairs:
                gold, predicted = set(get_entities([example["labels"]])), set(get_entities([pred]))
                rows.append((len(gold & predicted), len(predicted), len(gold)))
        return [np.array(column, dtype=np.int64) for column in zip(*rows)] if rows else None
    return None


def _seqeval_micro_f1(tp: np.ndarray, predicted: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """seqeval's micro F1 (precision_recall_fscore_support, beta 1, zero_division 0), operation
    for operation, so that each value equals `f1_score` on the sample."""
    precision = tp / np.where(predicted == 0, 1, predicted)
    precision[predicted == 0] = 0.0
    recall = tp / np.where(gold == 0, 1, gold)
    recall[gold == 0] = 0.0
    denominator = 1.0 * precision + recall
    denominator[denominator == 0.0] = 1
    return (1 + 1.0) * precision * recall / denominator


def bootstrap_p_value(observed: float, diffs: np.ndarray) -> float:
    """Two-sided paired-bootstrap p-value: twice the share (with +1 correction) of resampled
    differences that do not have the observed difference's sign; 1 when it is zero."""
    if observed == 0:
        return 1.0
    flipped = int(np.sum(diffs <= 0)) if observed > 0 else int(np.sum(diffs >= 0))
    return float(min(1.0, 2 * (flipped + 1) / (len(diffs) + 1)))


def verdict(mean_diff: float, low: float, high: float, p_value: float, alpha: float) -> str:
    """better/worse only when p < alpha and the interval excludes 0; else within noise."""
    if p_value < alpha and (low > 0 or high < 0):
        return BETTER if mean_diff > 0 else WORSE
    return WITHIN_NOISE


def check_same_items(records_a: Records, records_b: Records) -> None:
    """Both files hold the same items in the same order (ids where every example has one, else
    the examples themselves).

    Raises:
        UserError: naming both files, and the first item that differs.
    """
    a, b = records_a.examples, records_b.examples
    if len(a) != len(b):
        raise UserError(f"{records_a.path} has {len(a)} examples but {records_b.path} has {len(b)}: not the same items")
    with_ids = all(isinstance(e, dict) and "id" in e for e in [*a, *b])
    for number, (x, y) in enumerate(zip(a, b, strict=True), start=1):
        if (x["id"] != y["id"]) if with_ids else (x != y):
            what = f"id {x['id']!r} vs {y['id']!r}" if with_ids else "different examples"
            raise UserError(f"{records_a.path} and {records_b.path}: item {number} differs ({what}): not the same items")


def _metric(spec: TaskSpec, records: Records, indices, metric: str) -> float:
    metrics = score_records(spec, records.examples, records.predictions, None if indices is None else list(indices))
    if metric == SCORE:
        return float(task_score(metrics))
    if metric not in metrics:
        raise UserError(f"task {spec.name!r} has no metric {metric!r}{did_you_mean(metric, [SCORE, *metrics])}")
    return float(metrics[metric])


def _bootstrap_interval(data: np.ndarray, seed: int) -> tuple[float, float]:
    if np.all(data == data[0]):  # every resample has the same mean
        return float(data[0]), float(data[0])
    result = stats.bootstrap(
        (data,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=CONFIDENCE, method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
