"""Pivots of a study frame (analysis/frame.py) into report tables: arms x targets with paired
deltas, per-language tables (optionally grouped by language properties), XTREME/XTREME-R
averages with the official scorer's rules, model selection side by side, and per-example tests.

Every table is over one split (`ReportConfig.split`) and the full split (no subset). A run's
zero-shot score is the mean of its task score over the languages other than the task's training
language; arms are compared paired over seeds (the seed axis' labels, else the config seed).
The frame must hold one run per (arm, target, seed): filter a study with more axes first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xstilts.analysis.frame import axis_column, primary, trained_language, zero_shot
from xstilts.analysis.model import Table
from xstilts.analysis.statistics import Records, paired_over_examples, paired_over_seeds, summarize
from xstilts.config.study import ReportConfig
from xstilts.errors import UserError, did_you_mean
from xstilts.evaluation.records import records_path
from xstilts.evaluation.scorer import BENCHMARK_GROUPS, benchmark_averages
from xstilts.tasks.registry import TaskRegistry, load_registry
from xstilts.tasks.spec import Format

TARGET_PHASE = "target"
# Model selection (H6): the English-dev-selected checkpoint is zero-shot proper; the oracle
# picks by target-language dev scores, so it is an upper bound rather than zero-shot.
SELECTION_PHASES = {
    "target": "English dev (zero-shot proper)",
    "target-average": "checkpoint average",
    "target-oracle": "target-dev oracle",
}
ZERO_SHOT, TRAINED = "zero-shot", "trained"
ALL_TASKS = "all_task"


@dataclass
class DeltaMatrix:
    """Arm x target paired differences vs a reference arm, for a heatmap (NaN where missing)."""

    reference: str
    arms: list[str]
    targets: list[str]
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    verdict: list[list[str | None]]
    seeds: np.ndarray  # seeds paired in each cell


def arm_column(frame: pd.DataFrame, report: ReportConfig) -> str:
    """The frame column of the arm axis; a missing axis is an error naming the axes there are."""
    column = axis_column(report.arm_axis)
    if column not in frame.columns:
        axes = [name.split(":", 1)[1] for name in frame.columns if name.startswith("axis:")]
        raise UserError(f"report.arm_axis: the study has no axis {report.arm_axis!r}{did_you_mean(report.arm_axis, axes)}")
    return column


def seed_column(frame: pd.DataFrame, report: ReportConfig) -> str:
    """The seed axis' column when the study has one, else the runs' config seed."""
    column = axis_column(report.seed_axis) if report.seed_axis else None
    return column if column in frame.columns else "seed"


def run_means(
    frame: pd.DataFrame, report: ReportConfig, *, phase: str = TARGET_PHASE, languages: str = ZERO_SHOT, subset: str = ""
) -> pd.DataFrame:
    """One row per run: arm, task, seed, run, run_dir, value (mean task score over its zero-shot
    languages, or over its training language with `languages="trained"`), n_languages.

    Raises:
        UserError: two runs share an arm, target and seed (the frame mixes other axes).
    """
    arm, seed = arm_column(frame, report), seed_column(frame, report)
    rows = primary(frame)
    rows = rows[(rows["phase"] == phase) & (rows["split"] == report.split) & (rows["subset"] == subset)]
    rows = zero_shot(rows) if languages == ZERO_SHOT else trained_language(rows)
    rows = rows[rows[arm].notna()]
    columns = ["arm", "task", "seed", "run", "run_dir", "value", "n_languages"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    grouped = rows.groupby([arm, "task", seed, "run"], dropna=False, sort=False)
    means = grouped.agg(value=("value", "mean"), n_languages=("language", "nunique"), run_dir=("run_dir", "first"))
    means = means.reset_index().rename(columns={arm: "arm", seed: "seed"})
    twice = means[means.duplicated(["arm", "task", "seed"], keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        same = (twice["arm"] == first["arm"]) & (twice["task"] == first["task"]) & (twice["seed"] == first["seed"])
        runs = ", ".join(twice[same]["run"])
        raise UserError(
            f"arm {first['arm']!r}, target {first['task']!r}, seed {first['seed']!r} has several runs ({runs}): "
            "the study varies another axis; filter the frame to one value of it"
        )
    return means[columns]


def arm_order(frame: pd.DataFrame, report: ReportConfig) -> list[str]:
    """The arms in the frame: the control, the baseline, then the rest in order of appearance."""
    arms = list(dict.fromkeys(frame[arm_column(frame, report)].dropna()))
    first = [arm for arm in (report.control, report.baseline) if arm in arms]
    return first + [arm for arm in arms if arm not in first]


def by_seed(means: pd.DataFrame, arm: str, task: str) -> dict:
    """{seed: value} of one arm and target from `run_means`."""
    chosen = means[(means["arm"] == arm) & (means["task"] == task)]
    return dict(zip(chosen["seed"], chosen["value"], strict=True))


def interval(low: float | None, high: float | None, digits: int = 1) -> str | None:
    """"[low, high]" with `digits` decimals, None without an interval."""
    return None if low is None or high is None else f"[{low:.{digits}f}, {high:.{digits}f}]"


def p_text(p_value: float | None) -> str | None:
    return None if p_value is None else f"{p_value:.3f}"


def arm_target_table(frame: pd.DataFrame, report: ReportConfig, *, phase: str = TARGET_PHASE, arms: list[str] | None = None) -> Table:
    """Per target and arm: zero-shot mean over seeds (sd, 95% bootstrap CI, n), the training-
    language score, and the paired difference vs the baseline arm and vs the control arm."""
    zero, trained = run_means(frame, report, phase=phase), run_means(frame, report, phase=phase, languages=TRAINED)
    arms = arms or arm_order(frame, report)
    references = [(name, arm) for name, arm in (("baseline", report.baseline), ("control", report.control)) if arm]
    columns = ["target", "arm", "seeds", "zero-shot", "sd", "95% CI", "train language"]
    for name, _ in references:
        columns += [f"Δ {name}", f"Δ {name} 95% CI", f"p ({name})", f"vs {name}"]
    rows = []
    for task in sorted(zero["task"].unique()):
        for arm in arms:
            values = by_seed(zero, arm, task)
            if not values:
                continue
            summary, english = summarize(list(values.values())), summarize(list(by_seed(trained, arm, task).values()))
            row = [task, arm, summary.n, summary.mean, summary.sd, interval(summary.low, summary.high), english.mean]
            for _, reference in references:
                if arm == reference:
                    row += [None, None, None, None]
                    continue
                delta = paired_over_seeds(values, by_seed(zero, reference, task), alpha=report.noise_level)
                row += [delta.mean_diff, interval(delta.low, delta.high), p_text(delta.p_value), delta.verdict]
            rows.append(row)
    notes = [
        "zero-shot: per run the mean task score over the languages other than the task's training language, "
        f"then mean, sample sd and 95% percentile-bootstrap CI over seeds ({report.split} split).",
        "Δ: arm minus reference, paired over the seeds both have: paired t-test and bootstrap CI; "
        f"'better'/'worse' only when p < {report.noise_level:g} and the CI excludes 0, else 'within noise'. "
    ]
    if not references:
        notes.append("No baseline or control arm is named (report.baseline, report.control): no deltas.")
    return Table(f"Arms x targets ({phase}, {report.split})", columns, rows, notes=notes, name=f"arms-{phase}-{report.split}")


def delta_matrix(frame: pd.DataFrame, report: ReportConfig, versus: str = "baseline", *, phase: str = TARGET_PHASE) -> DeltaMatrix:
    """Arm x target zero-shot differences vs the baseline (or control) arm, paired over seeds.

    Raises:
        UserError: the report names no such reference arm.
    """
    reference = {"baseline": report.baseline, "control": report.control}[versus]
    if reference is None:
        raise UserError(f"report.{versus}: no {versus} arm is named, so there are no deltas against it")
    zero = run_means(frame, report, phase=phase)
    arms = [arm for arm in arm_order(frame, report) if arm != reference]
    targets = sorted(zero["task"].unique())
    shape = (len(arms), len(targets))
    mean, low, high, seeds = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape, int)
    verdicts: list[list[str | None]] = [[None] * len(targets) for _ in arms]
    for i, arm in enumerate(arms):
        for j, task in enumerate(targets):
            values = by_seed(zero, arm, task)
            if not values:
                continue
            delta = paired_over_seeds(values, by_seed(zero, reference, task), alpha=report.noise_level)
            seeds[i, j], verdicts[i][j] = delta.n, delta.verdict
            for array, value in ((mean, delta.mean_diff), (low, delta.low), (high, delta.high)):
                array[i, j] = np.nan if value is None else value
    return DeltaMatrix(reference, arms, targets, mean, low, high, verdicts, seeds)


def language_means(frame: pd.DataFrame, report: ReportConfig, task: str, *, phase: str = TARGET_PHASE) -> pd.DataFrame:
    """Arms x languages: the task score per language, mean over seeds (English-like training
    language first, then the others alphabetically)."""
    arm, seed = arm_column(frame, report), seed_column(frame, report)
    rows = primary(frame)
    rows = rows[(rows["phase"] == phase) & (rows["split"] == report.split) & (rows["subset"] == "") & (rows["task"] == task)]
    rows = rows[rows[arm].notna()]
    if rows[[arm, seed, "language"]].duplicated().any():
        raise UserError(f"target {task!r} has several runs per arm and seed: the study varies another axis; filter the frame")
    means = rows.groupby([arm, "language"])["value"].mean().unstack("language")
    trained = set(trained_language(rows)["language"])
    languages = sorted(means.columns, key=lambda language: (language not in trained, language))
    order = [name for name in arm_order(frame, report) if name in means.index]
    return means.loc[order, languages]


def language_table(
    frame: pd.DataFrame, report: ReportConfig, task: str, *, groups: dict[str, dict[str, str]] | None = None,
    group_by: list[str] | None = None, phase: str = TARGET_PHASE,
) -> Table:
    """Rows = arms, columns = languages (mean over seeds), the zero-shot average, and with
    `groups` ({language: {property: value}}) the mean over the zero-shot languages of each value
    of every property in `group_by` (default: report.group_by)."""
    means = language_means(frame, report, task, phase=phase)
    rows = primary(frame)
    rows = rows[(rows["task"] == task) & (rows["phase"] == phase) & (rows["split"] == report.split) & (rows["subset"] == "")]
    unseen = [language for language in means.columns if language in set(zero_shot(rows)["language"])]
    seeds = rows.groupby(arm_column(frame, report))[seed_column(frame, report)].nunique()
    group_columns, notes = _group_columns(unseen, groups, group_by if group_by is not None else report.group_by)
    columns = ["arm", "seeds", *means.columns, "zero-shot avg", *(label for label, _ in group_columns)]
    table_rows = []
    for arm, values in means.iterrows():
        cells = [None if pd.isna(values[language]) else float(values[language]) for language in means.columns]
        zero_avg = float(values[unseen].mean()) if unseen else None
        grouped = [float(values[members].mean()) for _, members in group_columns]
        table_rows.append([arm, int(seeds.get(arm, 0)), *cells, zero_avg, *grouped])
    notes.insert(0, f"Task score per language, mean over seeds ({phase}, {report.split}); zero-shot avg: mean of the zero-shot language columns.")
    return Table(f"{task} per language", columns, table_rows, notes=notes, name=f"languages-{task}-{phase}-{report.split}")


def _group_columns(languages: list[str], groups: dict | None, properties: list[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """("property: value", member languages) per group of the zero-shot languages, and notes."""
    if not properties:
        return [], []
    if groups is None:
        return [], [f"No language groups given: the table is not grouped by {', '.join(properties)}."]
    columns, notes = [], []
    for prop in properties:
        values = {language: groups.get(language, {}).get(prop) for language in languages}
        missing = sorted(language for language, value in values.items() if value is None)
        for value in sorted({value for value in values.values() if value is not None}, key=str):
            columns.append((f"{prop}: {value}", [language for language in languages if values[language] == value]))
        if missing:
            notes.append(f"No {prop} for {', '.join(missing)}: left out of the {prop} groups.")
    notes.append("Group columns: mean over the zero-shot languages of each group.")
    return columns, notes


def benchmark_table(
    frame: pd.DataFrame, report: ReportConfig, benchmark: str, *, registry: TaskRegistry | None = None
) -> Table | None:
    """Per arm: each task's language average (over the benchmark's languages present, mean over
    seeds, English included as in the official scorer), the group averages and the overall
    average by the scorer's own rules (`scorer.benchmark_averages`); None without a task of it."""
    if benchmark not in BENCHMARK_GROUPS:
        raise UserError(f"report.benchmark: unknown benchmark {benchmark!r}{did_you_mean(benchmark, BENCHMARK_GROUPS)}")
    registry = registry if registry is not None else load_registry()
    specs = {spec.name: spec for spec in registry if spec.languages_for(benchmark)}
    arm, seed = arm_column(frame, report), seed_column(frame, report)
    rows = primary(frame)
    rows = rows[(rows["phase"] == TARGET_PHASE) & (rows["split"] == report.split) & (rows["subset"] == "")]
    rows = rows[rows["task"].isin(specs) & rows[arm].notna()]
    rows = rows[[language in specs[task].languages_for(benchmark) for task, language in zip(rows["task"], rows["language"])]]
    if rows.empty:
        return None
    per_run = rows.groupby([arm, "task", seed], dropna=False)["value"].mean()
    task_means = per_run.groupby(level=[0, 1]).mean()
    tasks = [name for name in specs if name in set(rows["task"])]
    groups = BENCHMARK_GROUPS[benchmark]
    columns = ["arm", *tasks, *groups, ALL_TASKS]
    table_rows = []
    for name in [a for a in arm_order(frame, report) if a in set(rows[arm])]:
        averages = {task: float(task_means[(name, task)]) for task in tasks if (name, task) in task_means.index}
        overall = benchmark_averages(averages, benchmark, registry)
        table_rows.append([name, *(averages.get(task) for task in tasks), *(overall.get(g) for g in [*groups, ALL_TASKS])])
    notes = [f"{benchmark}: task = mean over its benchmark languages present (English included, as the official scorer), "
             "then over seeds; groups and all_task as the official scorer (a group only when all its tasks are present)."]
    for group, members in groups.items():
        absent = [task for task in members if task not in tasks]
        if absent:
            notes.append(f"Group {group} left out: no {', '.join(dict.fromkeys(absent))}.")
    for task in tasks:
        absent = sorted(set(specs[task].languages_for(benchmark)) - set(rows[rows["task"] == task]["language"]))
        if absent:
            notes.append(f"{task}: no results for {', '.join(absent)}; its average is not the official one.")
    return Table(f"{benchmark.upper()} averages ({report.split})", columns, table_rows, notes=notes, name=f"benchmark-{benchmark}")


