"""A tiny T5 through the whole pipeline, in encoder mode and in text-to-text mode, on a learnable
fixture of every trainable format (tests/fixtures_formats.py) and on retrieval.

English dev must beat chance by a wide margin in every format and both modes; every language
gets its rows; where the fixture's answer is carried by words all languages share (the marker
tasks), zero-shot beats chance too. Margins, not exact numbers: the floors hold on any CPU.
"""

from __future__ import annotations

import pytest
from rich.console import Console

from fixtures_formats import CHANCE, write_formats_fixture
from xstilts.config.schema import EvalConfig, ExperimentConfig
from xstilts.experiments.run import evaluate_model, run_experiment
from xstilts.experiments.store import ResultsStore
from xstilts.models.tiny import build_tiny_t5
from xstilts.training.checkpoint import checkpoint_mode, read_metadata

pytestmark = pytest.mark.slow

MODES = ("encoder", "text_to_text")
FIRST_METRIC = {"toy-xnli": "accuracy", "toy-topic": "accuracy", "toy-copa": "accuracy", "toy-qa": "f1", "toy-pos": "f1"}
TRANSFERS = {"toy-xnli", "toy-topic", "toy-copa", "toy-qa"}  # decided by words every language shares
EPOCHS = {"toy-xnli": 4, "toy-topic": 4, "toy-copa": 6, "toy-qa": 8, "toy-pos": 8}
# Generating a copied answer or a tag per word takes a model trained from scratch longer.
TEXT_EPOCHS = {**EPOCHS, "toy-qa": 16, "toy-pos": 16}
QUIET = Console(quiet=True)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory) -> dict:
    return write_formats_fixture(tmp_path_factory.mktemp("formats"))


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory, fixture):
    return build_tiny_t5(
        tmp_path_factory.mktemp("t5") / "tiny-t5", fixture["corpus"],
        vocab_size=300, d_model=64, num_layers=2, num_heads=4, d_ff=128, seed=0,
    )


def experiment(fixture, model, task: str, mode: str, **extra) -> ExperimentConfig:
    epochs = (TEXT_EPOCHS if mode == "text_to_text" else EPOCHS)[task]
    train = {"epochs": epochs, "learning_rate": 3e-3, "batch_size": 16, "max_length": 48, "warmup_ratio": 0.05}
    return ExperimentConfig.model_validate({
        "name": f"t5-{mode}-{task}", "model": str(model), "task_specs": fixture["specs"], "data": fixture["data"],
        "target": {"task": task, "train": train}, "mode": mode, "device": "cpu", **extra,
    })


def scores(store: ResultsStore, run: str, metric: str) -> dict[tuple[str, str], float]:
    return {(r.language, r.split): r.value for r in store.results(run) if r.phase == "target" and r.metric == metric}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("task", sorted(FIRST_METRIC))
def test_tiny_t5_learns_every_format_in_both_modes(tmp_path, fixture, tiny_t5, task, mode):
    store = ResultsStore(tmp_path / "store")
    run = run_experiment(experiment(fixture, tiny_t5, task, mode), home=store.home, console=QUIET)
    values = scores(store, run, FIRST_METRIC[task])
    assert set(values) == {(language, split) for language in ("en", "de", "fr") for split in ("dev", "test")}
    chance = CHANCE[task]
    assert values[("en", "dev")] > chance + 30, values
    if task in TRANSFERS:
        assert min(values[(language, "test")] for language in ("de", "fr")) > chance + 15, values
    checkpoint = store.home / "runs" / run / "checkpoints" / "target"
    assert checkpoint_mode(checkpoint).value == mode
    assert bool(read_metadata(checkpoint)["heads"]) == (mode == "encoder")  # text-to-text: the LM head serves all


