"""Size vs degradation (research question e): does more intermediate data shrink the drop on
hard subsets, or across languages?

For a study with a size axis (ReportConfig.size, `xstilts.config.study.SizeAnalysis`), each
run of the target phase gets one degradation per target task:
- `subset`: the full split's score minus the subset's score (split "test/<subset>"), per
  language, averaged over the languages that have both;
- `language`: the training language's (English) score minus that language's score; with
  `language: zero-shot`, minus the mean over every other language.
Runs are then averaged per size (over seeds), and the size is correlated with the degradation
over runs (Spearman and Pearson, with percentile bootstrap intervals that resample runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from xstilts.analysis.frame import spec_train_language
from xstilts.analysis.model import Table
from xstilts.config.study import SizeAnalysis
from xstilts.errors import UserError, did_you_mean

ZERO_SHOT = "zero-shot"


@dataclass
class SizeDegradation:
    """The per-size table, the correlation table, and per task the (sizes, degradations) of
    every run, for the scatter plot."""

    per_size: Table
    correlations: Table
    points: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)

    @property
    def tables(self) -> list[Table]:
        return [self.per_size, self.correlations]


def parse_size(label: object, size: SizeAnalysis) -> float:
    """The numeric size an axis label stands for: the label as a number, else `full_size`."""
    try:
        value = float(str(label))
    except ValueError:
        value = math.nan
    if math.isfinite(value):
        return value
    if size.full_size is None:
        raise UserError(
            f"report.size: label {label!r} of axis {size.axis!r} is not a number; "
            "set report.size.full_size to the size it stands for"
        )
    return float(size.full_size)


def run_degradations(frame: pd.DataFrame, size: SizeAnalysis, *, split: str = "test") -> pd.DataFrame:
    """One row per (run, target task): run, task, label, size, reference (the full-split or
    training-language score), degraded (the subset or other-language score), degradation."""
    column = f"axis:{size.axis}"
    if column not in frame.columns:
        axes = [name.removeprefix("axis:") for name in frame.columns if str(name).startswith("axis:")]
        raise UserError(f"report.size.axis: {size.axis!r} is not an axis of the study{did_you_mean(size.axis, axes)}")
    rows = frame[(frame["phase"] == "target") & (frame["metric"] == "score") & (frame["split"] == split)]
    rows = rows.assign(subset=rows["subset"].fillna("")) if "subset" in rows.columns else rows.assign(subset="")
    records = []
    for (run, task), group in rows.groupby(["run", "task"], sort=True):
        pair = _subset_pair(group, size.subset) if size.subset is not None else _language_pair(group, task, size.language)
        if pair is None:
            continue
        label = group[column].iloc[0]
        records.append({"run": run, "task": task, "label": str(label), "size": parse_size(label, size),
                        "reference": pair[0], "degraded": pair[1], "degradation": pair[0] - pair[1]})
    return pd.DataFrame(records, columns=["run", "task", "label", "size", "reference", "degraded", "degradation"])


def _subset_pair(group: pd.DataFrame, subset: str) -> tuple[float, float] | None:
    full = group[group["subset"] == ""].groupby("language")["value"].mean()
    part = group[group["subset"] == subset].groupby("language")["value"].mean()
    languages = sorted(set(full.index) & set(part.index))
    if not languages:
        return None
    return float(full[languages].mean()), float(part[languages].mean())


def _language_pair(group: pd.DataFrame, task: str, language: str | None) -> tuple[float, float] | None:
    train = group["train_language"].iloc[0] if "train_language" in group.columns else spec_train_language(task)
    scores = group[group["subset"] == ""].groupby("language")["value"].mean()
    others = [lang for lang in scores.index if lang != train] if language == ZERO_SHOT else [language]
    if train not in scores.index or not others or any(lang not in scores.index for lang in others):
        return None
    return float(scores[train]), float(scores[others].mean())


def _correlation(x: np.ndarray, y: np.ndarray, method: str) -> float:
    """The coefficient, or NaN where it is undefined (fewer than 3 runs, a constant variable)."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    test = stats.spearmanr if method == "spearman" else stats.pearsonr
    return float(test(x, y).statistic)


