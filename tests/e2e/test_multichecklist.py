"""Subsets and MultiCheckList through the real CLI: a QA run's sweep stores subset rows carried
from English by item index, and `xstilts eval` scores MultiCheckList with the run's QA head."""

import json
import random

import pytest
import yaml

from clitools import cli
from xstilts.evaluation.records import read_records, score_records
from xstilts.tasks.registry import load_registry
from fixtures_nli import WORDS

pytestmark = pytest.mark.slow

SPEC = """
tasks:
  - name: toy-qa
    include: xquad
    languages: [en, de, fr]
    splits: [train, dev, test]
    benchmarks: {}
    local: {reader: squad_json, path: "{split}-{language}.json"}
    subsets:
      first: {ids: [en-test-0, en-test-1, en-test-2, en-test-3], splits: [test]}
  - name: mcl-toy
    include: multichecklist
    head: toy-qa
    languages: [en, xx]
    local: {reader: multichecklist_tsv, path: checklist_templates.tsv, options: {samples: 4, seed: 1}}
"""
TEMPLATES = [
    "Field\ten\txx",
    "Name\tAnimal vs Vehicle",
    "Capability\tTaxonomy",
    "Context\t{first_name} has {animal} and {vehicle}.\t{first_name} hat {animal} und {vehicle}.",
    "Question\tWhat animal does {first_name} have?\tWelches Tier hat {first_name}?",
    "Answer\t{animal}\t{animal}",
    "animal\ta dog\tein Hund",
    "animal\ta cat\teine Katze",
    "vehicle\ta car\tein Auto",
    "",
    "Name\tAnimal vs Vehicle v2",
    "Capability\tTaxonomy",
    "Context\t{first_name} bought {animal}. {first_name2} bought {vehicle}.\t",
    "Question\tWho bought a vehicle?\t",
    "Answer\t{first_name2}\t",
]


def write_qa_fixture(root, rng):
    """SQuAD json per split and language: the answer is the number after the word "yes"."""
    for language in WORDS:
        for split, n in (("train", 96), ("dev", 8), ("test", 12)):
            if split == "train" and language != "en":
                continue
            paragraphs = []
            for i in range(n):
                words = [rng.choice(WORDS[language]) for _ in range(rng.randint(4, 12))]
                answer = str(rng.randint(10, 9999))
                context = " ".join([*words, "yes", answer])
                qa = {"id": f"{language}-{split}-{i}", "question": "yes", "answers": [{"text": answer, "answer_start": context.rindex(answer)}]}
                paragraphs.append({"context": context, "qas": [qa]})
            data = {"version": "1.1", "data": [{"title": "toy", "paragraphs": paragraphs}]}
            (root / f"{split}-{language}.json").write_text(json.dumps(data), encoding="utf-8")


def test_subset_rows_and_multichecklist_failure_rates(tmp_path, monkeypatch, capsys, tiny_model):
    qa = tmp_path / "qa"
    qa.mkdir()
    write_qa_fixture(qa, random.Random(0))
    mcl = tmp_path / "mcl"
    mcl.mkdir()
    (mcl / "checklist_templates.tsv").write_text("\n".join(TEMPLATES) + "\n", encoding="utf-8")
    specs = tmp_path / "specs.yaml"
    specs.write_text(SPEC, encoding="utf-8")
    config = {
        "name": "toy-qa", "model": str(tiny_model), "task_specs": [str(specs)], "data": {"toy-qa": str(qa)},
        "target": {"task": "toy-qa", "eval_splits": ["test"], "train": {"epochs": 1, "learning_rate": 2e-3, "batch_size": 32, "max_length": 32}},
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    store = tmp_path / "store"
    # A subset naming an id the split lacks stops the run before any training.
    specs.write_text(SPEC.replace("en-test-3]", "en-test-99]"), encoding="utf-8")
    with pytest.raises(AssertionError, match=r"specs.yaml: task 'toy-qa', subset 'first': 1 id\(s\) not in the test-en examples"):
        cli(monkeypatch, capsys, "run", tmp_path / "exp.yaml", "--store", store)
    assert not list((store / "runs").glob("*/checkpoints/target"))
    specs.write_text(SPEC, encoding="utf-8")
    cli(monkeypatch, capsys, "run", tmp_path / "exp.yaml", "--store", store)
    run_dir = next(path.parent.parent for path in (store / "runs").glob("*/checkpoints/target"))
    rows = json.loads(cli(monkeypatch, capsys, "results", "--format", "json", "--store", store))
    scores = {(r["language"], r["split"], r["metric"]): r["value"] for r in rows if r["phase"] == "target"}
    toy = load_registry([specs]).get("toy-qa")
    for language in ("en", "de", "fr"):
        examples, predictions = read_records(run_dir / "predictions" / "toy-qa" / f"test-{language}.records.jsonl")
        # The English ids' items 0-3, carried to de and fr by index, scored by the format's scorer.
        expected = score_records(toy, examples, predictions, [0, 1, 2, 3])
        assert {m: scores[(language, "test/first", m)] for m in ("exact_match", "f1")} == pytest.approx(expected)

    out = cli(
        monkeypatch, capsys, "eval", "--model", run_dir / "checkpoints" / "target", "--task", "mcl-toy",
        "--data-dir", mcl, "--store", store, f"task_specs=[{specs}]",
    )
    assert "failure_rate" in out
    rows = json.loads(cli(monkeypatch, capsys, "results", "--format", "json", "--store", store))
    evaluated = {(r["language"], r["split"], r["metric"]): r["value"] for r in rows if r["phase"] == "eval"}
    splits = {(language, split) for language, split, _ in evaluated}
    assert splits == {("en", "test"), ("en", "test/animal-vs-vehicle"), ("en", "test/animal-vs-vehicle-v2"),
                      ("xx", "test"), ("xx", "test/animal-vs-vehicle")}  # xx has no v2 templates
    for language, split in splits:
        assert evaluated[(language, split, "failure_rate")] == pytest.approx(100 - evaluated[(language, split, "exact_match")])
