"""Whole runs: `run_experiment` (phase 2 -> phase 3 -> zero-shot sweep) and `evaluate_model`.

A run's directory is assembled in a temporary folder and renamed when the run succeeds;
its result rows go into the store in one transaction at the same moment, so a failed run
leaves neither a half-written directory nor partial rows (only a `failed` status line).
"""

from __future__ import annotations

import json
import secrets
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from xstilts.config.schema import EvalConfig, ExperimentConfig, HandOff
from xstilts.data.loading import local_path
from xstilts.errors import UserError
from xstilts.atomic import atomic_directory
from xstilts.experiments.phases import RunContext, intermediate_language, load_start, run_intermediate_phase, run_target_phase, target_languages
from xstilts.experiments.store import ResultsStore, store_home
from xstilts.results import ResultRow
from xstilts.evaluation.retrieval import run_retrieval_sweep
from xstilts.evaluation.sweep import run_zero_shot_sweep
from xstilts.tasks.registry import TaskRegistry, load_registry
from xstilts.tasks.spec import Format, TaskSpec
from xstilts.models.runtime import resolve_device, seed_everything


def new_run_id(name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{name}-{stamp}-{secrets.token_hex(2)}"


def make_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    )


def check_files(spec: TaskSpec, data_dir: Path | None, splits: list[str], languages: list[str]) -> None:
    """Fail before any training when a needed local file is missing (hours of compute saved)."""
    if data_dir is None or spec.local is None:
        return
    for split in splits:
        for language in languages:
            path = local_path(spec, data_dir, split, language)
            if not path.exists():
                raise UserError(f"{path}: file not found (task {spec.name!r}, split {split!r}, language {language!r})")


def preflight(config: ExperimentConfig, registry: TaskRegistry) -> None:
    """Resolve every task name, language and data file the experiment needs."""
    for task in config.data:
        registry.get(task)
    if config.intermediate:
        for name in config.intermediate.tasks:
            spec = registry.get(name)
            language = intermediate_language(spec, config.intermediate)
            check_files(spec, config.data.get(name), [s for s in ("train", "dev") if s in spec.splits], [language])
    spec = registry.get(config.target.task)
    if spec.format is not Format.RETRIEVAL:  # retrieval trains nothing: no English training files
        check_files(spec, config.data.get(spec.name), [s for s in ("train", "dev") if s in spec.splits], [spec.train_language])
    check_files(spec, config.data.get(spec.name), config.target.eval_splits, target_languages(spec, config.target.languages))


@contextmanager
def recorded_run(store: ResultsStore, name: str, config: dict):
    """Yield (run id, temporary run dir, rows list); on success rename the dir and store the rows."""
    run_id = new_run_id(name)
    store.start_run(run_id, name, config)
    rows: list[ResultRow] = []
    try:
        with atomic_directory(store.runs_dir / run_id) as tmp:
            (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
            yield run_id, tmp, rows
            (tmp / "results.json").write_text(json.dumps([r.as_dict() for r in rows], indent=1), encoding="utf-8")
        store.add_results(rows)
        store.finish_run(run_id, "completed")
    except BaseException:
        store.finish_run(run_id, "failed")
        raise


def run_experiment(config: ExperimentConfig, home: Path | str | None = None, console: Console | None = None) -> str:
    """Run start model -> (phase 2) -> phase 3 -> zero-shot sweep; return the run id.

    Example:
        >>> run_id = run_experiment(load_config("configs/quickstart.yaml"))
    """
    console = console or Console(stderr=True)
    registry = load_registry(config.task_specs)
    preflight(config, registry)
    store = ResultsStore(store_home(home))
    seed_everything(config.seed)
    with recorded_run(store, config.name, config.model_dump(mode="json")) as (run_id, run_dir, rows), make_progress(console) as progress:
        ctx = RunContext(run_id, config, registry, store, run_dir, resolve_device(config.device), console, progress)
        start = config.model
        if config.intermediate:
            checkpoint, phase_rows = run_intermediate_phase(ctx)
            start = str(checkpoint)
            rows.extend(phase_rows)
        _, phase_rows = run_target_phase(ctx, start)
        rows.extend(phase_rows)
    return run_id


def evaluate_model(config: EvalConfig, home: Path | str | None = None, console: Console | None = None) -> str:
    """Zero-shot sweep of an existing checkpoint (or model) on one task, without training."""
    console = console or Console(stderr=True)
    registry = load_registry(config.task_specs)
    spec = registry.get(config.task).resolve_labels(config.data_dir)
    languages = target_languages(spec, config.languages)
    check_files(spec, config.data_dir, config.splits, languages)
    store = ResultsStore(store_home(home))
    with recorded_run(store, f"eval-{spec.name}", config.model_dump(mode="json")) as (run_id, run_dir, rows), make_progress(console) as progress:
        ctx = RunContext(run_id, None, registry, store, run_dir, resolve_device(config.device), console, progress)
        if spec.format is Format.RETRIEVAL:
            # Retrieval is scored on the encoder's own embeddings: there is no head to load.
            loaded = load_start(config.model, HandOff.ENCODER_ONLY, {}, ctx, dropout=0.0)
            loaded.model.to(ctx.device)
            rows.extend(
                run_retrieval_sweep(
                    loaded.model.encoder, loaded.tokenizer, spec, languages=languages, splits=config.splits,
                    data_dir=config.data_dir, cfg=config.retrieval, device=ctx.device, precision=config.precision,
                    run_id=run_id, phase="eval", predictions_dir=run_dir / "predictions", progress=progress,
                )
            )
            return run_id
        loaded = load_start(config.model, HandOff.ENCODER_AND_MATCHING_HEADS, {spec.head_name: spec}, ctx, dropout=0.0)
        if spec.head_name not in loaded.model.heads:
            raise UserError(
                f"model {config.model!r} has no trained {spec.format.value} head for task {spec.name!r} "
                f"with labels {spec.labels}; pass a checkpoint trained on it (xstilts run)"
            )
        loaded.model.to(ctx.device)
        rows.extend(
            run_zero_shot_sweep(
                loaded.model, loaded.tokenizer, spec, languages=languages, splits=config.splits,
                data_dir=config.data_dir, max_length=config.max_length, batch_size=config.batch_size,
                device=ctx.device, precision=config.precision, run_id=run_id, phase="eval",
                predictions_dir=run_dir / "predictions", progress=progress,
            )
        )
    return run_id
