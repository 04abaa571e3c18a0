"""The phases of an X-STILTs run. Each takes a start checkpoint (or model) and returns a checkpoint.

phase 2 (intermediate): English intermediate task(s) -> checkpoint, content-addressed and reused.
phase 3 (target):       English target training -> checkpoint, content-addressed and reused,
                        then the zero-shot sweep, one (split, language) at a time.

Every phase that trains reseeds before it builds heads, so its numbers do not depend on
whether an earlier phase trained in this process or came from the cache.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress

from xstilts import __version__
from xstilts.config.schema import (ExperimentConfig, HandOff, IntermediateConfig, Mixing, MixtureConfig, ModelMode, Sampler,
                                   TargetConfig, TextToTextConfig, TrainConfig)
from xstilts.data.feature_cache import FeatureCache, feature_cache, featurize_cached, hash_examples
from xstilts.data.io import Example
from xstilts.data.loading import load_examples
from xstilts.errors import UserError, did_you_mean
from xstilts.evaluation.predict import EvalSplit
from xstilts.evaluation.retrieval import run_retrieval_sweep
from xstilts.experiments.fingerprint import checkpoint_key, model_fingerprint, task_versions
from xstilts.experiments.model_selection import check_selection, epoch_snapshots, run_selection
from xstilts.experiments.zero_shot import zero_shot
from xstilts.experiments.store import ErrorRow, ResultsStore
from xstilts.results import ResultRow
from xstilts.formats.base import get_format
from xstilts.formats.mlm import MaskedLMHead
from xstilts.models.multitask import MultiTaskModel
from xstilts.models.runtime import seed_everything
from xstilts.models.sources import SAFE_LOADING, LoadPolicy, load_encoder, load_masked_lm, load_seq2seq
from xstilts.models.text_to_text import TextToTextModel
from xstilts.tasks.registry import TaskRegistry
from xstilts.tasks.spec import Format, TaskSpec
from xstilts.training.checkpoint import HeadInfo, LoadedCheckpoint, is_checkpoint, load_checkpoint, save_checkpoint
from xstilts.training.distributed import broadcast_object, is_main, main_writes
from xstilts.training.loop import TRAINING_VERSION, TrainResult, TrainTask, train_model
from xstilts.training.resume import Checkpointing, discard_state
from xstilts.training.selection import EpochSnapshots


@dataclass
class RunContext:
    """What every phase of one run shares; `errors` collects the evaluations that failed."""

    run_id: str
    config: ExperimentConfig | None
    registry: TaskRegistry
    store: ResultsStore
    run_dir: Path
    device: torch.device
    console: Console
    progress: Progress | None = None
    loaded_examples: dict = field(default_factory=dict)
    example_hashes: dict = field(default_factory=dict)
    errors: list[ErrorRow] = field(default_factory=list)
    # `xstilts eval` (no config) sets these itself; a run takes them from its config.
    mode: ModelMode = ModelMode.ENCODER
    text_to_text: TextToTextConfig = field(default_factory=TextToTextConfig)
    load_policy: LoadPolicy = SAFE_LOADING

    def __post_init__(self) -> None:
        if self.config is not None:
            self.mode, self.text_to_text = self.config.mode, self.config.text_to_text
            self.load_policy = LoadPolicy(self.config.allow_pickle_weights, self.config.trust_remote_code)

    @property
    def format_settings(self) -> TextToTextConfig | None:
        """What `get_format` needs: the text-to-text settings in text-to-text mode, else None."""
        return self.text_to_text if self.mode is ModelMode.TEXT_TO_TEXT else None

    def data_dir(self, task: str) -> Path | None:
        return self.config.data.get(task) if self.config else None

    def examples(self, spec: TaskSpec, split: str, language: str) -> list[Example]:
        """A split's examples, read once per run (the phase-2 key hashes them before training)."""
        key = (spec.name, split, language)
        if key not in self.loaded_examples:
            self.loaded_examples[key] = load_examples(spec, split, language, self.data_dir(spec.name))
        return self.loaded_examples[key]

    def examples_hash(self, spec: TaskSpec, split: str, language: str) -> str:
        """`hash_examples` of a split, computed once per run (checkpoint and feature keys both use it)."""
        key = (spec.name, split, language)
        if key not in self.example_hashes:
            self.example_hashes[key] = hash_examples(self.examples(spec, split, language))
        return self.example_hashes[key]

    @cached_property
    def feature_cache(self) -> FeatureCache | None:
        """Featurised splits kept in the store's cache (None when XSTILTS_FEATURE_CACHE=0)."""
        return feature_cache(self.store.cache_dir)

    def featurize(self, fmt, examples: list[Example], tokenizer, spec: TaskSpec, max_length: int, examples_hash: str) -> list:
        """`fmt.featurize` through the feature cache."""
        return featurize_cached(
            fmt, examples, tokenizer, spec, max_length, cache=self.feature_cache, settings=self.format_settings,
            examples_hash=examples_hash, log=self.console.print,
        )

    @property
    def seed(self) -> int:
        """The run's seed (0 for `xstilts eval`, which trains nothing)."""
        return self.config.seed if self.config else 0

    @property
    def model_revision(self) -> str | None:
        """The hub revision pinning the configured start model (none for `xstilts eval`)."""
        return self.config.model_revision if self.config else None

    @cached_property
    def model_key(self) -> str:
        """The configured start model's fingerprint, computed once (hashing a large model takes seconds)."""
        return model_fingerprint(self.config.model, self.store.cache_dir, self.config.model_revision)


