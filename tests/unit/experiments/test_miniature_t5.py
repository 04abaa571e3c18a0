"""The miniature's text-to-text start models (research question (a)): prepared only when a study
uses them, content-keyed and reused, loadable in both modes, and the instruct model's card flags
the tasks it was trained on."""

from pathlib import Path

import pytest
import torch
import yaml
from rich.console import Console
from safetensors.torch import load_file
from transformers import T5EncoderModel

import xstilts.experiments.quickstart as quickstart
from xstilts.config.loading import load_config
from xstilts.config.schema import QuickstartConfig
from xstilts.experiments.quickstart import QUICKSTART_CONFIG, find_miniature, prepare_miniature, t5_folders
from xstilts.experiments.study import PLACEHOLDERS, PREPARE, RUN, load_study, resolved_config
from xstilts.experiments.study_report import describe, node_steps
from xstilts.models.cards import load_cards, seen_tasks
from xstilts.models.sources import quiet_transformers
from xstilts.tasks.registry import load_registry
from xstilts.training.pretrain import load_seq2seq_lm

STUDIES = Path(__file__).resolve().parents[3] / "configs" / "studies"
TINY = {
    "sizes": {
        "mlm": {"sentences": 150},
        **{task: {"train": 24, "dev": 6, "test": 6} for task in ("topic", "nli", "paraphrase", "pos", "ner", "copa", "morph")},
        "qa": {"train": 6, "dev": 2, "test": 2},
        "parallel": {"test": 8},
    },
    "model": {"vocab_size": 300, "hidden_size": 32, "num_layers": 1, "num_heads": 2},
    "pretrain": {"steps": 2, "batch_size": 8},
    "t5": {
        "vocab_size": 200, "d_model": 32, "num_layers": 1, "num_heads": 2, "d_ff": 64,
        "pretrain": {"steps": 4, "batch_size": 8, "max_length": 32},
        "instruct_train": {"epochs": 1, "batch_size": 4, "max_length": 64, "max_train_examples": 8, "eval_every_epoch": False},
    },
}


def tiny_config(**changes) -> QuickstartConfig:
    """The shipped quickstart config with TINY's sections merged in, then `changes` set."""
    document = yaml.safe_load(QUICKSTART_CONFIG.read_text(encoding="utf-8"))
    document["sizes"] = TINY["sizes"]
    for section in ("model", "pretrain", "t5"):
        document[section] = {**document[section], **TINY[section]}
    return QuickstartConfig.model_validate({**document, **changes})


def test_the_shipped_instruct_card_lists_the_shipped_instruction_mixture():
    shipped = load_config(QUICKSTART_CONFIG, schema=QuickstartConfig)
    card = load_cards()["quickstart:t5-instruct"]
    assert card.seen_tasks == frozenset(shipped.t5.instruct_tasks)
    # A FLAN stand-in for rq-a: neither the intermediate task nor a target of the mini study.
    study = yaml.safe_load((STUDIES / "rq-a-instruction-mini.yaml").read_text(encoding="utf-8"))
    study_tasks = {"synth-mnli", *study["axes"]["target"]["values"]}
    assert not card.seen_tasks & study_tasks
    assert not shipped.prepare_t5 and all(task in shipped.data for task in shipped.t5.instruct_tasks)


def test_a_study_prepares_only_the_model_pairs_its_runs_use(tmp_path):
    assert {"quickstart:t5": "t5", "quickstart:t5-instruct": "t5_instruct"}.items() <= PLACEHOLDERS.items()
    t5_only = load_study(STUDIES / "rq-a-instruction-mini.yaml", tmp_path).quickstart
    assert (t5_only.prepare_t5, t5_only.prepare_bert) == (True, False)
    bert_only = load_study(STUDIES / "rq-c-morphology-mini.yaml", tmp_path).quickstart
    assert (bert_only.prepare_t5, bert_only.prepare_bert) == (False, True)
    prepare = next(node for node in load_study(STUDIES / "rq-a-instruction-mini.yaml", tmp_path).nodes.values() if node.kind == PREPARE)
    assert node_steps(prepare) == t5_only.t5.pretrain.steps  # the plan counts only what is built
    assert describe(prepare) == f"miniature: synthetic data, tiny T5 span corruption {t5_only.t5.pretrain.steps} steps"


