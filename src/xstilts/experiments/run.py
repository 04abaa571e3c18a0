"""Whole runs: `run_experiment` (phase 2 -> phase 3 -> zero-shot sweep) and `evaluate_model`.

A run's directory is assembled in a temporary folder and renamed when the run ends; its result
rows, its failed evaluations and its status go into the store in one transaction at that moment.
A run stopped by an exception (in training, say) leaves no directory and no rows, only a `failed`
status; the checkpoints it trained stay in the store and a rerun reuses them. A run in which
some (split, language) evaluations failed keeps the other rows, records each failure with its
reason, ends `partial` and raises `IncompleteRun`.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from xstilts.atomic import atomic_directory
from xstilts.config.schema import EvalConfig, ExperimentConfig, HandOff, ModelMode
from xstilts.data.hub import check_hub_language
from xstilts.data.loading import load_examples, local_path
from xstilts.errors import UserError, did_you_mean
from xstilts.evaluation.retrieval import resolve_retrieval_config, run_retrieval_sweep
from xstilts.evaluation.subsets import check_subsets
from xstilts.experiments.phases import (
    RunContext, intermediate_language, load_start, load_trained, run_intermediate_phase, run_target_phase,
    target_languages, target_splits,
)
from xstilts.experiments.store import FAILED, INTERRUPTED, ErrorRow, ResultsStore, store_home
from xstilts.experiments.zero_shot import zero_shot
from xstilts.models.cards import seen_tasks
from xstilts.models.runtime import run_device
from xstilts.models.sources import PACKAGED_PREFIX, LoadPolicy
from xstilts.paths import component, contained
from xstilts.results import ResultRow
from xstilts.tasks.registry import TaskRegistry, load_registry
from xstilts.tasks.spec import Format, TaskSpec
from xstilts.training.checkpoint import checkpoint_mode, is_checkpoint, read_metadata
from xstilts.training.distributed import check_batch_size, is_main, process_group
from xstilts.training.resume import Interrupted

# What `xstilts eval` uses for a model that records no training max_length (a pretrained model).
DEFAULT_EVAL_MAX_LENGTH = 128


class IncompleteRun(UserError):
    """Some evaluations of a run failed; the other rows are stored and the run is `partial`."""

    def __init__(self, run_id: str, errors: list[ErrorRow], total: int):
        self.run_id, self.errors = run_id, errors
        first = errors[0]
        others = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
        super().__init__(
            f"run {run_id} is partial: {first.task} {first.split}-{first.language} failed: {first.message}{others} "
            f"({len(errors)} of {total} evaluations failed; the other rows are stored)"
        )


def new_run_id(name: str) -> str:
    component(name, "name")  # an experiment's or study's: the run id starting with it names a folder
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{name}-{stamp}-{secrets.token_hex(2)}"


def make_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    )


def check_path_names(spec: TaskSpec, splits: list[str], languages: list[str]) -> None:
    """Fail before any training when a task, split or language name would not be a single file
    or folder name: they name the prediction files (PREDICTIONS/<task>/<split>-<language>.*)."""
    component(spec.name, "task name")
    for split in splits:
        component(split, f"task {spec.name!r}: split")
    for language in languages:
        component(language, f"task {spec.name!r}: language")


def check_files(spec: TaskSpec, data_dir: Path | None, splits: list[str], languages: list[str]) -> None:
    """Fail before any training when a needed local file, or a language of the hub source, is missing."""
    check_path_names(spec, splits, languages)
    if data_dir is None:
        for language in languages:
            check_hub_language(spec, language)
        return
    if spec.local is None:
        return
    for split in splits:
        for language in languages:
            path = local_path(spec, data_dir, split, language)
            if not path.exists():
                raise UserError(f"{path}: file not found (task {spec.name!r}, split {split!r}, language {language!r})")


def check_spec_subsets(spec: TaskSpec, data_dir: Path | None, splits: list[str], languages: list[str]) -> None:
    """Select the spec's subsets on local data before any training (hub data: at evaluation)."""
    if spec.subsets and data_dir is not None:
        resolved = spec.resolve_labels(data_dir)
        load = lambda split, language: load_examples(resolved, split, language, data_dir, allow_unlabelled=True)  # noqa: E731
        check_subsets(resolved, splits, languages, load, data_dir)


def check_model_revision(config: ExperimentConfig) -> None:
    if config.model_revision and (Path(config.model).expanduser().is_dir() or config.model.startswith(PACKAGED_PREFIX)):
        raise UserError(f"key 'model_revision': model {config.model!r} is not a hub model; a revision pins hub models only")


def preflight_intermediate(config: ExperimentConfig, registry: TaskRegistry) -> None:
    """Check the task names, the start model's revision and phase 2's data files (what a
    study's phase-2 node needs, which must not fail for one target's missing file)."""
    for task in config.data:
        registry.get(task)
    check_model_revision(config)
    check_text_to_text(config, registry)
    if config.intermediate:
        for name in config.intermediate.tasks:
            spec = registry.get(name)
            language = intermediate_language(spec, config.intermediate)
            check_files(spec, config.data.get(name), [s for s in ("train", "dev") if s in spec.splits], [language])


