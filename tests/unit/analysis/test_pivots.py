"""Pivots of a hand-built study frame: the exact numbers of every table.

The frame: arms control / none (baseline) / nli, targets xnli and pawsx, seeds 0-2, languages
en (trained), de, fr. A run's score is arm base + seed offset + language offset + task offset:
none = 60 + 3*seed, nli = none + (seed + 1), control = 30; en +20, de 0, fr -4; pawsx -10.
So none's xnli zero-shot means are 58, 61, 64 (mean 61, sd 3) and nli's 59, 63, 67 (mean 63, sd 4).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from xstilts.analysis.pivots import (
    arm_target_table, benchmark_table, delta_matrix, example_comparison_table, language_means, language_table,
    selection_table,
)
from xstilts.analysis.statistics import paired_over_seeds
from xstilts.config.study import ReportConfig
from xstilts.errors import UserError
from xstilts.evaluation.records import records_path, write_records

REPORT = ReportConfig(arm_axis="arm", baseline="none", control="control", seed_axis="seed")
LANGUAGE_OFFSET = {"en": 20.0, "de": 0.0, "fr": -4.0}
TASK_OFFSET = {"xnli": 0.0, "pawsx": -10.0}


def score(arm: str, task: str, seed: int, language: str) -> float:
    base = {"control": 30.0, "none": 60.0 + 3 * seed, "nli": 60.0 + 3 * seed + seed + 1}[arm]
    return base + LANGUAGE_OFFSET[language] + TASK_OFFSET[task]


def rows_of(arm: str, task: str, seed: int, *, phase: str = "target", offset: float = 0.0, run_dir: str = "", extra: dict | None = None) -> list[dict]:
    run = f"{arm}-{task}-{seed}" + ("-" + "-".join(map(str, extra.values())) if extra else "")
    common = {
        "run": run, "study": "s", "node": run, "phase": phase, "task": task, "split": "test", "subset": "",
        "model": "m", "intermediate": "" if arm != "nli" else "mnli", "intermediate_languages": "", "seed": seed,
        "run_dir": run_dir or f"/nowhere/{run}", "axis:arm": arm, "axis:seed": str(seed), **(extra or {}),
    }
    return [
        {**common, "language": language, "metric": metric, "value": score(arm, task, seed, language) + offset}
        for language in LANGUAGE_OFFSET for metric in ("accuracy", "score")
    ]


def study_frame(extra_rows: list[dict] = ()) -> pd.DataFrame:
    rows = [row for arm in ("control", "none", "nli") for task in TASK_OFFSET for seed in range(3) for row in rows_of(arm, task, seed)]
    return pd.DataFrame([*rows, *extra_rows])


def test_arm_target_table_numbers():
    table = arm_target_table(study_frame(), REPORT)
    assert table.columns[:7] == ["target", "arm", "seeds", "zero-shot", "sd", "95% CI", "train language"]
    assert table.columns[7:] == [
        "Δ baseline", "Δ baseline 95% CI", "p (baseline)", "vs baseline",
        "Δ control", "Δ control 95% CI", "p (control)", "vs control",
    ]
    rows = {(row[0], row[1]): row for row in table.rows}
    assert [key for key in rows] == [(t, a) for t in ("pawsx", "xnli") for a in ("control", "none", "nli")]
    none, nli, control = rows[("xnli", "none")], rows[("xnli", "nli")], rows[("xnli", "control")]
    assert none[2:5] == [3, 61.0, 3.0] and none[6] == 83.0
    assert none[7:11] == [None, None, None, None]  # the baseline against itself
    # Differences 30, 33, 36 (mean 33, sd 3): paired t = 33 / (3 / sqrt 3) with 2 df, p = 1 - t / sqrt(t^2 + 2).
    t = 33 / (3 / 3 ** 0.5)
    assert none[11] == 33.0 and none[13:] == [f"{1 - t / (t * t + 2) ** 0.5:.3f}", "better"]
    assert nli[2:5] == [3, 63.0, 4.0] and nli[6] == 85.0
    assert nli[7] == 2.0 and nli[9:11] == ["0.074", "within noise"]  # differences 1, 2, 3: t = 2 sqrt 3, p = 0.074
    assert nli[11] == 35.0
    assert control[2:5] == [3, 28.0, 0.0] and control[5] == "[28.0, 28.0]"
    assert control[7] == -33.0 and control[11:] == [None, None, None, None]
    assert rows[("pawsx", "nli")][3] == 53.0
    expected = paired_over_seeds({0: 59.0, 1: 63.0, 2: 67.0}, {0: 58.0, 1: 61.0, 2: 64.0})
    assert nli[8] == f"[{expected.low:.1f}, {expected.high:.1f}]"


def test_no_reference_arms_no_delta_columns():
    table = arm_target_table(study_frame(), ReportConfig(arm_axis="arm"))
    assert table.columns == ["target", "arm", "seeds", "zero-shot", "sd", "95% CI", "train language"]
    assert any("no deltas" in note for note in table.notes)


def test_delta_matrix_for_the_heatmap():
    matrix = delta_matrix(study_frame(), REPORT)
    assert (matrix.reference, matrix.arms, matrix.targets) == ("none", ["control", "nli"], ["pawsx", "xnli"])
    assert np.array_equal(matrix.mean, [[-33.0, -33.0], [2.0, 2.0]])
    assert np.array_equal(matrix.seeds, [[3, 3], [3, 3]])
    assert matrix.verdict == [["worse"] * 2, ["within noise"] * 2]
    assert (matrix.low <= matrix.mean).all() and (matrix.mean <= matrix.high).all()
    versus_control = delta_matrix(study_frame(), REPORT, "control")
    assert versus_control.arms == ["none", "nli"] and np.array_equal(versus_control.mean, [[33.0, 33.0], [35.0, 35.0]])
    with pytest.raises(UserError, match="report.control"):
        delta_matrix(study_frame(), ReportConfig(baseline="none"), "control")


def test_language_table_with_groups():
    groups = {"de": {"family": "Germanic", "script": "Latin"}, "fr": {"family": "Romance", "script": "Latin"}, "en": {"family": "Germanic"}}
    table = language_table(study_frame(), REPORT, "xnli", groups=groups, group_by=["family", "script", "morphology"])
    assert table.columns == ["arm", "seeds", "en", "de", "fr", "zero-shot avg", "family: Germanic", "family: Romance", "script: Latin"]
    rows = {row[0]: row for row in table.rows}
    assert list(rows) == ["control", "none", "nli"]
    assert rows["none"] == ["none", 3, 83.0, 63.0, 59.0, 61.0, 63.0, 59.0, 61.0]
    assert rows["nli"] == ["nli", 3, 85.0, 65.0, 61.0, 63.0, 65.0, 61.0, 63.0]
    assert "No morphology for de, fr: left out of the morphology groups." in table.notes
    ungrouped = language_table(study_frame(), REPORT, "xnli", group_by=["family"])
    assert ungrouped.columns[-1] == "zero-shot avg" and any("No language groups" in note for note in ungrouped.notes)
    means = language_means(study_frame(), REPORT, "pawsx")
    assert means.loc["control"].tolist() == [40.0, 20.0, 16.0]


def test_benchmark_averages_with_the_scorers_rules():
    table = benchmark_table(study_frame(), REPORT, "xtreme")
    assert table.columns == ["arm", "pawsx", "xnli", "classification", "tagging", "qa", "retrieval", "all_task"]
    rows = {row[0]: row for row in table.rows}
    # none, xnli: per seed (80 + 60 + 56) / 3 + 3 * seed, over seeds 65 1/3 + 3; pawsx 10 less.
    assert rows["none"][1:4] == pytest.approx([58 + 1 / 3, 68 + 1 / 3, 63 + 1 / 3])
    assert rows["none"][4:] == [None, None, None, None]
    assert rows["control"][1:4] == pytest.approx([(40 + 20 + 16) / 3, (50 + 30 + 26) / 3, (76 / 3 + 106 / 3) / 2])
    assert "Group qa left out: no xquad, mlqa, tydiqa." in table.notes
    assert any(note.startswith("xnli: no results for ar, bg, el, es") for note in table.notes)
    assert benchmark_table(study_frame(), REPORT, "xtreme-r").columns == [
        "arm", "xnli", "classification", "tagging", "qa", "retrieval", "multi_choice", "all_task",
    ]
    synthetic = study_frame().assign(task="synth-topic")
    assert benchmark_table(synthetic, REPORT, "xtreme") is None
    with pytest.raises(UserError, match="unknown benchmark 'xtrem'"):
        benchmark_table(study_frame(), REPORT, "xtrem")


def test_model_selection_side_by_side():
    oracle = [row for seed in range(3) for row in rows_of("nli", "xnli", seed, phase="target-oracle", offset=5.0)]
    table = selection_table(study_frame(oracle), REPORT)
    assert table.columns == ["target", "arm", "seeds", "English dev (zero-shot proper)", "target-dev oracle"]
    rows = {(row[0], row[1]): row for row in table.rows}
    assert rows[("xnli", "nli")] == ["xnli", "nli", 3, 63.0, 68.0]
    assert rows[("xnli", "none")] == ["xnli", "none", 3, 61.0, None]
    assert "zero-shot proper" in table.notes[0]


def test_several_runs_per_seed_is_an_error():
    twice = rows_of("none", "xnli", 0, extra={"axis:size": "1000"})
    with pytest.raises(UserError, match="arm 'none', target 'xnli', seed '0' has several runs"):
        arm_target_table(study_frame(twice), REPORT)


def test_per_example_comparison_from_records(tmp_path):
    labels = ["entailment", "neutral"] * 20
    examples = [{"id": str(i), "text_a": "a", "text_b": "b", "label": label} for i, label in enumerate(labels)]
    half = [label if i % 2 else "contradiction" for i, label in enumerate(labels)]
    rows = []
    for arm, predictions in (("none", half), ("nli", labels)):
        run_dir = tmp_path / arm
        write_records(records_path(run_dir / "predictions", "xnli", "test", "de"), examples, predictions)
        rows += rows_of(arm, "xnli", 0, run_dir=str(run_dir))
    table = example_comparison_table(pd.DataFrame(rows), REPORT, n_resamples=500)
    assert table.columns == ["target", "arm", "language", "seed", "examples", "Δ", "95% CI", "p", "verdict"]
    assert len(table.rows) == 1
    assert table.rows[0][:6] == ["xnli", "nli", "de", "0", 40, 50.0]
    assert table.rows[0][7:] == [f"{2 / 501:.3f}", "better"]
    # fr has rows but no records files: one note counting the comparisons left out.
    assert any(note.startswith("Left out: 1 comparison (a seed and language)") and "fr.records.jsonl" in note for note in table.notes)
    tatoeba = [{**row, "task": "tatoeba"} for row in rows]
    assert example_comparison_table(pd.DataFrame(tatoeba), REPORT).notes[1] == (
        "Left out: tatoeba (retrieval tasks have no per-example records)."
    )
    with pytest.raises(UserError, match="report.baseline"):
        example_comparison_table(pd.DataFrame(rows), ReportConfig())
