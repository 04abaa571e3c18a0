"""What text-to-text models wrote, beside how well they scored: the diagnostics of the runs'
outputs per arm and target language (the report's "Text-to-text outputs" section).

A text-to-text run (`mode: text_to_text`) stores, beside the scorer-exact metrics of each
evaluation, the share of outputs that went wrong in ways a span or label head cannot: answers in
another script than their context (zero-shot mT5's "accidental translation"), outputs matching no
label, tags that could not be aligned to the words. They are result rows like any other (metric
name, value in percent) and `load_frame` keeps them; this module tabulates them.

    >>> sorted(DIAGNOSTICS)[:2]
    ['invalid_outputs', 'not_in_context']
"""

from __future__ import annotations

import pandas as pd

from xstilts.analysis.frame import trained_language, zero_shot
from xstilts.analysis.model import Table
from xstilts.analysis.pivots import TARGET_PHASE, arm_column, arm_order, seed_column
from xstilts.config.study import ReportConfig
from xstilts.errors import UserError

# Metric name -> what its percentage counts, in the order tables list them.
DIAGNOSTICS = {
    "wrong_script": "QA: non-empty generated answers mostly in a script their context barely uses (zero-shot mT5 "
    "answering in English instead of the context's language, 'accidental translation', shows here; an answer "
    "copied from the context never counts)",
    "not_in_context": "QA: non-empty generated answers that are not a substring of their context (a span head "
    "cannot do this; translated or rewritten answers can)",
    "invalid_outputs": "classification and multiple choice with scoring: generate: outputs that match no label "
    "word or option (counted wrong; rank scoring always picks one)",
    "unaligned_words": "tagging: words for which no generated word-tag pair could be matched (a word left out "
    "or rewritten, e.g. translated, a missing or unknown tag), given a catch-all wrong tag",
}


def diagnostic_rows(frame: pd.DataFrame, config: ReportConfig, *, phase: str = TARGET_PHASE) -> pd.DataFrame:
    """The diagnostic rows of one phase on the report's split (full split, no subset), of runs
    with an arm label (a frame without diagnostics needs no arm axis)."""
    rows = frame[
        frame["metric"].isin(DIAGNOSTICS) & (frame["phase"] == phase)
        & (frame["split"] == config.split) & (frame["subset"] == "")
    ]
    return rows if rows.empty else rows[rows[arm_column(frame, config)].notna()]


def outputs_tables(frame: pd.DataFrame, config: ReportConfig, *, phase: str = TARGET_PHASE) -> dict[str, Table]:
    """Target task -> its table, for every task with diagnostics: a row per arm and diagnostic
    present, the percentage per language (mean over seeds) and its mean over the zero-shot
    languages. Empty when no run stored a diagnostic.

    Raises:
        UserError: an arm has several runs per seed for a task (the study varies another axis).
    """
    rows = diagnostic_rows(frame, config, phase=phase)
    if rows.empty:
        return {}
    arm, seed = arm_column(frame, config), seed_column(frame, config)
    tables = {}
    for task in sorted(set(rows["task"])):
        part = rows[rows["task"] == task]
        if part.duplicated([arm, seed, "language", "metric"]).any():
            raise UserError(f"target {task!r} has several runs per arm and seed: the study varies another axis; filter the frame")
        tables[task] = _task_table(part, task, arm, seed, frame, config, phase)
    return tables


def _task_table(part: pd.DataFrame, task: str, arm: str, seed: str, frame: pd.DataFrame, config: ReportConfig, phase: str) -> Table:
    trained = set(trained_language(part)["language"])
    languages = sorted(set(part["language"]), key=lambda language: (language not in trained, language))
    unseen = [language for language in languages if language in set(zero_shot(part)["language"])]
    metrics = [metric for metric in DIAGNOSTICS if metric in set(part["metric"])]
    means = part.groupby([arm, "metric", "language"])["value"].mean()
    seeds = part.groupby([arm, "metric"])[seed].nunique()
    table_rows = []
    for name in [a for a in arm_order(frame, config) if a in set(part[arm])]:
        for metric in metrics:
            if (name, metric) not in seeds.index:
                continue
            cells = [_cell(means, (name, metric, language)) for language in languages]
            present = [means[(name, metric, language)] for language in unseen if (name, metric, language) in means.index]
            zero_avg = float(sum(present) / len(present)) if present else None
            table_rows.append([name, metric, int(seeds[(name, metric)]), *cells, zero_avg])
    notes = [f"Percent per language, mean over seeds ({phase}, {config.split}); zero-shot avg: mean of "
             "the zero-shot language columns."]
    notes += [f"{metric}: {DIAGNOSTICS[metric]}." for metric in metrics]
    columns = ["arm", "diagnostic", "seeds", *languages, "zero-shot avg"]
    return Table(f"{task}: text-to-text outputs ({phase}, {config.split})", columns, table_rows, notes=notes,
                 name=f"outputs-{task}-{phase}-{config.split}")


def _cell(means: pd.Series, key: tuple) -> float | None:
    return float(means[key]) if key in means.index else None


SECTION_TEXT = (
    "Besides their scores (the same scorer as with heads), text-to-text runs store how often the text they wrote "
    "went wrong, in percent (each diagnostic's note says of what): per target task, one row per arm and diagnostic. "
    "A high wrong_script in the zero-shot languages is the accidental translation that mixing a little multilingual "
    "span corruption into training (target.auxiliary, or an intermediate task) is meant to reduce."
)