def load_start(source: str, handoff: HandOff, wanted: dict[str, TaskSpec], ctx: RunContext, dropout: float) -> LoadedCheckpoint:
    """A phase's starting weights: an xstilts checkpoint (through the hand-off) or a pretrained model.

    From a pretrained model, a masked-LM task in `wanted` keeps the model's own pretrained MLM
    head: a new head would send random gradients into the encoder from the first step. A
    model without one (a bare encoder such as the packaged e5) gets a new head in
    add_missing_heads, and the console says so.
    """
    if is_checkpoint(source):
        return load_checkpoint(Path(source), handoff, wanted, ctx.store.cache_dir, dropout=dropout, mode=ctx.mode)
    # transformers initialises the weights a pretrained model lacks (a BERT pooler, say) from
    # the global RNG: seed it, so that they, and every checkpoint saved later, are the same in
    # every process.
    seed_everything(ctx.seed)
    if ctx.mode is ModelMode.TEXT_TO_TEXT:  # every task reads and writes text through the LM head
        seq2seq, tokenizer = load_seq2seq(source, ctx.store.cache_dir, revision=ctx.model_revision, policy=ctx.load_policy)
        return LoadedCheckpoint(model=TextToTextModel(seq2seq), tokenizer=tokenizer)
    masked_lm = list(dict.fromkeys(spec.head_name for spec in wanted.values() if spec.format is Format.MLM))
    if not masked_lm:
        encoder, tokenizer = load_encoder(source, ctx.store.cache_dir, revision=ctx.model_revision, policy=ctx.load_policy)
        return LoadedCheckpoint(model=MultiTaskModel(encoder), tokenizer=tokenizer)
    encoder, tokenizer, head, reason = load_masked_lm(
        source, ctx.store.cache_dir, revision=ctx.model_revision, policy=ctx.load_policy
    )
    loaded = LoadedCheckpoint(model=MultiTaskModel(encoder), tokenizer=tokenizer)
    if head is None:
        ctx.console.print(f"model {source!r} has no pretrained masked-LM head to keep ({reason}): "
                          f"new, randomly initialised head for {', '.join(masked_lm)}")
        return loaded
    for name in masked_lm:
        # Every masked-LM head name starts from its own copy of the pretrained head.
        copy = MaskedLMHead(encoder.config.hidden_size)
        copy.bind_encoder(encoder)
        copy.load_state_dict(head.state_dict())
        loaded.model.heads[name] = copy
    ctx.console.print(f"model {source!r}: masked-LM head {', '.join(masked_lm)} starts from its pretrained head")
    return loaded


def add_missing_heads(loaded: LoadedCheckpoint, specs: list[TaskSpec], dropout: float) -> None:
    """Build the heads the tasks need that the start did not bring (load_start keeps a
    pretrained MLM head); a head that shares encoder weights (the MLM head's decoder is the
    input embedding matrix) is bound to the encoder here. A text-to-text model has no heads."""
    if loaded.model.is_text_to_text:
        return
    for spec in specs:
        if spec.head_name not in loaded.model.heads:
            head = get_format(spec.format).build_head(loaded.model.hidden_size, spec, dropout)
            loaded.model.heads[spec.head_name] = head
    loaded.model.bind_heads()


def resolved_spec(name: str, ctx: RunContext) -> TaskSpec:
    """The registry's spec with its labels_file (if any) read from the task's data dir."""
    return ctx.registry.get(name).resolve_labels(ctx.data_dir(name))


