"""What a report is made of, independent of how it is rendered (HTML, Markdown, LaTeX).

Analyses build `Table`s and `Figure`s; `Section`s group them; a `Report` is the ordered sections.
Renderers (analysis/render.py) turn a Report into files; nothing here knows about a format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Table:
    """A table of already-computed values.

    Cells are numbers (rendered with `digits` decimals), strings, or None (empty). `notes` are
    short sentences printed under the table (how it was computed, what the flags mean); `flags`
    maps a row index to the flag marks shown beside that row's first cell (e.g. "seen-task").
    """

    title: str
    columns: list[str]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)
    digits: int = 1
    flags: dict[int, list[str]] = field(default_factory=dict)
    name: str = ""  # a file-safe identifier, e.g. "deltas-test"; derived from the title when empty


@dataclass
class Figure:
    """A plot already written to `path` (PNG), with its caption."""

    title: str
    path: Path
    caption: str = ""


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)  # paragraphs before the tables
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


@dataclass
class Report:
    title: str
    sections: list[Section] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)  # study, store, created, xstilts version ...