def check_text_to_text(config: ExperimentConfig, registry: TaskRegistry) -> None:
    """Text-to-text mode: every task that renders text has the configured prompt (span corruption
    renders none); encoder mode: no task is text-to-text only."""
    names = [*(config.intermediate.tasks if config.intermediate else []), config.target.task, *config.target.auxiliary]
    specs = [registry.get(name) for name in names]
    if config.mode is ModelMode.ENCODER:
        for spec in specs:
            if spec.format is Format.SPAN_CORRUPTION:
                raise UserError(f"task {spec.name!r} (span_corruption) trains text-to-text models only: set mode: text_to_text")
        return
    prompt = config.text_to_text.prompt
    for spec in specs:
        if prompt is not None and spec.format is not Format.SPAN_CORRUPTION and prompt not in spec.prompts:
            raise UserError(
                f"key 'text_to_text.prompt': task {spec.name!r} has no prompt {prompt!r}"
                f"{did_you_mean(prompt, spec.prompts)} (its prompts: {', '.join(spec.prompts) or 'none'})"
            )


def preflight(config: ExperimentConfig, registry: TaskRegistry) -> ExperimentConfig:
    """Resolve every task name, language, split and data file the experiment needs, before any
    training; return the config with the target's eval splits spelled out."""
    preflight_intermediate(config, registry)
    spec = registry.get(config.target.task)
    if spec.format is not Format.RETRIEVAL:  # retrieval trains nothing: no English training files
        check_files(spec, config.data.get(spec.name), [s for s in ("train", "dev") if s in spec.splits], [spec.train_language])
        check_batch_size(config.target.train.batch_size, "target.train.batch_size")  # the global batch, split over processes
    if config.intermediate:
        check_batch_size(config.intermediate.train.batch_size, "intermediate.train.batch_size")
    for name in config.target.auxiliary:
        auxiliary = registry.get(name)
        check_files(auxiliary, config.data.get(name), ["train"], [auxiliary.train_language])
    splits = target_splits(spec, config.target.eval_splits)
    check_files(spec, config.data.get(spec.name), splits, target_languages(spec, config.target.languages))
    check_spec_subsets(spec, config.data.get(spec.name), splits, target_languages(spec, config.target.languages))
    retrieval = resolve_retrieval_config(config.target.retrieval, config.model, spec)  # prefixes of the model's recipe
    return config.model_copy(update={"target": config.target.model_copy(update={"eval_splits": splits, "retrieval": retrieval})})


@contextmanager
def run_directory(store: ResultsStore, run_id: str) -> Iterator[Path]:
    """The run's directory, built in a temporary folder renamed at the end; with a read-only
    store (a data-parallel rank other than 0) a scratch folder that is then discarded."""
    if store.read_only:
        with tempfile.TemporaryDirectory(prefix="xstilts-rank-") as scratch:
            yield Path(scratch)
        return
    with atomic_directory(contained(store.runs_dir, component(run_id, "run id"), what="run id")) as tmp:
        yield tmp