def selection_table(frame: pd.DataFrame, report: ReportConfig, *, arms: list[str] | None = None) -> Table:
    """Per target and arm, the zero-shot mean over seeds under each model-selection phase
    present (English-dev selection, checkpoint averaging, target-dev oracle), side by side."""
    phases = [phase for phase in SELECTION_PHASES if phase in set(frame["phase"])]
    means = {phase: run_means(frame, report, phase=phase) for phase in phases}
    arms = arms or arm_order(frame, report)
    columns = ["target", "arm", "seeds", *(SELECTION_PHASES[phase] for phase in phases)]
    targets = sorted({task for table in means.values() for task in table["task"]})
    rows = []
    for task in targets:
        for arm in arms:
            values = {phase: by_seed(means[phase], arm, task) for phase in phases}
            if not any(values.values()):
                continue
            seeds = max(len(v) for v in values.values())
            rows.append([task, arm, seeds, *(summarize(list(v.values())).mean for v in values.values())])
    notes = [
        "Zero-shot mean over seeds per model-selection rule. 'English dev' is zero-shot proper; checkpoint "
        "averaging needs no target-language data; the oracle selects on target-language dev sets (an upper bound).",
    ]
    return Table(f"Model selection ({report.split})", columns, rows, notes=notes, name=f"selection-{report.split}")


