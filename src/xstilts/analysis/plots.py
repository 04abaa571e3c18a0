"""The report's plots: arm x target delta heatmap, per-language bars, size vs degradation.

Each function writes one PNG and returns the `Figure` that points at it. The plots are built on
a bare `matplotlib.figure.Figure` (the Agg canvas, no pyplot and no global backend switch), under
matplotlib's default style, at a fixed dpi and without the PNG's "Software" text, so the same
inputs give byte-identical files whatever the user's matplotlibrc says. Missing values (None or
NaN) are left blank.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import style as mpl_style
from matplotlib.colors import Normalize
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import Rectangle

from xstilts.analysis.model import Figure
from xstilts.atomic import atomic_path

DPI = 100
# Matplotlib writes its version as the PNG's "Software" text; dropping it keeps files identical
# across matplotlib upgrades that do not change the drawing.
PNG_METADATA = {"Software": None}
NOISE_HATCH = "///"
Correlation = float | Sequence[float] | None  # r, or (r, low, high) with a confidence interval


def delta_heatmap(
    arms: Sequence[str],
    targets: Sequence[str],
    mean: Sequence[Sequence[float | None]],
    low: Sequence[Sequence[float | None]],
    high: Sequence[Sequence[float | None]],
    path: Path,
    title: str,
    *,
    digits: int = 1,
    caption: str = "",
) -> Figure:
    """Arm x target deltas on a diverging colour map centred on 0, each cell "mean [low, high]".

    Cells whose interval contains 0 are hatched and their text greyed: the difference is within
    noise. Cells without a mean are blank; cells without an interval show the mean alone.

    Args:
        arms: row labels.
        targets: column labels.
        mean, low, high: len(arms) x len(targets) values (None or NaN where missing).
        path: the PNG to write.
        title: the plot's title (also the Figure's).
        digits: decimals in the cell annotations.
        caption: the Figure's caption; a sentence explaining the cells by default.
    """
    with _style():
        _save(_heatmap(arms, targets, (mean, low, high), title, digits), path)
    default = "Each cell: mean delta [95% interval]; hatched cells with grey text: the interval contains 0 (within noise)."
    return Figure(title=title, path=Path(path), caption=caption or default)


def _heatmap(arms, targets, cells, title: str, digits: int) -> MplFigure:
    values, lows, highs = (_matrix(m, len(arms), len(targets)) for m in cells)
    finite = np.abs(values[np.isfinite(values)])
    bound = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    norm = Normalize(vmin=-bound, vmax=bound)
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="white")
    fig = MplFigure(figsize=(max(4.0, 1.6 * len(targets) + 2.5), max(2.5, 0.6 * len(arms) + 1.5)), dpi=DPI)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto")
    for i in range(len(arms)):
        for j in range(len(targets)):
            _annotate_cell(ax, i, j, (values[i, j], lows[i, j], highs[i, j]), cmap(norm(values[i, j])), digits)
    ax.set_xticks(range(len(targets)), labels=list(targets), rotation=30, ha="right")
    ax.set_yticks(range(len(arms)), labels=list(arms))
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="delta")
    return fig


def _annotate_cell(ax, i: int, j: int, cell: tuple[float, float, float], colour, digits: int) -> None:
    value, low, high = cell
    if not math.isfinite(value):
        return
    has_interval = math.isfinite(low) and math.isfinite(high)
    text = f"{value:.{digits}f}" + (f"\n[{low:.{digits}f}, {high:.{digits}f}]" if has_interval else "")
    within_noise = has_interval and low <= 0 <= high
    if within_noise:
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch=NOISE_HATCH, edgecolor="0.6", lw=0))
    # Dark cells get white text; within-noise cells are greyed so they do not read as results.
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    text_colour = "0.45" if within_noise else ("white" if luminance < 0.5 else "black")
    weight = "normal" if within_noise else "bold"
    ax.text(j, i, text, ha="center", va="center", fontsize=8, color=text_colour, fontweight=weight)


def language_bars(
    values: Mapping[str, Mapping[str, float | None]],
    groups: Mapping[str, str],
    path: Path,
    title: str,
    *,
    ylabel: str = "score",
    caption: str = "",
) -> Figure:
    """Per-language bars, one bar per arm, with languages ordered and separated by group.

    Groups appear in the order they first occur in `groups`, languages within a group in the
    order of `groups`; languages that are in `values` but not in `groups` go last under "other".
    Dashed lines separate the groups and each group's name is written above its languages.

    Args:
        values: arm -> language -> value (None or NaN: no bar).
        groups: language -> group name (e.g. morphological type).
        path: the PNG to write.
        title: the plot's title (also the Figure's).
        ylabel: the y axis label.
        caption: the Figure's caption.
    """
    with _style():
        _save(_bars(values, groups, title, ylabel), path)
    return Figure(title=title, path=Path(path), caption=caption)


def _bars(values: Mapping[str, Mapping[str, float | None]], groups: Mapping[str, str], title: str, ylabel: str) -> MplFigure:
    arms = list(values)
    ordered = _languages_by_group(values, groups)
    languages = [language for language, _ in ordered]
    width = 0.8 / max(1, len(arms))
    fig = MplFigure(figsize=(max(5.0, 0.45 * len(languages) * max(1, len(arms)) ** 0.5 + 2.0), 4.0), dpi=DPI)
    ax = fig.add_subplot()
    positions = np.arange(len(languages), dtype=float)
    for k, arm in enumerate(arms):
        heights = np.array([_float(values[arm].get(language)) for language in languages])
        present = np.isfinite(heights)  # a missing value is no bar, not a bar of height 0
        offset = (k - (len(arms) - 1) / 2) * width
        ax.bar(positions[present] + offset, heights[present], width, label=arm, color=f"C{k % 10}")
    _mark_groups(ax, ordered)
    ax.set_xticks(positions, labels=languages)
    ax.set_xlim(-0.6, len(languages) - 0.4)
    ax.set_ylabel(ylabel)
    ax.set_title(title, pad=22)
    if arms:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def _languages_by_group(values: Mapping[str, Mapping[str, float | None]], groups: Mapping[str, str]) -> list[tuple[str, str]]:
    present = {language for per_arm in values.values() for language in per_arm}
    order = list(dict.fromkeys(groups.values()))
    grouped = [(language, group) for group in order for language, g in groups.items() if g == group and language in present]
    grouped += [(language, "other") for language in sorted(present - set(groups))]
    return grouped


def _mark_groups(ax, ordered: list[tuple[str, str]]) -> None:
    start = 0
    for index in range(1, len(ordered) + 1):
        if index < len(ordered) and ordered[index][1] == ordered[start][1]:
            continue
        if index < len(ordered):
            ax.axvline(index - 0.5, color="0.5", linestyle="--", linewidth=0.8)
        ax.text((start + index - 1) / 2, 1.01, ordered[start][1], transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=8, style="italic")
        start = index


def size_scatter(
    sizes: Sequence[float],
    degradations: Sequence[float | None],
    path: Path,
    title: str,
    fit: bool = True,
    *,
    spearman: Correlation = None,
    pearson: Correlation = None,
    xlabel: str = "intermediate-set size",
    ylabel: str = "degradation",
    caption: str = "",
) -> Figure:
    """Degradation per seed against size, the mean per size, and a least-squares trend.

    Sizes usually grow by factors (1k, 10k, 100k), so when every size is positive the x axis is
    logarithmic and the trend is fitted on log10(size); otherwise both are linear. The axis label
    says which.

    Args:
        sizes: one size per point (per seed and size).
        degradations: the matching degradations (None or NaN points are dropped).
        path: the PNG to write.
        title: the plot's title (also the Figure's).
        fit: draw the trend line (needs two distinct sizes).
        spearman, pearson: r, or (r, low, high), written in the corner when given.
        xlabel, ylabel: axis labels ("(log scale)" is appended to xlabel on a log axis).
        caption: the Figure's caption.
    """
    x = np.array([_float(s) for s in sizes])
    y = np.array([_float(d) for d in degradations])
    keep = np.isfinite(x) & np.isfinite(y)
    correlations = [text for text in (_correlation("Spearman", spearman), _correlation("Pearson", pearson)) if text]
    with _style():
        _save(_scatter(x[keep], y[keep], fit=fit, labels=(title, xlabel, ylabel), correlations=correlations), path)
    return Figure(title=title, path=Path(path), caption=caption)


def _scatter(x: np.ndarray, y: np.ndarray, *, fit: bool, labels: tuple[str, str, str], correlations: list[str]) -> MplFigure:
    title, xlabel, ylabel = labels
    log = bool(x.size) and bool(np.all(x > 0))
    fig = MplFigure(figsize=(5.5, 4.0), dpi=DPI)
    ax = fig.add_subplot()
    ax.scatter(x, y, s=18, color="C0", alpha=0.6, label="seed")
    unique = np.unique(x)
    means = np.array([y[x == size].mean() for size in unique])
    ax.plot(unique, means, "D", color="C1", markersize=7, label="mean per size")
    if fit and unique.size >= 2:
        _draw_trend(ax, x, y, unique, log)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(f"{xlabel} (log scale)" if log else xlabel)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="0.7", linewidth=0.8)
    ax.set_title(title)
    # The correlations head the legend, which matplotlib places where it hides the fewest points.
    ax.legend(fontsize=8, loc="best", title="\n".join(correlations) or None, title_fontsize=8)
    return fig


def _draw_trend(ax, x: np.ndarray, y: np.ndarray, unique: np.ndarray, log: bool) -> None:
    transform = np.log10 if log else (lambda v: v)
    slope, intercept = np.polyfit(transform(x), y, deg=1)
    grid = np.geomspace(unique[0], unique[-1], 50) if log else np.linspace(unique[0], unique[-1], 50)
    unit = "per decade" if log else "per unit"
    ax.plot(grid, slope * transform(grid) + intercept, "--", color="C3", label=f"trend: {slope:+.3g} {unit}")


def _correlation(name: str, value: Correlation) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return f"{name} r = {value:.2f}"
    r, low, high = value
    return f"{name} r = {r:.2f} [{low:.2f}, {high:.2f}]"


def _matrix(rows: Sequence[Sequence[float | None]], n_rows: int, n_columns: int) -> np.ndarray:
    shape = [len(row) for row in rows]
    if shape != [n_columns] * n_rows:
        raise ValueError(f"expected {n_rows} rows of {n_columns} values (arms x targets), got row lengths {shape}")
    return np.array([[_float(v) for v in row] for row in rows], dtype=float).reshape(n_rows, n_columns)


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _style():
    # The default style, whatever the user's matplotlibrc sets, keeps plots identical everywhere.
    return mpl_style.context("default")


def _save(fig: MplFigure, path: Path) -> None:
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata=PNG_METADATA, bbox_inches="tight")
