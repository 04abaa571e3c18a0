"""The report's plots: PNGs that exist, are byte-identical for the same inputs, and draw what they say."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.patches import Rectangle
from PIL import Image

from xstilts.analysis import plots
from xstilts.analysis.model import Figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

ARMS = ["none", "mnli", "squad"]
TARGETS = ["xnli", "pawsx"]
MEAN = [[0.0, None], [2.3, -0.4], [-3.1, math.nan]]
LOW = [[None, None], [1.1, -1.0], [-4.0, None]]
HIGH = [[None, None], [3.5, 0.2], [-2.2, None]]
BARS = {"none": {"en": 80.0, "tr": 60.0, "de": 75.0, "zh": 55.0}, "mnli": {"en": 84.0, "tr": None, "zh": 58.0, "xx": 50.0}}
GROUPS = {"de": "fusional", "tr": "agglutinative", "en": "fusional", "fi": "agglutinative", "zh": "isolating"}
# log10 sizes 1, 1, 2, 2, 3 with these degradations fit y = 7 - 2 log10(size) exactly (worked by hand:
# mean x 1.8, mean y 3.4, Sxx 2.8, Sxy -5.6); the None point is dropped.
SIZES = [10, 10, 100, 100, 1000, 1000]
DEGRADATIONS = [4.0, 6.0, 3.0, 3.0, 1.0, None]


def draw_all(folder):
    return [
        plots.delta_heatmap(ARMS, TARGETS, MEAN, LOW, HIGH, folder / "heat.png", "Deltas"),
        plots.language_bars(BARS, GROUPS, folder / "bars.png", "Per language"),
        plots.size_scatter(SIZES, DEGRADATIONS, folder / "size.png", "Size", spearman=(-0.9, -1.0, -0.5), pearson=-0.8),
    ]


def test_each_plot_writes_a_png_without_a_software_stamp(tmp_path):
    figures = draw_all(tmp_path)
    assert [f.title for f in figures] == ["Deltas", "Per language", "Size"]
    for figure, name in zip(figures, ["heat.png", "bars.png", "size.png"]):
        assert isinstance(figure, Figure) and figure.path == tmp_path / name
        data = figure.path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
        with Image.open(figure.path) as image:
            assert "Software" not in image.info
            assert image.size[0] > 300 and image.size[1] > 200
            # Not a blank canvas: a plot has many distinct colours.
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 20
    assert "within noise" in figures[0].caption


def test_same_inputs_give_byte_identical_pngs(tmp_path):
    first = draw_all(tmp_path / "a")
    second = draw_all(tmp_path / "b")
    for a, b in zip(first, second):
        assert a.path.read_bytes() == b.path.read_bytes()


def test_heatmap_annotates_cells_and_hatches_those_whose_interval_contains_zero():
    fig = plots._heatmap(ARMS, TARGETS, (MEAN, LOW, HIGH), "Deltas", digits=1)
    ax = fig.axes[0]
    texts = {text.get_text(): text for text in ax.texts}
    # Missing means (None, NaN) are blank; a mean without an interval is shown alone.
    assert set(texts) == {"0.0", "2.3\n[1.1, 3.5]", "-0.4\n[-1.0, 0.2]", "-3.1\n[-4.0, -2.2]"}
    hatched = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch()]
    assert [(p.get_x(), p.get_y()) for p in hatched] == [(0.5, 0.5)]  # row mnli, column pawsx
    assert texts["-0.4\n[-1.0, 0.2]"].get_color() == "0.45"
    assert texts["2.3\n[1.1, 3.5]"].get_fontweight() == "bold"
    # The colour map is centred on 0: symmetric limits around the largest |delta|.
    assert ax.images[0].norm.vmin == -3.1 and ax.images[0].norm.vmax == 3.1


def test_heatmap_rejects_a_matrix_of_the_wrong_shape(tmp_path):
    with pytest.raises(ValueError, match="3 rows of 2 values"):
        plots.delta_heatmap(ARMS, TARGETS, MEAN[:2], LOW, HIGH, tmp_path / "x.png", "Deltas")


def test_language_bars_order_languages_by_group_and_skip_missing_values():
    fig = plots._bars(BARS, GROUPS, "Per language", "accuracy")
    ax = fig.axes[0]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["de", "en", "tr", "zh", "xx"]
    group_labels = [t.get_text() for t in ax.texts]
    assert group_labels == ["fusional", "agglutinative", "isolating", "other"]
    # 4 values for "none", 3 present of 4 for "mnli" (tr is None, de absent): 7 bars.
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == [50.0, 55.0, 58.0, 60.0, 75.0, 80.0, 84.0]
    assert len(ax.lines) == 3  # dashed separators between the four groups
    assert ax.get_ylabel() == "accuracy"


def test_size_scatter_fits_the_trend_on_log10_size():
    x = np.array(SIZES[:5], dtype=float)
    y = np.array(DEGRADATIONS[:5], dtype=float)
    fig = plots._scatter(x, y, fit=True, labels=("Size", "examples", "drop"), correlations=["Spearman r = -0.90"])
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "examples (log scale)"
    means = next(line for line in ax.lines if line.get_label() == "mean per size")
    assert means.get_xdata().tolist() == [10.0, 100.0, 1000.0] and means.get_ydata().tolist() == [5.0, 3.0, 1.0]
    trend = next(line for line in ax.lines if line.get_label().startswith("trend"))
    assert trend.get_label() == "trend: -2 per decade"
    assert trend.get_ydata()[0] == pytest.approx(5.0) and trend.get_ydata()[-1] == pytest.approx(1.0)
    assert ax.get_legend().get_title().get_text() == "Spearman r = -0.90"


def test_size_scatter_is_linear_with_non_positive_sizes_and_skips_the_fit_on_one_size():
    fig = plots._scatter(np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 5.0]), fit=True, labels=("t", "x", "y"), correlations=[])
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and ax.get_xlabel() == "x"
    assert next(line for line in ax.lines if line.get_label().startswith("trend")).get_label() == "trend: +2 per unit"
    single = plots._scatter(np.array([5.0, 5.0]), np.array([1.0, 2.0]), fit=True, labels=("t", "x", "y"), correlations=[])
    assert not [line for line in single.axes[0].lines if line.get_label().startswith("trend")]


def test_correlation_annotation_with_and_without_interval():
    assert plots._correlation("Pearson", -0.8) == "Pearson r = -0.80"
    assert plots._correlation("Spearman", (0.5, 0.1, 0.9)) == "Spearman r = 0.50 [0.10, 0.90]"
    assert plots._correlation("Pearson", None) == ""