@contextmanager
def recorded_run(store: ResultsStore, name: str, config: dict, **node):
    """Yield (run id, temporary run dir, rows, errors); at the end rename the dir and store the
    rows and errors. Raises IncompleteRun after storing when errors were collected. `node`:
    the study, node and axes of a study's run (store.start_run); a failure's one-line reason
    is stored with the failed status."""
    run_id = new_run_id(name)
    store.start_run(run_id, name, config, **node)
    rows: list[ResultRow] = []
    errors: list[ErrorRow] = []
    try:
        with run_directory(store, run_id) as tmp:
            (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
            yield run_id, tmp, rows, errors
            (tmp / "results.json").write_text(json.dumps([r.as_dict() for r in rows], indent=1), encoding="utf-8")
            if errors:
                (tmp / "errors.json").write_text(json.dumps([e.as_dict() for e in errors], indent=1), encoding="utf-8")
        store.complete_run(run_id, rows, errors)
    except Interrupted as exc:  # stopped on a signal with its training state saved: a rerun resumes
        store.finish_run(run_id, INTERRUPTED, message=str(exc))
        raise
    except BaseException as exc:
        store.finish_run(run_id, FAILED, message=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise
    if errors:
        evaluated = {(row.task, row.language, row.split) for row in rows if row.phase != "intermediate"}
        raise IncompleteRun(run_id, errors, total=len(evaluated) + len(errors))


def warn_seen_tasks(config: ExperimentConfig, console: Console) -> None:
    """Say which of the run's tasks the start model was already trained on (its card, models/cards):
    zero-shot numbers on a seen task are not zero-shot. Reports flag the same rows."""
    tasks = [*(config.intermediate.tasks if config.intermediate else []), config.target.task]
    seen = [task for task in tasks if task in seen_tasks(config.model)]
    if seen:
        console.print(f"[yellow]start model {config.model!r} was trained on {', '.join(seen)} (its model card): "
                      "results on them are flagged in reports[/]", highlight=False)


def run_experiment(
    config: ExperimentConfig, home: Path | str | None = None, console: Console | None = None, **node
) -> str:
    """Run start model -> (phase 2) -> phase 3 -> zero-shot sweep; return the run id. `node`:
    study, node and axes when the run is a node of a study (recorded with the run).

    Raises:
        IncompleteRun: some languages' evaluations failed (the others' rows are stored).

    Example:
        >>> run_id = run_experiment(load_config("configs/xnli-from-mnli.yaml"))
    """
    console = console or Console(stderr=True)
    if not is_main():  # data-parallel training (torchrun): rank 0 reports and writes, the others train quietly
        console = Console(stderr=True, quiet=True)
    registry = load_registry(config.task_specs)
    config = preflight(config, registry)
    warn_seen_tasks(config, console)
    device = run_device(config.device, config.precision)
    store = ResultsStore(store_home(home), read_only=not is_main())
    record = recorded_run(store, config.name, config.model_dump(mode="json"), **node)
    with process_group(device), record as (run_id, run_dir, rows, errors), make_progress(console) as progress:
        ctx = RunContext(run_id, config, registry, store, run_dir, device, console, progress, errors=errors)
        start, start_key = config.model, None
        if config.intermediate:
            checkpoint, key, phase_rows = run_intermediate_phase(ctx)
            start, start_key = str(checkpoint), f"intermediate:{key}"
            rows.extend(phase_rows)
        _, phase_rows = run_target_phase(ctx, start, start_key)
        rows.extend(phase_rows)
    return run_id


def run_intermediate_only(config: ExperimentConfig, home: Path | str | None, console: Console, name: str, **node) -> str:
    """Phase 2 alone (a study's phase-2 node): train, or find in the cache, the phase-2
    checkpoint of `config`, as a run named `name` holding its English dev rows; return the run id."""
    registry = load_registry(config.task_specs)
    preflight_intermediate(config, registry)
    store = ResultsStore(store_home(home))
    recorded = {key: value for key, value in config.model_dump(mode="json").items() if key != "target"}
    device = run_device(config.device, config.precision)
    with recorded_run(store, name, recorded, **node) as (run_id, run_dir, rows, errors), make_progress(console) as progress:
        ctx = RunContext(run_id, config, registry, store, run_dir, device, console, progress, errors=errors)
        _, _, phase_rows = run_intermediate_phase(ctx)
        rows.extend(phase_rows)
    return run_id


def eval_max_length(config: EvalConfig) -> int:
    """The max_length to evaluate with: the user's, else the one the checkpoint was trained
    with (older checkpoints record it only in their training config), else 128."""
    if config.max_length is not None:
        return config.max_length
    if is_checkpoint(config.model):
        metadata = read_metadata(Path(config.model))
        recorded = metadata.get("max_length") or metadata.get("config", {}).get("train", {}).get("max_length")
        if recorded:
            return int(recorded)
    return DEFAULT_EVAL_MAX_LENGTH


def eval_mode(config: EvalConfig) -> ModelMode:
    """The mode to evaluate in: the user's, else the checkpoint's, else encoder."""
    if config.mode is not None:
        return config.mode
    return checkpoint_mode(Path(config.model)) if is_checkpoint(config.model) else ModelMode.ENCODER


def evaluate_model(config: EvalConfig, home: Path | str | None = None, console: Console | None = None) -> str:
    """Zero-shot sweep of an existing checkpoint (or model) on one task, without training.

    Raises:
        IncompleteRun: some languages' evaluations failed (the others' rows are stored).
    """
    console = console or Console(stderr=True)
    registry = load_registry(config.task_specs)
    spec = registry.get(config.task).resolve_labels(config.data_dir)
    languages = target_languages(spec, config.languages)
    target_splits(spec, config.splits, key="splits")
    check_files(spec, config.data_dir, config.splits, languages)
    check_spec_subsets(spec, config.data_dir, config.splits, languages)
    if spec.format is not Format.RETRIEVAL:
        config = config.model_copy(update={"max_length": eval_max_length(config)})
    config = config.model_copy(update={"retrieval": resolve_retrieval_config(config.retrieval, config.model, spec)})
    store = ResultsStore(store_home(home))
    record = recorded_run(store, f"eval-{spec.name}", config.model_dump(mode="json"))
    device = run_device(config.device, config.precision)
    with record as (run_id, run_dir, rows, errors), make_progress(console) as progress:
        ctx = RunContext(
            run_id, None, registry, store, run_dir, device, console, progress, errors=errors,
            mode=eval_mode(config), text_to_text=config.text_to_text,
            load_policy=LoadPolicy(config.allow_pickle_weights, config.trust_remote_code),
        )
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
        loaded = load_trained(config.model, spec, ctx)
        rows.extend(
            zero_shot(
                ctx, loaded, spec, phase="eval", languages=languages, splits=config.splits, data_dir=config.data_dir,
                max_length=config.max_length, batch_size=config.batch_size, precision=config.precision,
            )
        )
    return run_id
