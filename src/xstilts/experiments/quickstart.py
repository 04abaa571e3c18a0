"""`xstilts quickstart`: the whole X-STILTs phenomenon offline, in minutes, on a CPU.

generate synthetic languages -> tiny model + tokenizer -> MLM pretraining on every language
-> for each arm (random-init control, no intermediate, intermediate task(s)) and target:
English target training -> zero-shot evaluation on every synthetic language -> table.
Every artifact is content-keyed under the work dir and reused by later quickstarts.

The preparation runs in this process on every core (nothing can run beside it); the arm x
target runs then go through the study scheduler, several at once in worker processes with a
share of the cores each (`workers`; 1 runs them one by one in this process, as before). The
first target of an intermediate arm trains its phase 2; the arm's other targets wait for it and
reuse the cached checkpoint.

With `prepare_t5` (set by a study whose runs use `quickstart:t5` or `quickstart:t5-instruct`),
the miniature also holds research question (a)'s text-to-text start models: a tiny T5 with a
SentencePiece tokenizer trained on the synthetic text, pretrained with span corruption on every
synthetic language, and its "instruction-tuned" counterpart (multi-task text-to-text training
on `t5.instruct_tasks` with their instruction prompts: a FLAN stand-in). The instruct folder's
name starts with `tiny-t5-instruct-`, which its model card (models/cards/tiny-t5-instruct.yaml)
matches, so reports flag the instruction tasks as seen.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from statistics import fmean
from time import perf_counter
from typing import TYPE_CHECKING

import torch
from rich.console import Console
from rich.table import Table

from xstilts.config.loading import load_config
from xstilts.config.schema import ExperimentConfig, Mixing, MixtureConfig, QuickstartConfig, TextToTextConfig
from xstilts.data.loading import load_examples
from xstilts.errors import UserError
from xstilts.experiments.fingerprint import hash_file, hash_json, hash_tree
from xstilts.experiments.phases import subsample
from xstilts.experiments.run import make_progress, run_experiment
from xstilts.experiments.store import COMPLETED, FAILED, ResultsStore, store_home
from xstilts.formats.base import get_format
from xstilts.models.runtime import resolve_device, seed_everything
from xstilts.models.text_to_text import TextToTextModel
from xstilts.models.tiny import BUILDER_VERSION, T5_BUILDER_VERSION, build_tiny_model, build_tiny_t5
from xstilts.synthetic.generate import generate_benchmark
from xstilts.synthetic.languages import load_languages
from xstilts.tasks.registry import TaskRegistry, load_registry
from xstilts.training.loop import TRAINING_VERSION, TrainTask, train_model
from xstilts.training.pretrain import (PRETRAINING_VERSION, load_seq2seq_lm, pretrain_mlm, pretrain_span_corruption,
                                      save_model)

if TYPE_CHECKING:  # study.py imports this module: its names are imported where they are used
    from xstilts.experiments.scheduler import Event
    from xstilts.experiments.study import Node, NodeOutcome

QUICKSTART_CONFIG = Path(str(resources.files("xstilts.experiments") / "quickstart.yaml"))
CONTROL_ARM = "control"
# Arm runs at once by default (one per core up to this): tiny models gain little from more
# threads per run, and every worker is a process holding torch.
MAX_DEFAULT_WORKERS = 4


@dataclass(frozen=True)
class Miniature:
    """The prepared miniature: the synthetic benchmark's folder and the tiny models (the BERT pair
    unless the config's `prepare_bert` is off, the T5 pair only when `prepare_t5` asks for it)."""

    data: Path
    initial: Path | None
    pretrained: Path | None
    t5: Path | None = None
    t5_instruct: Path | None = None


def data_folder(cfg: QuickstartConfig, workdir: Path) -> Path:
    """Where the synthetic benchmark of `cfg` is (or will be) generated: keyed by what shapes it."""
    languages = cfg.languages_file and hash_file(cfg.languages_file)
    generator = hash_tree(Path(str(resources.files("xstilts.synthetic"))))
    key = hash_json({"seed": cfg.seed, "sizes": cfg.sizes, "generator": generator, "languages_file": languages})[:12]
    return workdir / f"data-{key}"


def prepare_data(cfg: QuickstartConfig, workdir: Path, console: Console) -> Path:
    data = data_folder(cfg, workdir)
    if not (data / "manifest.json").exists():
        console.print(f"generating the synthetic benchmark into {data}")
        generate_benchmark(data, seed=cfg.seed, sizes=cfg.sizes, languages_file=cfg.languages_file)
    return data


