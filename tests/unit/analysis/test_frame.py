"""load_frame from a real (temporary) store: columns, score rows, run attributes, which runs count."""

from __future__ import annotations

import pandas as pd
import pytest

from xstilts.analysis.frame import COLUMNS, load_frame, primary, trained_language, zero_shot
from xstilts.errors import UserError
from xstilts.evaluation.scorer import benchmark_averages, task_score
from xstilts.experiments.store import FAILED, ResultsStore
from xstilts.results import ResultRow

SPEC_DE = """tasks:
  - name: topic-de
    version: 1
    format: single_classification
    metric: accuracy
    labels: [a, b]
    languages: [de, en, fr]
    train_language: de
    local: {reader: xtreme_pair_tsv, path: "{split}-{language}.tsv"}
"""


def config(seed: int, tasks: list[str] | None = None, **more) -> dict:
    intermediate = {"tasks": tasks, **more} if tasks else None
    return {"name": "x", "model": "packaged:tiny", "seed": seed, "intermediate": intermediate, "target": {"task": "xquad"}}


def qa_rows(run: str, language: str, em: float, f1: float, split: str = "test") -> list[ResultRow]:
    return [ResultRow(run, "target", "xquad", language, split, "exact_match", em), ResultRow(run, "target", "xquad", language, split, "f1", f1)]


@pytest.fixture
def store(tmp_path) -> ResultsStore:
    store = ResultsStore(tmp_path / "home")
    store.start_run("r-nli", "s-nli", config(1, ["mnli", "squad"], train_languages={"squad": "de"}),
                    study="s", node="n-nli", axes={"arm": "nli", "seed": "1"})
    store.complete_run("r-nli", [
        *qa_rows("r-nli", "en", 70.0, 80.0), *qa_rows("r-nli", "de", 50.0, 60.0), *qa_rows("r-nli", "de", 20.0, 40.0, "test/hard"),
        ResultRow("r-nli", "intermediate", "mnli", "en", "dev", "accuracy", 81.0),
        ResultRow("r-nli", "intermediate", "squad", "de", "dev", "squad_em_f1", 66.0),
    ], [])
    store.start_run("r-none", "s-none", config(2), study="s", node="n-none", axes={"arm": "none", "seed": "2"})
    store.complete_run("r-none", qa_rows("r-none", "de", 40.0, 50.0), [])
    store.start_run("r-failed", "s-failed", config(3), study="s", node="n-failed", axes={"arm": "qa", "seed": "3"})
    store.finish_run("r-failed", FAILED, "boom")
    store.start_run("r-plain", "plain", config(4))
    store.complete_run("r-plain", qa_rows("r-plain", "de", 1.0, 3.0), [])
    return store


def test_frame_rows_scores_and_run_attributes(store):
    frame = load_frame(store, study="s")
    assert list(frame.columns) == [*COLUMNS, "axis:arm", "axis:seed"]
    assert set(frame["run"]) == {"r-nli", "r-none"}  # the failed run and the plain run are out
    scores = primary(frame).set_index(["run", "phase", "task", "language", "subset"])["value"]
    assert scores[("r-nli", "target", "xquad", "de", "")] == 55.0  # (EM + F1) / 2
    assert scores[("r-nli", "target", "xquad", "de", "hard")] == 30.0
    assert scores[("r-nli", "target", "xquad", "en", "")] == 75.0
    assert scores[("r-nli", "intermediate", "mnli", "en", "")] == 81.0
    assert scores[("r-nli", "intermediate", "squad", "de", "")] == 66.0  # a phase-2 row is its headline score
    assert scores[("r-none", "target", "xquad", "de", "")] == 45.0
    assert len(frame) == 2 * 3 + 3 + 2 * 2 + 3  # r-nli: 3 QA evaluations + 2 phase-2 rows, each with its score
    nli = frame[frame["run"] == "r-nli"].iloc[0]
    assert (nli["study"], nli["node"], nli["model"], nli["seed"]) == ("s", "n-nli", "packaged:tiny", 1)
    assert (nli["intermediate"], nli["intermediate_languages"]) == ("mnli+squad", "en+de")
    assert (nli["axis:arm"], nli["axis:seed"], nli["split"]) == ("nli", "1", "dev")
    assert nli["run_dir"] == str(store.runs_dir / "r-nli")
    none = frame[frame["run"] == "r-none"].iloc[0]
    assert (none["intermediate"], none["intermediate_languages"], none["seed"]) == ("", "", 2)
    hard = frame[frame["subset"] == "hard"]
    assert set(hard["split"]) == {"test"} and len(hard) == 3


