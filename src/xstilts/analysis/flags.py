"""Flags on rows that are not true zero-shot transfer.

- "seen-task": the start model's card (`xstilts.models.cards`) lists the row's task or one of
  the run's intermediate tasks, so the model was trained on that task before our phases.
- "intermediate-language": the row's language is one the run's intermediate phase trained on,
  other than the target task's training language, so the target language was seen in training.

Works on the study frame (`xstilts.analysis.frame.load_frame`): it needs the columns model,
task, language, intermediate and intermediate_languages ("+"-joined names).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from xstilts.analysis.frame import spec_train_language
from xstilts.models.cards import Card, seen_tasks

SEEN_TASK = "seen-task"
INTERMEDIATE_LANGUAGE = "intermediate-language"
FLAG_LEGEND = {
    SEEN_TASK: "the start model was trained on this task or on one of the run's intermediate tasks "
    "(its model card lists it), so the score is not that of a model new to the task",
    INTERMEDIATE_LANGUAGE: "the intermediate task was trained in this evaluation language "
    "(not the target's training language), so the transfer is not zero-shot",
}
_COLUMNS = ("model", "task", "language", "intermediate", "intermediate_languages")


def _names(joined: object) -> list[str]:
    """The names of a "+"-joined frame cell ("" or None: none)."""
    return [name for name in str(joined or "").split("+") if name]


def row_flags(frame: pd.DataFrame, *, cards: dict[str, Card] | None = None) -> pd.DataFrame:
    """A copy of the frame with a "flags" column: the sorted list of flags of each row.

    Args:
        frame: the study frame (needs model, task, language, intermediate, intermediate_languages;
            uses train_language where present, else each task's from the built-in registry).
        cards: start-model cards (default: `load_cards()` through `seen_tasks`).

    Raises:
        KeyError: when the frame lacks one of the columns above (a bug in the caller).
    """
    missing = [column for column in _COLUMNS if column not in frame.columns]
    if missing:
        raise KeyError(f"row_flags needs the frame columns {missing}")
    seen = {model: seen_tasks(str(model), cards) for model in frame["model"].dropna().unique()}
    trained = frame["train_language"] if "train_language" in frame.columns else frame["task"].map(spec_train_language)
    phases = frame["phase"] if "phase" in frame.columns else [None] * len(frame)
    flags = []
    columns = [frame[name] for name in _COLUMNS]
    for model, task, language, intermediate, languages, phase, train in zip(*columns, phases, trained, strict=True):
        row: list[str] = []
        tasks = _names(intermediate)
        if seen.get(model, set()) & {task, *tasks}:
            row.append(SEEN_TASK)
        # An intermediate phase's own evaluation is in its training language by design.
        if tasks and phase != "intermediate" and language != train and language in _names(languages):
            row.append(INTERMEDIATE_LANGUAGE)
        flags.append(sorted(row))
    flagged = frame.copy()
    flagged["flags"] = flags
    return flagged


def flag_union(frame: pd.DataFrame, by: list[str]) -> dict[tuple, list[str]]:
    """The sorted union of the "flags" column per group of `by` (e.g. arm and task), so a
    pivot row that averages several frame rows carries every flag of those rows."""
    unions: dict[tuple, set[str]] = {}
    for key, group in frame.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        unions[key] = {flag for row in group["flags"] for flag in row}
    return {key: sorted(flags) for key, flags in unions.items()}


def flag_legend(flags: Iterable[str] | None = None) -> list[str]:
    """One note sentence per flag (all flags when `flags` is None), for a table's notes."""
    wanted = list(FLAG_LEGEND) if flags is None else [flag for flag in FLAG_LEGEND if flag in set(flags)]
    return [f"{flag}: {FLAG_LEGEND[flag]}." for flag in wanted]
