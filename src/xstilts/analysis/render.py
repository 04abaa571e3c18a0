"""Render a `Report` to files: one self-contained HTML page, Markdown, LaTeX and report.json.

`write_report(report, out_dir)` builds everything in a temporary sibling folder and renames it
over `out_dir`, so an interrupted or failed render leaves the previous report untouched:

    out_dir/index.html    one page: inline CSS, figures embedded as base64 data URIs, no scripts,
                          no external requests (it opens from a mail attachment or a file share)
    out_dir/report.md     GitHub Markdown pipe tables, figures referenced as figures/NAME.png
    out_dir/report.tex    a LaTeX document with booktabs tables (\\toprule, \\midrule, \\bottomrule)
    out_dir/report.json   the raw cell values, for programs and for tests against the store
    out_dir/figures/      copies of the figures' PNGs

Every string from the report is escaped for its format (HTML by Jinja2's autoescape, Markdown
and LaTeX here). Numbers are shown with the table's `digits`; integers as integers; None and
NaN as empty cells. Flags are badges (HTML) or marks (Markdown, LaTeX) beside a row's first
cell, explained in a legend under the table before its notes.
"""

from __future__ import annotations

import base64
import json
import math
import numbers
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from xstilts.analysis.model import Figure, Report, Section, Table
from xstilts.atomic import atomic_directory

FLAG_MARKS = ("†", "‡", "§", "¶", "‖")
LATEX_MARKS = {"†": r"\dag{}", "‡": r"\ddag{}", "§": r"\S{}", "¶": r"\P{}", "‖": r"\textbardbl{}"}


@dataclass
class RenderedTable:
    """A table ready for every format: unique name, formatted cells, flag marks and legend."""

    table: Table
    name: str
    cells: list[list[str]]
    numeric: list[bool]  # per column: every filled cell is a number (right-aligned)
    marks: dict[int, list[str]]  # row -> marks of its flags, in the table's flag order
    legend: list[tuple[str, str]]  # (mark, flag) in order of first appearance


@dataclass
class RenderedFigure:
    figure: Figure
    file: str  # relative to out_dir, e.g. "figures/deltas.png"
    data_uri: str = ""

    @property
    def stem(self) -> str:
        return Path(self.file).stem


@dataclass
class RenderedSection:
    section: Section
    name: str
    tables: list[RenderedTable] = field(default_factory=list)
    figures: list[RenderedFigure] = field(default_factory=list)


def write_report(report: Report, out_dir: Path) -> dict[str, Path]:
    """Write the report's HTML, Markdown, LaTeX, JSON and figures into `out_dir`, atomically.

    Args:
        report: the report to render.
        out_dir: the folder to create or replace.

    Returns:
        {"html", "markdown", "latex", "json", "figures"} -> the paths they have in `out_dir`.
    """
    out_dir = Path(out_dir)
    names = {"html": "index.html", "markdown": "report.md", "latex": "report.tex", "json": "report.json"}
    with atomic_directory(out_dir) as tmp:
        sections = _prepare(report)
        (tmp / "figures").mkdir()
        for section in sections:
            for rendered in section.figures:
                _copy_figure(rendered.figure.path, tmp / rendered.file)
                rendered.data_uri = _data_uri(tmp / rendered.file)
        (tmp / names["html"]).write_text(render_html(report, sections), encoding="utf-8")
        (tmp / names["markdown"]).write_text(render_markdown(report, sections), encoding="utf-8")
        (tmp / names["latex"]).write_text(render_latex(report, sections), encoding="utf-8")
        (tmp / names["json"]).write_text(render_json(report, sections), encoding="utf-8")
    return {kind: out_dir / name for kind, name in names.items()} | {"figures": out_dir / "figures"}


def _copy_figure(source: Path, target: Path) -> None:
    if not Path(source).is_file():
        raise FileNotFoundError(f"figure {source} does not exist (a plot was not written before rendering)")
    shutil.copyfile(source, target)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# --- names, cells, flags --------------------------------------------------------------------