def intermediate_language(spec: TaskSpec, phase: IntermediateConfig) -> str:
    """The language a phase-2 task trains on: `train_languages[task]`, else the spec's train_language."""
    language = phase.train_languages.get(spec.name, spec.train_language)
    if language not in spec.languages:
        raise UserError(
            f"key 'intermediate.train_languages.{spec.name}': task {spec.name!r} has no language "
            f"{language!r}{did_you_mean(language, spec.languages)}"
        )
    return language


def subsample(examples: list, limit: int | None, seed: int) -> list:
    """A seeded random subset of `limit` examples (order kept), for data-size studies.

    The subset is a prefix of one seeded permutation, so subsets nest: with the same seed, the
    1k sample is part of the 10k sample, and a size axis changes only how much data there is.
    """
    if limit is None or limit >= len(examples):
        return examples
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [examples[index] for index in sorted(order[:limit])]


def prepare_train_task(
    spec: TaskSpec,
    cfg: TrainConfig,
    loaded: LoadedCheckpoint,
    ctx: RunContext,
    max_examples: int | None = None,
    language: str | None = None,
) -> TrainTask:
    """Featurised train and dev data of one task in `language` (default: its train_language)."""
    fmt = get_format(spec.format, ctx.format_settings)
    language = language or spec.train_language
    limit = max_examples or cfg.max_train_examples
    every = ctx.examples(spec, "train", language)
    examples = subsample(every, limit, ctx.config.data_seed)
    # A subsample is fixed by the whole split, its size and the seed: key on those, not on a second hash.
    examples_hash = ctx.examples_hash(spec, "train", language)
    if len(examples) < len(every):
        examples_hash += f"/subsample/{limit}/{ctx.config.data_seed}"
    featurize = partial(ctx.featurize, fmt, tokenizer=loaded.tokenizer, spec=spec, max_length=cfg.max_length)
    features = featurize(examples, examples_hash=examples_hash)
    dev = None
    if "dev" in spec.splits:
        dev_examples = ctx.examples(spec, "dev", language)
        dev = EvalSplit(language, "dev", dev_examples, featurize(dev_examples, examples_hash=ctx.examples_hash(spec, "dev", language)))
    return TrainTask(spec=spec, fmt=fmt, features=features, dev=dev)


def data_fingerprint(spec: TaskSpec, language: str, ctx: RunContext) -> dict[str, str]:
    """Hash of the examples a phase trains and selects on, as read: it covers every file a
    reader opens (ANLI's rounds, MLM's folders), hub data, and lines a reader skips."""
    return {split: ctx.examples_hash(spec, split, language) for split in ("train", "dev") if split in spec.splits}


def run_key_parts(ctx: RunContext) -> dict:
    """What every trained checkpoint of a run depends on beyond its own phase's settings. In
    text-to-text mode also the mode and the prompt (they change the training text); encoder
    mode adds nothing, so its keys stay what they were before text-to-text mode existed."""
    config = ctx.config
    parts = {"seed": config.seed, "data_seed": config.data_seed, "precision": config.precision.value}
    if config.mode is ModelMode.TEXT_TO_TEXT:
        parts["text_to_text"] = {"mode": config.mode.value, "prompt": config.text_to_text.prompt}
    return parts


def intermediate_key(phase: IntermediateConfig, specs: list[TaskSpec], ctx: RunContext) -> str:
    """Content key of (start model, mixture, data, hyperparameters, seeds, precision, versions)."""
    return checkpoint_key(
        {
            "model": ctx.model_key,
            "phase": phase.model_dump(mode="json"),
            "tasks": task_versions(specs, ctx.format_settings),
            "data": {s.name: data_fingerprint(s, intermediate_language(s, phase), ctx) for s in specs},
            **run_key_parts(ctx),
        }
    )


def target_key(spec: TaskSpec, start_key: str, ctx: RunContext) -> str:
    """Content key of a trained target checkpoint: its start (the phase-2 key or the model's
    fingerprint), the target's training settings, English data, seeds, precision and versions,
    and the auxiliary tasks mixed in (their shares, specs and data) when there are any.
    Languages and eval splits are left out: they change what is scored, not the weights."""
    target = ctx.config.target
    auxiliary = [resolved_spec(name, ctx) for name in target.auxiliary]
    parts = {
        "start": start_key,
        "target": {"task": target.task, "handoff": target.handoff.value, "train": target.train.model_dump(mode="json")},
        "tasks": task_versions([spec], ctx.format_settings),
        "data": data_fingerprint(spec, spec.train_language, ctx),
        **run_key_parts(ctx),
    }
    if auxiliary:
        parts["auxiliary"] = {
            "shares": dict(target.auxiliary),
            "tasks": task_versions(auxiliary, ctx.format_settings),
            "data": {s.name: data_fingerprint(s, s.train_language, ctx) for s in auxiliary},
        }
    return checkpoint_key(parts)