def example_comparison_table(
    frame: pd.DataFrame, report: ReportConfig, *, registry: TaskRegistry | None = None, metric: str = "score",
    n_resamples: int = 1000, seed: int = 0, arms: list[str] | None = None,
) -> Table:
    """Each arm vs the baseline per target, zero-shot language and seed (seeds paired one by one,
    reported per seed): paired bootstrap over the examples of the runs' records files.

    Raises:
        UserError: no baseline arm is named, or two runs' records hold different items.
    """
    if report.baseline is None:
        raise UserError("report.baseline: name the baseline arm to compare the arms with per example")
    registry = registry if registry is not None else load_registry()
    columns = ["target", "arm", "language", "seed", "examples", "Δ", "95% CI", "p", "verdict"]
    rows, unreadable, retrieval = [], [], set()
    for task, arm, run_seed, language, run_dirs in _paired_evaluations(frame, report, arms):
        spec = registry.get(task)
        if spec.format is Format.RETRIEVAL:  # scored on embeddings, no per-example records
            retrieval.add(task)
            continue
        try:
            records = [Records.read(records_path(Path(d) / "predictions", task, report.split, language)) for d in run_dirs]
        except UserError as exc:
            unreadable.append(str(exc))
            continue
        c = paired_over_examples(spec, *records, metric=metric, n_resamples=n_resamples, seed=seed, alpha=report.noise_level)
        rows.append([task, arm, language, run_seed, c.n, c.mean_diff, interval(c.low, c.high), p_text(c.p_value), c.verdict])
    notes = [
        f"Arm minus baseline {report.baseline!r} on the same examples, one row per seed (the arm's run vs the baseline's "
        f"run of that seed): paired bootstrap, {n_resamples} resamples rescored with the task's scorer ({metric}); "
        "p = twice the share of resamples whose difference has the other sign, (k+1)/(N+1)."
    ]
    if retrieval:
        notes.append(f"Left out: {', '.join(sorted(retrieval))} (retrieval tasks have no per-example records).")
    if unreadable:
        count = len(unreadable)
        notes.append(f"Left out: {count} comparison{'s' * (count != 1)} (a seed and language) without readable records, e.g. {unreadable[0]}")
    return Table(f"Per-example paired comparison ({report.split})", columns, rows, notes=notes, name=f"examples-{report.split}")


