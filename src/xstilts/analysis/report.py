"""`xstilts report`: a study's runs (or a whole store) analysed into one Report, then rendered.

Which sections appear follows from the study's `report:` section and from what the runs hold: the
arm x target table and its heatmap always; per-language tables (grouped by language properties);
text-to-text output diagnostics when the runs stored them; benchmark averages; subsets; per-example paired tests; model selection when the runs stored more
than the English-dev choice; mixture complementarity when a mixture's members are arms too; size vs
degradation; published reference numbers. A section that cannot be computed is replaced by a
note saying why, so a partial study still gets a report.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from xstilts import __version__
from xstilts.analysis import plots
from xstilts.analysis.degradation import size_degradation
from xstilts.analysis.flags import flag_legend, flag_union, row_flags
from xstilts.analysis.frame import axis_column, load_frame, primary
from xstilts.analysis.groups import language_property, load_language_groups
from xstilts.analysis.mixtures import arm_scores, complementarity_table, pairwise_gain_tables
from xstilts.analysis.model import Report, Section, Table
from xstilts.analysis.outputs import SECTION_TEXT, outputs_tables
from xstilts.analysis.pivots import (
    SELECTION_PHASES, TARGET_PHASE, arm_column, arm_target_table, benchmark_table, delta_matrix,
    example_comparison_table, language_means, language_table, run_means, seed_column, selection_table,
)
from xstilts.analysis.reference import get_reference, reference_table
from xstilts.analysis.render import write_report
from xstilts.config.study import ReportConfig, StudyConfig, axis_entries
from xstilts.errors import UserError
from xstilts.experiments.store import ResultsStore, store_home
from xstilts.experiments.study import Study, load_study
from xstilts.paths import component, contained

STORE_ARM = "arm"  # a store without a study: runs are grouped into arms by their intermediate tasks


def write_study_report(source: Path | str, out_dir: Path | str, *, store_home_dir: Path | str | None = None) -> dict[str, Path]:
    """Analyse a study (a study YAML) or every run of a store (a store folder) into `out_dir`.

    Returns the written files by kind (html, markdown, latex, json, figures).
    """
    source = Path(source)
    if source.is_dir():
        store = ResultsStore(source, read_only=True)
        frame, report_config, title = store_frame(store), ReportConfig(arm_axis=STORE_ARM), f"xstilts results in {source}"
        if "none" in set(frame.get(axis_column(STORE_ARM), [])):
            report_config = ReportConfig(arm_axis=STORE_ARM, baseline="none")
    elif source.is_file():
        study = load_study(source, store_home(store_home_dir))
        store = ResultsStore(study.home, read_only=True)
        frame, report_config, title = load_frame(store, study=study.name), study.config.report, f"Study {study.name}"
        frame, older = current_nodes(frame, study)
        frame = in_axis_order(frame, study.config)
    else:
        raise UserError(f"{source}: no such study file or store folder")
    if frame.empty:
        raise UserError(f"{source}: no completed runs to report on in the store {store.home} (run the study first)")
    meta = {"source": str(source), "store": str(store.home), "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "xstilts": __version__, "runs": str(frame["run"].nunique())}
    if source.is_file() and older:
        meta["left out"] = f"{older} runs of an earlier version of the study (other configs under the same name)"
    with tempfile.TemporaryDirectory(prefix="xstilts-report-") as figures:
        report = build_report(frame, report_config, title=title, figures_dir=Path(figures), meta=meta)
        return write_report(report, Path(out_dir))


def current_nodes(frame: pd.DataFrame, study: Study) -> tuple[pd.DataFrame, int]:
    """The rows of the runs of the study's nodes as the file defines them now, and how many runs
    were left out: after the study file changes, its older runs stay in the store under its name."""
    kept = frame["node"].isin(set(study.nodes))
    return frame[kept].reset_index(drop=True), frame.loc[~kept, "run"].nunique()


def in_axis_order(frame: pd.DataFrame, config: StudyConfig) -> pd.DataFrame:
    """Rows ordered by the study's axes as written (tables list arms in order of appearance)."""
    keys = []
    for name, axis in config.axes.items():
        column = axis_column(name)
        if column in frame:
            position = {label: i for i, (label, _) in enumerate(axis_entries(name, axis, Path(name)))}
            keys.append(frame[column].map(position))
    if not keys:
        return frame
    order = pd.concat(keys, axis=1).fillna(-1)
    return frame.loc[order.sort_values(list(order.columns), kind="stable").index].reset_index(drop=True)


