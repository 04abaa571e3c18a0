"""Model selection stored side by side: the oracle's per-language choice and rows (with a fake
sweep whose scores are set by hand per epoch), the averaged model of identical epochs giving
exactly the target's rows (a real model and sweep), and what is in the target's key."""

import json
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console
from torch import nn

from xstilts.config.loading import load_config
from xstilts.config.schema import Precision, SelectionConfig
from xstilts.errors import UserError
from xstilts.experiments.model_selection import (
    AVERAGE_PREDICTIONS, ORACLE_PREDICTIONS, PHASE_AVERAGE, PHASE_ORACLE, SELECTION_FILE, check_selection, epoch_snapshots,
    run_selection,
)
from xstilts.experiments.phases import RunContext, add_missing_heads, load_trained, resolved_spec, target_key
from xstilts.experiments.store import ErrorRow, ResultsStore
from xstilts.experiments.zero_shot import zero_shot
from xstilts.models.multitask import MultiTaskModel
from xstilts.models.sources import load_encoder
from xstilts.results import ResultRow
from xstilts.tasks.registry import load_registry
from xstilts.training.checkpoint import HeadInfo, LoadedCheckpoint, METADATA_FILE, save_checkpoint

REGISTRY = load_registry()
LANGUAGES = ["en", "de", "fr"]
# Dev and test accuracy by (epoch, language), by hand: English dev would pick epoch 3, German's
# dev epoch 1, French's dev epoch 2.
DEV = {1: {"en": 60.0, "de": 55.0, "fr": 40.0}, 2: {"en": 70.0, "de": 50.0, "fr": 45.0}, 3: {"en": 80.0, "de": 52.0, "fr": 41.0}}
TEST = {1: {"en": 61.0, "de": 56.0, "fr": 39.0}, 2: {"en": 71.0, "de": 49.0, "fr": 46.0}, 3: {"en": 79.0, "de": 51.0, "fr": 42.0}}


class Marked(nn.Module):
    """A model whose only weight says which epoch it is (the mean of epochs 2 and 3 says 2.5)."""

    def __init__(self):
        super().__init__()
        self.marker = nn.Parameter(torch.zeros(1))


class FakeSweep:
    """Scores the loaded weights from the tables above; records each call and what it was asked."""

    def __init__(self, model: Marked, ctx, fail: str | None = None):
        self.model, self.ctx, self.fail, self.calls = model, ctx, fail, []

    def __call__(self, *, phase, splits, languages, predictions_dir):
        marker = float(self.model.marker.detach())
        self.calls.append((phase, marker, list(splits), list(languages), Path(predictions_dir)))
        rows = []
        for split in splits:
            for language in languages:
                if language == self.fail and phase == PHASE_ORACLE:
                    self.ctx.errors.append(ErrorRow("run", phase, "xnli", language, split, "boom", ""))
                    continue
                value = (DEV if split == "dev" else TEST)[int(marker)][language] if marker.is_integer() else 100 * marker
                rows += [ResultRow("run", phase, "xnli", language, split, "accuracy", value)]
        return rows


def fake_run(tmp_path: Path, selection: SelectionConfig, fail: str | None = None):
    """Snapshots of epochs 1-3 (marker = epoch), a checkpoint's metadata, and run_selection with a fake sweep."""
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / METADATA_FILE).write_text(json.dumps({"key": "k", "best_epoch": 3, "heads": {}}))
    config = SimpleNamespace(target=SimpleNamespace(selection=selection))
    ctx = SimpleNamespace(config=config, store=SimpleNamespace(home=tmp_path / "store"), run_dir=tmp_path / "run", errors=[])
    ctx.run_dir.mkdir()
    snapshots = epoch_snapshots(ctx, "k")
    model = Marked()
    for epoch in (1, 2, 3):
        model.marker.data.fill_(float(epoch))
        snapshots.save(model, epoch, total_epochs=3)
    sweep = FakeSweep(model, ctx, fail)
    rows = run_selection(ctx, model, REGISTRY.get("xnli"), checkpoint, sweep, splits=["dev", "test"], languages=LANGUAGES)
    return ctx, snapshots, sweep, rows


def test_the_oracle_reports_each_languages_test_score_at_its_best_dev_epoch(tmp_path):
    ctx, snapshots, sweep, rows = fake_run(tmp_path, SelectionConfig(oracle=True))
    oracle = {(r.language, r.split): r.value for r in rows if r.phase == PHASE_ORACLE}
    assert oracle == {("en", "test"): 79.0, ("de", "test"): 56.0, ("fr", "test"): 46.0}
    assert {r.phase for r in rows} == {PHASE_ORACLE}
    report = json.loads((ctx.run_dir / SELECTION_FILE).read_text())
    assert report["oracle"]["chosen"] == {"en": 3, "de": 1, "fr": 2} and report["english_dev_epoch"] == 3
    assert report["oracle"]["dev"]["de"] == {"1": 55.0, "2": 50.0, "3": 52.0}
    assert report["kept_epochs"] == [1, 2, 3] and report["snapshots"] is None
    # Every epoch on dev into a scratch folder, then each chosen epoch on test for its languages only.
    dev_calls = [call for call in sweep.calls if call[2] == ["dev"]]
    assert [(marker, languages) for _, marker, _, languages, _ in dev_calls] == [(e, LANGUAGES) for e in (1.0, 2.0, 3.0)]
    assert all(ctx.run_dir not in folder.parents for *_, folder in dev_calls)
    test_calls = [(marker, languages, folder) for _, marker, splits, languages, folder in sweep.calls if splits == ["test"]]
    assert test_calls == [(1.0, ["de"], ctx.run_dir / ORACLE_PREDICTIONS), (2.0, ["fr"], ctx.run_dir / ORACLE_PREDICTIONS),
                          (3.0, ["en"], ctx.run_dir / ORACLE_PREDICTIONS)]
    assert not snapshots.folder.exists()  # removed after a clean evaluation


