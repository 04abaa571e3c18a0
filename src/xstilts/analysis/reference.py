"""Published reference numbers (data: `analysis/data/reference.yaml`) set beside ours.

A reference is a set of published scores per task of ours (task name and our metric name) and
per column (a system or a model size), with the citation it came from. `reference_table` puts
them beside our scores with the difference, so a user reproducing a paper sees how far off
they are.

    >>> ours = {("best", "xnli"): 80.0}
    >>> table = reference_table(ours, "xstilts", {"best": "X-STILTs"})
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from xstilts.analysis.model import Table
from xstilts.config.loading import read_yaml
from xstilts.errors import UserError, did_you_mean

ENV_VAR = "XSTILTS_REFERENCES"
_REQUIRED = ("title", "source", "url", "columns", "scores")


@dataclass(frozen=True)
class ReferenceScore:
    """The published values of one task: `values` maps a reference column to its number."""

    task: str
    metric: str
    name: str
    values: dict[str, float]


@dataclass(frozen=True)
class Reference:
    """One published table: its columns, scores per task (in the file's order) and citation."""

    id: str
    title: str
    source: str
    url: str
    columns: list[str]
    scores: list[ReferenceScore]
    table: str = ""
    notes: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, str]:
        """Task -> the metric the published numbers are in (our metric name)."""
        return {score.task: score.metric for score in self.scores}


def shipped_references_file() -> Path:
    """The reference file shipped inside the package."""
    return Path(str(resources.files("xstilts.analysis") / "data" / "reference.yaml"))


def load_references(path: Path | str | None = None) -> dict[str, Reference]:
    """Reference id -> Reference: the shipped ones, plus (replacing by id) the user's file.

    Args:
        path: a YAML file of the shipped layout; None reads XSTILTS_REFERENCES when set.

    Raises:
        UserError: a malformed file, naming the file and the key.
    """
    references = _read_references(shipped_references_file())
    user = path if path is not None else os.environ.get(ENV_VAR) or None
    if user is not None:
        references.update(_read_references(Path(user)))
    return references


def _read_references(path: Path) -> dict[str, Reference]:
    document = read_yaml(path, "reference file")
    if not isinstance(document, dict) or not isinstance(document.get("references"), dict):
        raise UserError(f"{path}: a reference file must hold a mapping under 'references:'")
    return {str(ref_id): _parse_reference(path, str(ref_id), entry) for ref_id, entry in document["references"].items()}


def _parse_reference(path: Path, ref_id: str, entry: Any) -> Reference:
    key = f"references.{ref_id}"
    if not isinstance(entry, dict):
        raise UserError(f"{path}: {key}: expected a mapping")
    for name in _REQUIRED:
        if name not in entry:
            raise UserError(f"{path}: {key}: missing '{name}'")
    unknown = set(entry) - set(_REQUIRED) - {"table", "notes"}
    if unknown:
        name = sorted(unknown)[0]
        raise UserError(f"{path}: {key}.{name}: unknown key{did_you_mean(name, [*_REQUIRED, 'table', 'notes'])}")
    columns = [str(column) for column in entry["columns"] or []]
    if not columns:
        raise UserError(f"{path}: {key}.columns: list at least one column")
    if not isinstance(entry["scores"], list):
        raise UserError(f"{path}: {key}.scores: expected a list of {{task, metric, values}}")
    scores = [_parse_score(path, f"{key}.scores[{i}]", item, columns) for i, item in enumerate(entry["scores"])]
    return Reference(
        id=ref_id, title=str(entry["title"]), source=" ".join(str(entry["source"]).split()), url=str(entry["url"]),
        columns=columns, scores=scores, table=str(entry.get("table", "")), notes=[str(n) for n in entry.get("notes") or []],
    )


def _parse_score(path: Path, key: str, item: Any, columns: list[str]) -> ReferenceScore:
    if not isinstance(item, dict) or not {"task", "metric", "values"} <= set(item):
        raise UserError(f"{path}: {key}: expected a mapping with task, metric and values")
    values = item["values"]
    if not isinstance(values, dict):
        raise UserError(f"{path}: {key}.values: expected a mapping of column -> number")
    for column, value in values.items():
        if str(column) not in columns:
            raise UserError(f"{path}: {key}.values.{column}: not one of the columns{did_you_mean(str(column), columns)}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(f"{path}: {key}.values.{column}: expected a number, got {value!r}")
    return ReferenceScore(
        task=str(item["task"]), metric=str(item["metric"]), name=str(item.get("name", item["task"])),
        values={str(column): float(value) for column, value in values.items()},
    )


def get_reference(reference_id: str, references: dict[str, Reference] | None = None) -> Reference:
    """One reference by id; an unknown id is a UserError with the closest id."""
    references = load_references() if references is None else references
    if reference_id not in references:
        raise UserError(
            f"unknown reference {reference_id!r}{did_you_mean(reference_id, references)}; "
            f"known: {', '.join(sorted(references))}"
        )
    return references[reference_id]


def reference_table(
    ours: dict[tuple[str, str], float],
    reference_id: str,
    arm_map: dict[str, str],
    references: dict[str, Reference] | None = None,
) -> Table:
    """Our scores beside the published ones, with the difference (ours - published).

    Args:
        ours: (our arm, task) -> our score, in the metric the reference gives for that task
            (`get_reference(id).metrics()`), on the 0..100 scale.
        reference_id: an id of the reference file (e.g. "xstilts", "mt5-zero-shot").
        arm_map: our arm -> the reference column it reproduces (e.g. {"none": "XLM-R Large"}).
        references: the loaded references (default: `load_references()`).

    Returns:
        One row per (arm, reference task): arm, reference column, our task name, metric, the
        paper's name for it, ours, published, difference. Tasks we have no score for keep the row with blank cells and a note.
    """
    reference = get_reference(reference_id, references)
    for arm, column in arm_map.items():
        if column not in reference.columns:
            raise UserError(
                f"arm {arm!r} maps to {column!r}, which reference {reference_id!r} does not have"
                f"{did_you_mean(column, reference.columns)}; columns: {', '.join(reference.columns)}"
            )
    rows, missing = [], []
    for arm, column in arm_map.items():
        for score in reference.scores:
            published = score.values.get(column)
            mine = ours.get((arm, score.task))
            if mine is None:
                missing.append(f"{arm}/{score.task}")
            difference = None if mine is None or published is None else mine - published
            rows.append([arm, column, score.task, score.metric, score.name, mine, published, difference])
    notes = [f"Published numbers: {reference.source}; {reference.url}" + (f" ({reference.table})." if reference.table else "."),
             *reference.notes]
    if missing:
        notes.append(f"Blank 'ours': we have no result for {', '.join(missing)}.")
    return Table(
        title=reference.title,
        columns=["arm", "reference", "task", "metric", "published as", "ours", "published", "ours - published"],
        rows=rows,
        notes=notes,
        name=f"reference-{reference_id}",
    )
