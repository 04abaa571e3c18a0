"""Rendering a Report: the HTML page, Markdown, LaTeX and report.json say the same numbers, escape
user text per format, embed the figures, and replace the output folder atomically."""

from __future__ import annotations

import base64
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from xstilts.analysis import plots, render
from xstilts.analysis.model import Report, Section, Table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_report(folder: Path, title: str = "Study <b>x</b>") -> Report:
    """Two sections, None/NaN cells, a flagged row, special characters and two real figures."""
    heat = plots.delta_heatmap(["none", "mnli"], ["xnli"], [[0.0], [2.3]], [[None], [1.1]], [[None], [3.5]],
                               folder / "heat.png", "Deltas vs none")
    size = plots.size_scatter([10, 100, 1000], [5.0, 3.0, 1.0], folder / "size.png", "Size vs degradation")
    scores = Table(
        title="Scores a_b & 50%",
        columns=["arm", "xnli", "n"],
        rows=[["none", 71.234, 3], ["<script>alert(1)</script>", None, 2], ["mnli", -0.004, None]],
        notes=["seen-task: the start model saw the task; {x} ~ ^ \\ $ #"],
        digits=2,
        flags={1: ["seen-task", "same-language"]},
        name="scores",
    )
    other = Table(title="Scores a_b & 50%", columns=["language", "delta"], rows=[["tr", 1.25], ["fi", math.nan]])
    return Report(
        title=title,
        sections=[
            Section(title="Main results", text=["Deltas & <i>noise</i>."], tables=[scores, other], figures=[heat]),
            Section(title="Main results", tables=[], figures=[size]),
        ],
        meta={"study": "mini_c", "store": "/tmp/store"},
    )


