"""The mini forms of research questions (c) and (d), end to end: `xstilts study run` on a shrunken
copy of the shipped study (a small miniature, two seeds, fewer arms), then `xstilts report`; every
arm x target cell of the report's main table must equal the mean over seeds of each run's
zero-shot mean, computed here straight from the store's rows."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from statistics import fmean

import pytest
import yaml

from clitools import run as xstilts
from xstilts.experiments.store import COMPLETED, ResultsStore

pytestmark = pytest.mark.slow

STUDIES = Path(__file__).resolve().parents[2] / "configs" / "studies"
# A miniature small enough for seconds per node: the same generator, tiny splits and a short MLM
# pretraining (the numbers are not the study's, the arithmetic of the report is what is tested).
SMALL_QUICKSTART = {
    "sizes": {
        "mlm": {"sentences": 1500},
        **{task: {"train": 160, "dev": 40, "test": 40} for task in ("topic", "nli", "paraphrase", "pos", "ner", "copa", "morph")},
        "qa": {"train": 20, "dev": 8, "test": 8},
        "parallel": {"test": 40},
    },
    "model": {"vocab_size": 700},
    "pretrain": {"steps": 60, "batch_size": 32},
}
SEEDS = [0, 1]


def shrunken_study(folder: Path, name: str, arms: list[str] | None = None, targets: list[str] | None = None) -> Path:
    """The shipped study `name` with the small miniature, two seeds and (optionally) fewer arms
    and targets; everything else (base, training settings, report section) as shipped."""
    document = yaml.safe_load((STUDIES / f"{name}.yaml").read_text(encoding="utf-8"))
    document["quickstart"] = SMALL_QUICKSTART
    axes = document["axes"]
    axes["seed"]["values"] = SEEDS
    if arms is not None:
        axes["arm"]["values"] = {arm: axes["arm"]["values"][arm] for arm in arms}
    if targets is not None:
        axes["target"]["values"] = targets
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def task_score(metrics: dict[str, float]) -> float:
    """The official per-task score: QA (EM + F1) / 2, else F1 (tagging), else accuracy."""
    if "exact_match" in metrics:
        return (metrics["exact_match"] + metrics["f1"]) / 2
    return metrics["f1"] if "f1" in metrics else metrics["accuracy"]


def store_cells(store: ResultsStore, study: str, phase: str = "target") -> dict[tuple[str, str], float]:
    """(arm, target) -> mean over seeds of each run's mean test score over the languages but
    English, from the stored rows of the study's completed target runs."""
    per_run: dict[tuple[str, str, str], float] = {}
    for entry in store.runs(study=study):
        metrics: dict[str, dict[str, float]] = defaultdict(dict)
        for row in store.results(entry["run"]):
            if row.phase == phase and row.split == "test" and row.language != "en":  # not "test/<subset>"
                metrics[(row.task, row.language)][row.metric] = row.value
        if not metrics:
            continue  # the prepare and phase-2 runs
        assert entry["status"] == COMPLETED, entry
        [target] = {task for task, _ in metrics}
        key = (entry["axes"]["arm"], target, entry["axes"]["seed"])
        assert key not in per_run, f"two runs for {key}"
        per_run[key] = fmean(task_score(values) for values in metrics.values())
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (arm, target, _), value in per_run.items():
        cells[(arm, target)].append(value)
    assert all(len(values) == len(SEEDS) for values in cells.values()), cells
    return {cell: fmean(values) for cell, values in cells.items()}


def report_cells(report: dict) -> dict[tuple[str, str], float]:
    """(arm, target) -> the zero-shot cell of the report's main table (arms x targets, test)."""
    tables = [table for section in report["sections"] for table in section["tables"]]
    [main_table] = [table for table in tables if table["name"] == "arms-target-test"]
    column = {name: index for index, name in enumerate(main_table["columns"])}
    return {(row[column["arm"]], row[column["target"]]): row[column["zero-shot"]] for row in main_table["rows"]}


def run_and_report(monkeypatch, capsys, tmp_path: Path, study: Path, store: Path) -> tuple[dict, dict]:
    """Run the study and its report; return report.json and the store's (arm, target) cells."""
    code, _, err = xstilts(monkeypatch, capsys, "study", "run", study, "--store", store)
    assert code == 0, err
    out = tmp_path / f"report-{study.stem}"
    code, _, err = xstilts(monkeypatch, capsys, "report", study, "-o", out, "--store", store)
    assert code == 0, err
    assert {"index.html", "report.md", "report.tex", "report.json"} <= {path.name for path in out.iterdir()}
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    name = yaml.safe_load(study.read_text(encoding="utf-8"))["name"]
    return report, store_cells(ResultsStore(store), name)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """One store for both studies: the second finds the miniature prepared (content-keyed)."""
    return tmp_path_factory.mktemp("rq-mini") / "store"


def test_mini_morphology_study_report_equals_the_store(monkeypatch, capsys, tmp_path, store):
    study = shrunken_study(tmp_path, "rq-c-morphology-mini")
    report, stored = run_and_report(monkeypatch, capsys, tmp_path, study, store)
    reported = report_cells(report)
    expected = {(arm, target) for arm in ("control", "none", "morph") for target in ("synth-pos", "synth-ner")}
    assert set(stored) == expected
    assert set(reported) == expected
    assert len({round(value, 6) for value in stored.values()}) == len(expected)  # the cells tell the arms apart
    for cell, value in stored.items():
        assert reported[cell] == pytest.approx(value, abs=1e-9), cell
    # The shipped study asks for model selection: the three choices side by side, from the store.
    tables = [table for section in report["sections"] for table in section["tables"]]
    [selection] = [table for table in tables if table["name"] == "selection-test"]
    column = {name: index for index, name in enumerate(selection["columns"])}
    averaged = store_cells(ResultsStore(store), "rq-c-morphology-mini", phase="target-average")
    oracle = store_cells(ResultsStore(store), "rq-c-morphology-mini", phase="target-oracle")
    assert len(selection["rows"]) == len(expected)
    for row in selection["rows"]:
        cell = (row[column["arm"]], row[column["target"]])
        assert row[column["English dev (zero-shot proper)"]] == pytest.approx(stored[cell], abs=1e-9)
        assert row[column["checkpoint average"]] == pytest.approx(averaged[cell], abs=1e-9)
        assert row[column["target-dev oracle"]] == pytest.approx(oracle[cell], abs=1e-9)


def test_mini_mixtures_study_report_equals_the_store(monkeypatch, capsys, tmp_path, store):
    arms = ["control", "none", "nli", "copa", "nli+copa"]
    # synth-paws also stores its adversarial subset (split test/adversarial), which the table leaves out.
    study = shrunken_study(tmp_path, "rq-d-mixtures-mini", arms=arms, targets=["synth-pos", "synth-paws"])
    report, stored = run_and_report(monkeypatch, capsys, tmp_path, study, store)
    reported = report_cells(report)
    assert set(stored) == set(reported) == {(arm, target) for arm in arms for target in ("synth-pos", "synth-paws")}
    assert len({round(value, 6) for value in stored.values()}) > len(arms)  # the cells tell the arms apart
    for cell, value in stored.items():
        assert reported[cell] == pytest.approx(value, abs=1e-9), cell
