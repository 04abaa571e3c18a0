"""A two-task intermediate mixture trains both heads, and targets reuse its checkpoint."""

import json

import pytest
import yaml
from safetensors.torch import load_file

from xstilts.config.loading import load_config
from xstilts.experiments.run import run_experiment
from xstilts.experiments.store import ResultsStore

pytestmark = pytest.mark.slow


def test_mixture_trains_both_heads_and_is_reused(tmp_path, nli_fixture, tiny_model):
    train = {"epochs": 3, "learning_rate": 1e-3, "batch_size": 32, "max_length": 64}
    base = {
        "name": "mix",
        "model": str(tiny_model),
        "task_specs": [str(nli_fixture["spec"])],
        "data": {"mnli": str(nli_fixture["mnli"]), "toy-para": str(nli_fixture["para"]), "toy-xnli": str(nli_fixture["xnli"])},
        "intermediate": {
            "tasks": ["mnli", "toy-para"],
            "mixture": {"sampler": "temperature", "temperature": 2.0, "mixing": "mixed_batch"},
            "max_examples": {"toy-para": 400},
            "train": train,
        },
        "target": {"task": "toy-xnli", "train": {**train, "epochs": 1}, "eval_splits": ["test"]},
    }
    store = ResultsStore(tmp_path / "store")
    first = run_experiment(load_config(None, [], base=base), home=store.home)
    dev = {r.task: r.value for r in store.results(first) if r.phase == "intermediate"}
    assert dev["mnli"] > 60 and dev["toy-para"] > 80  # chance: 33.3 and 50
    # The target trained on English from the mixture's encoder transfers: the label marker is shared.
    target = {r.language: r.value for r in store.results(first) if r.phase == "target" and r.metric == "accuracy"}
    assert set(target) == {"en", "de", "fr"} and all(target[lang] > 60 for lang in ("de", "fr")), target

    key, reused = store.checkpoint_uses(first)[0]
    assert reused is False
    checkpoint = store.find_checkpoint(key)
    heads = json.loads((checkpoint / "checkpoint.json").read_text())["heads"]
    assert set(heads) == {"nli", "toy-para"}
    assert {name.split(".")[0] for name in load_file(str(checkpoint / "heads.safetensors"))} == {"nli", "toy-para"}

    # Another target run with the same phase 2 reuses it; changing the subsample changes the key.
    second = run_experiment(load_config(None, ["target.train.learning_rate=5e-4"], base=base), home=store.home)
    assert store.checkpoint_uses(second) == [(key, True)]
    third = run_experiment(load_config(None, ["intermediate.max_examples.toy-para=300", "intermediate.train.epochs=1"], base=base), home=store.home)
    (third_key, third_reused), = store.checkpoint_uses(third)
    assert third_key != key and third_reused is False
    assert yaml.safe_load((store.runs_dir / third / "config.yaml").read_text())["intermediate"]["max_examples"] == {"toy-para": 300}
