from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from xstilts.analysis.degradation import bootstrap_interval, parse_size, run_degradations, size_degradation
from xstilts.config.study import SizeAnalysis
from xstilts.errors import UserError


def _rows(run, label, task, scores, *, subset="", phase="target", metric="score", split="test"):
    return [
        {"run": run, "axis:size": label, "axis:seed": "0", "phase": phase, "task": task, "language": language,
         "split": split, "subset": subset, "metric": metric, "value": value}
        for language, value in scores.items()
    ]


def _subset_frame(degradations: dict[str, tuple[str, float]]) -> pd.DataFrame:
    """One run per entry: full scores de 80 / fr 60, subset scores lower by the given amount."""
    rows = []
    for run, (label, drop) in degradations.items():
        rows += _rows(run, label, "xnli", {"en": 90.0, "de": 80.0, "fr": 60.0})
        rows += _rows(run, label, "xnli", {"de": 80.0 - drop, "fr": 60.0 - drop}, subset="hard")
    return pd.DataFrame(rows)


def test_parse_size():
    size = SizeAnalysis(axis="size", subset="hard", full_size=392702)
    assert parse_size("1000", size) == 1000.0 and parse_size(2.5, size) == 2.5
    assert parse_size("all", size) == 392702.0
    with pytest.raises(UserError, match="report.size.full_size"):
        parse_size("all", SizeAnalysis(axis="size", subset="hard"))


def test_subset_degradation_per_run_by_hand():
    rows = _rows("r1", "1000", "xnli", {"en": 90.0, "de": 80.0, "fr": 60.0})
    rows += _rows("r1", "1000", "xnli", {"de": 70.0, "fr": 56.0}, subset="hard")  # de 10, fr 4: mean 7
    rows += _rows("r1", "1000", "xnli", {"de": 0.0}, metric="accuracy", subset="hard")  # not the score
    rows += _rows("r1", "1000", "xnli", {"de": 0.0}, split="dev", subset="hard")  # another split
    runs = run_degradations(pd.DataFrame(rows), SizeAnalysis(axis="size", subset="hard"))
    assert runs.to_dict("records") == [
        {"run": "r1", "task": "xnli", "label": "1000", "size": 1000.0, "reference": 70.0, "degraded": 63.0, "degradation": 7.0}
    ]


def test_language_degradation_by_hand():
    rows = _rows("r1", "all", "xnli", {"en": 90.0, "de": 80.0, "fr": 60.0})
    frame = pd.DataFrame(rows)
    zero_shot = run_degradations(frame, SizeAnalysis(axis="size", language="zero-shot", full_size=5000))
    assert zero_shot[["size", "reference", "degraded", "degradation"]].values.tolist() == [[5000.0, 90.0, 70.0, 20.0]]
    german = run_degradations(frame, SizeAnalysis(axis="size", language="de", full_size=5000))
    assert german["degradation"].tolist() == [10.0]
    assert run_degradations(frame, SizeAnalysis(axis="size", language="sw", full_size=5000)).empty


def test_size_degradation_tables_and_correlations_by_hand():
    # sizes 1000..4000 (4000 given as "all"), two seeds at 1000; degradations 1, 3 | 3 | 2 | 4 + 6
    frame = _subset_frame({
        "a": ("1000", 1.0), "b": ("1000", 3.0), "c": ("2000", 3.0), "d": ("3000", 2.0), "e": ("all", 10.0),
    })
    result = size_degradation(frame, SizeAnalysis(axis="size", subset="hard", full_size=4000), n_boot=200, seed=1)
    assert result.per_size.rows[0] == ["xnli", 1000, "1000", 2, 70.0, 68.0, 2.0, pytest.approx(math.sqrt(2))]
    assert [row[1:4] + row[6:7] for row in result.per_size.rows] == [
        [1000, "1000", 2, 2.0], [2000, "2000", 1, 3.0], [3000, "3000", 1, 2.0], [4000, "all", 1, 10.0]
    ]
    assert result.per_size.rows[1][7] is None  # one run: no sd
    sizes, degradations = result.points["xnli"]
    assert sizes == [1000.0, 1000.0, 2000.0, 3000.0, 4000.0] and degradations == [1.0, 3.0, 3.0, 2.0, 10.0]
    # by hand: x ranks 1.5 1.5 3 4 5, y ranks 1 3.5 3.5 2 5 (both mean 3):
    # Spearman = sum(dx*dy) / sqrt(sum dx^2 * sum dy^2) = 5.25 / sqrt(9.5 * 9.5)
    # Pearson: mean size 2200, mean degradation 3.8 -> 14200 / sqrt(6.8e6 * 50.8) = 0.7640
    row = result.correlations.rows[0]
    assert row[:3] == ["xnli", 5, 4]
    assert row[3] == pytest.approx(5.25 / 9.5)
    assert row[6] == pytest.approx(14200 / math.sqrt(6.8e6 * 50.8))
    assert row[4] <= row[3] <= row[5] and row[7] <= row[6] <= row[8]
    again = size_degradation(frame, SizeAnalysis(axis="size", subset="hard", full_size=4000), n_boot=200, seed=1)
    assert again.correlations.rows == result.correlations.rows  # seeded


def test_hand_computed_coefficients():
    x, y = np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 3, 10])
    frame = _subset_frame({f"r{i}": (str(int(a * 1000)), b) for i, (a, b) in enumerate(zip(x, y, strict=True))})
    row = size_degradation(frame, SizeAnalysis(axis="size", subset="hard"), n_boot=100).correlations.rows[0]
    assert row[3] == pytest.approx(1.0)  # monotone
    assert row[6] == pytest.approx(14 / math.sqrt(5 * 50))  # 0.8854
    assert (row[4], row[5]) == (pytest.approx(1.0), pytest.approx(1.0))  # every defined resample is monotone


def test_perfectly_linear_interval_and_undefined_cases():
    x, y = np.array([1.0, 2, 3, 4, 5]), np.array([10.0, 8, 6, 4, 2])
    assert bootstrap_interval(x, y, "pearson", n_boot=300) == (pytest.approx(-1.0), pytest.approx(-1.0))
    assert all(math.isnan(v) for v in bootstrap_interval(x[:2], y[:2], "spearman"))
    frame = _subset_frame({"a": ("1000", 1.0), "b": ("1000", 3.0), "c": ("1000", 2.0)})
    row = size_degradation(frame, SizeAnalysis(axis="size", subset="hard"), n_boot=50).correlations.rows[0]
    assert row == ["xnli", 3, 1, None, None, None, None, None, None]


def test_unknown_size_axis():
    frame = _subset_frame({"a": ("1000", 1.0)})
    with pytest.raises(UserError, match="report.size.axis: 'sise' is not an axis of the study .did you mean 'size'"):
        run_degradations(frame, SizeAnalysis(axis="sise", subset="hard"))
