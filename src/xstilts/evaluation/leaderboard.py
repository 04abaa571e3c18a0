"""Predictions in the XTREME leaderboard layout (`<task>/test-<lang>.<ext>`), and run export.

A run's `predictions/` folder is written in this layout from the start (dev splits too),
so `export-submission` only selects the test files, and both `xstilts score` and the
official evaluate.py read them as they are.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from xstilts.data.io import Example
from xstilts.errors import UserError
from xstilts.evaluation.records import RECORDS_SUFFIX
from xstilts.evaluation.scorer import file_extension
from xstilts.atomic import atomic_directory
from xstilts.paths import component, contained
from xstilts.tasks.spec import Format, TaskSpec


def render_predictions(spec: TaskSpec, predictions: list, examples: list[Example]) -> str:
    """The text of one leaderboard prediction file."""
    if spec.format is Format.SPAN_QA:
        return json.dumps({ex["id"]: answer for ex, answer in zip(examples, predictions)}, ensure_ascii=False)
    if spec.format is Format.MULTIPLE_CHOICE:
        return "".join(json.dumps({"idx": ex["id"], "label": int(label)}) + "\n" for ex, label in zip(examples, predictions))
    if spec.format is Format.TAGGING:
        return "".join("".join(f"{label}\n" for label in sentence) + "\n" for sentence in predictions)
    return "".join(f"{prediction}\n" for prediction in predictions)


def prediction_path(predictions_dir: Path, spec: TaskSpec, split: str, language: str) -> Path:
    name = f"{component(split, 'split')}-{component(language, 'language')}.{file_extension(spec)}"
    return contained(predictions_dir, component(spec.name, "task name"), name, what="predictions file")


def export_submission(run_dir: Path, out_dir: Path) -> list[Path]:
    """Copy a run's test predictions into `out_dir` in the leaderboard layout; return the files."""
    predictions = Path(run_dir) / "predictions"
    found = sorted(predictions.glob("*/test-*.*")) if predictions.is_dir() else []
    files = [file for file in found if not file.name.endswith(RECORDS_SUFFIX)]  # analysis data, not a submission
    if not files:
        raise UserError(f"{run_dir}: the run has no test predictions to export")
    with atomic_directory(Path(out_dir)) as tmp:
        for file in files:
            target = tmp / file.parent.name / file.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
    return [Path(out_dir) / file.parent.name / file.name for file in files]
