"""Hub adapter: the same examples as the local readers, through `datasets.load_dataset`.

`spec.hub.id` is a hub dataset id, or a local folder laid out as a hub dataset (which is
how the offline tests exercise this exact code path).
"""

from __future__ import annotations

import csv
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from xstilts.data.io import Example, check_label
from xstilts.errors import UserError
from xstilts.tasks.spec import Format, TaskSpec

logger = logging.getLogger(__name__)

# The fields (after `hub.columns` renames them) that each format's examples need.
REQUIRED_FIELDS = {
    Format.PAIR_CLASSIFICATION: ("text_a", "text_b", "label"),
    Format.SINGLE_CLASSIFICATION: ("text_a", "label"),
    Format.TAGGING: ("tokens", "labels"),
    Format.SPAN_QA: ("context", "question", "answers"),
}


def hub_config_name(spec: TaskSpec, language: str) -> str | None:
    hub = spec.hub
    if language in hub.language_configs:
        return hub.language_configs[language]
    return hub.config.format(language=language) if hub.config else None


def rename_row(row: dict[str, Any], columns: dict[str, str], where: str = "hub row") -> dict[str, Any]:
    """Our field name -> value, taking each from the hub column that `columns` names.

    Raises:
        UserError: the row lacks a column that `columns` names.
    """
    missing = [theirs for theirs in columns.values() if theirs not in row]
    if missing:
        raise UserError(f"{where}: no column(s) {', '.join(map(repr, missing))} (the row has {', '.join(map(repr, row))})")
    return {ours: row[theirs] for ours, theirs in columns.items()} | {
        key: value for key, value in row.items() if key not in columns.values()
    }


def check_hub_language(spec: TaskSpec, language: str) -> None:
    """Fail at once when the hub source lacks this language (a preflight check, no download).

    Raises:
        UserError: one line naming the task and language, and saying to pass a local data dir.
    """
    if spec.hub is None:
        raise UserError(f"task {spec.name!r} has no hub source; pass a local data dir (data.{spec.name}=DIR, or --data-dir)")
    if not spec.hub.has_language(language):
        raise UserError(
            f"task {spec.name!r}: language {language!r} is not in its hub source {spec.hub.id!r}; "
            f"pass a local data dir (data.{spec.name}=DIR, or --data-dir) or leave {language!r} out"
        )


def load_hub_examples(spec: TaskSpec, split: str, language: str) -> list[Example]:
    """Load one split of one language from the hub (or a local hub-layout folder).

    Where one hub split mixes languages (`hub.id_prefixes`, TyDiQA-GoldP), only the rows of
    `language` are kept: the English training rows, and one language's rows per scored split.
    """
    import datasets  # heavy import, only when the hub is used

    check_hub_language(spec, language)
    config = hub_config_name(spec, language)
    hub_split = spec.hub.splits.get(split, split)
    where = f"hub dataset {spec.hub.id!r} (config {config!r}, split {hub_split!r})"
    try:
        rows = datasets.load_dataset(spec.hub.id, config, split=hub_split)
    except (FileNotFoundError, ValueError, ConnectionError) as exc:
        raise UserError(f"{where}: cannot load ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if spec.hub.reader:
        examples = read_rows_with(spec.hub.reader, [dict(row) for row in rows], spec, where)
    else:
        examples = keep_language(_hub_examples(rows, spec, split, language, where), spec, language, where)
    if not examples:
        raise UserError(f"{where}: no examples")
    return examples


def _hub_examples(rows: Any, spec: TaskSpec, split: str, language: str, where: str) -> list[Example]:
    examples = []
    for index, row in enumerate(rows):
        at = f"{where} row {index}"
        example = rename_row(class_label_names(dict(row), rows.features, at), spec.hub.columns, at)
        if example.get("label") == -1:
            # The hub's mark for "no gold label" (SNLI's no-consensus pairs): not an example.
            continue
        example.setdefault("id", f"{language}-{split}-{index}")
        example["id"] = str(example["id"])
        missing = [key for key in REQUIRED_FIELDS.get(spec.format, ()) if key not in example]
        if missing:
            raise UserError(f"{at}: no {', '.join(missing)} (map the hub's columns to them with hub.columns)")
        _check_texts(example, at)
        if "label" in example:
            example["label"] = check_label(example["label"], spec, at)
        if "labels" in example:
            example["labels"] = _token_labels(example, spec, at)
        examples.append(example)
    return examples


def _check_texts(example: Example, where: str) -> None:
    """The text fields a format reads are strings (tokens: a list of strings)."""
    for key in ("text_a", "text_b", "context", "question"):
        if key in example and not isinstance(example[key], str):
            raise UserError(f"{where}: {key} must be text, got {type(example[key]).__name__} {str(example[key])[:40]!r}")
    tokens = example.get("tokens", [])
    if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
        raise UserError(f"{where}: tokens must be a list of strings")


def _token_labels(example: Example, spec: TaskSpec, where: str) -> list[str]:
    """A tagging row's labels, checked against the spec and one per token."""
    labels, tokens = example["labels"], example.get("tokens")
    if not isinstance(labels, list) or (isinstance(tokens, list) and len(labels) != len(tokens)):
        count = len(labels) if isinstance(labels, list) else type(labels).__name__
        raise UserError(f"{where}: expected one label per token ({len(tokens or [])} tokens), got {count}")
    return [check_label(label, spec, where) for label in labels]


def keep_language(examples: list[Example], spec: TaskSpec, language: str, where: str) -> list[Example]:
    """The examples of one language of a split that mixes them, by id prefix (all without `id_prefixes`)."""
    prefix = spec.hub.id_prefixes.get(language)
    if prefix is None:
        return examples
    kept = [example for example in examples if example["id"].startswith(prefix)]
    logger.info("%s: kept %d of %d rows with id prefix %r (language %s)", where, len(kept), len(examples), prefix, language)
    return kept


def class_label_names(row: dict[str, Any], features: Any, where: str = "hub row") -> dict[str, Any]:
    """Hub class ids -> the dataset's own label names (its id order need not be the spec's);
    -1, the hub's "no label", is kept for the caller to skip.

    Raises:
        UserError: a class id outside the column's class names.
    """
    import datasets

    for column, feature in (features or {}).items():
        inner = getattr(feature, "feature", None)
        try:
            if isinstance(feature, datasets.ClassLabel) and isinstance(row.get(column), int) and row[column] >= 0:
                row[column] = feature.int2str(row[column])
            elif isinstance(inner, datasets.ClassLabel) and isinstance(row.get(column), list):
                row[column] = [inner.int2str(value) for value in row[column]]
        except (ValueError, TypeError) as exc:
            raise UserError(f"{where}: column {column!r}: {str(exc).splitlines()[0] if str(exc) else 'bad class id'}") from None
    return row


def read_rows_with(reader: str, rows: list[dict[str, Any]], spec: TaskSpec, where: str) -> list[Example]:
    """Parse hub rows with a local reader, so both paths build examples (and errors) one way."""
    from xstilts.data.readers import get_reader

    suffix = ".csv" if reader.endswith("_csv") else ".jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{spec.name}{suffix}"
        with path.open("w", encoding="utf-8", newline="") as handle:
            if suffix == ".csv":
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
                writer.writeheader()
                writer.writerows(rows)
            else:
                handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        try:
            return get_reader(reader, spec)(path, spec)
        except UserError as exc:
            raise UserError(f"{where}: {str(exc).replace(str(path), 'row')}") from None
