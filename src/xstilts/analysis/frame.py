"""A study's results as one tidy pandas frame: a row per stored result, plus each evaluation's task score.

Every analysis (pivots, statistics, the report) starts from `load_frame`. Columns:

- run, study, node, phase, task, language, split (the base split), subset ("" for the full
  split, else the subset of a "test/<subset>" split), metric, value;
- for every (run, phase, task, language, split, subset) one extra row with metric "score": the
  official task score (`xstilts.evaluation.scorer.task_score`: QA (EM+F1)/2, tagging F1, else
  accuracy or mAP@20);
- model, intermediate ("+" of the intermediate tasks, "" for none), intermediate_languages ("+"
  of the languages phase 2 trained on, "" for none), seed (the run config's), run_dir,
  train_language (the language the row's task trained on: a row in another language is zero-shot);
- "axis:<name>" per study axis: the run's label on it (None for runs outside the study grid).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from xstilts.errors import UserError, did_you_mean
from xstilts.evaluation.scorer import task_score
from xstilts.experiments.store import COMPLETED, PARTIAL, ResultsStore
from xstilts.results import parse_split
from xstilts.tasks.registry import TaskRegistry, load_registry
from xstilts.tasks.spec import Metric

SCORE = "score"
AXIS_PREFIX = "axis:"
ROW_COLUMNS = ["run", "study", "node", "phase", "task", "language", "split", "subset", "metric", "value"]
RUN_COLUMNS = ["model", "intermediate", "intermediate_languages", "seed", "run_dir"]
COLUMNS = [*ROW_COLUMNS, *RUN_COLUMNS, "train_language"]
EVALUATION_KEYS = ["run", "phase", "task", "language", "split", "subset"]
DEFAULT_TRAIN_LANGUAGE = "en"  # TaskSpec's default, for a task no registry knows any more
# Phase-2 rows hold their task's headline dev score under the name of its Metric (e.g. "seqeval_f1").
_HEADLINE_METRICS = {metric.value for metric in Metric}


def axis_column(axis: str) -> str:
    """The frame column holding the runs' labels on `axis`."""
    return f"{AXIS_PREFIX}{axis}"


def load_frame(store: ResultsStore, *, study: str | None = None, runs: list[str] | None = None) -> pd.DataFrame:
    """The rows of every completed or partial run (of `study`, or the `runs` named) as one frame.

    A study node run several times (a partial run, then its rerun) keeps only its latest run,
    so no seed counts twice; failed, running and interrupted runs have no rows here.

    Raises:
        UserError: a run in `runs` is not in the store (or not in `study`).
    """
    entries = store.runs(study)
    if runs is not None:
        known = {entry["run"] for entry in entries}
        for run in runs:
            if run not in known:
                where = f" of study {study!r}" if study else ""
                raise UserError(f"no run {run!r}{where} in {store.path}{did_you_mean(run, known)}")
        entries = [entry for entry in entries if entry["run"] in set(runs)]
    entries = latest_per_node([entry for entry in entries if entry["status"] in (COMPLETED, PARTIAL)])
    axes = list(dict.fromkeys(name for entry in entries for name in (entry["axes"] or {})))
    columns = [*COLUMNS, *map(axis_column, axes)]
    keep = {entry["run"]: entry for entry in entries}
    rows = [row for row in store.results(study=study) if row.run in keep]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame([_row_record(row) for row in rows])
    frame = pd.concat([frame, score_rows(frame)], ignore_index=True)
    configs = store.configs(study)
    runs_info = pd.DataFrame([_run_record(entry, configs.get(entry["run"], {}), store, axes) for entry in entries])
    frame = frame.merge(runs_info, on="run", how="left")
    frame["train_language"] = [
        _train_language(configs.get(run, {}), phase, task)
        for run, phase, task in zip(frame["run"], frame["phase"], frame["task"], strict=True)
    ]
    frame["seed"] = frame["seed"].astype("Int64")
    return frame[columns].sort_values(EVALUATION_KEYS + ["metric"], kind="stable", ignore_index=True)


