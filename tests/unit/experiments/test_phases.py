"""Phase pieces without training: subsamples, eval splits, preflight, per-language failures, eval max_length."""

import json

import pytest
import torch
from rich.console import Console

from xstilts.config.loading import load_config
from xstilts.config.schema import EvalConfig
from xstilts.errors import UserError
from xstilts.experiments.phases import RunContext, subsample, target_splits
from xstilts.experiments.zero_shot import one_line, sweep_each
from xstilts.experiments.run import DEFAULT_EVAL_MAX_LENGTH, eval_max_length, evaluate_model, preflight
from xstilts.results import ResultRow
from xstilts.tasks.registry import load_registry

REGISTRY = load_registry()


def test_subsamples_of_one_data_seed_nest():
    items = list(range(20000))
    small, large = subsample(items, 1000, seed=3), subsample(items, 10000, seed=3)
    assert set(small) <= set(large) and small == sorted(small) and len(set(large)) == 10000
    assert set(subsample(items, 1000, seed=4)) != set(small)
    assert subsample(items, 20000, seed=3) is items and subsample(items, None, seed=3) is items


@pytest.mark.parametrize(
    "task, splits", [("tydiqa", ["test"]), ("tatoeba", ["test"]), ("xnli", ["dev", "test"]), ("copa", ["dev"])]
)
def test_default_eval_splits_are_the_tasks_own_dev_and_test(task, splits):
    assert target_splits(REGISTRY.get(task), None) == splits


def test_an_eval_split_the_task_lacks_is_one_line_naming_the_key():
    with pytest.raises(UserError) as error:
        target_splits(REGISTRY.get("tydiqa"), ["dev", "test"])
    assert str(error.value) == "key 'target.eval_splits': task 'tydiqa' has no split 'dev' (its splits: train, test)"
    with pytest.raises(UserError, match=r"key 'splits': task 'xnli' has no split 'tset' .* \(did you mean 'test'\?\)"):
        target_splits(REGISTRY.get("xnli"), ["tset"], key="splits")


def test_preflight_checks_eval_splits_before_any_training():
    config = load_config(None, [], base={"name": "x", "model": "m", "target": {"task": "tydiqa", "eval_splits": ["dev", "test"]}})
    with pytest.raises(UserError, match="key 'target.eval_splits': task 'tydiqa' has no split 'dev'"):
        preflight(config, REGISTRY)
    resolved = preflight(load_config(None, ["target.eval_splits=null"], base=config.model_dump(mode="json")), REGISTRY)
    assert resolved.target.eval_splits == ["test"]


def test_eval_checks_its_splits_before_loading_the_model(tmp_path):
    with pytest.raises(UserError, match="key 'splits': task 'tatoeba' has no split 'dev'"):
        evaluate_model(EvalConfig(model="no/such-model", task="tatoeba", splits=["dev"]), home=tmp_path)
    assert not (tmp_path / "runs").exists()


def test_one_line_reasons():
    assert one_line(UserError("test-fr.tsv:91: expected 3 fields")) == "test-fr.tsv:91: expected 3 fields"
    assert one_line(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB\nmore")) == "RuntimeError: CUDA out of memory. Tried to allocate 2 GiB"
    assert one_line(MemoryError()) == "MemoryError"


def test_one_failing_language_is_its_error_and_the_others_keep_their_rows(tmp_path):
    ctx = RunContext("r1", None, REGISTRY, None, tmp_path, torch.device("cpu"), Console(quiet=True))

    def evaluate(split: str, language: str) -> list[ResultRow]:
        if (split, language) == ("test", "fr"):
            raise RuntimeError("CUDA out of memory.")
        return [ResultRow("r1", "target", "xnli", language, split, "accuracy", 50.0)]

    rows = sweep_each(ctx, REGISTRY.get("xnli"), "target", ["dev", "test"], ["de", "fr"], evaluate)
    assert [(r.split, r.language) for r in rows] == [("dev", "de"), ("dev", "fr"), ("test", "de")]
    [error] = ctx.errors
    assert (error.run, error.phase, error.task, error.language, error.split, error.message) == (
        "r1", "target", "xnli", "fr", "test", "RuntimeError: CUDA out of memory.")
    assert "Traceback" in error.detail


def checkpoint(tmp_path, metadata: dict):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "checkpoint.json").write_text(json.dumps({"heads": {}, **metadata}), encoding="utf-8")
    return str(tmp_path)


def test_eval_max_length_comes_from_the_checkpoint_unless_overridden(tmp_path):
    recorded = checkpoint(tmp_path / "new", {"max_length": 256, "config": {"train": {"max_length": 256}}})
    older = checkpoint(tmp_path / "old", {"config": {"train": {"max_length": 64}}})  # made before max_length was explicit
    assert eval_max_length(EvalConfig(model=recorded, task="xnli")) == 256
    assert eval_max_length(EvalConfig(model=older, task="xnli")) == 64
    assert eval_max_length(EvalConfig(model=recorded, task="xnli", max_length=32)) == 32
    assert eval_max_length(EvalConfig(model="xlm-roberta-base", task="xnli")) == DEFAULT_EVAL_MAX_LENGTH == 128