def store_frame(store: ResultsStore) -> pd.DataFrame:
    """Every run of a store, with its intermediate tasks as the arm ("none" without any)."""
    frame = load_frame(store)
    if not frame.empty:
        frame[axis_column(STORE_ARM)] = frame["intermediate"].replace("", "none")
    return frame


def build_report(frame: pd.DataFrame, config: ReportConfig, *, title: str, figures_dir: Path, meta: dict[str, str]) -> Report:
    """Every section the frame and the report config allow, in reading order."""
    frame = row_flags(frame)
    builders: list[Callable[[pd.DataFrame, ReportConfig, Path], Section]] = [
        overview_section, language_section, outputs_section, benchmark_section, subset_section, example_section,
        selection_section, mixture_section, size_section, reference_section,
    ]
    report = Report(title=title, meta=meta)
    for slice_label, part in axis_slices(frame, config):
        for build in builders:
            section = guarded(build, part, config, figures_dir)
            if section is not None:
                section.title = f"{section.title}{slice_label}"
                report.sections.append(section)
    return report


def guarded(build: Callable, frame: pd.DataFrame, config: ReportConfig, figures_dir: Path) -> Section | None:
    """A section, or a one-paragraph section saying why it could not be computed."""
    try:
        return build(frame, config, figures_dir)
    except UserError as exc:
        return Section(title=SECTION_TITLES[build.__name__], text=[f"Not computed: {exc}"])


def axis_slices(frame: pd.DataFrame, config: ReportConfig) -> list[tuple[str, pd.DataFrame]]:
    """The frame once, or once per label of the further axes that give one (arm, seed, target)
    several runs, e.g. a start-model axis beside the arm axis. A size axis is never sliced: the
    size section needs every size."""
    target = frame[frame["phase"] == TARGET_PHASE].drop_duplicates("run")
    key = [column for column in (axis_column(config.arm_axis), seed_column(frame, config)) if column in target] + ["task"]
    if target.empty or not target.duplicated(key).any():
        return [("", frame)]
    kept = set(key) | ({axis_column(config.size.axis)} if config.size else set())
    extra = [
        column for column in target.columns
        if column.startswith("axis:") and column not in kept and (target.groupby(key)[column].nunique() > 1).any()
    ]
    if not extra:
        return [("", frame)]
    # One slice per label combination of the target runs; runs outside the grid (a phase-2 or
    # prepare run has no label on these axes) go with every slice, never into one of their own.
    shared = frame[extra].isna().all(axis=1)
    slices = []
    for labels in target[extra].drop_duplicates().itertuples(index=False, name=None):
        part = frame[shared | (frame[extra] == pd.Series(labels, index=extra)).all(axis=1)]
        text = ", ".join(f"{column.split(':', 1)[1]}={label}" for column, label in zip(extra, labels, strict=True))
        slices.append((f" ({text})", part))
    return slices


def overview_section(frame: pd.DataFrame, config: ReportConfig, figures_dir: Path) -> Section:
    table = arm_target_table(frame, config)
    add_flags(table, frame, config, arm_position=1, task=0)
    figures = []
    versus = "baseline" if config.baseline else "control" if config.control else None
    if versus:
        matrix = delta_matrix(frame, config, versus=versus)
        figures.append(plots.delta_heatmap(
            matrix.arms, matrix.targets, matrix.mean, matrix.low, matrix.high,
            figure_path(figures_dir, f"delta-{versus}"), f"Zero-shot Δ vs {matrix.reference} (95% CI over seeds)",
            caption="Hatched cells: the interval contains 0 (within noise).",
        ))
    text = [f"Arms are the labels of axis '{config.arm_axis}'; seeds: '{seed_column(frame, config).removeprefix('axis:')}'; "
            f"split: {config.split}. Model selection: the English-dev-selected checkpoint (zero-shot proper)."]
    return Section(title=SECTION_TITLES["overview_section"], text=text, tables=[table], figures=figures)