def latest_per_node(entries: list[dict]) -> list[dict]:
    """The store's run entries (in start order) with only the latest run of each study node."""
    latest = {entry["node"]: entry["run"] for entry in entries if entry.get("node")}
    return [entry for entry in entries if not entry.get("node") or latest[entry["node"]] == entry["run"]]


def score_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One "score" row per evaluation (run, phase, task, language, split, subset) of `frame`.

    An evaluation without a task-score metric (e.g. a failure rate) gets none; a phase-2 row
    already is its task's headline dev score and is copied.
    """
    records = []
    for _, group in frame.groupby(EVALUATION_KEYS, sort=False):
        metrics = dict(zip(group["metric"], group["value"], strict=True))
        try:
            value = task_score(metrics)
        except ValueError:
            if len(metrics) != 1 or next(iter(metrics)) not in _HEADLINE_METRICS:
                continue
            value = next(iter(metrics.values()))
        records.append({**group.iloc[0].to_dict(), "metric": SCORE, "value": float(value)})
    return pd.DataFrame(records, columns=frame.columns)


def _row_record(row) -> dict:
    split, subset = parse_split(row.split)
    return {
        "run": row.run, "phase": row.phase, "task": row.task, "language": row.language,
        "split": split, "subset": subset or "", "metric": row.metric, "value": float(row.value),
    }


def _run_record(entry: dict, config: dict, store: ResultsStore, axes: list[str]) -> dict:
    intermediate = config.get("intermediate") or {}
    tasks = list(intermediate.get("tasks") or [])
    languages = [_train_language(config, "intermediate", task) for task in tasks]
    labels = entry["axes"] or {}
    seed = config.get("seed")
    return {
        "run": entry["run"], "study": entry["study"], "node": entry["node"], "model": config.get("model"),
        "intermediate": "+".join(tasks), "intermediate_languages": "+".join(dict.fromkeys(languages)),
        "seed": int(seed) if seed is not None else None, "run_dir": str(store.runs_dir / entry["run"]),
        **{axis_column(axis): labels.get(axis) for axis in axes},
    }


def _train_language(config: dict, phase: str, task: str) -> str:
    """The language `task` trained on in this run: phase 2 may set it per task, else the spec's."""
    if phase == "intermediate":
        chosen = ((config.get("intermediate") or {}).get("train_languages") or {}).get(task)
        if chosen:
            return chosen
    return spec_train_language(task, tuple(config.get("task_specs") or ()))


@functools.lru_cache(maxsize=64)
def spec_train_language(task: str, spec_files: tuple[str, ...] = ()) -> str:
    """A task's training language from the registry (with the run's spec files); a task no
    registry knows any more (its spec file moved away) gets the TaskSpec default, English."""
    registry = _registry(spec_files)
    return registry.get(task).train_language if task in registry else DEFAULT_TRAIN_LANGUAGE


@functools.lru_cache(maxsize=16)
def _registry(spec_files: tuple[str, ...]) -> TaskRegistry:
    present = [path for path in spec_files if Path(path).is_file()]
    return load_registry(present)


def zero_shot(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows in a language other than the one their task trained on.

    Uses the frame's `train_language` column; a frame built without it (by hand) takes each
    task's training language from the built-in task registry.
    """
    if "train_language" in frame.columns:
        trained = frame["train_language"]
    else:
        trained = frame["task"].map(lambda task: spec_train_language(task))
    return frame[frame["language"] != trained]


def trained_language(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows in the language their task trained on (the complement of `zero_shot`)."""
    return frame.drop(zero_shot(frame).index)


def primary(frame: pd.DataFrame) -> pd.DataFrame:
    """The task-score rows (metric "score")."""
    return frame[frame["metric"] == SCORE]