def check_languages(cfg: QuickstartConfig, registry: TaskRegistry) -> None:
    """Every target's languages must be generated (a custom languages file keeps the codes)."""
    codes = {language.code for language in load_languages(cfg.languages_file)}
    for name in cfg.targets:
        missing = [code for code in registry.get(name).languages if code not in codes]
        if missing:
            source = cfg.languages_file or "the shipped languages file"
            raise UserError(f"key 'languages_file': {source} lacks {missing}, languages of target {name!r}")


def prepare_models(cfg: QuickstartConfig, data: Path, workdir: Path, console: Console) -> tuple[Path, Path]:
    """(random-init model, MLM-pretrained model), each keyed by everything that shapes it."""
    texts = sorted((data / "mlm").glob("*.txt"))
    initial, pretrained = model_folders(cfg, data, workdir)
    if not (initial / "config.json").exists():
        lines = [line for path in texts for line in path.read_text(encoding="utf-8").splitlines()]
        build_tiny_model(initial, lines, seed=cfg.seed, **cfg.model.model_dump())
    if not (pretrained / "config.json").exists():
        with make_progress(console) as progress:
            pretrain_mlm(
                initial, texts, pretrained, **cfg.pretrain.model_dump(), seed=cfg.seed,
                device=resolve_device(cfg.device), precision=cfg.precision, progress=progress,
            )
    return initial, pretrained


def model_folders(cfg: QuickstartConfig, data: Path, workdir: Path) -> tuple[Path, Path]:
    """Where the random-init and the MLM-pretrained model of `cfg` on the generated `data` are."""
    corpus_key = hash_json([hash_tree(data / "mlm"), cfg.model.model_dump(), cfg.seed, BUILDER_VERSION])[:12]
    pretrained_key = hash_json([corpus_key, cfg.pretrain.model_dump(), cfg.precision.value, PRETRAINING_VERSION])[:12]
    return workdir / f"tiny-{corpus_key}", workdir / f"tiny-mlm-{pretrained_key}"


def prepare_miniature(cfg: QuickstartConfig, workdir: Path, console: Console) -> Miniature:
    """Generate the synthetic benchmark, build the tiny model and pretrain it (with `prepare_bert`),
    and with `prepare_t5` the T5 pair (each step only when its content-keyed folder is missing);
    what a study's `prepare` node runs."""
    registry = load_registry()
    check_languages(cfg, registry)
    data = prepare_data(cfg, workdir, console)
    initial, pretrained = prepare_models(cfg, data, workdir, console) if cfg.prepare_bert else (None, None)
    t5 = prepare_t5_models(cfg, data, workdir, console, registry) if cfg.prepare_t5 else (None, None)
    return Miniature(data, initial, pretrained, *t5)


def find_miniature(cfg: QuickstartConfig, workdir: Path) -> Miniature | None:
    """The prepared miniature of `cfg` under `workdir`, or None while any part of it is missing."""
    data = data_folder(cfg, workdir)
    if not (data / "manifest.json").exists():
        return None
    bert = model_folders(cfg, data, workdir) if cfg.prepare_bert else (None, None)
    t5 = t5_folders(cfg, data, workdir, load_registry())[1:] if cfg.prepare_t5 else (None, None)  # random-init T5: no placeholder
    if not all((model / "config.json").exists() for model in (*bert, *t5) if model is not None):
        return None
    return Miniature(data, *bert, *t5)


def t5_folders(cfg: QuickstartConfig, data: Path, workdir: Path, registry: TaskRegistry) -> tuple[Path, Path, Path]:
    """Where the tiny T5 of `cfg` is: random-init, span-corruption pretrained, instruction-trained."""
    t5 = cfg.t5
    corpus_key = hash_json([hash_tree(data / "mlm"), t5_sizes(cfg), cfg.seed, T5_BUILDER_VERSION])[:12]
    span_key = hash_json([corpus_key, t5.pretrain.model_dump(), cfg.precision.value, PRETRAINING_VERSION])[:12]
    # The instruction data as trained on: the tasks' files, their specs (prompt templates) and formats.
    prompt = TextToTextConfig(prompt=t5.instruct_prompt)
    specs = [registry.get(name) for name in t5.instruct_tasks]
    tasks = [
        [spec.model_dump(mode="json"), get_format(spec.format, prompt).version, hash_tree(instruction_data(cfg, data, spec.name))]
        for spec in specs
    ]
    settings = [t5.instruct_prompt, t5.instruct_train.model_dump(), cfg.seed, TRAINING_VERSION]
    instruct_key = hash_json([span_key, tasks, settings, cfg.precision.value])[:12]
    return workdir / f"tiny-t5-{corpus_key}", workdir / f"tiny-t5-sc-{span_key}", workdir / f"tiny-t5-instruct-{instruct_key}"


