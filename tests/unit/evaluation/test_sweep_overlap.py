"""The zero-shot sweep loads the next (split, language) while one is evaluated, in order, with the same errors."""

import threading

import pytest
import torch
from rich.console import Console

from tiny_training import REGISTRY
from xstilts.errors import UserError
from xstilts.evaluation.sweep import prefetched
from xstilts.experiments.phases import RunContext
from xstilts.experiments.zero_shot import sweep_each
from xstilts.results import ResultRow


def test_next_item_loads_while_the_current_one_is_evaluated():
    second_loading = threading.Event()

    def load(item: int) -> int:
        if item == 1:
            second_loading.set()
        return item * 10

    seen = []
    for item, loaded in prefetched([0, 1, 2], load):
        if item == 0:
            # Evaluating item 0 does not end until item 1 has started loading in the background.
            assert second_loading.wait(timeout=10)
        seen.append((item, loaded()))
    assert seen == [(0, 0), (1, 10), (2, 20)]
    assert list(prefetched([], load)) == []


def test_a_failed_load_surfaces_at_its_own_item_as_the_same_error():
    def load(item: int) -> int:
        if item == 1:
            raise UserError("test-fr.tsv:3: expected 3 fields")
        return item

    results = []
    for item, loaded in prefetched([0, 1, 2], load):
        try:
            results.append(loaded())
        except UserError as exc:
            results.append(str(exc))
    assert results == [0, "test-fr.tsv:3: expected 3 fields", 2]


def test_sweep_each_records_a_failed_load_as_that_pairs_error_and_keeps_order(tmp_path):
    ctx = RunContext("r1", None, REGISTRY, None, tmp_path, torch.device("cpu"), Console(quiet=True))
    threads = set()

    def load(split: str, language: str) -> str:
        threads.add(threading.current_thread().name)
        if (split, language) == ("dev", "fr"):
            raise UserError("dev-fr.tsv:3: expected 3 fields")
        return f"{split}-{language}"

    def evaluate(split: str, language: str, data: str) -> list[ResultRow]:
        return [ResultRow("r1", "target", "xnli", language, split, "accuracy", float(len(data)))]

    rows = sweep_each(ctx, REGISTRY.get("xnli"), "target", ["dev", "test"], ["de", "fr"], evaluate, load)
    assert [(r.split, r.language) for r in rows] == [("dev", "de"), ("test", "de"), ("test", "fr")]
    [error] = ctx.errors
    assert (error.language, error.split, error.message) == ("fr", "dev", "dev-fr.tsv:3: expected 3 fields")
    assert threads and threading.current_thread().name not in threads


def test_a_failed_evaluation_stops_the_background_load():
    loads = []

    def load(item: int) -> int:
        loads.append(item)
        return item

    with pytest.raises(RuntimeError):
        for item, loaded in prefetched(list(range(100)), load):
            loaded()
            raise RuntimeError("out of memory")
    assert len(loads) <= 2