def test_zero_shot_uses_each_rows_training_language(store):
    frame = primary(load_frame(store, study="s"))
    squad = frame[frame["task"] == "squad"]
    assert squad["train_language"].tolist() == ["de"]  # phase 2 trained squad on German
    assert zero_shot(squad).empty
    target = frame[(frame["phase"] == "target") & (frame["subset"] == "")]
    assert sorted(zero_shot(target)["language"]) == ["de", "de"]
    assert trained_language(target)["language"].tolist() == ["en"]


def test_training_language_comes_from_the_runs_task_specs(tmp_path):
    spec = tmp_path / "tasks.yaml"
    spec.write_text(SPEC_DE)
    store = ResultsStore(tmp_path / "home")
    store.start_run("r", "r", {"model": "m", "seed": 0, "task_specs": [str(spec)], "target": {"task": "topic-de"}})
    store.complete_run("r", [ResultRow("r", "target", "topic-de", lang, "test", "accuracy", 50.0) for lang in ("de", "en", "fr")], [])
    frame = primary(load_frame(store))
    assert sorted(zero_shot(frame)["language"]) == ["en", "fr"]
    assert "axis:arm" not in frame.columns and frame["study"].isna().all()


def test_hand_built_frame_without_training_language_uses_the_registry():
    frame = pd.DataFrame({"task": ["xnli", "xnli", "pawsx"], "language": ["en", "de", "fr"], "metric": ["score"] * 3})
    assert zero_shot(frame)["language"].tolist() == ["de", "fr"]


def test_rerun_node_keeps_its_latest_run(store):
    store.start_run("r-none-2", "s-none", config(2), study="s", node="n-none", axes={"arm": "none", "seed": "2"})
    store.complete_run("r-none-2", qa_rows("r-none-2", "de", 60.0, 70.0), [])
    frame = load_frame(store, study="s")
    assert set(frame["run"]) == {"r-nli", "r-none-2"}


def test_runs_filter_and_unknown_run(store):
    frame = load_frame(store, runs=["r-plain", "r-none"])
    assert set(frame["run"]) == {"r-plain", "r-none"}
    assert frame[frame["run"] == "r-plain"]["axis:arm"].isna().all()
    with pytest.raises(UserError, match="no run 'r-non'.*r-none"):
        load_frame(store, runs=["r-non"])
    empty = load_frame(store, runs=["r-failed"])  # a failed run has no rows, and no axes come with it
    assert empty.empty and list(empty.columns) == COLUMNS


def test_scorer_rules_are_public():
    assert task_score({"exact_match": 60.0, "f1": 70.0}) == 65.0
    assert task_score({"f1": 70.0, "precision": 1.0, "recall": 2.0}) == 70.0
    assert task_score({"accuracy": 40.0, "perplexity": 3.0}) == 40.0
    assert task_score({"map@20": 12.5}) == 12.5
    with pytest.raises(ValueError):
        task_score({"failure_rate": 3.0})
    assert benchmark_averages({"pawsx": 80.0, "xnli": 70.0, "udpos": 10.0}, "xtreme") == {"classification": 75.0}
    # XTREME-R lists xcopa twice: classification (xnli, xcopa) and multi_choice (xcopa).
    assert benchmark_averages({"xnli": 70.0, "xcopa": 60.0}, "xtreme-r") == {"classification": 65.0, "multi_choice": 60.0}
