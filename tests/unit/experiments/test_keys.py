"""Checkpoint keys: everything that changes the weights is in the key, nothing that does not."""

import os
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
import transformers
from rich.console import Console

import xstilts.experiments.fingerprint as fingerprint
import xstilts.models.sources as sources
from xstilts.config.loading import load_config
from xstilts.config.schema import HandOff, TextToTextConfig
from xstilts.experiments.fingerprint import model_fingerprint
from xstilts.experiments.phases import RunContext, intermediate_key, load_start, resolved_spec, target_key
from xstilts.experiments.store import ResultsStore
from xstilts.models.multitask import MultiTaskModel
from xstilts.models.sources import load_encoder
from xstilts.tasks.registry import load_registry
from xstilts.training.checkpoint import save_checkpoint

MAIN, V2 = "a" * 40, "b" * 40


@pytest.fixture
def base(nli_fixture, tiny_model) -> dict:
    return {
        "name": "keys",
        "model": str(tiny_model),
        "task_specs": [str(nli_fixture["spec"])],
        "data": {"mnli": str(nli_fixture["mnli"]), "toy-xnli": str(nli_fixture["xnli"])},
        "intermediate": {"tasks": ["mnli"]},
        "target": {"task": "toy-xnli"},
    }


def context(base: dict, store: Path, overrides: list[str] = ()) -> RunContext:
    config = load_config(None, list(overrides), base=base)
    registry = load_registry(config.task_specs)
    return RunContext("run", config, registry, ResultsStore(store), store, torch.device("cpu"), Console(quiet=True))


def phase2_key(base: dict, store: Path, overrides: list[str] = ()) -> str:
    ctx = context(base, store, overrides)
    return intermediate_key(ctx.config.intermediate, [resolved_spec("mnli", ctx)], ctx)


def phase3_key(base: dict, store: Path, overrides: list[str] = (), start: str = "intermediate:k") -> str:
    ctx = context(base, store, overrides)
    return target_key(resolved_spec("toy-xnli", ctx), start, ctx)


@pytest.mark.parametrize("override", ["precision=bf16", "seed=1", "data_seed=1", "intermediate.train.max_length=32"])
def test_what_changes_phase2_weights_changes_its_key(base, tmp_path, override):
    key = phase2_key(base, tmp_path)
    assert phase2_key(base, tmp_path) == key
    assert phase2_key(base, tmp_path, [override]) != key


def test_the_training_code_version_is_in_every_key(base, tmp_path, monkeypatch):
    before = phase2_key(base, tmp_path), phase3_key(base, tmp_path)
    monkeypatch.setattr(fingerprint, "TRAINING_VERSION", fingerprint.TRAINING_VERSION + 1)
    after = phase2_key(base, tmp_path), phase3_key(base, tmp_path)
    assert before[0] != after[0] and before[1] != after[1]


@pytest.mark.parametrize("override", ["precision=bf16", "seed=1", "data_seed=1", "target.train.epochs=3", "target.handoff=encoder_and_matching_heads"])
def test_what_changes_target_weights_changes_its_key(base, tmp_path, override):
    key = phase3_key(base, tmp_path)
    assert phase3_key(base, tmp_path, [override]) != key
    assert phase3_key(base, tmp_path, start="intermediate:other") != key


@pytest.mark.parametrize("override", ["target.eval_splits=[test]", "target.languages=[de]", "name=other"])
def test_what_is_only_scored_differently_keeps_the_target_key(base, tmp_path, override):
    assert phase3_key(base, tmp_path, [override]) == phase3_key(base, tmp_path)


@pytest.mark.parametrize("override", ["mode=text_to_text", "target.auxiliary={mnli: 0.1}", "target.auxiliary={mnli: 0.2}"])
def test_text_to_text_mode_and_auxiliary_tasks_change_the_target_key(base, tmp_path, override):
    assert phase3_key(base, tmp_path, [override]) != phase3_key(base, tmp_path)


def test_the_prompt_is_in_text_to_text_keys_and_reading_settings_are_not(base, tmp_path):
    text = ["mode=text_to_text"]
    key = phase3_key(base, tmp_path, text)
    assert phase2_key(base, tmp_path, [*text, "text_to_text.prompt=instruct"]) != phase2_key(base, tmp_path, text)
    assert phase3_key(base, tmp_path, [*text, "text_to_text.prompt=instruct"]) != key
    for reading in ("text_to_text.scoring=generate", "text_to_text.num_beams=4", "text_to_text.max_new_tokens=5"):
        assert phase3_key(base, tmp_path, [*text, reading]) == key
    # Encoder mode renders no text: text-to-text settings leave its keys alone.
    assert phase3_key(base, tmp_path, ["text_to_text.prompt=instruct"]) == phase3_key(base, tmp_path)