@pytest.mark.parametrize("mode", MODES)
def test_retrieval_mean_pools_the_t5_encoder(tmp_path, fixture, tiny_t5, mode):
    sentences = [f"{word} {number} {number + 1}" for number, word in zip(range(10, 40), ["yes", "no", "ok"] * 10)]
    folder = tmp_path / "tatoeba"
    folder.mkdir()
    (folder / "tatoeba.deu-eng.deu").write_text("".join(f"{s} der\n" for s in sentences), encoding="utf-8")
    (folder / "tatoeba.deu-eng.eng").write_text("".join(f"{s} the\n" for s in sentences), encoding="utf-8")
    config = ExperimentConfig.model_validate({
        "name": "t5-retrieval", "model": str(tiny_t5), "data": {"tatoeba": str(folder)}, "mode": mode, "device": "cpu",
        "target": {"task": "tatoeba", "languages": ["de"]},
    })
    store = ResultsStore(tmp_path / "store")
    run = run_experiment(config, home=store.home, console=QUIET)
    accuracy = scores(store, run, "accuracy")
    # The shared digits make a random encoder's mean-pooled states match: far above 1/30.
    assert accuracy[("de", "test")] > 50, accuracy


def test_intermediate_then_target_with_span_corruption_mixed_in(tmp_path, fixture, tiny_t5):
    """Text-to-text phase 2 (MNLI-style) -> target with 20% span corruption: the checkpoint is keyed
    on the auxiliary task and its share, and a second identical run reuses both checkpoints with
    the same numbers."""
    extra = {
        "intermediate": {"tasks": ["mnli"], "train": {"epochs": 2, "learning_rate": 3e-3, "batch_size": 16, "max_length": 48}},
    }
    config = experiment(fixture, tiny_t5, "toy-xnli", "text_to_text", **extra)
    config = config.model_copy(update={"target": config.target.model_copy(update={"auxiliary": {"toy-span-corruption": 0.2}})})
    store = ResultsStore(tmp_path / "store")
    first = run_experiment(config, home=store.home, console=QUIET)
    second = run_experiment(config, home=store.home, console=QUIET)
    assert scores(store, first, "accuracy") == scores(store, second, "accuracy")
    assert scores(store, first, "accuracy")[("en", "dev")] > CHANCE["toy-xnli"] + 30
    assert [reused for _, reused in store.checkpoint_uses(first, "intermediate") + store.checkpoint_uses(first, "target")] == [False, False]
    assert [reused for _, reused in store.checkpoint_uses(second, "intermediate") + store.checkpoint_uses(second, "target")] == [True, True]
    plain = run_experiment(experiment(fixture, tiny_t5, "toy-xnli", "text_to_text", **extra), home=store.home, console=QUIET)
    assert store.checkpoint_uses(plain, "intermediate")[0][1]  # the same phase 2
    assert not store.checkpoint_uses(plain, "target")[0][1]  # a target without span corruption is another checkpoint


def test_eval_reads_the_mode_from_the_checkpoint_and_scores_as_the_run(tmp_path, fixture, tiny_t5):
    """`xstilts eval` of a text-to-text target checkpoint: the mode comes from the checkpoint and
    the rows equal the run's own sweep; generate-mode scoring adds its invalid-output share."""
    store = ResultsStore(tmp_path / "store")
    run = run_experiment(experiment(fixture, tiny_t5, "toy-topic", "text_to_text"), home=store.home, console=QUIET)
    checkpoint = str(store.home / "runs" / run / "checkpoints" / "target")
    common = {"model": checkpoint, "task": "toy-topic", "data_dir": fixture["data"]["toy-topic"],
              "task_specs": fixture["specs"], "splits": ["test"], "device": "cpu"}
    ranked = evaluate_model(EvalConfig.model_validate(common), home=store.home, console=QUIET)
    expected = {language: value for (language, split), value in scores(store, run, "accuracy").items() if split == "test"}
    assert {r.language: r.value for r in store.results(ranked) if r.metric == "accuracy"} == expected
    generated = evaluate_model(
        EvalConfig.model_validate({**common, "text_to_text": {"scoring": "generate"}}), home=store.home, console=QUIET
    )
    rows = {(r.language, r.metric): r.value for r in store.results(generated)}
    assert {language for language, metric in rows if metric == "invalid_outputs"} == {"en", "de", "fr"}
    assert rows[("en", "accuracy")] > CHANCE["toy-topic"] + 30