def auxiliary_sizes(spec: TaskSpec, target: TargetConfig, ctx: RunContext) -> dict[str, int]:
    """Examples of each auxiliary task in target training: its share of an epoch whose target part
    is the target's training set, n_aux = ceil(n_target * share / (1 - total share)). An epoch stays
    one pass over the target (a large corpus such as span corruption's would otherwise set its
    length); the sample is seeded by data_seed like every subsample."""
    examples = len(ctx.examples(spec, "train", spec.train_language))
    if target.train.max_train_examples:
        examples = min(examples, target.train.max_train_examples)
    rest = 1.0 - sum(target.auxiliary.values())
    return {name: max(1, math.ceil(examples * share / rest)) for name, share in target.auxiliary.items()}


def auxiliary_mixture(spec: TaskSpec, shares: dict[str, float]) -> MixtureConfig | None:
    """Target training with auxiliary tasks: every batch mixed, each auxiliary task drawn with its
    share of the examples and the target with the rest (None without auxiliary tasks)."""
    if not shares:
        return None
    return MixtureConfig(
        sampler=Sampler.FIXED, probabilities={spec.name: 1.0 - sum(shares.values()), **shares}, mixing=Mixing.MIXED_BATCH
    )


def checkpoint_metadata(ctx: RunContext, phase: str, key: str, train: TrainConfig, **extra) -> dict:
    """What a trained checkpoint records about how it was made (max_length: what `xstilts eval` reuses)."""
    config = ctx.config
    return {
        "phase": phase, "key": key, "max_length": train.max_length, "seed": config.seed, "data_seed": config.data_seed,
        "precision": config.precision.value, "training_version": TRAINING_VERSION, "xstilts": __version__, **extra,
    }


def cached_checkpoint(ctx: RunContext, key: str, phase: str) -> Path | None:
    """The stored checkpoint with `key`, if any; records the run's use of `key` either way."""
    existing = broadcast_object(ctx.store.find_checkpoint(key))  # data-parallel ranks decide as rank 0 does
    ctx.store.record_checkpoint_use(ctx.run_id, key, reused=existing is not None, phase=phase)
    if existing is not None:
        ctx.console.print(f"{phase}: reusing checkpoint {key} ({existing})")
    return existing


def train_phase(
    loaded: LoadedCheckpoint,
    specs: list[TaskSpec],
    cfg: TrainConfig,
    ctx: RunContext,
    mixture: MixtureConfig | None = None,
    max_examples: dict[str, int] | None = None,
    languages: dict[str, str] | None = None,
    checkpointing: Checkpointing | None = None,
    snapshots: EpochSnapshots | None = None,
) -> TrainResult:
    """Reseed, build the heads `specs` lack, and train: head initialisation and dropout depend
    only on the seed, never on what ran before in this process. With `checkpointing`, a saved
    training state of this phase is resumed from and new ones are saved; with `snapshots`, the
    end-of-epoch weights model selection needs are written."""
    dropout = cfg.dropout if cfg.dropout is not None else 0.1
    seed_everything(ctx.config.seed)
    add_missing_heads(loaded, specs, dropout)
    tasks = [
        prepare_train_task(spec, cfg, loaded, ctx, (max_examples or {}).get(spec.name), (languages or {}).get(spec.name))
        for spec in specs
    ]
    return train_model(
        loaded.model, tasks, cfg,
        tokenizer=loaded.tokenizer, device=ctx.device, precision=ctx.config.precision,
        mixture=mixture or MixtureConfig(), seed=ctx.config.seed, progress=ctx.progress, checkpointing=checkpointing,
        snapshots=snapshots,
    )


def training_checkpointing(ctx: RunContext, phase: str, name: str) -> Checkpointing:
    """Where a phase keeps its training state until its checkpoint is saved: STORE/resume/<name>,
    named like the checkpoint (<phase>-<content key>), so a rerun of the same command resumes it."""
    return Checkpointing(ctx.store.home / "resume" / name, every=ctx.config.checkpoint_every, phase=phase, log=ctx.console.print)


