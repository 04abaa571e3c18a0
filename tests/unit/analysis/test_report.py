"""`xstilts report` on a store written by hand: the report's numbers are the store's numbers,
computed the way the notes say, and every output file is there."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from clitools import run
from xstilts.evaluation.records import records_path, write_records
from xstilts.experiments.store import ResultsStore
from xstilts.results import ResultRow

LANGUAGES = ("en", "de", "fr")
N = 40  # examples per language


def accuracy_for(arm: str, seed: int, language: str) -> int:
    """Correct examples out of N: mnli beats none by 4 examples (10 points) in every language and seed."""
    base = {"en": 30, "de": 24, "fr": 20}[language] + seed
    return base + (4 if arm == "mnli" else 0)


def write_run(store: ResultsStore, arm: str, seed: int) -> None:
    run = f"r-{arm}-{seed}"
    config = {"name": run, "model": "packaged:tiny", "seed": seed, "target": {"task": "xnli"},
              "intermediate": {"tasks": ["mnli"]} if arm == "mnli" else None}
    store.start_run(run, run, config)
    rows = []
    for language in LANGUAGES:
        correct = accuracy_for(arm, seed, language)
        examples = [{"text_a": f"p{i}", "text_b": f"h{i}", "label": "entailment"} for i in range(N)]
        predictions = ["entailment"] * correct + ["neutral"] * (N - correct)
        write_records(records_path(store.runs_dir / run / "predictions", "xnli", "test", language), examples, predictions)
        rows.append(ResultRow(run, "target", "xnli", language, "test", "accuracy", 100.0 * correct / N))
        # checkpoint averaging (target.selection.average_last): one example better everywhere
        rows.append(ResultRow(run, "target-average", "xnli", language, "test", "accuracy", 100.0 * (correct + 1) / N))
    store.complete_run(run, rows, [])


@pytest.fixture
def store(tmp_path) -> ResultsStore:
    store = ResultsStore(tmp_path / "store")
    for seed in (0, 1, 2, 3, 4):
        for arm in ("none", "mnli"):
            write_run(store, arm, seed)
    return store


def table(report: dict, name_prefix: str) -> dict:
    tables = [t for section in report["sections"] for t in section["tables"] if t["name"].startswith(name_prefix)]
    assert len(tables) == 1, [t["name"] for s in report["sections"] for t in s["tables"]]
    return tables[0]


def test_a_store_report_has_the_stores_numbers(store, tmp_path, monkeypatch, capsys):
    out = tmp_path / "report"
    assert run(monkeypatch, capsys, "report", store.home, "-o", out)[0] == 0
    assert {p.name for p in out.iterdir()} >= {"index.html", "report.md", "report.tex", "report.json", "figures"}
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))

    arms = table(report, "arms-target")
    column = {name: i for i, name in enumerate(arms["columns"])}
    by_arm = {row[column["arm"]]: row for row in arms["rows"]}
    for arm in ("none", "mnli"):
        # zero-shot = mean over de and fr, then over the 5 seeds
        expected = sum(100.0 * (accuracy_for(arm, s, "de") + accuracy_for(arm, s, "fr")) / (2 * N) for s in range(5)) / 5
        assert by_arm[arm][column["zero-shot"]] == pytest.approx(expected)
        assert by_arm[arm][column["seeds"]] == 5
    mnli = by_arm["mnli"]
    assert mnli[column["Δ baseline"]] == pytest.approx(10.0)
    assert mnli[column["vs baseline"]] == "better"  # +10 in every seed: no noise at all
    assert by_arm["none"][column["Δ baseline"]] is None

    examples = table(report, "examples")
    column = {name: i for i, name in enumerate(examples["columns"])}
    assert {(row[column["language"]], row[column["seed"]]) for row in examples["rows"]} == {
        (language, seed) for language in ("de", "fr") for seed in range(5)}
    assert all(row[column["examples"]] == N and row[column["Δ"]] == pytest.approx(10.0) for row in examples["rows"])

    languages = table(report, "languages-xnli")
    column = {name: i for i, name in enumerate(languages["columns"])}
    none = next(row for row in languages["rows"] if row[column["arm"]] == "none")
    assert none[column["de"]] == pytest.approx(sum(100.0 * (24 + s) / N for s in range(5)) / 5)

    selection = table(report, "selection")
    column = {name: i for i, name in enumerate(selection["columns"])}
    row = next(row for row in selection["rows"] if row[column["arm"]] == "none")
    english_dev = sum(100.0 * (accuracy_for("none", s, "de") + accuracy_for("none", s, "fr")) / (2 * N) for s in range(5)) / 5
    assert row[column["English dev (zero-shot proper)"]] == pytest.approx(english_dev)
    assert row[column["checkpoint average"]] == pytest.approx(english_dev + 100.0 / N)

    html = (out / "index.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == len(list((out / "figures").iterdir())) >= 2


def test_an_empty_store_is_one_clear_error(tmp_path, monkeypatch, capsys):
    ResultsStore(tmp_path / "empty").runs()
    code, _, err = run(monkeypatch, capsys, "report", tmp_path / "empty", "-o", tmp_path / "out")
    assert code == 2 and "no completed runs to report on" in err
    assert not (tmp_path / "out").exists()


def test_published_numbers_stand_beside_the_baseline_and_the_best_arm(store, tmp_path):
    from xstilts.analysis.report import build_report, store_frame
    from xstilts.config.study import ReportConfig

    config = ReportConfig(arm_axis="arm", baseline="none", reference="xstilts")
    report = build_report(store_frame(store), config, title="t", figures_dir=tmp_path, meta={})
    [section] = [s for s in report.sections if s.title == "Published reference numbers"]
    [reference] = section.tables
    column = {name: i for i, name in enumerate(reference.columns)}
    rows = {(row[column["arm"]], row[column["task"]]): row for row in reference.rows}
    for arm, published in (("none", 79.2), ("best arm", 80.4)):  # XLM-R Large / X-STILTs XNLI test accuracy
        scored = "mnli" if arm == "best arm" else "none"
        ours = sum(100.0 * sum(accuracy_for(scored, s, lang) for lang in LANGUAGES) / (3 * N) for s in range(5)) / 5
        row = rows[(arm, "xnli")]
        assert (row[column["ours"]], row[column["published"]]) == (pytest.approx(ours), published)
        assert row[column["ours - published"]] == pytest.approx(ours - published)
    assert rows[("none", "panx")][column["ours"]] is None  # a task we did not run stays blank


def test_a_further_axis_gets_its_own_sections(store, tmp_path):
    """Two start models x the arms: each model's arms are compared among themselves, never averaged over models."""
    from xstilts.analysis.report import axis_slices, build_report, store_frame
    from xstilts.config.study import ReportConfig

    one = store_frame(store)
    other = one.assign(run=one["run"] + "-b", value=one["value"] - 5.0)
    frame = pd.concat([one.assign(**{"axis:model": "a"}), other.assign(**{"axis:model": "b"})], ignore_index=True)
    config = ReportConfig(arm_axis="arm", baseline="none")
    assert [label for label, _ in axis_slices(frame, config)] == [" (model=a)", " (model=b)"]
    assert [label for label, _ in axis_slices(one, config)] == [""]
    report = build_report(frame, config, title="t", figures_dir=tmp_path, meta={})
    overviews = {s.title: s.tables[0] for s in report.sections if s.title.startswith("Arms x targets")}
    assert set(overviews) == {"Arms x targets (model=a)", "Arms x targets (model=b)"}
    column = overviews["Arms x targets (model=a)"].columns.index("zero-shot")
    [a_none] = [row for row in overviews["Arms x targets (model=a)"].rows if row[1] == "none"]
    [b_none] = [row for row in overviews["Arms x targets (model=b)"].rows if row[1] == "none"]
    assert a_none[column] - b_none[column] == pytest.approx(5.0)

    # A run outside the grid (a shared phase-2 run has no label on the axis) joins every slice
    # and never makes a section of its own.
    phase2 = one.head(3).assign(run="phase2-shared", phase="intermediate", **{"axis:model": None})
    slices = axis_slices(pd.concat([frame, phase2], ignore_index=True), config)
    assert [label for label, _ in slices] == [" (model=a)", " (model=b)"]
    assert all("phase2-shared" in set(part["run"]) for _, part in slices)


