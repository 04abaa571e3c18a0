"""Contracts over every shipped task spec and every shipped experiment config."""

from pathlib import Path

import pytest

from xstilts.config.loading import load_config
from xstilts.config.schema import QuickstartConfig, TextToTextConfig
from xstilts.data.readers import READERS, get_reader
from xstilts.experiments.phases import target_splits
from xstilts.experiments.quickstart import QUICKSTART_CONFIG
from xstilts.formats.base import FORMATS, TEXT_TO_TEXT_FIXED, get_format
from xstilts.tasks.registry import load_registry
from xstilts.tasks.spec import Format

REGISTRY = load_registry()
SPECS = list(REGISTRY)
CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_spec_has_a_working_reader_and_format(spec):
    assert spec.local is not None or spec.hub is not None
    if spec.local is not None:
        assert spec.local.reader in READERS
        assert callable(get_reader(spec.local.reader, spec))
    if spec.format in TEXT_TO_TEXT_FIXED:  # text-to-text only (span corruption): trained, never scored
        fmt = get_format(spec.format, TextToTextConfig())
        assert all(callable(getattr(fmt, method)) for method in ("featurize", "loss")) and isinstance(fmt.version, int)
    elif spec.format is not Format.RETRIEVAL:
        assert spec.format in FORMATS
        fmt = get_format(spec.format)
        for method in ("featurize", "build_head", "loss", "decode", "score"):
            assert callable(getattr(fmt, method))
        assert isinstance(fmt.version, int)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_benchmark_languages_are_task_languages(spec):
    for benchmark, languages in spec.benchmarks.items():
        assert benchmark in ("xtreme", "xtreme-r")
        assert len(set(languages)) == len(languages)
        assert set(languages) <= set(spec.languages), sorted(set(languages) - set(spec.languages))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_binds(path):
    config = load_config(path)
    registry = load_registry(config.task_specs)
    registry.get(config.target.task)
    for task in config.intermediate.tasks if config.intermediate else []:
        registry.get(task)
    for task in config.data:
        registry.get(task)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_scores_splits_its_target_has(path):
    config = load_config(path)
    spec = load_registry(config.task_specs).get(config.target.task)
    splits = target_splits(spec, config.target.eval_splits)  # raises on a split the spec lacks
    assert splits and set(splits) <= set(spec.splits)


def test_the_quickstart_scores_splits_every_target_has():
    config = load_config(QUICKSTART_CONFIG, schema=QuickstartConfig)
    for target in config.targets:
        spec = REGISTRY.get(target)
        assert set(target_splits(spec, config.eval_splits)) <= set(spec.splits), target