def t5_sizes(cfg: QuickstartConfig) -> dict[str, int]:
    return cfg.t5.model_dump(include={"vocab_size", "d_model", "num_layers", "num_heads", "d_ff"})


def instruction_data(cfg: QuickstartConfig, data: Path, task: str) -> Path:
    if task not in cfg.data:
        raise UserError(f"key 't5.instruct_tasks': task {task!r} has no folder in the miniature's 'data' map")
    return data / cfg.data[task]


def prepare_t5_models(
    cfg: QuickstartConfig, data: Path, workdir: Path, console: Console, registry: TaskRegistry
) -> tuple[Path, Path]:
    """(span-corruption pretrained T5, instruction-trained T5), each built only when missing."""
    initial, pretrained, instruct = t5_folders(cfg, data, workdir, registry)
    texts = sorted((data / "mlm").glob("*.txt"))
    device = resolve_device(cfg.device)
    if not (initial / "config.json").exists():
        lines = [line for path in texts for line in path.read_text(encoding="utf-8").splitlines()]
        build_tiny_t5(initial, lines, seed=cfg.seed, **t5_sizes(cfg))
    if not (pretrained / "config.json").exists():
        with make_progress(console) as progress:
            pretrain_span_corruption(
                initial, texts, pretrained, **cfg.t5.pretrain.model_dump(), seed=cfg.seed,
                device=device, precision=cfg.precision, progress=progress,
            )
    if not (instruct / "config.json").exists():
        train_instructions(cfg, data, pretrained, instruct, registry=registry, device=device, console=console)
    return pretrained, instruct


def train_instructions(
    cfg: QuickstartConfig, data: Path, start: Path, out_dir: Path, *, registry: TaskRegistry, device: torch.device, console: Console
) -> Path:
    """Multi-task text-to-text training of `start` on the English training data of
    `t5.instruct_tasks`, each rendered with its `t5.instruct_prompt` template, in mixed batches
    (FLAN's recipe in miniature); the seq2seq model and tokenizer are saved to `out_dir`."""
    t5 = cfg.t5
    seed_everything(cfg.seed)
    seq2seq, tokenizer = load_seq2seq_lm(start)
    settings = TextToTextConfig(prompt=t5.instruct_prompt)
    tasks = []
    for name in t5.instruct_tasks:
        spec = registry.get(name)
        fmt = get_format(spec.format, settings)
        examples = load_examples(spec, "train", spec.train_language, instruction_data(cfg, data, name))
        examples = subsample(examples, t5.instruct_train.max_train_examples, cfg.seed)
        tasks.append(TrainTask(spec=spec, fmt=fmt, features=fmt.featurize(examples, tokenizer, spec, t5.instruct_train.max_length)))
    model = TextToTextModel(seq2seq)
    with make_progress(console) as progress:
        train_model(
            model, tasks, t5.instruct_train, tokenizer=tokenizer, device=device, precision=cfg.precision,
            mixture=MixtureConfig(mixing=Mixing.MIXED_BATCH), seed=cfg.seed, progress=progress,
        )
    return save_model(model.seq2seq, tokenizer, out_dir)


def arm_configs(cfg: QuickstartConfig, data: Path, initial: Path, pretrained: Path) -> list[tuple[str, ExperimentConfig]]:
    arms = ([(CONTROL_ARM, initial, [])] if cfg.control else []) + [(n, pretrained, t) for n, t in cfg.arms.items()]
    configs = []
    for arm, model, intermediate in arms:
        for target in cfg.targets:
            configs.append((arm, ExperimentConfig(
                name=f"quickstart-{arm}-{target}",
                model=str(model),
                seed=cfg.seed,
                data={task: data / folder for task, folder in cfg.data.items()},
                intermediate={"tasks": intermediate, "train": cfg.intermediate_train} if intermediate else None,
                target={"task": target, "train": cfg.target_train, "eval_splits": cfg.eval_splits},
                device=cfg.device,
                precision=cfg.precision,
            )))
    return configs