class PageParser(HTMLParser):
    """Collects each table's rows (cell text without flag badges, badges apart) and the img srcs."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.flags: dict[str, dict[int, list[str]]] = {}
        self.images: list[str] = []
        self.table = self.cell = self.badge = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "id" in attrs:
            self.table = attrs["id"]
            self.tables[self.table], self.flags[self.table] = [], {}
        elif tag == "tr" and self.table:
            self.tables[self.table].append([])
        elif tag == "td" and self.table:
            self.cell = ""
        elif tag == "span" and attrs.get("class") == "flag" and self.cell is not None:
            self.badge = ""
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "table":
            self.table = None
        elif tag == "td" and self.cell is not None:
            self.tables[self.table][-1].append(self.cell)
            self.cell = None
        elif tag == "span" and self.badge is not None:
            row = len(self.tables[self.table]) - 2  # minus the header row
            self.flags[self.table].setdefault(row, []).append(self.badge)
            self.badge = None

    def handle_data(self, data):
        if self.badge is not None:
            self.badge += data
        elif self.cell is not None:
            self.cell += data


@pytest.fixture
def rendered(tmp_path):
    report = make_report(tmp_path / "plots")
    return report, render.write_report(report, tmp_path / "out")


def test_write_report_returns_the_files_it_wrote(rendered, tmp_path):
    _, paths = rendered
    out = tmp_path / "out"
    assert paths == {"html": out / "index.html", "markdown": out / "report.md", "latex": out / "report.tex",
                     "json": out / "report.json", "figures": out / "figures"}
    assert sorted(p.name for p in paths["figures"].iterdir()) == [
        "main-results-2-size-vs-degradation.png", "main-results-deltas-vs-none.png"]
    # No temporary sibling is left behind.
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_html_has_every_cell_formatted_and_user_text_escaped(rendered):
    _, paths = rendered
    page = paths["html"].read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(page)
    assert parser.tables["scores"][1:] == [
        ["none", "71.23", "3"], ["<script>alert(1)</script>", "", "2"], ["mnli", "0.00", ""]]
    assert parser.flags["scores"] == {1: ["seen-task", "same-language"]}
    assert parser.tables["scores-a_b-50"][1:] == [["tr", "1.2"], ["fi", ""]]  # digits=1; NaN is empty
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page.lower()
    assert "Study &lt;b&gt;x&lt;/b&gt;" in page and "Deltas &amp; &lt;i&gt;noise&lt;/i&gt;." in page
    assert "Scores a_b &amp; 50%" in page
    assert "seen-task: the start model saw the task" in page


def test_html_is_self_contained(rendered):
    report, paths = rendered
    page = paths["html"].read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(page)
    figures = [report.sections[0].figures[0], report.sections[1].figures[0]]
    assert len(parser.images) == 2
    for src, figure in zip(parser.images, figures):
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        data = base64.b64decode(src[len(prefix):], validate=True)
        assert data.startswith(PNG_MAGIC) and data == figure.path.read_bytes()
    assert not re.search(r"https?:", page)
    assert not re.search(r"<(script|link|iframe)\b", page, re.IGNORECASE)
    assert not re.search(r"(src|href)=\"(?!data:|#)", page)  # only data URIs and in-page anchors


def test_markdown_has_pipe_tables_with_escaped_text_and_figure_links(rendered):
    _, paths = rendered
    lines = paths["markdown"].read_text(encoding="utf-8").splitlines()
    start = lines.index("**Scores a\\_b \\& 50%**")
    assert lines[start + 2: start + 7] == [
        "| arm | xnli | n |",
        "|---|---:|---:|",
        "| none | 71.23 | 3 |",
        "| \\<script\\>alert(1)\\</script\\> †‡ |  | 2 |",
        "| mnli | 0.00 |  |",
    ]
    assert "Flags: † seen-task; ‡ same-language" in lines
    assert "| tr | 1.2 |" in lines and "| fi |  |" in lines
    assert lines[0] == "# Study \\<b\\>x\\</b\\>"
    assert "![Deltas vs none](figures/main-results-deltas-vs-none.png)" in lines
    assert "![Size vs degradation](figures/main-results-2-size-vs-degradation.png)" in lines


def assert_balanced_braces(text: str) -> None:
    depth, i = 0, 0
    while i < len(text):
        if text[i] == "\\":
            i += 2  # an escaped character (\{, \}, \\) is not a group
            continue
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        assert depth >= 0, f"unbalanced '}}' at {i}: {text[max(0, i - 40): i + 1]!r}"
        i += 1
    assert depth == 0


def test_latex_has_booktabs_tables_and_escaped_text(rendered):
    _, paths = rendered
    tex = paths["latex"].read_text(encoding="utf-8")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == 2
    assert r"\caption{Scores a\_b \& 50\%}" in tex
    assert r"\begin{tabular}{lrr}" in tex and r"\begin{tabular}{lr}" in tex
    assert r"\textless{}script\textgreater{}alert(1)\textless{}/script\textgreater{}\textsuperscript{\dag{}}" in tex
    assert r"none & 71.23 & 3 \\" in tex and r"mnli & 0.00 &  \\" in tex
    assert r"\{x\} \textasciitilde{} \textasciicircum{} \textbackslash{} \$ \#" in tex
    assert r"\includegraphics[width=\linewidth]{figures/main-results-deltas-vs-none.png}" in tex
    assert tex.startswith(r"\documentclass{article}") and tex.rstrip().endswith(r"\end{document}")
    assert_balanced_braces(tex)


def test_escape_latex_covers_every_special_character():
    assert render.escape_latex(r"_ % & # $ { } ~ ^ \ ") == (
        r"\_ \% \& \# \$ \{ \} \textasciitilde{} \textasciicircum{} \textbackslash{}")


def test_json_round_trips_the_raw_values(rendered):
    report, paths = rendered
    document = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert document["title"] == report.title and document["meta"] == report.meta
    assert [s["title"] for s in document["sections"]] == ["Main results", "Main results"]
    scores, other = document["sections"][0]["tables"]
    assert scores == {
        "name": "scores", "title": "Scores a_b & 50%", "columns": ["arm", "xnli", "n"],
        "rows": [["none", 71.234, 3], ["<script>alert(1)</script>", None, 2], ["mnli", -0.004, None]],
        "notes": report.sections[0].tables[0].notes, "flags": {"1": ["seen-task", "same-language"]}, "digits": 2,
    }
    assert other["name"] == "scores-a_b-50" and other["rows"] == [["tr", 1.25], ["fi", None]]
    assert document["sections"][1]["figures"] == [
        {"title": "Size vs degradation", "file": "figures/main-results-2-size-vs-degradation.png", "caption": ""}]
    for section in document["sections"]:
        for figure in section["figures"]:
            assert (paths["json"].parent / figure["file"]).read_bytes().startswith(PNG_MAGIC)


def test_rerunning_into_the_same_folder_replaces_it(rendered, tmp_path):
    _, paths = rendered
    stray = tmp_path / "out" / "stale.txt"
    stray.write_text("from an older report")
    render.write_report(make_report(tmp_path / "plots2", title="Second"), tmp_path / "out")
    assert not stray.exists()
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["title"] == "Second"
    assert "<h1>Second</h1>" in paths["html"].read_text(encoding="utf-8")


def test_a_failure_midway_leaves_the_old_report_intact(rendered, tmp_path, monkeypatch):
    _, paths = rendered
    before = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    copies = []

    def copy_then_fail(source, target):
        copies.append(source)
        if len(copies) == 2:
            raise OSError("disk full")
        Path(target).write_bytes(Path(source).read_bytes())

    monkeypatch.setattr(render, "_copy_figure", copy_then_fail)
    with pytest.raises(OSError, match="disk full"):
        render.write_report(make_report(tmp_path / "plots2", title="Second"), tmp_path / "out")
    after = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert after == before and len(copies) == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_missing_figure_file_is_a_clear_error(tmp_path):
    report = make_report(tmp_path / "plots")
    report.sections[1].figures[0].path.unlink()
    with pytest.raises(FileNotFoundError, match="size.png does not exist"):
        render.write_report(report, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_row_with_the_wrong_number_of_cells_is_rejected(tmp_path):
    report = Report(title="t", sections=[Section(title="s", tables=[Table(title="bad", columns=["a", "b"], rows=[[1]])])])
    with pytest.raises(ValueError, match="'bad' row 0 has 1 cells for 2 columns"):
        render.write_report(report, tmp_path / "out")


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [(None, 1, ""), (math.nan, 2, ""), (3, 1, "3"), (2.0, 0, "2"), (1.25, 1, "1.2"), (-0.04, 1, "0.0"),
     (-0.06, 1, "-0.1"), (True, 1, "True"), ("a|b", 1, "a|b"), (float("inf"), 1, "inf")],
)
def test_format_cell(value, digits, text):
    assert render.format_cell(value, digits) == text


def test_names_are_file_safe_and_unique():
    assert render.slugify("Deltas vs. none (XNLI, test)") == "deltas-vs.-none-xnli-test"
    assert render.slugify("../../etc/passwd") == "etc-passwd"
    assert render.slugify("日本語") == "item"
    taken: set[str] = set()
    assert [render._unique("x", taken) for _ in range(3)] == ["x", "x-2", "x-3"]