def test_runs_of_an_earlier_version_of_a_study_are_left_out():
    """After a study file changes, its older runs stay in the store under the study's name; the
    report reads only the runs of the nodes the file defines now."""
    from types import SimpleNamespace

    from xstilts.analysis.report import current_nodes

    frame = pd.DataFrame({"run": ["old-1", "old-1", "new-1", "new-2", "p2"], "node": ["run-a", "run-a", "run-b", "run-c", "phase2-x"]})
    study = SimpleNamespace(nodes={"run-b": None, "run-c": None, "phase2-x": None})
    kept, older = current_nodes(frame, study)
    assert (kept["run"].tolist(), older) == (["new-1", "new-2", "p2"], 1)


def test_rows_that_are_not_zero_shot_are_flagged_in_every_table(tmp_path):
    """An arm whose intermediate task trained on German is not zero-shot on German: its rows carry
    the flag in the arms x targets table and in the per-language table, with the legend."""
    from xstilts.analysis.report import build_report, store_frame
    from xstilts.config.study import ReportConfig

    store = ResultsStore(tmp_path / "store")
    for seed in (0, 1):
        for arm in ("none", "mnli"):
            write_run(store, arm, seed)
    frame = store_frame(store)
    frame.loc[frame["run"].str.startswith("r-mnli"), "intermediate_languages"] = "de"
    report = build_report(frame, ReportConfig(arm_axis="arm", baseline="none"), title="t", figures_dir=tmp_path, meta={})
    tables = {t.name: t for s in report.sections for t in s.tables}
    for name, arm_position in (("arms-target-test", 1), ("languages-xnli-target-test", 0)):
        table = tables[name]
        flagged = {table.rows[i][arm_position] for i in table.flags}
        assert flagged == {"mnli"}, name
        assert any(note.startswith("intermediate-language") for note in table.notes), table.notes