def run_quickstart(
    home: Path | str | None = None, workdir: Path | None = None, console: Console | None = None, overrides: list[str] = (),
    workers: int | None = None,
) -> dict[str, str]:
    """Run the miniature; return {run id: arm} (one run per arm x target).

    `workers` arm runs go at once (default: one per core, at most `MAX_DEFAULT_WORKERS`); each
    gets cores // workers torch threads, so its numbers depend on the machine and `workers`, and
    are the same on every rerun with both unchanged.
    """
    from xstilts.experiments.executors import ProcessExecutor, SequentialExecutor, available_cores
    from xstilts.experiments.scheduler import run_graph

    console = console or Console(stderr=True)
    cfg = load_config(QUICKSTART_CONFIG, overrides, schema=QuickstartConfig)
    registry = load_registry()
    for name in [*cfg.targets, *(t for tasks in cfg.arms.values() for t in tasks)]:
        registry.get(name)
    check_languages(cfg, registry)
    workdir = Path(workdir) if workdir else store_home(home) / "quickstart"
    started = perf_counter()
    data = prepare_data(cfg, workdir, console)
    initial, pretrained = prepare_models(cfg, data, workdir, console)
    if cfg.prepare_t5:  # built for later studies; the quickstart's own arms use the tiny BERT
        prepare_t5_models(cfg, data, workdir, console, registry)
    console.print(f"prepared the miniature in {perf_counter() - started:.0f} s")
    configs = arm_configs(cfg, data, initial, pretrained)
    nodes = arm_nodes(configs)
    workers = workers or min(available_cores(), MAX_DEFAULT_WORKERS)
    executor = SequentialExecutor() if workers == 1 else ProcessExecutor(workers)
    try:
        outcomes = run_graph(nodes, set(nodes), executor, workers, str(store_home(home)), fn=run_arm,
                             on_event=lambda event: report_arm(event, console))
    finally:
        executor.shutdown()
    failed = [f"arm {nodes[node].labels['arm']} target {nodes[node].labels['target']}: {outcome.message}"
              for node, outcome in outcomes.items() if outcome.status != COMPLETED]
    if failed:
        raise UserError(f"quickstart: {failed[0]}" + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""))
    return {outcomes[arm_node_id(arm, config)].run: arm for arm, config in configs}


def arm_node_id(arm: str, config: ExperimentConfig) -> str:
    return f"{arm}-{config.target.task}"


def arm_nodes(configs: list[tuple[str, ExperimentConfig]]) -> dict[str, Node]:
    """One node per arm x target, in the arms' order; an arm's later targets depend on its first,
    which trains the arm's phase 2 (so it is trained once). Those first runs come first, so the
    long chains start early."""
    from xstilts.experiments.study import RUN, Node

    nodes, first, trains_phase2 = {}, {}, []
    for arm, config in configs:
        node_id = arm_node_id(arm, config)
        deps = (first[arm],) if config.intermediate is not None and arm in first else ()
        if config.intermediate is not None and arm not in first:
            trains_phase2.append(node_id)
        first.setdefault(arm, node_id)
        nodes[node_id] = Node(node_id, RUN, "quickstart", deps, {"arm": arm, "target": config.target.task},
                              config.model_dump(mode="json"))
    return {**{node_id: nodes[node_id] for node_id in trains_phase2}, **nodes}


def run_arm(node: Node, home: str) -> NodeOutcome:
    """One arm x target run, in whatever process the executor chose; a user's mistake is a
    failed outcome with its one-line reason (as a study's `execute_node`)."""
    from xstilts.experiments.study import NodeOutcome, one_line

    console, started = Console(stderr=True), perf_counter()
    try:
        run = run_experiment(ExperimentConfig.model_validate(node.config), home=home, console=console)
    except UserError as exc:
        return NodeOutcome(node.id, FAILED, one_line(exc))
    console.print(f"arm {node.labels['arm']}: target {node.labels['target']} done in {perf_counter() - started:.0f} s")
    return NodeOutcome(node.id, COMPLETED, None, run)


def report_arm(event: Event, console: Console) -> None:
    if event.kind == "started":
        console.print(f"[bold]arm {event.node.labels['arm']}[/]: target {event.node.labels['target']}")


def transfer_table(store: ResultsStore, runs: dict[str, str]) -> Table:
    """Arms as rows, per target: English and each other language (test), plus their mean, in the
    target's metric (accuracy; seqeval F1 for tagging)."""
    scores: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for run, arm in runs.items():
        for row in store.results(run):
            if row.phase == "target" and row.split == "test" and row.metric in ("accuracy", "f1"):
                scores[(row.task, row.metric, arm)][row.language] = row.value
    languages = sorted({lang for values in scores.values() for lang in values}, key=lambda l: (l != "en", l))
    table = Table("target", "metric", "arm", *languages, "zero-shot avg", title="quickstart: zero-shot transfer (test, %)")
    for (task, metric, arm), values in scores.items():
        cells = (f"{values[l]:.1f}" if l in values else "-" for l in languages)
        table.add_row(task, metric, arm, *cells, f"{zero_shot_mean(values):.1f}")
    return table


def zero_shot_mean(values: dict[str, float]) -> float:
    """The mean over every language but English: the one arithmetic behind the printed table,
    the README and the tests (sum/len and statistics.mean can round apart at .x5)."""
    return fmean(value for language, value in values.items() if language != "en")