def bootstrap_interval(
    x: np.ndarray, y: np.ndarray, method: str, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of a correlation, resampling (x, y) pairs (runs).

    Written out rather than scipy.stats.bootstrap: with a handful of runs some resamples hold a
    single size, where the coefficient is undefined; those are dropped instead of making the
    whole interval NaN.
    """
    rng = np.random.default_rng(seed)
    n = len(x)
    if n < 3:
        return math.nan, math.nan
    values = np.array([_correlation(x[idx], y[idx], method) for idx in rng.integers(0, n, size=(n_boot, n))])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _describe(size: SizeAnalysis) -> str:
    if size.subset is not None:
        return f"full - {size.subset}"
    return "English - mean of the zero-shot languages" if size.language == ZERO_SHOT else f"English - {size.language}"


def _per_size_rows(task: str, runs: pd.DataFrame) -> list[list]:
    """task, size, labels, runs, mean reference, mean degraded, mean degradation, sd over runs."""
    rows = []
    for value, at_size in runs.groupby("size", sort=True):
        sd = float(at_size["degradation"].std(ddof=1)) if len(at_size) > 1 else None
        labels = "/".join(sorted(set(at_size["label"])))
        rows.append([task, int(value) if float(value).is_integer() else value, labels, len(at_size),
                     at_size["reference"].mean(), at_size["degraded"].mean(), at_size["degradation"].mean(), sd])
    return rows


def _none(value: float) -> float | None:
    return None if not math.isfinite(value) else value


def size_degradation(
    frame: pd.DataFrame,
    size: SizeAnalysis,
    *,
    split: str = "test",
    n_boot: int = 2000,
    seed: int = 0,
) -> SizeDegradation:
    """Degradation per size (mean over seeds) and its correlation with size over runs, per task.

    Args:
        frame: the study frame (`xstilts.analysis.frame.load_frame`).
        size: the study's report.size.
        split: the evaluation split (report.split).
        n_boot: bootstrap resamples for the intervals.
        seed: the bootstrap's random seed (the same seed gives the same intervals).
    """
    runs = run_degradations(frame, size, split=split)
    per_size_rows, correlation_rows, points = [], [], {}
    for task, group in runs.groupby("task", sort=True):
        per_size_rows += _per_size_rows(task, group)
        x, y = group["size"].to_numpy(float), group["degradation"].to_numpy(float)
        points[str(task)] = (x.tolist(), y.tolist())
        row = [task, len(group), group["size"].nunique()]
        for method in ("spearman", "pearson"):
            low, high = bootstrap_interval(x, y, method, n_boot=n_boot, seed=seed)
            row += [_none(_correlation(x, y, method)), _none(low), _none(high)]
        correlation_rows.append(row)
    what = _describe(size)
    per_size = Table(
        title=f"Degradation ({what}) per {size.axis}",
        columns=["task", "size", "label", "runs", "reference score", "degraded score", "degradation", "sd"],
        rows=per_size_rows,
        notes=[f"Degradation = {what} of the {split} score, per run"
               + (" (mean over the languages scored on both)" if size.subset is not None else "")
               + "; mean over the runs (seeds) of each size; sd over runs."],
        name="size-degradation",
    )
    correlations = Table(
        title=f"Correlation of {size.axis} with degradation",
        columns=["task", "runs", "sizes", "spearman", "spearman low", "spearman high", "pearson", "pearson low", "pearson high"],
        rows=correlation_rows,
        notes=[f"Over runs; 95% percentile bootstrap intervals resampling runs ({n_boot} resamples, seed {seed}). "
               "Blank: undefined (fewer than 3 runs or a single size)."],
        digits=2,
        name="size-correlation",
    )
    return SizeDegradation(per_size=per_size, correlations=correlations, points=points)
