from __future__ import annotations

import pandas as pd
import pytest

from xstilts.analysis.mixtures import (
    arm_scores,
    complementarity_table,
    pairwise_gain_matrix,
    pairwise_gain_tables,
    task_set,
)

MEMBERS = {
    "none": "",
    "mnli": "mnli",
    "squad": "squad",
    "hella": "hellaswag",
    "ms": "mnli+squad",
    "mh": ["mnli", "hellaswag"],
    "msh": "squad+mnli+hellaswag",
    "qm": "qqp+mnli",
}
SCORES = {
    ("none", "xnli"): 70.0, ("mnli", "xnli"): 74.0, ("squad", "xnli"): 71.0, ("hella", "xnli"): 72.0,
    ("ms", "xnli"): 75.0, ("mh", "xnli"): 73.0, ("msh", "xnli"): 76.0, ("qm", "xnli"): 74.5,
    ("none", "pawsx"): 80.0, ("mnli", "pawsx"): 83.0, ("squad", "pawsx"): 82.0, ("hella", "pawsx"): 80.0,
    ("ms", "pawsx"): 82.5, ("msh", "pawsx"): 85.0,
}


def test_task_set():
    assert task_set("mnli+squad") == task_set(["squad", "mnli"]) == frozenset({"mnli", "squad"})
    assert task_set("") == task_set(None) == frozenset()


def test_complementarity_by_hand():
    table = complementarity_table(SCORES, MEMBERS, baseline="none")
    rows = {(row[0], row[1]): row[2:] for row in table.rows}
    assert list(rows) == [("pawsx", "ms"), ("pawsx", "msh"), ("xnli", "mh"), ("xnli", "ms"), ("xnli", "msh")]
    # members, mixture, best member, its score, mean, additive, - best, - mean, - additive
    assert rows[("pawsx", "ms")] == ["mnli+squad", 82.5, "mnli", 83.0, 82.5, 85.0, -0.5, 0.0, -2.5]
    assert rows[("pawsx", "msh")] == pytest.approx(
        ["hellaswag+mnli+squad", 85.0, "mnli", 83.0, 245 / 3, 85.0, 2.0, 85 - 245 / 3, 0.0]
    )
    assert rows[("xnli", "mh")] == ["hellaswag+mnli", 73.0, "mnli", 74.0, 73.0, 76.0, -1.0, 0.0, -3.0]
    assert rows[("xnli", "ms")] == ["mnli+squad", 75.0, "mnli", 74.0, 72.5, 75.0, 1.0, 2.5, 0.0]
    assert rows[("xnli", "msh")] == pytest.approx(
        ["hellaswag+mnli+squad", 76.0, "mnli", 74.0, 217 / 3, 77.0, 2.0, 76 - 217 / 3, -1.0]
    )
    assert any("qm on xnli" in note for note in table.notes)


def test_baseline_found_and_missing():
    found = complementarity_table(SCORES, MEMBERS)  # the one arm with no tasks
    assert found.rows == complementarity_table(SCORES, MEMBERS, baseline="none").rows
    without = {arm: tasks for arm, tasks in MEMBERS.items() if arm != "none"}
    table = complementarity_table(SCORES, without)
    assert [row[7] for row in table.rows] == [None] * 5 and [row[10] for row in table.rows] == [None] * 5
    assert any("No baseline arm" in note for note in table.notes)


def test_duplicate_single_arms_are_noted():
    members = {**MEMBERS, "mnli2": "mnli"}
    scores = {**SCORES, ("mnli2", "xnli"): 99.0}
    table = complementarity_table(scores, members, baseline="none")
    assert ("xnli", "ms") in {(row[0], row[1]) for row in table.rows}
    assert next(row for row in table.rows if row[:2] == ["xnli", "ms"])[5] == 74.0  # "mnli" sorts first
    assert any("mnli and mnli2 both train only mnli" in note for note in table.notes)


def test_pairwise_gain_matrix_by_hand():
    tasks, matrix = pairwise_gain_matrix(SCORES, MEMBERS, "xnli")
    assert tasks == ["hellaswag", "mnli", "squad"]
    assert matrix == [[None, -1.0, None], [-1.0, None, 1.0], [None, 1.0, None]]
    tasks, matrix = pairwise_gain_matrix(SCORES, MEMBERS, "pawsx")
    assert matrix == [[None, None, None], [None, None, -0.5], [None, -0.5, None]]
    tables = pairwise_gain_tables(SCORES, MEMBERS)
    assert [table.name for table in tables] == ["pair-gains-pawsx", "pair-gains-xnli"]
    assert tables[1].columns == ["task", "hellaswag", "mnli", "squad"]
    assert tables[1].rows[1] == ["mnli", -1.0, None, 1.0]


def test_arm_scores_from_a_frame():
    def row(run, arm, intermediate, language, value, *, phase="target", metric="score", split="test", subset=""):
        return {"run": run, "axis:arm": arm, "intermediate": intermediate, "phase": phase, "task": "xnli",
                "language": language, "split": split, "subset": subset, "metric": metric, "value": value}

    frame = pd.DataFrame([
        row("r1", "none", "", "en", 90.0), row("r1", "none", "", "de", 60.0), row("r1", "none", "", "fr", 70.0),
        row("r2", "none", "", "de", 64.0), row("r2", "none", "", "fr", 72.0),
        row("r3", "mnli", "mnli", "de", 70.0), row("r3", "mnli", "mnli", "fr", 80.0),
        row("r3", "mnli", "mnli", "de", 10.0, subset="hard"),
        row("r3", "mnli", "mnli", "de", 999.0, metric="accuracy"),
        row("r3", "mnli", "mnli", "de", 999.0, split="dev"),
        row("r3", "mnli", "mnli", "de", 999.0, phase="intermediate"),
    ])
    scores, members = arm_scores(frame, arm_column="axis:arm")
    assert scores == {("none", "xnli"): 66.5, ("mnli", "xnli"): 75.0}
    assert members == {"none": "", "mnli": "mnli"}
