from __future__ import annotations

import pandas as pd
import pytest

from xstilts.analysis.flags import flag_legend, flag_union, row_flags


def _frame(rows: list[tuple]) -> pd.DataFrame:
    columns = ["run", "phase", "model", "task", "language", "intermediate", "intermediate_languages", "metric", "value"]
    return pd.DataFrame(rows, columns=columns)


def test_row_flags_by_hand():
    frame = _frame(
        [
            # FLAN-T5 saw MNLI (intermediate) and PAWS-X (target): both flag seen-task.
            ("r1", "target", "google/flan-t5-large", "xnli", "de", "mnli", "en", "accuracy", 80.0),
            ("r2", "target", "google/flan-t5-large", "pawsx", "de", "", "", "accuracy", 85.0),
            # mT5 has seen nothing; its intermediate MNLI trained in German and French.
            ("r3", "target", "google/mt5-base", "xnli", "de", "mnli", "de+fr", "accuracy", 70.0),
            ("r3", "target", "google/mt5-base", "xnli", "es", "mnli", "de+fr", "accuracy", 69.0),
            # English is the target's training language: never an intermediate-language flag.
            ("r4", "target", "google/mt5-base", "xnli", "en", "mnli", "en+de", "accuracy", 75.0),
            # Both flags at once; the intermediate phase's own row is not flagged for its language.
            ("r5", "target", "packaged:multilingual-e5-small", "xnli", "de", "squad", "de", "accuracy", 60.0),
            ("r5", "intermediate", "packaged:multilingual-e5-small", "squad", "de", "squad", "de", "f1", 50.0),
            # No intermediate task: languages alone flag nothing.
            ("r6", "target", "xlm-roberta-large", "xnli", "de", "", "de", "accuracy", 78.0),
        ]
    )
    flagged = row_flags(frame)
    assert flagged["flags"].tolist() == [
        ["seen-task"],
        ["seen-task"],
        ["intermediate-language"],
        [],
        [],
        ["intermediate-language", "seen-task"],
        ["seen-task"],
        [],
    ]
    assert "flags" not in frame.columns  # the input is left alone
    assert flagged["value"].tolist() == frame["value"].tolist()


def test_unknown_task_trains_in_english():
    frame = _frame([("r", "target", "m", "my-task", "de", "my-inter", "de", "accuracy", 1.0)])
    assert row_flags(frame)["flags"].tolist() == [["intermediate-language"]]


def test_missing_columns_is_a_bug():
    with pytest.raises(KeyError, match="intermediate_languages"):
        row_flags(pd.DataFrame({"model": [], "task": [], "language": [], "intermediate": []}))


def test_flag_union_and_legend():
    frame = pd.DataFrame(
        {
            "arm": ["a", "a", "b"],
            "task": ["xnli", "xnli", "xnli"],
            "flags": [["seen-task"], ["intermediate-language"], []],
        }
    )
    assert flag_union(frame, ["arm", "task"]) == {("a", "xnli"): ["intermediate-language", "seen-task"], ("b", "xnli"): []}
    assert len(flag_legend()) == 2
    assert flag_legend(["seen-task"]) == [flag_legend()[0]]
    assert flag_legend(["seen-task"])[0].startswith("seen-task: the start model was trained on this task")
    assert flag_legend([]) == []


def test_train_language_column_is_used_when_present():
    # A target trained in German (train_language from the frame): German rows are not zero-shot
    # transfer, but neither are they flagged as an intermediate language; French is.
    frame = _frame([
        ("r", "target", "google/mt5-base", "xnli", "de", "mnli", "de+fr", "accuracy", 1.0),
        ("r", "target", "google/mt5-base", "xnli", "fr", "mnli", "de+fr", "accuracy", 1.0),
    ]).assign(train_language="de")
    assert row_flags(frame)["flags"].tolist() == [[], ["intermediate-language"]]
