"""The `xstilts` command line: parse, call one library function, print."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console
from rich.table import Table

from xstilts.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Intermediate-task training and zero-shot cross-lingual transfer.")
# Piped output (CI logs, files) gets a wide table instead of rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)

StoreOption = Annotated[Optional[Path], typer.Option("--store", help="results store folder (default: $XSTILTS_HOME or ./xstilts_runs)")]
Overrides = Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. target.train.learning_rate=1e-5")]


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


@app.command()
def run(config: Annotated[Path, typer.Argument(help="experiment YAML")], overrides: Overrides = None, store: StoreOption = None) -> None:
    """Run an experiment: intermediate phase, target phase, zero-shot sweep over every language."""
    from xstilts.config.loading import load_config
    from xstilts.experiments.run import IncompleteRun, run_experiment
    from xstilts.training.distributed import is_main

    try:
        run_id = run_experiment(load_config(config, overrides or []), home=store, console=err)
    except IncompleteRun as exc:
        print_results(store, exc.run_id)  # the rows that did land, then the one-line error
        raise
    if is_main():  # under torchrun the other processes stop after training; rank 0 reports the run
        print_results(store, run_id)


@app.command(name="eval")
def evaluate(
    model: Annotated[str, typer.Option(help="checkpoint, model directory, hub id or packaged:NAME")],
    task: Annotated[str, typer.Option(help="task name (see `xstilts tasks`)")],
    data_dir: Annotated[Optional[Path], typer.Option(help="task data directory (default: the hub)")] = None,
    languages: Annotated[Optional[str], typer.Option(help="comma-separated languages (default: all)")] = None,
    overrides: Overrides = None,
    store: StoreOption = None,
) -> None:
    """Zero-shot evaluation of an existing model or checkpoint, without training."""
    from xstilts.config.loading import load_config
    from xstilts.config.schema import EvalConfig
    from xstilts.experiments.run import IncompleteRun, evaluate_model

    base = {"model": model, "task": task, "data_dir": data_dir and str(data_dir)}
    if languages:
        base["languages"] = [language.strip() for language in languages.split(",") if language.strip()]
    config = load_config(None, overrides or [], base={k: v for k, v in base.items() if v is not None}, schema=EvalConfig)
    try:
        run_id = evaluate_model(config, home=store, console=err)
    except IncompleteRun as exc:
        print_results(store, exc.run_id)
        raise
    print_results(store, run_id)


@app.command()
def tasks(
    format: Annotated[OutputFormat, typer.Option("--format", help="table or json")] = OutputFormat.table,
    spec: Annotated[Optional[list[Path]], typer.Option("--spec", help="extra task spec YAML file(s)")] = None,
) -> None:
    """List the registered tasks."""
    from xstilts.tasks.registry import load_registry

    registry = load_registry(spec or [])
    if format is OutputFormat.json:
        # One JSON object per line, so tools can stream it.
        sys.stdout.write("".join(json.dumps(task.model_dump(mode="json")) + "\n" for task in registry))
        return
    table = Table("name", "format", "metric", "version", "languages")
    for task in registry:
        table.add_row(task.name, task.format.value, task.metric.value, str(task.version), f"{len(task.languages)}: {' '.join(task.languages)}")
    out.print(table)


class ResultsFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    parquet = "parquet"


@app.command()
def results(
    run: Annotated[Optional[str], typer.Option(help="only this run")] = None,
    format: Annotated[ResultsFormat, typer.Option("--format", help="table, json, csv or parquet")] = ResultsFormat.table,
    output: Annotated[Optional[Path], typer.Option(help="file for csv (default: stdout) or parquet (required)")] = None,
    study: Annotated[Optional[str], typer.Option(help="only runs of this study")] = None,
    axis: Annotated[Optional[list[str]], typer.Option(help="NAME=LABEL: only runs at this axis label (repeatable)")] = None,
    task: Annotated[Optional[str], typer.Option(help="only this task")] = None,
    language: Annotated[Optional[str], typer.Option(help="only this language")] = None,
    split: Annotated[Optional[str], typer.Option(help="only this split")] = None,
    store: StoreOption = None,
) -> None:
    """Print or export result rows from the store, and the evaluations that failed (except in the table: on stderr)."""
    from xstilts.atomic import atomic_write_text
    from xstilts.experiments.export import check_filters, export_results, parse_axes
    from xstilts.experiments.store import ResultsStore, store_home

    results_store = ResultsStore(store_home(store))
    filters = {"study": study, "axes": parse_axes(axis or []), "task": task, "language": language, "split": split}
    check_filters(results_store, study, filters["axes"])
    if format is ResultsFormat.table:
        if output:
            raise UserError("--output: the table goes to the terminal; use --format csv, parquet or json for a file")
        print_results(store, run, **filters)
        return
    if format is ResultsFormat.json:
        text = json.dumps([row.as_dict() for row in results_store.results(run, **filters)], indent=1) + "\n"
        if output:
            atomic_write_text(output, text)
        else:
            sys.stdout.write(text)
    else:
        count = export_results(results_store, format.value, output, run, **filters)
        if output:
            err.print(f"wrote {count} rows to {output}", highlight=False, soft_wrap=True)
    # stdout stays the rows alone; failures are reported beside it.
    for error in results_store.errors(run, **filters):
        err.print(f"error: run {error.run} {error.task} {error.split}-{error.language}: {error.message}", highlight=False, soft_wrap=True)


def print_results(store: Optional[Path], run: Optional[str], **filters) -> None:
    """The rows (of one run, or passing `filters`: study, axes, task, language, split), then failures."""
    from xstilts.analysis.tables import results_table
    from xstilts.experiments.store import ResultsStore, store_home

    results_store = ResultsStore(store_home(store))
    out.print(results_table(results_store.results(run, **filters)))
    errors = results_store.errors(run, **filters)
    if errors:
        table = Table("run", "phase", "task", "split", "language", "error", title="failed evaluations")
        for error in errors:
            table.add_row(error.run, error.phase, error.task, error.split, error.language, error.message)
        out.print(table)
    status = f" ({results_store.status(run)})" if run else ""
    out.print(f"results: {results_store.path}" + (f"  run: {results_store.runs_dir / run}{status}" if run else ""))


class Benchmark(str, Enum):
    xtreme = "xtreme"
    xtreme_r = "xtreme-r"


@app.command()
def score(
    predictions: Annotated[Path, typer.Option(help="folder in the leaderboard layout <task>/test-<lang>.<ext>")],
    labels: Annotated[Path, typer.Option(help="gold folder in the same layout")],
    benchmark: Annotated[Benchmark, typer.Option(help="xtreme or xtreme-r")],
    output: Annotated[Optional[Path], typer.Option(help="also write the JSON here")] = None,
) -> None:
    """Score leaderboard-layout predictions exactly like the official XTREME evaluate.py."""
    from xstilts.evaluation.scorer import score_predictions
    from xstilts.atomic import atomic_write_text

    text = json.dumps(score_predictions(predictions, labels, benchmark.value), indent=2)
    if output:
        atomic_write_text(output, text + "\n")
    sys.stdout.write(text + "\n")


@app.command(name="export-submission")
def export_submission(
    run: Annotated[str, typer.Argument(help="run id (see `xstilts results`)")],
    outdir: Annotated[Path, typer.Argument(help="folder to write <task>/test-<lang>.<ext> into")],
    store: StoreOption = None,
) -> None:
    """Write a run's test predictions in the leaderboard layout (for `xstilts score` or the official scorer)."""
    from xstilts.evaluation.leaderboard import export_submission as export
    from xstilts.experiments.store import ResultsStore, store_home

    results_store = ResultsStore(store_home(store))
    run_dir = results_store.run_dir(run)
    files = export(run_dir, outdir)
    out.print(f"wrote {len(files)} prediction files to {outdir}")


