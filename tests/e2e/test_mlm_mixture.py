"""Intermediate mixture of MNLI and continued multilingual MLM on a tiny model, through run_experiment."""

import random

import pytest
import torch

from fixtures_nli import words_of
from xstilts.config.loading import load_config
from xstilts.config.schema import Precision
from xstilts.data.loading import load_examples
from xstilts.evaluation.predict import EvalSplit, evaluate_split
from xstilts.experiments.run import run_experiment
from xstilts.experiments.store import ResultsStore
from xstilts.formats.mlm import MLM
from xstilts.models.multitask import MultiTaskModel
from xstilts.models.sources import load_masked_lm
from xstilts.tasks.registry import load_registry

pytestmark = pytest.mark.slow

SPEC = """
tasks:
  - name: mlm-toy
    include: mlm-multilingual
    description: continued MLM on the fixture's three languages
    languages: [en, de, fr]
"""
MAX_LENGTH = 64


def write_text(root, n_train=100, n_dev=40):
    """{split}/{language}.txt: the language's first fixture word between random others ("the cat
    the mat ..."), so half of the tokens are learnable at once, and the start model is at chance."""
    rng = random.Random(1)
    for split, n in (("train", n_train), ("dev", n_dev)):
        (root / split).mkdir(parents=True)
        for language in ("en", "de", "fr"):
            words = words_of(language)
            lines = [" ".join(f"{words[0]} {rng.choice(words[1:])}" for _ in range(8)) for _ in range(n)]
            (root / split / f"{language}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def untrained_mlm_accuracy(model_dir, spec, data_dir, cache_dir) -> float:
    """MLM dev accuracy of the start model with its own MLM head (where phase 2 starts), on the
    same (deterministic) features."""
    encoder, tokenizer, head, reason = load_masked_lm(str(model_dir), cache_dir)
    assert head is not None, reason
    model = MultiTaskModel(encoder, {spec.head_name: head})
    examples = load_examples(spec, "dev", "en", data_dir)
    features = MLM.featurize(examples, tokenizer, spec, MAX_LENGTH)
    split = EvalSplit("en", "dev", examples, features)
    scores = evaluate_split(model, spec, MLM, split, tokenizer=tokenizer, device=torch.device("cpu"), precision=Precision.FP32, batch_size=64).scores
    return scores["accuracy"]


def test_mnli_and_mlm_mixture_learns_both(tmp_path, nli_fixture, tiny_model):
    spec_file = tmp_path / "mlm.yaml"
    spec_file.write_text(SPEC, encoding="utf-8")
    text = tmp_path / "text"
    write_text(text)
    train = {"epochs": 3, "learning_rate": 2e-3, "batch_size": 32, "max_length": MAX_LENGTH}
    config = {
        "name": "mlm-mix",
        "model": str(tiny_model),
        "task_specs": [str(nli_fixture["spec"]), str(spec_file)],
        "data": {"mnli": str(nli_fixture["mnli"]), "mlm-toy": str(text), "toy-para": str(nli_fixture["para"])},
        "intermediate": {
            "tasks": ["mnli", "mlm-toy"],
            "mixture": {"mixing": "mixed_batch"},
            "max_examples": {"mnli": 450},
            "train": train,
        },
        "target": {"task": "toy-para", "train": {**train, "max_steps": 3}, "eval_splits": ["dev"]},
        "device": "cpu",
    }
    store = ResultsStore(tmp_path / "store")
    run_id = run_experiment(load_config(None, [], base=config), home=store.home)
    dev = {r.task: r.value for r in store.results(run_id) if r.phase == "intermediate"}
    assert dev["mnli"] > 50  # chance 33.3: the NLI head still learns next to MLM

    spec = load_registry([spec_file]).get("mlm-toy")
    before = untrained_mlm_accuracy(tiny_model, spec, text, store.cache_dir)
    assert before < 5 and dev["mlm-toy"] > before + 15
