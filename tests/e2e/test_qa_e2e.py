"""Span QA end to end: `xstilts run` trains on English and sweeps three languages."""

import json
import random

import pytest
import yaml

from clitools import cli
from fixtures_nli import WORDS

pytestmark = pytest.mark.slow

MARKER = "yes"  # shared by every language, as names and digits are in real ones
SPEC = """
tasks:
  - name: toy-qa
    include: xquad
    description: learnable QA fixture, the answer is the number after the marker
    languages: [en, de, fr]
    splits: [train, dev, test]
    benchmarks: {}
    local: {reader: squad_json, path: "{split}-{language}.json"}
"""


def question(rng, language, qid):
    words = [rng.choice(WORDS[language]) for _ in range(rng.randint(6, 30))]
    at = rng.randint(0, len(words) - 1)
    answer = str(rng.randint(10, 9999))
    words[at:at] = [MARKER, answer]
    context = " ".join(words)
    start = len(" ".join(words[: at + 1])) + 1
    assert context[start : start + len(answer)] == answer
    qa = {"id": qid, "question": f"{MARKER} {rng.choice(WORDS[language])}", "answers": [{"text": answer, "answer_start": start}]}
    return {"context": context, "qas": [qa]}


def write_qa_fixture(root, rng):
    sizes = {"train": 256, "dev": 30, "test": 30}
    for language in WORDS:
        for split, n in sizes.items():
            if split == "train" and language != "en":
                continue
            paragraphs = [question(rng, language, f"{language}-{split}-{i}") for i in range(n)]
            data = {"version": "1.1", "data": [{"title": "toy", "paragraphs": paragraphs}]}
            (root / f"{split}-{language}.json").write_text(json.dumps(data), encoding="utf-8")


def test_qa_run_learns_the_marker_rule_and_sweeps_every_language(tmp_path, monkeypatch, capsys, tiny_model):
    write_qa_fixture(tmp_path, random.Random(0))
    (tmp_path / "toy-qa.yaml").write_text(SPEC, encoding="utf-8")
    train = {"epochs": 2, "learning_rate": 2e-3, "batch_size": 32, "max_length": 32, "warmup_ratio": 0.05}
    config = {
        "name": "toy-qa",
        "model": str(tiny_model),
        "task_specs": [str(tmp_path / "toy-qa.yaml")],
        "data": {"toy-qa": str(tmp_path)},
        "target": {"task": "toy-qa", "train": train},
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    store = tmp_path / "store"
    cli(monkeypatch, capsys, "run", tmp_path / "exp.yaml", "--store", store)
    rows = json.loads(cli(monkeypatch, capsys, "results", "--format", "json", "--store", store))
    scores = {(r["language"], r["split"], r["metric"]): r["value"] for r in rows if r["phase"] == "target"}
    assert set(scores) == {(lang, split, metric) for lang in WORDS for split in ("dev", "test") for metric in ("exact_match", "f1")}
    # Contexts of 8-32 words, longer than one 32-token window for many: guessing a word scores F1 < 13.
    assert scores[("en", "dev", "f1")] > 60
    # The marker and the digits are shared by every language, so the rule transfers zero-shot.
    for language in ("de", "fr"):
        assert scores[(language, "test", "f1")] > 60 and scores[(language, "test", "exact_match")] > 40, scores
    predictions = json.loads(next((store / "runs").glob("*/predictions/toy-qa/test-de.json")).read_text(encoding="utf-8"))
    assert len(predictions) == 30 and set(predictions) == {f"de-test-{i}" for i in range(30)}
