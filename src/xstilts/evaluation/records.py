"""Per-example records of an evaluation: each example with its prediction, beside the predictions.

The zero-shot sweep writes one JSON line per example (`{"example": ..., "prediction": ...}`) for
every labelled (split, language), so that analyses can rescore any subset of the examples with the
format's own scorer: paired bootstrap over examples, hard subsets, per-item comparisons between
runs. Records of parallel languages are in item order, so index i is the same item everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from xstilts.atomic import atomic_write_text
from xstilts.data.io import Example
from xstilts.errors import UserError
from xstilts.formats.base import get_format
from xstilts.paths import component, contained
from xstilts.tasks.spec import TaskSpec

RECORDS_SUFFIX = ".records.jsonl"


def records_path(predictions_dir: Path, task: str, split: str, language: str) -> Path:
    """PREDICTIONS/<task>/<split>-<language>.records.jsonl"""
    name = f"{component(split, 'split')}-{component(language, 'language')}{RECORDS_SUFFIX}"
    return contained(predictions_dir, component(task, "task name"), name, what="predictions file")


def write_records(path: Path, examples: Sequence[Example], predictions: Sequence) -> None:
    """One line per example, written atomically."""
    if len(examples) != len(predictions):
        raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
    lines = (json.dumps({"example": example, "prediction": prediction}, ensure_ascii=False) for example, prediction in zip(examples, predictions))
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_records(path: Path) -> tuple[list[Example], list]:
    """(examples, predictions) from a records file; a malformed line is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no per-example records (the run predates them, or the split was unlabelled)")
    examples, predictions = [], []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                record = json.loads(line)
                examples.append(record["example"])
                predictions.append(record["prediction"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise UserError(f"{path}:{number}: malformed record ({exc})") from None
    return examples, predictions


def score_records(spec: TaskSpec, examples: Sequence[Example], predictions: Sequence, indices: Sequence[int] | None = None) -> dict[str, float]:
    """The format's own metrics (the scorer-exact ones the sweep stores) on the examples at
    `indices` (all when None; repeated indices count repeatedly, as a bootstrap sample needs)."""
    if indices is not None:
        examples = [examples[i] for i in indices]
        predictions = [predictions[i] for i in indices]
    return get_format(spec.format).score(list(predictions), list(examples), spec)
