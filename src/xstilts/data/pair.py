"""Readers for sentence-pair classification files (MNLI jsonl, XNLI/PAWS-X xtreme tsv)."""

from __future__ import annotations

from pathlib import Path

from xstilts.data.io import Example, check_label, jsonl_rows, numbered_lines
from xstilts.errors import UserError
from xstilts.tasks.spec import TaskSpec


def read_mnli_jsonl(path: Path, spec: TaskSpec) -> list[Example]:
    """MNLI-style jsonl: one object per line with `premise`, `hypothesis`, `label`."""
    examples = []
    for where, row in jsonl_rows(path, required=("premise", "hypothesis", "label")):
        examples.append(
            {
                "id": str(row.get("id", row.get("pairID", where.rsplit("/", 1)[-1]))),
                "text_a": str(row["premise"]),
                "text_b": str(row["hypothesis"]),
                "label": check_label(row["label"], spec, where),
            }
        )
    return examples


def read_tsv_fields(path: Path, spec: TaskSpec, fields: tuple[str, ...]) -> list[Example]:
    """Headerless, unquoted tsv whose columns are `fields` (the last one the label).

    A file whose first line lacks the label column is an unlabelled test file (XTREME withholds
    the XNLI and PAWS-X test labels): every line must then lack it, and each example's `label`
    is None. In a labelled file every line needs its label.
    """
    examples = []
    width = None
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        values = line.split("\t")
        if width is None and len(values) in (len(fields), len(fields) - 1):
            width = len(values)
        if len(values) != width:
            expected = f"{len(fields)} tab-separated fields ({', '.join(fields)})"
            if width == len(fields) - 1:
                expected = f"{width} tab-separated fields ({', '.join(fields[:-1])}) as on the first line of this unlabelled file"
            raise UserError(f"{where}: expected {expected}, got {len(values)}")
        example = {"id": f"{path.stem}-{number}", **dict(zip(fields[:-1], values))}
        example["label"] = check_label(values[-1], spec, where) if width == len(fields) else None
        examples.append(example)
    return examples


def read_xtreme_pair_tsv(path: Path, spec: TaskSpec) -> list[Example]:
    """XNLI / PAWS-X in the XTREME layout: `sent1\tsent2\tlabel`, no header, no quoting
    (`sent1\tsent2` in an unlabelled test file)."""
    return read_tsv_fields(path, spec, ("text_a", "text_b", "label"))


def read_single_tsv(path: Path, spec: TaskSpec) -> list[Example]:
    """Single-sentence classification: `sentence\tlabel`, no header, no quoting."""
    return read_tsv_fields(path, spec, ("text_a", "label"))