def add_flags(table: Table, frame: pd.DataFrame, config: ReportConfig, *, arm_position: int, task: int | str) -> None:
    """Mark each (arm, target) row whose runs are not true zero-shot, and explain the marks.
    `task` is the position of the row's target cell, or the target itself for a one-task table."""
    arm = arm_column(frame, config)
    target = frame[frame["phase"] == TARGET_PHASE]
    unions = flag_union(target, [arm, "task"]) if not target.empty else {}
    seen: set[str] = set()
    for index, row in enumerate(table.rows):
        flags = unions.get((row[arm_position], row[task] if isinstance(task, int) else task), [])
        if flags:
            table.flags[index] = flags
            seen.update(flags)
    table.notes += flag_legend(seen) if seen else []


def language_section(frame: pd.DataFrame, config: ReportConfig, figures_dir: Path) -> Section:
    groups = load_language_groups()
    tables, figures = [], []
    prop = config.group_by[0] if config.group_by else "morphology"
    for task in target_tasks(frame):
        tables.append(language_table(frame, config, task, groups=groups))
        add_flags(tables[-1], frame, config, arm_position=0, task=task)
        means = language_means(frame, config, task)
        values = {arm: {lang: float(v) for lang, v in row.items() if pd.notna(v)} for arm, row in means.iterrows()}
        language_groups = {lang: language_property(lang, prop, groups) for lang in means.columns}
        figures.append(plots.language_bars(values, language_groups, figure_path(figures_dir, f"languages-{task}"),
                                           f"{task}: per language, mean over seeds (grouped by {prop})"))
    return Section(title=SECTION_TITLES["language_section"], tables=tables, figures=figures)


def outputs_section(frame: pd.DataFrame, config: ReportConfig, figures_dir: Path) -> Section | None:
    """Text-to-text runs' output diagnostics (analysis/outputs.py); none when no run stored any."""
    tables = outputs_tables(frame, config)
    for task, table in tables.items():
        add_flags(table, frame, config, arm_position=0, task=task)
    return Section(title=SECTION_TITLES["outputs_section"], text=[SECTION_TEXT], tables=list(tables.values())) if tables else None


def benchmark_section(frame: pd.DataFrame, config: ReportConfig, figures_dir: Path) -> Section | None:
    if config.benchmark is None:
        return None
    table = benchmark_table(frame, config, config.benchmark)
    return Section(title=SECTION_TITLES["benchmark_section"], tables=[table] if table else [],
                   text=[] if table else [f"No task of {config.benchmark} in these runs."])


def subset_section(frame: pd.DataFrame, config: ReportConfig, figures_dir: Path) -> Section | None:
    """Per subset of the report's split (hard items, adversarial pairs, MultiCheckList tests):
    each arm's zero-shot mean over seeds beside its full-split mean."""
    rows = primary(frame)
    subsets = sorted(set(rows.loc[(rows["split"] == config.split) & (rows["subset"] != ""), "subset"]))
    if not subsets:
        return None
    full = run_means(frame, config)
    table_rows = []
    for subset in subsets:
        part = run_means(frame, config, subset=subset)
        for (task, arm), group in part.groupby(["task", "arm"], sort=True):
            whole = full[(full["task"] == task) & (full["arm"] == arm) & full["seed"].isin(group["seed"])]
            table_rows.append([task, subset, arm, len(group), group["value"].mean(), whole["value"].mean(),
                               whole["value"].mean() - group["value"].mean()])
    notes = ["Zero-shot mean of the task score over seeds, on the subset's items (selected on the training language and "
             "carried by item index to every language) and on the full split; degradation = full - subset."]
    table = Table(f"Subsets ({config.split})", ["target", "subset", "arm", "seeds", "subset", "full", "degradation"],
                  table_rows, notes=notes, name=f"subsets-{config.split}")
    return Section(title=SECTION_TITLES["subset_section"], tables=[table])


def example_section(frame: pd.DataFrame, config: ReportConfig, figures_dir: Path) -> Section | None:
    if config.baseline is None:
        return None
    return Section(title=SECTION_TITLES["example_section"], tables=[example_comparison_table(frame, config)])