def test_a_specs_text_to_text_fields_are_in_text_to_text_keys_only(base, tmp_path):
    spec = resolved_spec("toy-xnli", context(base, tmp_path))
    assert spec.prompts  # xnli's instruction template, inherited
    bare = spec.model_copy(update={"prompts": {}, "label_words": {}})
    settings = TextToTextConfig()
    assert fingerprint.task_versions([spec]) == fingerprint.task_versions([bare])
    assert fingerprint.task_versions([spec], settings) != fingerprint.task_versions([bare], settings)


def test_the_key_does_not_depend_on_the_working_directory(base, tmp_path, tiny_model, monkeypatch):
    keys = []
    for cwd in (tiny_model.parent, tiny_model.parent.parent):
        monkeypatch.chdir(cwd)
        keys.append(phase2_key({**base, "model": os.path.relpath(tiny_model, cwd)}, tmp_path))
    assert keys[0] == keys[1] == phase2_key(base, tmp_path)


def test_an_xstilts_checkpoint_as_the_start_model_of_a_phase2_run(base, tmp_path, tiny_model):
    encoder, tokenizer = load_encoder(str(tiny_model), tmp_path)
    checkpoint = save_checkpoint(tmp_path / "ckpt", MultiTaskModel(encoder), tokenizer, heads={}, metadata={"phase": "target"})
    from_checkpoint = phase2_key({**base, "model": str(checkpoint)}, tmp_path / "store")
    assert from_checkpoint != phase2_key(base, tmp_path / "store")
    assert model_fingerprint(str(checkpoint), tmp_path) != model_fingerprint(str(tiny_model), tmp_path)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """A local Hugging Face cache knowing org/tiny at main (commit a...) and at tag v2 (commit b...)."""
    root = tmp_path / "hub"
    repo = root / "models--org--tiny"
    for ref, commit in (("main", MAIN), ("v2", V2)):
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
        (repo / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root))
    return root


def test_a_hub_model_is_keyed_on_the_commit_its_revision_resolves_to(hub_cache, tmp_path):
    assert model_fingerprint("org/tiny", tmp_path) == f"org/tiny@{MAIN}"
    assert model_fingerprint("org/tiny", tmp_path, "main") == f"org/tiny@{MAIN}"
    assert model_fingerprint("org/tiny", tmp_path, "v2") == model_fingerprint("org/tiny", tmp_path, V2) == f"org/tiny@{V2}"
    # Unknown to the cache (offline): the revision string itself.
    assert model_fingerprint("org/tiny", tmp_path, "v3") == "org/tiny@v3"


def test_the_model_revision_changes_the_phase2_key(base, hub_cache, tmp_path):
    hub = {**base, "model": "org/tiny"}
    assert phase2_key(hub, tmp_path, ["model_revision=v2"]) != phase2_key(hub, tmp_path)
    assert phase2_key(hub, tmp_path, ["model_revision=main"]) == phase2_key(hub, tmp_path)


def test_the_model_revision_reaches_from_pretrained(base, monkeypatch, tmp_path, tiny_model):
    """A run's start model is loaded at its model_revision (the hub is stood in for by the tiny model)."""
    calls = []

    def recorder(real):
        class Recorder:
            @staticmethod
            def from_pretrained(source, **kwargs):
                calls.append((real.__name__, source, kwargs.pop("revision", None)))
                return real.from_pretrained(str(tiny_model), **kwargs)

        return Recorder

    for name in ("AutoConfig", "AutoModel", "AutoTokenizer"):
        monkeypatch.setattr(sources, name, recorder(getattr(transformers, name)))
    ctx = context({**base, "model": "org/tiny"}, tmp_path, ["model_revision=v2"])
    loaded = load_start(ctx.config.model, HandOff.ENCODER_ONLY, {}, ctx, dropout=0.1)
    assert loaded.model.hidden_size == 64
    assert calls == [("AutoConfig", "org/tiny", "v2"), ("AutoModel", "org/tiny", "v2"), ("AutoTokenizer", "org/tiny", "v2")]
    calls.clear()
    load_encoder("org/tiny", tmp_path)
    assert calls == [("AutoConfig", "org/tiny", None), ("AutoModel", "org/tiny", None), ("AutoTokenizer", "org/tiny", None)]
