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


def extra_columns(spec: TaskSpec) -> tuple[str, ...]:
    """The names in the source option `extra_columns: "item_type,..."`: columns after the label,
    kept as example fields (a subset's `column`); none without the option."""
    option = str(spec.local.options.get("extra_columns", "")) if spec.local else ""
    return tuple(name.strip() for name in option.split(",") if name.strip())


def read_tsv_fields(path: Path, spec: TaskSpec, fields: tuple[str, ...]) -> list[Example]:
    """Headerless, unquoted tsv whose columns are `fields` (the last one the label), then the
    spec's `extra_columns` (kept as example fields).

    A file whose first line lacks the label column is an unlabelled test file (XTREME withholds
    the XNLI and PAWS-X test labels): every line must then lack it (and the extra columns), and
    each example's `label` is None. In a labelled file every line needs its label. A file may
    lack the extra columns altogether (every line as its first one).
    """
    examples = []
    width = None
    full = fields + extra_columns(spec)
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        values = line.split("\t")
        # A file may lack the extra columns (a language that takes its subsets from English's).
        if width is None and len(values) in (len(full), len(fields), len(fields) - 1):
            width = len(values)
        if len(values) != width:
            expected = f"{len(full)} tab-separated fields ({', '.join(full)})"
            if width is not None and width < len(full):
                kind = "unlabelled file" if width < len(fields) else "file"
                expected = f"{width} tab-separated fields ({', '.join(full[:width])}) as on the first line of this {kind}"
            raise UserError(f"{where}: expected {expected}, got {len(values)}")
        example = {"id": f"{path.stem}-{number}", **dict(zip(fields[:-1], values))}
        example["label"] = check_label(values[len(fields) - 1], spec, where) if width >= len(fields) else None
        example.update(zip(full[len(fields):], values[len(fields):]))  # none when the file lacks them
        examples.append(example)
    return examples


def read_xtreme_pair_tsv(path: Path, spec: TaskSpec) -> list[Example]:
    """XNLI / PAWS-X in the XTREME layout: `sent1\tsent2\tlabel`, no header, no quoting
    (`sent1\tsent2` in an unlabelled test file)."""
    return read_tsv_fields(path, spec, ("text_a", "text_b", "label"))


def read_single_tsv(path: Path, spec: TaskSpec) -> list[Example]:
    """Single-sentence classification: `sentence\tlabel`, no header, no quoting."""
    return read_tsv_fields(path, spec, ("text_a", "label"))