def run_intermediate_phase(ctx: RunContext) -> tuple[Path, str, list[ResultRow]]:
    """Phase 2. Returns the checkpoint, its key and its English dev rows; reuses an identical earlier one."""
    phase = ctx.config.intermediate
    specs = [resolved_spec(name, ctx) for name in phase.tasks]
    languages = {spec.name: intermediate_language(spec, phase) for spec in specs}
    key = intermediate_key(phase, specs, ctx)
    existing = cached_checkpoint(ctx, key, "intermediate")
    if existing is not None:
        return existing, key, []
    dropout = phase.train.dropout if phase.train.dropout is not None else 0.1
    loaded = load_start(ctx.config.model, HandOff.ENCODER_ONLY, {s.head_name: s for s in specs}, ctx, dropout)
    checkpointing = training_checkpointing(ctx, "intermediate", f"phase2-{key}")
    result = train_phase(loaded, specs, phase.train, ctx, phase.mixture, phase.max_examples, languages, checkpointing)
    path = ctx.store.checkpoints_dir / f"phase2-{key}"
    main_writes(  # data-parallel training: rank 0 writes it, and every rank loads it in phase 3
        save_checkpoint, path, loaded.model, loaded.tokenizer,
        heads={s.head_name: HeadInfo.of(s) for s in specs},
        metadata=checkpoint_metadata(
            ctx, "intermediate", key, phase.train, start_model=ctx.config.model,
            model_revision=ctx.config.model_revision, config=phase.model_dump(mode="json"),
        ),
    )
    ctx.store.record_checkpoint(key, path, ctx.run_id)
    discard_state(checkpointing.folder)
    by_name = {spec.name: spec for spec in specs}
    rows = [
        ResultRow(ctx.run_id, "intermediate", name, languages[name], "dev", by_name[name].metric.value, value)
        for name, value in best_scores(result).items()
    ]
    return path, key, rows


def best_scores(result: TrainResult) -> dict[str, float]:
    """Per-task English dev scores of the selected epoch."""
    if not result.dev_history:
        return {}
    best = max(result.dev_history, key=lambda entry: entry["mean"])
    return {key: value for key, value in best.items() if key not in ("step", "mean")}


def target_languages(spec: TaskSpec, requested: list[str] | None) -> list[str]:
    """The languages to sweep: the requested ones, else every benchmark language of the task."""
    if requested is None:
        return spec.eval_languages
    for language in requested:
        if language not in spec.languages:
            raise UserError(
                f"task {spec.name!r} has no language {language!r}{did_you_mean(language, spec.languages)}"
            )
    return list(requested)


def target_splits(spec: TaskSpec, requested: list[str] | None, key: str = "target.eval_splits") -> list[str]:
    """The splits to score: the requested ones, each a split of the task, else the task's dev and
    test splits (TyDiQA has no dev split, Tatoeba only a test split)."""
    if requested is None:
        return [split for split in ("dev", "test") if split in spec.splits]
    for split in requested:
        if split not in spec.splits:
            raise UserError(
                f"key {key!r}: task {spec.name!r} has no split {split!r} (its splits: {', '.join(spec.splits)})"
                f"{did_you_mean(split, spec.splits)}"
            )
    return list(requested)


def train_target(ctx: RunContext, spec: TaskSpec, start: str, start_key: str) -> Path:
    """Phase 3's training: the target checkpoint, content-keyed in the store outside the run
    directory, so that a run failing later (a bad test file, an out-of-memory in the sweep)
    keeps it and a rerun re-sweeps it without training again."""
    target = ctx.config.target
    auxiliary = [resolved_spec(name, ctx) for name in target.auxiliary]
    key = target_key(spec, start_key, ctx)
    snapshots = epoch_snapshots(ctx, key)  # selection is in no key: it changes what is evaluated, not the weights
    existing = cached_checkpoint(ctx, key, "target")
    if existing is not None and (snapshots is None or broadcast_object(snapshots.complete())):
        return existing
    if existing is not None:
        ctx.console.print(f"target: training again for the epoch weights target.selection needs ({existing} is kept)")
    dropout = target.train.dropout if target.train.dropout is not None else 0.1
    specs = [spec, *auxiliary]
    loaded = load_start(start, target.handoff, {s.head_name: s for s in specs}, ctx, dropout)
    if loaded.kept_heads or loaded.dropped_heads:
        ctx.console.print(f"phase 3: hand-off {target.handoff.value}: kept heads {loaded.kept_heads}, dropped {loaded.dropped_heads}")
    checkpointing = training_checkpointing(ctx, "target", f"target-{key}" + (snapshots.resume_suffix if snapshots else ""))
    result = train_phase(
        loaded, specs, target.train, ctx, mixture=auxiliary_mixture(spec, target.auxiliary),
        max_examples=auxiliary_sizes(spec, target, ctx), checkpointing=checkpointing, snapshots=snapshots,
    )
    if existing is not None:  # trained again for the snapshots alone: the stored checkpoint stays
        discard_state(checkpointing.folder)
        return existing
    start_path = str(Path(start).resolve()) if Path(start).exists() else start
    path = ctx.store.checkpoints_dir / f"target-{key}"
    main_writes(  # data-parallel training: rank 0 writes it
        save_checkpoint, path, loaded.model, loaded.tokenizer,
        heads={s.head_name: HeadInfo.of(s) for s in specs if s.head_name in loaded.model.heads},
        metadata=checkpoint_metadata(
            ctx, "target", key, target.train, start=start_path, best_epoch=result.best_epoch,
            config=target.model_dump(mode="json", exclude={"selection"}),  # the same checkpoint with or without it
        ),
    )
    ctx.store.record_checkpoint(key, path, ctx.run_id)
    discard_state(checkpointing.folder)
    return path