def selection_section(frame: pd.DataFrame, config: ReportConfig, figures_dir: Path) -> Section | None:
    if not set(frame["phase"]) & (set(SELECTION_PHASES) - {TARGET_PHASE}):
        return None
    return Section(title=SECTION_TITLES["selection_section"], tables=[selection_table(frame, config)])


def mixture_section(frame: pd.DataFrame, config: ReportConfig, figures_dir: Path) -> Section | None:
    scores, members = arm_scores(frame, arm_column=arm_column(frame, config), split=config.split)
    if not any("+" in tasks for tasks in members.values()):
        return None
    tables = [complementarity_table(scores, members, baseline=config.baseline), *pairwise_gain_tables(scores, members)]
    return Section(title=SECTION_TITLES["mixture_section"], tables=tables)


def size_section(frame: pd.DataFrame, config: ReportConfig, figures_dir: Path) -> Section | None:
    if config.size is None:
        return None
    result = size_degradation(frame, config.size, split=config.split)
    correlations = {row[0]: row for row in result.correlations.rows}
    figures = []
    for task, (sizes, degradations) in result.points.items():
        figures.append(plots.size_scatter(
            sizes, degradations, figure_path(figures_dir, f"size-{task}"), f"{task}: degradation vs intermediate-set size",
            spearman=correlation(correlations.get(task), result.correlations.columns, "Spearman"),
            pearson=correlation(correlations.get(task), result.correlations.columns, "Pearson"),
            xlabel=f"size (axis {config.size.axis})", ylabel="degradation",
        ))
    return Section(title=SECTION_TITLES["size_section"], tables=result.tables, figures=figures)


def correlation(row: list | None, columns: list[str], method: str) -> tuple | None:
    """(r, low, high) of `method` from a correlation table row, found by column name."""
    if row is None:
        return None
    picked = [row[i] for i, name in enumerate(columns) if name.lower().startswith(method.lower())]
    return tuple(picked[:3]) if picked and picked[0] is not None else None


def reference_section(frame: pd.DataFrame, config: ReportConfig, figures_dir: Path) -> Section | None:
    """Ours beside the published numbers: the baseline arm beside the reference's first column,
    the best other arm per target beside the second (X-STILTs: best intermediate task per target)."""
    if config.reference is None:
        return None
    reference = get_reference(config.reference)
    metrics = reference.metrics()
    arm, seed = arm_column(frame, config), seed_column(frame, config)
    rows = frame[(frame["phase"] == TARGET_PHASE) & (frame["split"] == config.split) & (frame["subset"] == "")]
    ours: dict[tuple[str, str], float] = {}
    for task, metric in metrics.items():
        chosen = rows[(rows["task"] == task) & (rows["metric"] == metric)]
        per_arm = chosen.groupby([arm, seed, "run"])["value"].mean().groupby(level=0).mean()  # language mean, then seeds
        for name, value in per_arm.items():
            ours[(name, task)] = float(value)
        others = per_arm.drop([a for a in (config.baseline, config.control) if a in per_arm.index])
        if not others.empty:
            ours[("best arm", task)] = float(others.max())
    arm_map = dict(zip([config.baseline or "none", "best arm"], reference.columns[:2], strict=False))
    table = reference_table(ours, config.reference, arm_map)
    return Section(title=SECTION_TITLES["reference_section"], tables=[table])


def target_tasks(frame: pd.DataFrame) -> list[str]:
    return sorted(set(frame.loc[frame["phase"] == TARGET_PHASE, "task"]))


def figure_path(folder: Path, name: str) -> Path:
    """FOLDER/NAME.png; NAME holds a task name from the store, so it must stay one file name."""
    return contained(folder, component(f"{name}.png", "figure name"), what="figure")


SECTION_TITLES = {
    "overview_section": "Arms x targets",
    "language_section": "Per language",
    "outputs_section": "Text-to-text outputs",
    "benchmark_section": "Benchmark averages",
    "subset_section": "Subsets",
    "example_section": "Paired per-example tests",
    "selection_section": "Model selection",
    "mixture_section": "Mixtures: complementarity",
    "size_section": "Size vs degradation",
    "reference_section": "Published reference numbers",
}