def slugify(text: str) -> str:
    """A file-safe name: lower-case letters, digits, '-', '_' and '.', never empty, at most 60 chars."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return slug[:60].rstrip("-.") or "item"


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    taken.add(candidate)
    return candidate


def _prepare(report: Report) -> list[RenderedSection]:
    section_names: set[str] = set()
    table_names: set[str] = set()
    figure_names: set[str] = set()
    sections = []
    for section in report.sections:
        rendered = RenderedSection(section=section, name=_unique(slugify(section.title), section_names))
        for table in section.tables:
            name = _unique(slugify(table.name or table.title), table_names)
            rendered.tables.append(_render_table(table, name))
        for figure in section.figures:
            stem = _unique(slugify(f"{rendered.name}-{figure.title}"), figure_names)
            rendered.figures.append(RenderedFigure(figure=figure, file=f"figures/{stem}.png"))
        sections.append(rendered)
    return sections


def _render_table(table: Table, name: str) -> RenderedTable:
    for index, row in enumerate(table.rows):
        if len(row) != len(table.columns):
            raise ValueError(f"table {table.title!r} row {index} has {len(row)} cells for {len(table.columns)} columns")
    cells = [[format_cell(value, table.digits) for value in row] for row in table.rows]
    numeric = [
        any(_is_number(row[c]) for row in table.rows)
        and all(_is_number(row[c]) or format_cell(row[c], table.digits) == "" for row in table.rows)
        for c in range(len(table.columns))
    ]
    order = list(dict.fromkeys(flag for _, flags in sorted(table.flags.items()) for flag in flags))
    mark_of = {flag: FLAG_MARKS[i] if i < len(FLAG_MARKS) else f"[{i + 1}]" for i, flag in enumerate(order)}
    marks = {row: [mark_of[flag] for flag in flags] for row, flags in table.flags.items()}
    return RenderedTable(table, name, cells, numeric, marks, [(mark_of[flag], flag) for flag in order])


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def format_cell(value: Any, digits: int) -> str:
    """A cell as text: floats with `digits` decimals, integers as integers, None/NaN as ''."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if math.isnan(value):
        return ""
    text = f"{float(value):.{digits}f}"
    # -0.0 after rounding a small negative delta reads as a sign that is not there.
    return text[1:] if text.startswith("-") and float(text) == 0 else text