def test_t5_folders_are_keyed_by_what_shapes_each_model(tmp_path):
    registry, data = load_registry(), tmp_path / "data"
    for folder in ("mlm", "topic", "qa", "ner", "pos", "paraphrase"):
        (data / folder).mkdir(parents=True)
        (data / folder / "x.txt").write_text(folder, encoding="utf-8")
    base = t5_folders(tiny_config(), data, tmp_path, registry)
    assert [path.name.rsplit("-", 1)[0] for path in base] == ["tiny-t5", "tiny-t5-sc", "tiny-t5-instruct"]
    other_mixture = t5_folders(tiny_config(t5={**TINY["t5"], "instruct_tasks": ["synth-topic", "synth-paws"]}), data, tmp_path, registry)
    assert other_mixture[:2] == base[:2] and other_mixture[2] != base[2]
    longer = t5_folders(tiny_config(t5={**TINY["t5"], "pretrain": {"steps": 5, "batch_size": 8, "max_length": 32}}), data, tmp_path, registry)
    assert longer[0] == base[0] and longer[1] != base[1] and longer[2] != base[2]
    (data / "topic" / "x.txt").write_text("changed", encoding="utf-8")  # instruction data changed
    assert t5_folders(tiny_config(), data, tmp_path, registry)[:2] == base[:2]
    assert t5_folders(tiny_config(), data, tmp_path, registry)[2] != base[2]


@pytest.mark.slow
def test_the_t5_pair_is_prepared_loadable_reused_and_flagged(tmp_path, monkeypatch):
    console, work = Console(quiet=True), tmp_path / "work"
    cfg = tiny_config(prepare_t5=True)
    miniature = prepare_miniature(cfg, work, console)
    assert miniature.t5.name.startswith("tiny-t5-sc-") and miniature.t5_instruct.name.startswith("tiny-t5-instruct-")
    for folder in (miniature.t5, miniature.t5_instruct):
        model, tokenizer = load_seq2seq_lm(folder)  # every key, the untied LM head included
        assert model.config.d_model == 32 and tokenizer.convert_tokens_to_ids("<extra_id_0>") > 2
        with quiet_transformers():
            _, info = T5EncoderModel.from_pretrained(folder, output_loading_info=True)
        assert not info["missing_keys"] and info["unexpected_keys"] == {"lm_head.weight"}
    span, instruct = load_file(miniature.t5 / "model.safetensors"), load_file(miniature.t5_instruct / "model.safetensors")
    assert span.keys() == instruct.keys() and any(not torch.equal(span[key], instruct[key]) for key in span)
    assert seen_tasks(str(miniature.t5_instruct)) == set(cfg.t5.instruct_tasks)
    assert seen_tasks(str(miniature.t5)) == set()

    # Prepared once: a second preparation (and a study's lookup) finds every folder and builds nothing.
    def refuse(*args, **kwargs):
        raise AssertionError("rebuilt a prepared model")

    for name in ("build_tiny_t5", "pretrain_span_corruption", "train_instructions", "build_tiny_model", "pretrain_mlm"):
        monkeypatch.setattr(quickstart, name, refuse)
    assert prepare_miniature(cfg, work, console) == miniature == find_miniature(cfg, work)
    without = find_miniature(tiny_config(), work)
    assert (without.t5, without.t5_instruct) == (None, None) and without.pretrained == miniature.pretrained
    t5_only = find_miniature(tiny_config(prepare_t5=True, prepare_bert=False), work)
    assert (t5_only.initial, t5_only.pretrained, t5_only.t5) == (None, None, miniature.t5)
    assert find_miniature(tiny_config(prepare_t5=True, t5={**TINY["t5"], "instruct_prompt": "other"}), work) is None


@pytest.mark.slow
def test_a_study_node_resolves_the_t5_placeholders_to_the_prepared_folders(tmp_path):
    study_file = tmp_path / "rq-a.yaml"
    study = yaml.safe_load((STUDIES / "rq-a-instruction-mini.yaml").read_text(encoding="utf-8"))
    study["quickstart"] = {key: value for key, value in TINY.items()}
    study["axes"]["seed"]["values"] = [0]
    study_file.write_text(yaml.safe_dump(study, sort_keys=False), encoding="utf-8")
    loaded = load_study(study_file, tmp_path / "home")
    assert loaded.quickstart.prepare_t5 is True
    miniature = prepare_miniature(loaded.quickstart, tmp_path / "home" / "quickstart", Console(quiet=True))
    assert miniature.initial is None and not list((tmp_path / "home" / "quickstart").glob("tiny-mlm-*"))  # no BERT pair
    resolved = {}
    for node in loaded.nodes.values():
        if node.kind == RUN:
            resolved[node.config["model"]] = resolved_config(node, loaded.home).model
    assert resolved == {"quickstart:t5": str(miniature.t5), "quickstart:t5-instruct": str(miniature.t5_instruct)}
