"""Leaderboard-folder scorer: official output structure on small hand-made folders."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from xstilts.errors import UserError
from xstilts.evaluation.scorer import BENCHMARK_GROUPS, file_extension, score_predictions
from xstilts.tasks.registry import TaskRegistry, load_registry


def _registry(benchmark: str, languages: dict[str, list[str]]) -> TaskRegistry:
    """The built-in specs of some tasks, with the benchmark cut down to a few languages."""
    full = load_registry()
    return TaskRegistry(
        full.get(name).model_copy(update={"benchmarks": {benchmark: langs}})
        for name, langs in languages.items()
    )


def _write(root: Path, files: dict[str, str | dict]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return root


def _squad(questions: dict[str, list[str]]) -> dict:
    qas = [{"id": qid, "question": "?", "answers": [{"text": t, "answer_start": 0} for t in texts]}
           for qid, texts in questions.items()]
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]}


XNLI_UDPOS_XQUAD = {
    "pred/xnli/test-de.tsv": "entailment\nneutral\ncontradiction\nneutral\n",
    "gold/xnli/test-de.tsv": "entailment\nneutral\nneutral\nneutral\n",
    "pred/xnli/test-en.tsv": "neutral\nentailment\n",
    "gold/xnli/test-en.tsv": "neutral\nentailment\n",
    # Chunks DET, NOUN | VERB against DET, NOUN | NOUN: 2 of 3 right on both sides.
    "pred/udpos/test-de.tsv": "DET\nNOUN\n\nNOUN\n",
    "gold/udpos/test-de.tsv": "DET\nNOUN\n\nVERB\n",
    "pred/udpos/test-en.tsv": "DET\nNOUN\n",
    "gold/udpos/test-en.tsv": "The\tDET\ndog\tNOUN\n",
    # q2: "jahr 1990" against "im jahr 1990" gives F1 0.8, the better of its two answers.
    "pred/xquad/test-de.json": {"q1": "Berlin", "q2": "Jahr 1990"},
    "gold/xquad/test-de.json": _squad({"q1": ["Berlin"], "q2": ["1990", "im Jahr 1990"]}),
    "pred/xquad/test-en.json": {"q3": "cat"},
    "gold/xquad/test-en.json": _squad({"q3": ["the cat"]}),
}


def test_structure_and_values_for_three_tasks(tmp_path):
    _write(tmp_path, XNLI_UDPOS_XQUAD)
    registry = _registry("xtreme", {name: ["de", "en"] for name in ("xnli", "udpos", "xquad")})
    scores = score_predictions(tmp_path / "pred", tmp_path / "gold", "xtreme", registry=registry)

    assert scores == {
        # Every task of this cut-down registry is present, so the overall score appears.
        "all_task": pytest.approx((87.5 + 250 / 3 + 85.0) / 3),
        "xnli": {"accuracy": {"de": 75.0, "en": 100.0}, "avg_accuracy": 87.5, "avg_metric": 87.5},
        "udpos": {
            "f1": {"de": pytest.approx(200 / 3), "en": 100.0},
            "precision": {"de": pytest.approx(200 / 3), "en": 100.0},
            "recall": {"de": pytest.approx(200 / 3), "en": 100.0},
            "avg_f1": pytest.approx(250 / 3),
            "avg_precision": pytest.approx(250 / 3),
            "avg_recall": pytest.approx(250 / 3),
            "avg_metric": pytest.approx(250 / 3),
        },
        "xquad": {
            "exact_match": {"de": 50.0, "en": 100.0},
            "f1": {"de": pytest.approx(90.0), "en": 100.0},
            "avg_exact_match": 75.0,
            "avg_f1": pytest.approx(95.0),
            "avg_metric": pytest.approx(85.0),
        },
    }
    # Key order follows the official scorer: per-language maps, then the averages.
    assert list(scores["udpos"]) == ["f1", "precision", "recall", "avg_f1", "avg_precision",
                                     "avg_recall", "avg_metric"]
    assert list(scores["xnli"]["accuracy"]) == ["de", "en"]
    json.dumps(scores)


def _one_language_files(root: Path) -> None:
    _write(root, {
        "pred/pawsx/test-de.tsv": "1\n0\n", "gold/pawsx/test-de.tsv": "1\n1\n",
        "pred/xnli/test-de.tsv": "neutral\n", "gold/xnli/test-de.tsv": "neutral\n",
        "pred/udpos/test-de.tsv": "NOUN\n", "gold/udpos/test-de.tsv": "NOUN\n",
        "pred/panx/test-de.tsv": "B-PER\nO\n", "gold/panx/test-de.tsv": "B-PER\nO\n",
        "pred/xquad/test-de.json": {"q": "Berlin"}, "gold/xquad/test-de.json": _squad({"q": ["Berlin"]}),
        "pred/mlqa/test-de.json": {"q": "Berlin"}, "gold/mlqa/test-de.json": _squad({"q": ["Berlin"]}),
        "pred/tydiqa/test-en.json": {"q": "Paris"}, "gold/tydiqa/test-en.json": _squad({"q": ["Paris"]}),
        "pred/bucc2018/test-de.tsv": "de-1\ten-1\n", "gold/bucc2018/test-de.tsv": "de-1\ten-1\nde-2\ten-2\n",
        "pred/tatoeba/test-de.tsv": "0\n5\n", "gold/tatoeba/test-de.tsv": "0\n1\n",
        "pred/xcopa/test-et.jsonl": '{"idx": 0, "label": 1}\n{"idx": 1, "label": 0}\n',
        "gold/xcopa/test-et.jsonl": '{"idx": 0, "label": 1}\n{"idx": 1, "label": 1}\n',
        "pred/mewslix/test-de.json": {"m1": ["Q9", "Q1"]},
        "gold/mewslix/test-de.json": {"m1": ["Q1"], "m2": ["Q2"]},
        "pred/lareqa/test-de.json": {"q1": ["c1", "c3", "c2"]},
        "gold/lareqa/test-de.json": {"q1": ["c1", "c2"]},
    })


XTREME_ONE = {"pawsx": ["de"], "xnli": ["de"], "udpos": ["de"], "panx": ["de"], "xquad": ["de"],
              "mlqa": ["de"], "tydiqa": ["en"], "bucc2018": ["de"], "tatoeba": ["de"]}


def test_xtreme_groups_and_all_task(tmp_path):
    _one_language_files(tmp_path)
    registry = _registry("xtreme", XTREME_ONE)
    scores = score_predictions(tmp_path / "pred", tmp_path / "gold", "xtreme", registry=registry)

    assert scores["bucc2018"]["f1"] == {"de": pytest.approx(200 / 3)}
    assert scores["bucc2018"]["precision"] == {"de": 100.0}
    assert scores["tatoeba"]["avg_metric"] == 50.0
    assert scores["classification"] == 75.0  # pawsx 50, xnli 100
    assert scores["tagging"] == 100.0
    assert scores["qa"] == 100.0
    assert scores["retrieval"] == pytest.approx((200 / 3 + 50) / 2)
    assert scores["all_task"] == pytest.approx((50 + 100 * 6 + 200 / 3 + 50) / 9)
    assert list(scores)[:5] == ["all_task", "classification", "tagging", "qa", "retrieval"]


def test_group_needs_all_its_tasks_and_all_task_needs_every_task(tmp_path):
    _one_language_files(tmp_path)
    for task in ("pawsx", "tatoeba"):
        for side in ("pred", "gold"):
            for path in (tmp_path / side / task).iterdir():
                path.unlink()
            (tmp_path / side / task).rmdir()
    scores = score_predictions(tmp_path / "pred", tmp_path / "gold", "xtreme",
                               registry=_registry("xtreme", XTREME_ONE))
    assert {"tagging", "qa"} <= set(scores)
    assert not {"all_task", "classification", "retrieval", "pawsx", "tatoeba"} & set(scores)


def test_xtreme_r_tasks_extensions_and_groups(tmp_path):
    _one_language_files(tmp_path)
    languages = {"xnli": ["de"], "panx": ["de"], "udpos": ["de"], "tatoeba": ["de"], "xcopa": ["et"],
                 "lareqa": ["de"], "mewslix": ["de"], "xquad": ["de"], "mlqa": ["de"], "tydiqa": ["en"]}
    scores = score_predictions(tmp_path / "pred", tmp_path / "gold", "xtreme-r",
                               registry=_registry("xtreme-r", languages))

    assert "pawsx" not in scores and "bucc2018" not in scores
    assert scores["xcopa"] == {"accuracy": {"et": 50.0}, "avg_accuracy": 50.0, "avg_metric": 50.0}
    # Mewsli-X: Q1 at rank 2, m2 unpredicted -> (1/2 + 0) / 2.
    assert scores["mewslix"] == {"map@20": {"de": 25.0}, "avg_map@20": 25.0, "avg_metric": 25.0}
    assert scores["lareqa"]["avg_metric"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert scores["classification"] == 75.0  # xnli 100, xcopa 50
    assert scores["multi_choice"] == 50.0
    assert scores["retrieval"] == pytest.approx((50 + 25) / 2)  # tatoeba, mewslix; lareqa in no group
    expected_all = (100 + 100 + 100 + 50 + 50 + 100 * (1 + 2 / 3) / 2 + 25 + 100 + 100 + 100) / 10
    assert scores["all_task"] == pytest.approx(expected_all)


def test_extensions_follow_the_official_layout():
    registry = load_registry()
    extensions = {name: file_extension(registry.get(name)) for name in
                  ("xnli", "udpos", "xquad", "mlqa", "tydiqa", "bucc2018", "tatoeba", "xcopa", "mewslix", "lareqa")}
    assert extensions == {"xnli": "tsv", "udpos": "tsv", "xquad": "json", "mlqa": "json", "tydiqa": "json",
                          "bucc2018": "tsv", "tatoeba": "tsv", "xcopa": "jsonl", "mewslix": "json",
                          "lareqa": "json"}


@pytest.mark.parametrize("benchmark", sorted(BENCHMARK_GROUPS))
def test_every_group_task_is_registered_for_its_benchmark(benchmark):
    registry = load_registry()
    for tasks in BENCHMARK_GROUPS[benchmark].values():
        for task in tasks:
            assert registry.get(task).languages_for(benchmark), (benchmark, task)


def test_missing_language_file_is_named(tmp_path):
    _write(tmp_path, {"pred/xnli/test-de.tsv": "neutral\n", "gold/xnli/test-de.tsv": "neutral\n"})
    # The real registry asks for all 15 XNLI languages; ar comes first.
    with pytest.raises(UserError, match=r"xnli/test-ar\.tsv: file not found"):
        score_predictions(tmp_path / "pred", tmp_path / "gold", "xtreme")


@pytest.mark.parametrize(
    ("task", "gold", "message"),
    [
        ("xnli", "_\n_\n", "placeholder '_'"),
        ("panx", "O\nO\n\nO\n", "placeholder 'O'"),
        ("xnli", "entailment\nneutrall\n", r"'neutrall' \(item 2\).*did you mean 'neutral'"),
        ("udpos", "Berlin\nist\n", "gold label 'Berlin'"),
    ],
)
def test_unlabelled_or_wrong_gold_is_rejected(tmp_path, task, gold, message):
    prediction = "O\nO\n\nO\n" if task == "panx" else "neutral\nneutral\n"
    _write(tmp_path, {f"pred/{task}/test-de.tsv": prediction, f"gold/{task}/test-de.tsv": gold})
    with pytest.raises(UserError, match=rf"gold/{task}/test-de\.tsv: .*{message}"):
        score_predictions(tmp_path / "pred", tmp_path / "gold", "xtreme",
                          registry=_registry("xtreme", {task: ["de"]}))


def test_qa_gold_with_answers_removed_is_rejected(tmp_path):
    # XTREME's preprocessing replaces test answers by {"text": "", "answer_start": 0}.
    _write(tmp_path, {"pred/xquad/test-de.json": {"q": "x"}, "gold/xquad/test-de.json": _squad({"q": [""]})})
    with pytest.raises(UserError, match="unlabelled"):
        score_predictions(tmp_path / "pred", tmp_path / "gold", "xtreme",
                          registry=_registry("xtreme", {"xquad": ["de"]}))


@pytest.mark.parametrize(
    ("prediction", "message"),
    [("DET\nNOUN\n\nVERB\n\nNOUN\n", "3 examples, but"), ("DET\n\nVERB\n", "sentence 1 has 1 labels, but 2")],
)
def test_tagging_shape_mismatch_is_named(tmp_path, prediction, message):
    _write(tmp_path, {"pred/udpos/test-de.tsv": prediction, "gold/udpos/test-de.tsv": "DET\nNOUN\n\nVERB\n"})
    with pytest.raises(UserError, match=rf"pred/udpos/test-de\.tsv: {message}"):
        score_predictions(tmp_path / "pred", tmp_path / "gold", "xtreme",
                          registry=_registry("xtreme", {"udpos": ["de"]}))


def test_token_accuracy_task_is_scored_per_token(tmp_path):
    """A benchmark tagging task whose tags are not chunks (FEATS strings) gets token accuracy."""
    feats = load_registry().get("ud-feats").model_copy(
        update={"labels": ["_", "Number=Sing", "Number=Plur"], "labels_file": None, "benchmarks": {"xtreme": ["en"]}}
    )
    _write(tmp_path, {"pred/ud-feats/test-en.tsv": "Number=Sing\n_\n\nNumber=Plur\n_\n",
                      "gold/ud-feats/test-en.tsv": "Number=Plur\n_\n\nNumber=Plur\n_\n"})
    scores = score_predictions(tmp_path / "pred", tmp_path / "gold", "xtreme", registry=TaskRegistry([feats]))
    assert scores["ud-feats"] == {"accuracy": {"en": 75.0}, "avg_accuracy": 75.0, "avg_metric": 75.0}


def test_bucc_malformed_line_is_named(tmp_path):
    _write(tmp_path, {"pred/bucc2018/test-de.tsv": "de-1 en-1\n", "gold/bucc2018/test-de.tsv": "de-1\ten-1\n"})
    with pytest.raises(UserError, match=r"pred/bucc2018/test-de\.tsv:1: expected"):
        score_predictions(tmp_path / "pred", tmp_path / "gold", "xtreme",
                          registry=_registry("xtreme", {"bucc2018": ["de"]}))


def test_unknown_benchmark_suggests(tmp_path):
    with pytest.raises(UserError, match="did you mean 'xtreme-r'"):
        score_predictions(tmp_path, tmp_path, "xtreme_r")


def test_no_common_task_folder(tmp_path):
    _write(tmp_path, {"pred/xnli/test-de.tsv": "neutral\n", "gold/pawsx/test-de.tsv": "1\n"})
    with pytest.raises(UserError, match="no task folder of xtreme"):
        score_predictions(tmp_path / "pred", tmp_path / "gold", "xtreme")


def test_misnamed_task_folder_is_reported(tmp_path, caplog):
    _write(tmp_path, {
        "pred/xnl/test-de.tsv": "neutral\n",
        "pred/xnli/test-de.tsv": "neutral\n", "gold/xnli/test-de.tsv": "neutral\n",
    })
    with caplog.at_level(logging.WARNING):
        scores = score_predictions(tmp_path / "pred", tmp_path / "gold", "xtreme",
                                   registry=_registry("xtreme", {"xnli": ["de"]}))
    assert scores["xnli"]["avg_metric"] == 100.0
    assert "did you mean 'xnli'" in caplog.text
