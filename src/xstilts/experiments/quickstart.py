"""`xstilts quickstart`: the whole X-STILTs phenomenon offline, in minutes, on a CPU.

generate synthetic languages -> tiny model + tokenizer -> MLM pretraining on every language
-> for each arm (random-init control, no intermediate, intermediate task(s)) and target:
English target training -> zero-shot evaluation on every synthetic language -> table.
Every artifact is content-keyed under the work dir and reused by later quickstarts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from statistics import fmean

from rich.console import Console
from rich.table import Table

from xstilts.config.loading import load_config
from xstilts.config.schema import ExperimentConfig, QuickstartConfig
from xstilts.errors import UserError
from xstilts.experiments.fingerprint import hash_file, hash_json, hash_tree
from xstilts.experiments.run import make_progress, run_experiment
from xstilts.experiments.store import ResultsStore, store_home
from xstilts.models.tiny import BUILDER_VERSION, build_tiny_model
from xstilts.synthetic.generate import generate_benchmark
from xstilts.synthetic.languages import load_languages
from xstilts.tasks.registry import TaskRegistry, load_registry
from xstilts.training.pretrain import pretrain_mlm
from xstilts.models.runtime import resolve_device

QUICKSTART_CONFIG = Path(str(resources.files("xstilts.experiments") / "quickstart.yaml"))
CONTROL_ARM = "control"


@dataclass(frozen=True)
class Miniature:
    """The prepared miniature: the synthetic benchmark's folder and the two tiny models."""

    data: Path
    initial: Path
    pretrained: Path


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
    pretrained_key = hash_json([corpus_key, cfg.pretrain.model_dump(), cfg.precision.value])[:12]
    return workdir / f"tiny-{corpus_key}", workdir / f"tiny-mlm-{pretrained_key}"


def prepare_miniature(cfg: QuickstartConfig, workdir: Path, console: Console) -> Miniature:
    """Generate the synthetic benchmark, build the tiny model and pretrain it (each step only
    when its content-keyed folder is missing); what a study's `prepare` node runs."""
    check_languages(cfg, load_registry())
    data = prepare_data(cfg, workdir, console)
    return Miniature(data, *prepare_models(cfg, data, workdir, console))


def find_miniature(cfg: QuickstartConfig, workdir: Path) -> Miniature | None:
    """The prepared miniature of `cfg` under `workdir`, or None while any part of it is missing."""
    data = data_folder(cfg, workdir)
    if not (data / "manifest.json").exists():
        return None
    initial, pretrained = model_folders(cfg, data, workdir)
    if not ((initial / "config.json").exists() and (pretrained / "config.json").exists()):
        return None
    return Miniature(data, initial, pretrained)


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
    home: Path | str | None = None, workdir: Path | None = None, console: Console | None = None, overrides: list[str] = ()
) -> dict[str, str]:
    """Run the miniature; return {run id: arm} (one run per arm x target)."""
    console = console or Console(stderr=True)
    cfg = load_config(QUICKSTART_CONFIG, overrides, schema=QuickstartConfig)
    registry = load_registry()
    for name in [*cfg.targets, *(t for tasks in cfg.arms.values() for t in tasks)]:
        registry.get(name)
    check_languages(cfg, registry)
    workdir = Path(workdir) if workdir else store_home(home) / "quickstart"
    data = prepare_data(cfg, workdir, console)
    initial, pretrained = prepare_models(cfg, data, workdir, console)
    runs = {}
    for arm, config in arm_configs(cfg, data, initial, pretrained):
        console.print(f"[bold]arm {arm}[/]: target {config.target.task}")
        runs[run_experiment(config, home=home, console=console)] = arm
    return runs


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