def load_trained(source: str, spec: TaskSpec, ctx: RunContext) -> LoadedCheckpoint:
    """A checkpoint with its trained head for `spec` (text-to-text: the model itself), on the
    run's device, for evaluation."""
    loaded = load_start(source, HandOff.ENCODER_AND_MATCHING_HEADS, {spec.head_name: spec}, ctx, dropout=0.0)
    if not loaded.model.is_text_to_text and spec.head_name not in loaded.model.heads:
        raise UserError(
            f"model {source!r} has no trained {spec.format.value} head for task {spec.name!r} "
            f"with labels {spec.labels}; pass a checkpoint trained on it (xstilts run)"
        )
    loaded.model.to(ctx.device)
    return loaded


def run_target_phase(ctx: RunContext, start: str, start_key: str | None = None) -> tuple[Path, list[ResultRow]]:
    """Phase 3: train the target head on English from `start` (or reuse that training), then
    sweep every language. `start_key` is the phase-2 key when `start` is its checkpoint."""
    target = ctx.config.target
    spec = resolved_spec(target.task, ctx)
    selecting = check_selection(spec, target.selection, ctx.console)
    if spec.format is Format.RETRIEVAL:
        return run_retrieval_target(ctx, start, spec)
    path = train_target(ctx, spec, start, start_key or ctx.model_key)
    if not is_main():  # data-parallel training: the other ranks stop after training, rank 0 sweeps
        return path, []
    link = ctx.run_dir / "checkpoints" / "target"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(path.resolve(), target_is_directory=True)
    # Evaluate the saved checkpoint, trained now or earlier: the same rows either way.
    loaded = load_trained(str(path), spec, ctx)
    sweep = partial(
        zero_shot, ctx, loaded, spec, data_dir=ctx.data_dir(spec.name), max_length=target.train.max_length,
        batch_size=target.train.batch_size * 2, precision=ctx.config.precision,
    )
    languages, splits = target_languages(spec, target.languages), target_splits(spec, target.eval_splits)
    rows = sweep(phase="target", languages=languages, splits=splits)
    if selecting:  # after the target's own sweep: it loads other weights into the model
        rows += run_selection(ctx, loaded.model, spec, path, sweep, splits=splits, languages=languages)
    return path, rows


def run_retrieval_target(ctx: RunContext, start: str, spec: TaskSpec) -> tuple[Path, list[ResultRow]]:
    """Phase 3 of a retrieval task: no training data, so the start encoder (the phase-2 checkpoint
    or the pretrained model) is evaluated as it is; returns that start and the sweep's rows."""
    target = ctx.config.target
    if not is_main():  # data-parallel training: rank 0 alone evaluates
        return Path(start), []
    loaded = load_start(start, HandOff.ENCODER_ONLY, {}, ctx, dropout=0.0)
    rows = run_retrieval_sweep(
        loaded.model.encoder, loaded.tokenizer, spec,
        languages=target_languages(spec, target.languages), splits=target_splits(spec, target.eval_splits),
        data_dir=ctx.data_dir(spec.name), cfg=target.retrieval, device=ctx.device, precision=ctx.config.precision,
        run_id=ctx.run_id, phase="target", predictions_dir=ctx.run_dir / "predictions", progress=ctx.progress,
    )
    return Path(start), rows
