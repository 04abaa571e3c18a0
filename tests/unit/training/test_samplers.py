import pytest
import torch

from xstilts.config.schema import MixtureConfig
from xstilts.errors import UserError
from xstilts.config.loading import load_config
from xstilts.experiments.phases import subsample
from xstilts.formats.batching import example_units, shuffled_examples, take
from xstilts.training.samplers import draw_tasks, task_probabilities

SIZES = {"mnli": 400, "squad": 100, "copa": 25}


@pytest.mark.parametrize(
    "mixture, expected",
    [
        (MixtureConfig(), [400 / 525, 100 / 525, 25 / 525]),
        (MixtureConfig(sampler="uniform"), [1 / 3] * 3),
        (MixtureConfig(sampler="temperature", temperature=2.0), [20 / 35, 10 / 35, 5 / 35]),
        (MixtureConfig(example_cap=100), [100 / 225, 100 / 225, 25 / 225]),
        (MixtureConfig(sampler="fixed", probabilities={"mnli": 0.5, "squad": 0.3, "copa": 0.2}), [0.5, 0.3, 0.2]),
    ],
)
def test_probabilities(mixture, expected):
    assert task_probabilities(SIZES, mixture) == pytest.approx(expected)


@pytest.mark.parametrize("mixture", [MixtureConfig(), MixtureConfig(sampler="temperature", temperature=3.0)])
def test_empirical_frequencies_match_the_distribution(mixture):
    probabilities = task_probabilities(SIZES, mixture)
    draws = draw_tasks(probabilities, 20000, torch.Generator().manual_seed(0))
    for index, p in enumerate(probabilities):
        assert draws.count(index) / len(draws) == pytest.approx(p, abs=0.01)


def test_draws_are_deterministic_per_seed():
    p = task_probabilities(SIZES, MixtureConfig())
    first = draw_tasks(p, 100, torch.Generator().manual_seed(3))
    assert first == draw_tasks(p, 100, torch.Generator().manual_seed(3))
    assert first != draw_tasks(p, 100, torch.Generator().manual_seed(4))


def test_subsample_is_seeded_and_order_preserving():
    items = list(range(1000))
    a, b = subsample(items, 50, seed=1), subsample(items, 50, seed=1)
    assert a == b and a == sorted(a) and len(set(a)) == 50
    assert subsample(items, 50, seed=2) != a
    assert subsample(items, 5000, seed=1) is items


def test_mixture_validation():
    base = {"name": "x", "model": "m", "target": {"task": "xnli"}, "intermediate": {"tasks": ["mnli", "squad2"]}}
    with pytest.raises(UserError, match="probabilities must be given exactly when sampler is 'fixed'"):
        load_config(None, ["intermediate.mixture.sampler=fixed"], base=base)
    with pytest.raises(UserError, match="sum to 1"):
        load_config(None, ["intermediate.mixture.sampler=fixed", "intermediate.mixture.probabilities={mnli: 0.5, squad2: 0.2}"], base=base)
    with pytest.raises(UserError, match="not in intermediate.tasks: \\['qqp'\\]"):
        load_config(None, ["intermediate.max_examples={qqp: 10}"], base=base)
    config = load_config(None, ["intermediate.max_examples={mnli: 10}", "intermediate.mixture.mixing=mixed_batch"], base=base)
    assert config.intermediate.max_examples == {"mnli": 10}


def test_multiple_choice_groups_stay_together():
    features = [{"group": g, "choice": c} for g in range(5) for c in range(3)]
    assert example_units(features)[1] == [3, 4, 5]
    stream = shuffled_examples(features, torch.Generator().manual_seed(0))
    batch = take(stream, 2)
    assert len(batch) == 6 and [f["group"] for f in batch[:3]] == [batch[0]["group"]] * 3