def test_the_average_is_the_mean_of_the_last_k_epochs_on_every_split(tmp_path):
    ctx, snapshots, sweep, rows = fake_run(tmp_path, SelectionConfig(average_last=2, oracle=True, keep_snapshots=True))
    average = {(r.language, r.split): r.value for r in rows if r.phase == PHASE_AVERAGE}
    assert average == {(language, split): 250.0 for language in LANGUAGES for split in ("dev", "test")}  # marker (2+3)/2
    assert sweep.calls[0] == (PHASE_AVERAGE, 2.5, ["dev", "test"], LANGUAGES, ctx.run_dir / AVERAGE_PREDICTIONS)
    report = json.loads((ctx.run_dir / SELECTION_FILE).read_text())
    assert report["average"] == {"epochs": [2, 3]} and report["snapshots"] == str(snapshots.folder)
    assert snapshots.require() == [1, 2, 3]  # kept by the config


def test_a_failed_evaluation_keeps_the_snapshots_for_the_rerun(tmp_path):
    ctx, snapshots, _, rows = fake_run(tmp_path, SelectionConfig(oracle=True), fail="fr")
    assert {r.language for r in rows} == {"en", "de"} and len(ctx.errors) == 3  # fr's dev at each epoch
    assert snapshots.require() == [1, 2, 3]
    assert "fr" not in json.loads((ctx.run_dir / SELECTION_FILE).read_text())["oracle"]["chosen"]


def test_the_oracle_needs_a_dev_split_and_retrieval_has_no_epochs():
    console = Console(quiet=True)
    with pytest.raises(UserError, match="target.selection.oracle.*tydiqa.*no dev split"):
        check_selection(REGISTRY.get("tydiqa"), SelectionConfig(oracle=True), console)
    assert check_selection(REGISTRY.get("tydiqa"), SelectionConfig(average_last=2), console)
    assert not check_selection(REGISTRY.get("tatoeba"), SelectionConfig(average_last=2), console)
    assert not check_selection(REGISTRY.get("xnli"), SelectionConfig(), console)


@pytest.fixture
def base(nli_fixture, tiny_model) -> dict:
    return {
        "name": "selection",
        "model": str(tiny_model),
        "task_specs": [str(nli_fixture["spec"])],
        "data": {"toy-xnli": str(nli_fixture["xnli"])},
        "target": {"task": "toy-xnli", "train": {"max_length": 64}},
    }


def context(base: dict, tmp_path: Path, overrides: list[str] = ()) -> RunContext:
    config = load_config(None, list(overrides), base=base)
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    registry = load_registry(config.task_specs)
    return RunContext("run", config, registry, ResultsStore(tmp_path / "store"), run_dir, torch.device("cpu"), Console(quiet=True))


@pytest.mark.parametrize("override", ["target.selection.average_last=3", "target.selection.oracle=true", "target.selection.keep_snapshots=true"])
def test_selection_is_in_no_target_key(base, tmp_path, override):
    plain, selecting = context(base, tmp_path), context(base, tmp_path, [override])
    spec = resolved_spec("toy-xnli", plain)
    assert target_key(spec, "start", selecting) == target_key(spec, "start", plain)


def test_the_average_of_identical_epochs_gives_exactly_the_target_rows(base, tmp_path, tiny_model):
    ctx = context(base, tmp_path, ["target.selection.average_last=3"])
    spec = resolved_spec("toy-xnli", ctx)
    torch.manual_seed(0)
    encoder, tokenizer = load_encoder(str(tiny_model), ctx.store.cache_dir)
    start = LoadedCheckpoint(MultiTaskModel(encoder), tokenizer)
    add_missing_heads(start, [spec], dropout=0.1)
    checkpoint = save_checkpoint(
        tmp_path / "checkpoint", start.model, tokenizer, {spec.head_name: HeadInfo.of(spec)}, {"key": "k", "best_epoch": 1}
    )
    loaded = load_trained(str(checkpoint), spec, ctx)
    snapshots = epoch_snapshots(ctx, "k")
    for epoch in (1, 2, 3):
        snapshots.save(loaded.model, epoch, total_epochs=3)
    sweep = partial(zero_shot, ctx, loaded, spec, data_dir=ctx.data_dir(spec.name), max_length=64, batch_size=32, precision=Precision.FP32)
    target = sweep(phase="target", languages=LANGUAGES, splits=["dev", "test"])
    average = run_selection(ctx, loaded.model, spec, checkpoint, sweep, splits=["dev", "test"], languages=LANGUAGES)
    assert len(target) == 6 and not ctx.errors
    assert {r.phase for r in average} == {PHASE_AVERAGE}
    assert [(r.language, r.split, r.metric, r.value) for r in average] == [(r.language, r.split, r.metric, r.value) for r in target]
    # Same predictions, in their own folder: the target's are not overwritten.
    for path in sorted((ctx.run_dir / "predictions").rglob("*.*")):
        twin = ctx.run_dir / AVERAGE_PREDICTIONS / path.relative_to(ctx.run_dir / "predictions")
        assert twin.read_text() == path.read_text()
    assert len(list((ctx.run_dir / AVERAGE_PREDICTIONS).rglob("*.records.jsonl"))) == 6
