"""The hard-subset builder: a shallow English baseline splits the items into hard and easy."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from xstilts.cli import app
from xstilts.errors import UserError
from xstilts.evaluation.hard_subsets import build_hard_subset
from xstilts.evaluation.subsets import subset_rows
from xstilts.tasks.registry import load_registry

SPEC = """
tasks:
  - name: cue-pairs
    version: 1
    format: pair_classification
    metric: accuracy
    labels: ["0", "1"]
    languages: [en, de]
    local: {reader: xtreme_pair_tsv, path: "{split}-{language}.tsv"}
  - name: cue-choice
    include: xcopa
    languages: [en]
    benchmarks: {}
"""
FILLER = "the a cat dog sat ran on under mat house tree big small red".split()
MARKER = {"0": "no", "1": "yes"}
# Test items: label, and whether the hypothesis carries the label's own marker or the other one.
TEST = [("1", True), ("0", True), ("1", True), ("0", True), ("1", False), ("0", True), ("1", True), ("0", False)]


def words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(FILLER) for _ in range(n)]


def pair_line(rng: random.Random, label: str, honest: bool) -> str:
    marker = MARKER[label] if honest else MARKER["1" if label == "0" else "0"]
    hypothesis = words(rng, 3)
    hypothesis.insert(rng.randint(0, 3), marker)
    return f"{' '.join(words(rng, 6))}\t{' '.join(hypothesis)}\t{label}\n"


@pytest.fixture
def cue_data(tmp_path):
    rng = random.Random(0)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(SPEC, encoding="utf-8")
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    (pairs / "train-en.tsv").write_text("".join(pair_line(rng, str(i % 2), True) for i in range(200)), encoding="utf-8")
    for language in ("en", "de"):
        (pairs / f"test-{language}.tsv").write_text("".join(pair_line(rng, label, honest) for label, honest in TEST), encoding="utf-8")
    return load_registry([spec_file]), spec_file, pairs


@pytest.mark.parametrize("baseline", ["hypothesis-only", "bag-of-words"])
def test_the_items_whose_cue_misleads_are_exactly_the_hard_ones(cue_data, baseline):
    registry, _, pairs = cue_data
    hard, easy, accuracy = build_hard_subset(registry.get("cue-pairs"), pairs, baseline=baseline, split="test")
    # Items 4 and 7 (file lines 5 and 8) carry the other label's marker.
    assert hard == ["test-en-5", "test-en-8"]
    assert easy == ["test-en-1", "test-en-2", "test-en-3", "test-en-4", "test-en-6", "test-en-7"]
    assert accuracy == 75.0


def test_multiple_choice_scores_each_choice(tmp_path):
    rng = random.Random(1)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(SPEC, encoding="utf-8")

    def row(idx: int, label: int, honest: bool) -> str:
        good, bad = f"{' '.join(words(rng, 3))} good", f"{' '.join(words(rng, 3))} bad"
        right, wrong = (good, bad) if honest else (bad, good)
        choices = [right, wrong] if label == 0 else [wrong, right]
        item = {"premise": " ".join(words(rng, 5)), "choice1": choices[0], "choice2": choices[1], "question": "cause", "label": label, "idx": idx}
        return json.dumps(item) + "\n"

    (tmp_path / "train.en.jsonl").write_text("".join(row(i, i % 2, True) for i in range(100)), encoding="utf-8")
    (tmp_path / "test.en.jsonl").write_text("".join(row(i, i % 2, honest) for i, honest in enumerate([True, False, True, True, False])), encoding="utf-8")
    spec = load_registry([spec_file]).get("cue-choice")
    for baseline in ("hypothesis-only", "bag-of-words"):
        assert build_hard_subset(spec, tmp_path, baseline=baseline) == (["1", "4"], ["0", "2", "3"], 60.0)


def test_unsupported_tasks_are_user_errors(cue_data, tmp_path):
    registry, _, pairs = cue_data
    pairs_spec = registry.get("cue-pairs")
    single = type(pairs_spec).model_validate(
        {**pairs_spec.model_dump(), "format": "single_classification", "local": {"reader": "single_tsv", "path": "{split}-{language}.tsv"}}
    )
    (tmp_path / "train-en.tsv").write_text("a b\t0\nc d\t1\n", encoding="utf-8")
    (tmp_path / "test-en.tsv").write_text("a b\t0\n", encoding="utf-8")
    with pytest.raises(UserError, match="hypothesis-only baseline needs sentence pairs"):
        build_hard_subset(single, tmp_path)
    with pytest.raises(UserError, match="need a classification or multiple-choice task, not span_qa"):
        build_hard_subset(load_registry().get("xquad"), tmp_path)


def test_cli_writes_the_ids_file_that_a_spec_subset_then_uses(cue_data, tmp_path):
    registry, spec_file, pairs = cue_data
    output = tmp_path / "out" / "hard.txt"
    result = CliRunner().invoke(app, ["subsets", "hard", "cue-pairs", "--data", str(pairs), "--spec", str(spec_file), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert "2 hard, 6 easy; hypothesis-only baseline accuracy 75.0" in result.output
    assert output.read_text(encoding="utf-8") == "test-en-5\ntest-en-8\n"
    # The file as a spec subset, carried from English to German by item index.
    base = registry.get("cue-pairs")
    spec = type(base).model_validate({**base.model_dump(), "subsets": {"hard": {"ids_file": str(output)}}})
    german = [{"label": label} for label, _ in TEST]
    english = [{"id": f"test-en-{i + 1}", "label": label} for i, (label, _) in enumerate(TEST)]
    rows = subset_rows(spec, "test", "de", german, ["1"] * 8, load=lambda s, l: english, data_dir=None, run_id="r", phase="p")
    assert [(row.split, row.metric, row.value) for row in rows] == [("test/hard", "accuracy", 50.0)]
    bad = CliRunner().invoke(app, ["subsets", "hard", "cue-pairs", "--data", str(pairs), "--spec", str(spec_file), "-o", str(output), "--baseline", "deep"])
    assert isinstance(bad.exception, UserError) and "--baseline 'deep': expected one of" in str(bad.exception)