def _paired_evaluations(frame: pd.DataFrame, report: ReportConfig, arms: list[str] | None):
    """(target, arm, seed, language, (arm's run dir, baseline's run dir)) for every seed both
    runs have and every zero-shot language both evaluated."""
    zero = run_means(frame, report)
    languages = _zero_shot_languages(frame, report)
    for task in sorted(zero["task"].unique()):
        base = zero[(zero["arm"] == report.baseline) & (zero["task"] == task)].set_index("seed")
        for arm in [a for a in (arms or arm_order(frame, report)) if a != report.baseline]:
            for run in zero[(zero["arm"] == arm) & (zero["task"] == task)].itertuples():
                if run.seed not in base.index:
                    continue
                reference = base.loc[run.seed]
                for language in sorted(languages.get(run.run, set()) & languages.get(reference["run"], set())):
                    yield task, arm, run.seed, language, (run.run_dir, reference["run_dir"])


def _zero_shot_languages(frame: pd.DataFrame, report: ReportConfig) -> dict[str, set[str]]:
    """run -> the zero-shot languages it has target-phase scores for on the report's split."""
    rows = zero_shot(primary(frame))
    rows = rows[(rows["phase"] == TARGET_PHASE) & (rows["split"] == report.split) & (rows["subset"] == "")]
    return {run: set(group["language"]) for run, group in rows.groupby("run")}