@app.command()
def quickstart(
    overrides: Overrides = None,
    store: StoreOption = None,
    workdir: Annotated[Optional[Path], typer.Option(help="where generated data and tiny models go (default: STORE/quickstart)")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="arm runs at once, cores // workers threads each (default: one per core, at most 4; 1: one by one in this process)")] = None,
) -> None:
    """Run the shipped miniature experiment fully offline (synthetic languages, a tiny model; minutes on 2 CPU cores)."""
    from xstilts.experiments.quickstart import run_quickstart, transfer_table
    from xstilts.experiments.store import ResultsStore, store_home

    run_ids = run_quickstart(home=store, workdir=workdir, console=err, overrides=overrides or [], workers=workers)
    results_store = ResultsStore(store_home(store))
    out.print(transfer_table(results_store, run_ids))
    out.print(f"results: {results_store.path} ({len(run_ids)} runs; `xstilts results` shows every row)")


subsets_app = typer.Typer(no_args_is_help=True, help="Subsets of a task's items for task specs' `subsets:` (research question e).")
app.add_typer(subsets_app, name="subsets")


@subsets_app.command("hard")
def subsets_hard(
    task: Annotated[str, typer.Argument(help="task name (see `xstilts tasks`)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="ids file to write (hard items, one id per line)")],
    data: Annotated[Optional[Path], typer.Option("--data", help="task data directory (default: the hub)")] = None,
    baseline: Annotated[str, typer.Option(help="hypothesis-only or bag-of-words")] = "hypothesis-only",
    split: Annotated[str, typer.Option(help="the split to divide")] = "test",
    easy: Annotated[Optional[Path], typer.Option(help="also write the easy items' ids here")] = None,
    seed: int = 0,
    spec: Annotated[Optional[list[Path]], typer.Option("--spec", help="extra task spec YAML file(s)")] = None,
) -> None:
    """Write the ids of the English items a shallow English baseline gets wrong ({ids_file: FILE} in a spec)."""
    from xstilts.evaluation.hard_subsets import Baseline, build_hard_subset, write_ids
    from xstilts.tasks.registry import load_registry

    if baseline not in {b.value for b in Baseline}:
        raise UserError(f"--baseline {baseline!r}: expected one of {', '.join(b.value for b in Baseline)}")
    task_spec = load_registry(spec or []).get(task).resolve_labels(data)
    hard_ids, easy_ids, accuracy = build_hard_subset(task_spec, data, baseline=baseline, split=split, seed=seed)
    write_ids(output, hard_ids)
    if easy is not None:
        write_ids(easy, easy_ids)
    out.print(f"{task} {split}-{task_spec.train_language}: {len(hard_ids)} hard, {len(easy_ids)} easy; {baseline} baseline accuracy {accuracy:.1f}")
    out.print(f"wrote {output}")


study_app = typer.Typer(no_args_is_help=True, help="Grids of experiments: plan a study, run what is not done, follow it.")
app.add_typer(study_app, name="study")
StudySpec = Annotated[Path, typer.Argument(help="study YAML (see configs/studies/)")]


@study_app.command("plan")
def study_plan(spec: StudySpec, store: StoreOption = None) -> None:
    """Print the study's nodes, which are done, their dependencies and the training steps to run."""
    from xstilts.experiments.store import ResultsStore, store_home
    from xstilts.experiments.study import load_study, node_statuses
    from xstilts.experiments.study_report import node_steps, node_table, plan_summary

    study = load_study(spec, store_home(store))
    statuses = node_statuses(study, ResultsStore(study.home))
    steps = {node.id: node_steps(node) for node in study.nodes.values()}
    out.print(node_table(study, statuses, steps))
    out.print(plan_summary(study, statuses, steps))


@study_app.command("status")
def study_status(spec: StudySpec, store: StoreOption = None) -> None:
    """Show each node as done, running, failed (with its reason), interrupted or pending."""
    from xstilts.experiments.store import ResultsStore, store_home
    from xstilts.experiments.study import load_study, node_statuses
    from xstilts.experiments.study_report import node_table, status_summary

    study = load_study(spec, store_home(store))
    statuses = node_statuses(study, ResultsStore(study.home))
    out.print(node_table(study, statuses))
    out.print(status_summary(statuses))


class ExecutorChoice(str, Enum):
    local = "local"
    ray = "ray"
    slurm = "slurm"


@study_app.command("run")
def study_run(
    spec: StudySpec,
    executor: Annotated[Optional[ExecutorChoice], typer.Option(help="where nodes run (default: the study's executor.kind)")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="nodes at once (default: the study's executor.workers)")] = None,
    store: StoreOption = None,
) -> None:
    """Run the nodes that are not done, in dependency order; exit 2 when any node failed."""
    from xstilts.config.study import ExecutorKind
    from xstilts.experiments.scheduler import run_study
    from xstilts.experiments.store import ResultsStore, store_home
    from xstilts.experiments.study import FAILED, load_study, node_statuses
    from xstilts.experiments.study_report import describe, status_summary

    study = load_study(spec, store_home(store))
    results_store = ResultsStore(study.home)
    cfg = study.config.executor.model_copy(
        update={key: value for key, value in (("kind", executor and ExecutorKind(executor.value)), ("workers", workers)) if value}
    )
    before = node_statuses(study, results_store)
    err.print(f"study {study.name}: {status_summary(before)}; running the rest on {cfg.kind.value} x {cfg.workers}", highlight=False)

    def report(event) -> None:
        reason = f": {event.outcome.message}" if event.outcome and event.outcome.message else ""
        labels = " ".join(event.node.labels.values())
        err.print(f"{event.kind} {event.node.id} {labels} ({describe(event.node)}){reason}", highlight=False, soft_wrap=True)

    outcomes = run_study(study, cfg, before, on_event=report)
    print_results(store, None, study=study.name)
    after = node_statuses(study, results_store)
    out.print(f"study {study.name}: {status_summary(after)} ({len(outcomes)} run now)")
    failed = [outcome for outcome in outcomes.values() if outcome.status == FAILED]
    for outcome in failed:
        err.print(f"failed: {outcome.node} ({describe(study.nodes[outcome.node])}): {outcome.message}", highlight=False, soft_wrap=True)
    if failed:
        raise UserError(f"{len(failed)} of {len(study.nodes)} nodes of study {study.name} failed; rerun the same command to run what is missing")


@app.command()
def report(
    source: Annotated[Path, typer.Argument(help="a study YAML (its runs, analysed as its report section says) or a store folder (every run)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="folder for index.html, report.md, report.tex, report.json, figures/")],
    store: StoreOption = None,
) -> None:
    """Analyse a study's runs: deltas with intervals over seeds, paired tests, per-language and
    benchmark tables, plots; written as one HTML page plus Markdown, LaTeX and JSON."""
    from xstilts.analysis.report import write_study_report

    written = write_study_report(source, output, store_home_dir=store)
    out.print(f"report written to {written['html']} (also {', '.join(p.name for k, p in written.items() if k != 'html')})")


def main() -> None:
    """Console entry point: user errors and write faults (disk full, no permission, read-only)
    become one line on stderr and exit code 2."""
    import errno

    from rich.markup import escape
    from transformers.utils import logging as hf_logging

    from xstilts.atomic import WriteFault, fault_errno

    hf_logging.disable_progress_bar()
    try:
        app(standalone_mode=False)
    except (UserError, WriteFault) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as exc:  # raised outside the atomic writers, which name the artifact themselves
        if fault_errno(exc) is None:
            raise
        verb = "write" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) else "access"
        message = f"cannot {verb} {exc.filename or 'a file'}: {exc.strerror}; earlier results are intact"
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
