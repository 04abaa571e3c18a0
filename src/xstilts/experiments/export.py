"""Stored result rows as one flat table for other tools: CSV or Parquet, filtered.

Each row is one result with its run's study, node and status, and one column per axis of the
exported runs' grid points (empty where a run has no such axis). Files are written to a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterable
from pathlib import Path

from xstilts.atomic import atomic_write_bytes, atomic_write_text
from xstilts.errors import UserError, did_you_mean
from xstilts.experiments.store import ResultsStore

LEADING = ("run", "study", "node")
TRAILING = ("phase", "task", "language", "split", "metric", "value", "status")
FORMATS = ("csv", "parquet")


def parse_axes(items: Iterable[str]) -> dict[str, str]:
    """`--axis NAME=LABEL` options as {name: label}."""
    axes = {}
    for item in items:
        name, sep, label = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--axis {item!r}: expected NAME=LABEL, e.g. --axis arm=nli")
        axes[name.strip()] = label.strip()
    return axes


def check_filters(store: ResultsStore, study: str | None = None, axes: dict[str, str] | None = None) -> None:
    """Refuse a study or an axis name or label no run of the store has, with the nearest one:
    a typo would otherwise look like an empty result."""
    runs = store.runs()
    studies = sorted({run["study"] for run in runs if run["study"]})
    if study is not None and study not in studies:
        raise UserError(f"--study {study!r}: no run of this study in {store.path}{did_you_mean(study, studies)}")
    labels: dict[str, set[str]] = {}
    for run in runs:
        for name, label in (run["axes"] or {}).items():
            labels.setdefault(name, set()).add(label)
    for name, label in (axes or {}).items():
        if name not in labels:
            known = f" (axes: {', '.join(sorted(labels))})" if labels else " (no run has axes)"
            suggestion = did_you_mean(name, labels) or known
            raise UserError(f"--axis {name}={label}: no run in {store.path} has an axis {name!r}{suggestion}")
        if label not in labels[name]:
            suggestion = did_you_mean(label, labels[name]) or f" (labels: {', '.join(sorted(labels[name]))})"
            raise UserError(f"--axis {name}={label}: no run has {name} = {label!r}{suggestion}")


def export_table(store: ResultsStore, run: str | None = None, **filters) -> tuple[list[str], list[dict]]:
    """(columns, rows) of the stored results that pass the filters (those of `store.results`).

    Axis columns come after run, study and node, in the order the runs declare them; an axis
    named like a fixed column is prefixed `axis:`.
    """
    rows = store.results(run, **filters)
    runs = {entry["run"]: entry for entry in store.runs()}
    exported = {row.run for row in rows}
    axis_names = list(dict.fromkeys(
        name for entry in runs.values() if entry["run"] in exported for name in (entry["axes"] or {})))
    column = {name: f"axis:{name}" if name in LEADING + TRAILING else name for name in axis_names}
    records = []
    for row in rows:
        entry = runs.get(row.run, {})
        axes = entry.get("axes") or {}
        records.append({
            "run": row.run, "study": entry.get("study"), "node": entry.get("node"),
            **{column[name]: axes.get(name) for name in axis_names},
            "phase": row.phase, "task": row.task, "language": row.language, "split": row.split,
            "metric": row.metric, "value": row.value, "status": entry.get("status"),
        })
    return [*LEADING, *column.values(), *TRAILING], records


def csv_text(columns: list[str], records: list[dict]) -> str:
    """CSV with a header; a missing value is an empty field, a float its shortest exact repr."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def parquet_bytes(columns: list[str], records: list[dict]) -> bytes:
    """A Parquet file: `value` float64, every other column a nullable string."""
    import pyarrow as pa  # a heavy import, only for this format
    import pyarrow.parquet as pq

    schema = pa.schema([(name, pa.float64() if name == "value" else pa.string()) for name in columns])
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(records, schema=schema), sink)
    return sink.getvalue().to_pybytes()


def export_results(store: ResultsStore, format: str, output: Path | None, run: str | None = None, **filters) -> int:
    """Write the filtered rows as CSV (to `output`, else stdout) or Parquet (to `output`);
    return the number of rows.

    Example:
        >>> export_results(store, "parquet", Path("grid.parquet"), study="grid", axes={"arm": "nli"})
    """
    if format not in FORMATS:
        raise UserError(f"unknown export format {format!r}{did_you_mean(format, FORMATS)}")
    if format == "parquet" and output is None:
        raise UserError("--format parquet writes a binary file: give it --output FILE")
    columns, records = export_table(store, run, **filters)
    if format == "parquet":
        atomic_write_bytes(output, parquet_bytes(columns, records))
    elif output is None:
        sys.stdout.write(csv_text(columns, records))
    else:
        atomic_write_text(output, csv_text(columns, records))
    return len(records)