# --- HTML -----------------------------------------------------------------------------------

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("xstilts.analysis", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def render_html(report: Report, sections: list[RenderedSection]) -> str:
    """One self-contained page (figures must already carry their data URIs)."""
    return _ENVIRONMENT.get_template("report.html.j2").render(report=report, sections=sections)


# --- Markdown -------------------------------------------------------------------------------

# The punctuation that can start markup anywhere in a line (emphasis, code, links, raw HTML,
# entities, table cells, strike-through, maths); CommonMark lets any of it be backslash-escaped.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&$])")


def escape_markdown(text: str) -> str:
    """Backslash-escape Markdown's punctuation so user text never turns into markup or HTML."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def render_markdown(report: Report, sections: list[RenderedSection]) -> str:
    """GitHub Markdown: a heading per section, pipe tables, figures as image links."""
    lines = [f"# {escape_markdown(report.title)}", ""]
    lines += [f"- {escape_markdown(key)}: {escape_markdown(value)}" for key, value in report.meta.items()]
    for section in sections:
        lines += ["", f"## {escape_markdown(section.section.title)}", ""]
        for paragraph in section.section.text:
            lines += [escape_markdown(paragraph), ""]
        for rendered in section.tables:
            lines += _markdown_table(rendered)
        for figure in section.figures:
            lines += [f"![{escape_markdown(figure.figure.title)}]({figure.file})", ""]
            if figure.figure.caption:
                lines += [f"*{escape_markdown(figure.figure.caption)}*", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _markdown_table(rendered: RenderedTable) -> list[str]:
    table = rendered.table
    lines = [f"**{escape_markdown(table.title)}**", ""]
    lines.append("| " + " | ".join(escape_markdown(column) for column in table.columns) + " |")
    lines.append("|" + "|".join("---:" if numeric else "---" for numeric in rendered.numeric) + "|")
    for index, row in enumerate(rendered.cells):
        cells = [escape_markdown(cell) for cell in row]
        if cells and rendered.marks.get(index):
            cells[0] = f"{cells[0]} {''.join(rendered.marks[index])}".strip()
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if rendered.legend:
        lines += ["Flags: " + "; ".join(f"{mark} {escape_markdown(flag)}" for mark, flag in rendered.legend), ""]
    lines += [f"- {escape_markdown(note)}" for note in table.notes]
    return lines + ([""] if table.notes else [])


# --- LaTeX ----------------------------------------------------------------------------------

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
}
_LATEX_PATTERN = re.compile("|".join(re.escape(char) for char in _LATEX_SPECIAL))


def escape_latex(text: str) -> str:
    """Escape LaTeX's special characters in one pass (so the backslash is not escaped twice)."""
    return _LATEX_PATTERN.sub(lambda match: _LATEX_SPECIAL[match.group()], " ".join(str(text).split()))


def render_latex(report: Report, sections: list[RenderedSection]) -> str:
    """A compilable article: one \\section per section, booktabs tables, figures from figures/."""
    lines = [
        r"\documentclass{article}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage{booktabs}",
        r"\usepackage{graphicx}",
        rf"\title{{{escape_latex(report.title)}}}",
        r"\date{}",
        r"\begin{document}",
        r"\maketitle",
    ]
    if report.meta:
        lines += [r"\begin{itemize}"]
        lines += [rf"\item {escape_latex(key)}: {escape_latex(value)}" for key, value in report.meta.items()]
        lines += [r"\end{itemize}"]
    for section in sections:
        lines += ["", rf"\section{{{escape_latex(section.section.title)}}}"]
        lines += [escape_latex(paragraph) + "\n" for paragraph in section.section.text]
        for rendered in section.tables:
            lines += _latex_table(rendered)
        for figure in section.figures:
            lines += _latex_figure(figure)
    lines += [r"\end{document}"]
    return "\n".join(lines) + "\n"


def _latex_table(rendered: RenderedTable) -> list[str]:
    table = rendered.table
    spec = "".join("r" if numeric else "l" for numeric in rendered.numeric)
    lines = [r"\begin{table}[htbp]", r"\centering", rf"\caption{{{escape_latex(table.title)}}}"]
    lines += [rf"\label{{tab:{rendered.name}}}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    lines.append(" & ".join(escape_latex(column) for column in table.columns) + r" \\")
    lines.append(r"\midrule")
    for index, row in enumerate(rendered.cells):
        cells = [escape_latex(cell) for cell in row]
        if cells and rendered.marks.get(index):
            cells[0] += "".join(rf"\textsuperscript{{{_latex_mark(mark)}}}" for mark in rendered.marks[index])
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = [f"{_latex_mark(mark)} {escape_latex(flag)}" for mark, flag in rendered.legend]
    notes += [escape_latex(note) for note in table.notes]
    if notes:
        lines += [r"\par\smallskip{\footnotesize " + r" \\ ".join(notes) + "}"]
    return lines + [r"\end{table}"]


def _latex_mark(mark: str) -> str:
    return LATEX_MARKS.get(mark, escape_latex(mark))


def _latex_figure(figure: RenderedFigure) -> list[str]:
    lines = [r"\begin{figure}[htbp]", r"\centering", rf"\includegraphics[width=\linewidth]{{{figure.file}}}"]
    caption = figure.figure.title + (f": {figure.figure.caption}" if figure.figure.caption else "")
    return lines + [rf"\caption{{{escape_latex(caption)}}}", r"\end{figure}"]


# --- JSON -----------------------------------------------------------------------------------


def render_json(report: Report, sections: list[RenderedSection]) -> str:
    """The report as data: raw cell values (NaN as null), flags keyed by row index as text."""
    document = {
        "title": report.title,
        "meta": {str(key): str(value) for key, value in report.meta.items()},
        "sections": [
            {
                "name": section.name,
                "title": section.section.title,
                "text": list(section.section.text),
                "tables": [_json_table(rendered) for rendered in section.tables],
                "figures": [
                    {"title": f.figure.title, "file": f.file, "caption": f.figure.caption} for f in section.figures
                ],
            }
            for section in sections
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _json_table(rendered: RenderedTable) -> dict[str, Any]:
    table = rendered.table
    return {
        "name": rendered.name,
        "title": table.title,
        "columns": list(table.columns),
        "rows": [[_json_value(value) for value in row] for row in table.rows],
        "notes": list(table.notes),
        "flags": {str(row): list(flags) for row, flags in sorted(table.flags.items())},
        "digits": table.digits,
    }


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(value) else None
    return str(value)
