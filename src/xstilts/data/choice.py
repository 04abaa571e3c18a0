"""Readers for multiple-choice tasks: COPA/XCOPA, HellaSwag, CosmosQA, CommonsenseQA, SocialIQA.

Every reader returns `{id, context, question, choices: list[str], label: int}` (the index
of the correct choice). The number of choices is per example. A record without a label
is an error: unlabelled test files (English COPA, HellaSwag, CosmosQA test) cannot be
trained on or scored.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from xstilts.data.io import Example, check_new_id, jsonl_rows, numbered_lines, open_text
from xstilts.errors import UserError
from xstilts.tasks.spec import TaskSpec


def _require(row: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    missing = [key for key in keys if key not in row]
    if missing:
        raise UserError(f"{where}: missing field(s) {', '.join(missing)}")


def _text(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{where}: {what} must be text, got {type(value).__name__} {str(value)[:40]!r}")
    return value


def _texts(values: Any, where: str, what: str) -> list[str]:
    if not isinstance(values, list):
        raise UserError(f"{where}: {what} must be a list of texts, got {type(values).__name__}")
    return [_text(value, where, what) for value in values]


def _integer(label: Any) -> int:
    """A whole number from an int, an integral float or a numeric string (ValueError otherwise)."""
    if isinstance(label, bool) or (isinstance(label, float) and not label.is_integer()):
        raise ValueError(label)
    try:
        return int(label)
    except (TypeError, OverflowError):
        raise ValueError(label) from None


def _choice_example(id_: Any, context: Any, question: Any, choices: Any, label: Any, where: str) -> Example:
    """Build an example, checking the texts and that the label is an index into the choices."""
    choices = _texts(choices, where, "choices")
    try:
        index = _integer(label)
    except ValueError:
        raise UserError(f"{where}: label {label!r} is not a choice index") from None
    if not 0 <= index < len(choices):
        raise UserError(f"{where}: label {index} out of range for {len(choices)} choices")
    return {"id": str(id_), "context": _text(context, where, "the context"), "question": _text(question, where, "the question"),
            "choices": choices, "label": index}


def read_copa_jsonl(path: Path, spec: TaskSpec) -> list[Example]:
    """COPA / XCOPA jsonl: `premise, choice1, choice2, question (cause|effect), label, idx`.

    The question stays the English word `cause` / `effect`, as in every XCOPA language file.
    """
    examples, seen = [], {}
    for where, row in jsonl_rows(path):
        _require(row, ("premise", "choice1", "choice2", "question", "label"), where)
        if row["question"] not in ("cause", "effect"):
            raise UserError(f"{where}: question must be 'cause' or 'effect', got {row['question']!r}")
        example = _choice_example(
            row.get("idx", len(examples)), row["premise"], row["question"], [row["choice1"], row["choice2"]], row["label"], where
        )
        check_new_id(seen, example["id"], where)  # the leaderboard export is keyed by idx
        examples.append(example)
    return examples


def read_hellaswag_jsonl(path: Path, spec: TaskSpec) -> list[Example]:
    """HellaSwag jsonl: `ctx_a, ctx_b, endings[4], label`; each choice is `ctx_b + " " + ending`."""
    examples = []
    for where, row in jsonl_rows(path):
        _require(row, ("ctx_a", "ctx_b", "endings", "label"), where)
        ctx_b = _text(row["ctx_b"], where, "ctx_b")
        choices = [f"{ctx_b} {ending}".strip() for ending in _texts(row["endings"], where, "endings")]
        examples.append(_choice_example(row.get("ind", len(examples)), row["ctx_a"], "", choices, row["label"], where))
    return examples


def read_cosmosqa_csv(path: Path, spec: TaskSpec) -> list[Example]:
    """CosmosQA CSV with a header `id, context, question, answer0..answer3, label` (CRLF, quoted)."""
    columns = ("id", "context", "question", "answer0", "answer1", "answer2", "answer3", "label")
    examples = []
    with open_text(path) as handle:
        reader = csv.DictReader(handle)
        try:
            missing = [column for column in columns if column not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path}:1: header lacks column(s) {', '.join(missing)}")
            seen: dict[str, str] = {}
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if None in row.values() or None in row:
                    raise UserError(f"{where}: expected {len(reader.fieldnames)} columns as in the header")
                choices = [row[f"answer{index}"] for index in range(4)]
                check_new_id(seen, row["id"], where)
                examples.append(_choice_example(row["id"], row["context"], row["question"], choices, row["label"], where))
        except csv.Error as exc:  # e.g. a field over the csv module's size limit (131,072 characters)
            raise UserError(f"{path}:{reader.line_num or 1}: malformed CSV ({exc})") from None
    return examples


def read_commonsenseqa_jsonl(path: Path, spec: TaskSpec) -> list[Example]:
    """CommonsenseQA jsonl, in the authors' schema (`question.stem, question.choices[{label,
    text}], answerKey`) or the Hugging Face one (`question` string, `choices.{label, text}`)."""
    examples, seen = [], {}
    for where, row in jsonl_rows(path):
        _require(row, ("id", "question", "answerKey"), where)
        check_new_id(seen, str(row["id"]), where)
        stem, keys, texts = _commonsenseqa_choices(row, where)
        if row["answerKey"] not in keys:
            raise UserError(f"{where}: answerKey {row['answerKey']!r} is not one of the choice labels {keys}")
        examples.append(_choice_example(row["id"], "", stem, texts, keys.index(row["answerKey"]), where))
    return examples


def _commonsenseqa_choices(row: dict[str, Any], where: str) -> tuple[Any, list, list]:
    """(question stem, choice labels, choice texts) of either schema."""
    if isinstance(row["question"], dict):
        _require(row["question"], ("stem", "choices"), f"{where}: question")
        stem, choices = row["question"]["stem"], row["question"]["choices"]
        if not isinstance(choices, list) or not all(isinstance(c, dict) and "label" in c and "text" in c for c in choices):
            raise UserError(f"{where}: question.choices must be a list of {{label, text}} objects")
        return stem, [choice["label"] for choice in choices], [choice["text"] for choice in choices]
    _require(row, ("choices",), where)
    choices = row["choices"]
    if not (isinstance(choices, dict) and isinstance(choices.get("label"), list) and isinstance(choices.get("text"), list)
            and len(choices["label"]) == len(choices["text"])):
        raise UserError(f"{where}: choices must be {{label: [...], text: [...]}} of equal length")
    return row["question"], choices["label"], choices["text"]


def read_siqa_jsonl(path: Path, spec: TaskSpec) -> list[Example]:
    """SocialIQA jsonl: `context, question, answerA, answerB, answerC`.

    Labels (1-based, one per line) sit in a separate file named like the data file with
    `.jsonl` replaced by `-labels.lst` (`train.jsonl` -> `train-labels.lst`); a `label`
    field inside the records (the hub's layout) is used when present instead.
    """
    rows = list(jsonl_rows(path))
    labels_path = path.with_name(path.name.removesuffix(".jsonl") + "-labels.lst")
    if rows and "label" not in rows[0][1]:
        labels = [line.strip() for _, line in numbered_lines(labels_path) if line.strip()]
        if len(labels) != len(rows):
            raise UserError(f"{labels_path}: {len(labels)} labels for {len(rows)} records in {path.name}")
        rows = [(where, row | {"label": label}) for (where, row), label in zip(rows, labels, strict=True)]
    examples = []
    for index, (where, row) in enumerate(rows):
        _require(row, ("context", "question", "answerA", "answerB", "answerC", "label"), where)
        choices = [row["answerA"], row["answerB"], row["answerC"]]
        label = _one_based(row["label"], where)
        examples.append(_choice_example(row.get("id", index), row["context"], row["question"], choices, label, where))
    return examples


def _one_based(label: Any, where: str) -> int:
    try:
        return _integer(label) - 1
    except ValueError:
        raise UserError(f"{where}: label {label!r} is not a 1-based choice number") from None
