"""A run's test predictions, exported in the leaderboard layout, score to the same numbers
through `xstilts score` as the run stored (the built-in xnli task, all 15 languages)."""

import json
import sys

import pytest
import yaml

from clitools import cli
from fixtures_nli import write_fixture
from xstilts.cli import main
from xstilts.experiments.store import ResultsStore
from xstilts.tasks.registry import load_registry

pytestmark = pytest.mark.slow


def test_export_then_score_equals_the_store(monkeypatch, capsys, tmp_path, tiny_model):
    languages = tuple(load_registry().get("xnli").languages)
    fixture = write_fixture(tmp_path / "data", n_train=300, n_eval=40, languages=languages)
    store = tmp_path / "store"
    train = {"epochs": 1, "learning_rate": 1e-3, "batch_size": 32, "max_length": 64}
    config = {"name": "xnli-toy", "model": str(tiny_model), "data": {"xnli": str(fixture["xnli"])},
              "target": {"task": "xnli", "train": train, "eval_splits": ["test"]}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    cli(monkeypatch, capsys, "run", tmp_path / "exp.yaml", "--store", store)
    run = ResultsStore(store).runs()[0]["run"]

    cli(monkeypatch, capsys, "export-submission", run, tmp_path / "submission", "--store", store)
    assert sorted(p.name for p in (tmp_path / "submission" / "xnli").iterdir()) == [f"test-{l}.tsv" for l in sorted(languages)]

    gold = tmp_path / "gold" / "xnli"
    gold.mkdir(parents=True)
    for language in languages:
        lines = (fixture["xnli"] / f"test-{language}.tsv").read_text().splitlines()
        (gold / f"test-{language}.tsv").write_text("".join(line.split("\t")[-1] + "\n" for line in lines))
    scored = json.loads(cli(monkeypatch, capsys, "score", "--predictions", tmp_path / "submission",
                            "--labels", tmp_path / "gold", "--benchmark", "xtreme", "--output", tmp_path / "scores.json"))
    stored = {row.language: row.value for row in ResultsStore(store).results(run) if row.split == "test"}
    assert scored["xnli"]["accuracy"] == pytest.approx(stored, abs=1e-9)
    assert scored["xnli"]["avg_accuracy"] == pytest.approx(sum(stored.values()) / len(stored))
    assert json.loads((tmp_path / "scores.json").read_text()) == scored


def test_export_of_an_unknown_run_suggests(monkeypatch, capsys, tmp_path):
    store = ResultsStore(tmp_path / "store")
    store.start_run("exp-1", "exp", {})
    store.finish_run("exp-1", "completed")
    monkeypatch.setattr(sys, "argv", ["xstilts", "export-submission", "exp-2", str(tmp_path / "out"), "--store", str(tmp_path / "store")])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2 and "did you mean 'exp-1'" in capsys.readouterr().err


def test_unlabelled_test_files_are_predicted_exported_and_never_scored(monkeypatch, capsys, tmp_path, tiny_model):
    """XTREME withholds test labels: XNLI test tsv without a label column is predicted on, its
    predictions are exported for the leaderboard, and no result row is stored for it."""
    languages = ("en", "de", "fr")
    fixture = write_fixture(tmp_path / "data", n_train=600, n_eval=40, languages=languages)
    withheld = {}
    for language in languages:
        path = fixture["xnli"] / f"test-{language}.tsv"
        lines = path.read_text().splitlines()
        withheld[language] = [line.rsplit("\t", 1)[1] for line in lines]
        path.write_text("".join(line.rsplit("\t", 1)[0] + "\n" for line in lines))
    store = tmp_path / "store"
    train = {"epochs": 3, "learning_rate": 2e-3, "batch_size": 32, "max_length": 64}
    config = {"name": "xnli-unlabelled", "model": str(tiny_model), "data": {"xnli": str(fixture["xnli"])},
              "target": {"task": "xnli", "train": train, "languages": list(languages), "eval_splits": ["dev", "test"]}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    cli(monkeypatch, capsys, "run", tmp_path / "exp.yaml", "--store", store)
    run = ResultsStore(store).runs()[0]["run"]
    rows = [row for row in ResultsStore(store).results(run) if row.phase == "target"]
    assert {(row.split, row.language) for row in rows} == {("dev", language) for language in languages}

    cli(monkeypatch, capsys, "export-submission", run, tmp_path / "submission", "--store", store)
    exported = {language: (tmp_path / "submission" / "xnli" / f"test-{language}.tsv").read_text().splitlines()
                for language in languages}
    labels = load_registry().get("xnli").labels
    assert all(len(exported[lang]) == 40 and set(exported[lang]) <= set(labels) for lang in languages)
    # The predictions are the model's: against the withheld gold, every language is above chance (1/3).
    accuracy = {lang: sum(p == g for p, g in zip(exported[lang], withheld[lang], strict=True)) / 40 for lang in languages}
    assert min(accuracy.values()) > 0.6, accuracy
