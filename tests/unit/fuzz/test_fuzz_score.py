"""Fuzzing `xstilts score`: malformed prediction and gold files (issue 14).

The library function the command calls (score_predictions) gets one task's valid leaderboard
files with the prediction file, the gold file or both mutated: bytes (truncation, invalid
UTF-8, a BOM, control characters, very long lines, JSON syntax) and, for json and jsonl, the
parsed structure (wrong types, deep nesting, missing keys). The property: it returns scores, or
raises UserError with one line that names a file or folder of the task, and writes nothing.
A few real CLI runs check the exit status 2, the one stderr line and that --output is not written.

Cases per test: the profile's max_examples (XSTILTS_FUZZ_EXAMPLES, default 100).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import fuzz_cases
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from clitools import run
from xstilts.errors import UserError
from xstilts.evaluation.scorer import file_extension, score_predictions
from xstilts.tasks.registry import TaskRegistry, load_registry


def _squad(questions: dict[str, list[str]]) -> dict:
    qas = [{"id": qid, "question": "?", "answers": [{"text": t, "answer_start": 0} for t in texts]}
           for qid, texts in questions.items()]
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]}


# task -> (benchmark, language, prediction file, gold file): valid files of every scorer.
VALID: dict[str, tuple[str, str, Any, Any]] = {
    "xnli": ("xtreme", "de", "neutral\nentailment\n", "neutral\ncontradiction\n"),
    "pawsx": ("xtreme", "de", "1\n0\n", "1\n1\n"),
    "udpos": ("xtreme", "de", "DET\nNOUN\n\nVERB\n", "The\tDET\ndog\tNOUN\n\nran\tVERB\n"),
    "panx": ("xtreme", "de", "B-PER\nI-PER\nO\n", "B-PER\nI-PER\nO\n"),
    "xquad": ("xtreme", "de", {"q1": "Berlin", "q2": "1990"}, _squad({"q1": ["Berlin"], "q2": ["im Jahr 1990"]})),
    "mlqa": ("xtreme", "de", {"q": "Berlin"}, _squad({"q": ["Berlin"]})),
    "bucc2018": ("xtreme", "de", "de-1\ten-1\n", "de-1\ten-1\nde-2\ten-2\n"),
    "tatoeba": ("xtreme", "de", "0\n5\n", "0\n1\n"),
    "xcopa": ("xtreme-r", "et", '{"idx": 0, "label": 1}\n{"idx": 1, "label": 0}\n', '{"idx": 0, "label": 1}\n{"idx": 1, "label": 1}\n'),
    "mewslix": ("xtreme-r", "de", {"m1": ["Q9", "Q1"]}, {"m1": ["Q1"], "m2": ["Q2"]}),
}
FULL = load_registry()
REGISTRIES = {
    task: TaskRegistry([FULL.get(task).model_copy(update={"benchmarks": {benchmark: [language]}})])
    for task, (benchmark, language, _, _) in VALID.items()
}


def _text(content: Any) -> bytes:
    return (content if isinstance(content, str) else json.dumps(content)).encode("utf-8")


INVALID_UTF8 = [b"\xff", b"\xfe", b"\xc3", b"\x80", b"\xed\xa0\x80", b"\xe2\x82"]
PIECES = [
    b"\xef\xbb\xbf", b"\x00", b"\t", b"\t\t", b"\r", b"\r\n", b"\n", b"\n\n", "\u2028".encode(), "\x85".encode(), b"{", b"}",
    b"[", b"]", b",", b":", b'"', b"\\", b"\\ud800", b"null", b"NaN", b"-Infinity", b"1e999", b"1" * 5000, b"[" * 5000,
    b'{"a": ' * 3000, b"-1", b"_", b"O", b"<unk>", b'"label"', b'"data"', b'"answers"', b'"text"', b"0", b"true",
]


def byte_mutants(data: bytes):
    return fuzz_cases.byte_mutants(
        [data], pieces=INVALID_UTF8 + PIECES, long_pieces=[b"a", b"B-PER\t", b" "], max_delete=20,
        empties=[b"", b"\n", b"\n\n\n", b"   ", b"{}", b"[]", b"null", b"0"],
    )


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
    | st.sampled_from(["", "Berlin", "Q1", "_", "-1", "nan"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _get(document: Any, path: tuple) -> Any:
    for part in path:
        document = document[part]
    return document


@st.composite
def json_mutant(draw, document: Any) -> Any:
    """A json document with one to three values replaced, deleted or nested deeper."""
    document = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)
        leaves = [path for path in paths if path and not isinstance(_get(document, path), (dict, list))]
        # Half the time a leaf (an answer text, a label, an id): type confusion deep in the file.
        path = draw(st.sampled_from(leaves if leaves and draw(st.booleans()) else paths))
        if not path:
            document = draw(JSON_VALUES)
            continue
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        op = draw(st.sampled_from(["set", "delete", "wrap"]))
        if op == "set":
            parent[path[-1]] = draw(JSON_VALUES)
        elif op == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = [parent[path[-1]]]
    return document


@st.composite
def structure_mutants(draw, task: str, content: Any) -> bytes:
    if isinstance(content, str) and file_extension(FULL.get(task)) == "jsonl":
        lines = [json.loads(line) for line in content.splitlines()]
        lines = draw(json_mutant(lines))
        return "\n".join(json.dumps(line) for line in (lines if isinstance(lines, list) else [lines])).encode()
    if isinstance(content, str):
        lines = content.split("\n")
        index = draw(st.integers(0, len(lines) - 1))
        lines[index] = draw(st.sampled_from(["", "x", "a\tb\tc", "\t", "B-", "I-PER", "-1", "99", "none", lines[index] * 2]))
        return "\n".join(lines).encode()
    return json.dumps(draw(json_mutant(content))).encode()


@st.composite
def score_case(draw) -> tuple[str, bytes, bytes]:
    task = draw(st.sampled_from(sorted(VALID)))
    _, _, prediction, gold = VALID[task]
    files = [_text(prediction), _text(gold)]
    for side in draw(st.sampled_from([[0], [1], [0, 1]])):
        original = (prediction, gold)[side]
        files[side] = draw(st.one_of(byte_mutants(files[side]), structure_mutants(task, original)))
    return task, files[0], files[1]


def _layout(root: Path, task: str, prediction: bytes, gold: bytes) -> tuple[Path, Path]:
    _, language, _, _ = VALID[task]
    name = f"test-{language}.{file_extension(FULL.get(task))}"
    for side, data in (("pred", prediction), ("gold", gold)):
        (root / side / task).mkdir(parents=True)
        (root / side / task / name).write_bytes(data)
    return root / "pred", root / "gold"


def test_valid_files_score():
    for task, (benchmark, _, prediction, gold) in VALID.items():
        with tempfile.TemporaryDirectory() as folder:
            pred, labels = _layout(Path(folder), task, _text(prediction), _text(gold))
            scores = score_predictions(pred, labels, benchmark, registry=REGISTRIES[task])
            assert 0 <= scores[task]["avg_metric"] <= 100, task


@given(case=score_case())
def test_fuzz_score_predictions(case):
    task, prediction, gold = case
    benchmark = VALID[task][0]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        pred, labels = _layout(root, task, prediction, gold)
        before = set(root.rglob("*"))
        try:
            scores = score_predictions(pred, labels, benchmark, registry=REGISTRIES[task])
            event("scored")
        except UserError as exc:
            event("UserError")
            message = str(exc)
            assert len(message.splitlines()) == 1, message
            assert str(pred / task) in message or str(labels / task) in message, message
        else:
            json.dumps(scores)  # what the command prints
            assert math.isfinite(scores[task]["avg_metric"]) and 0 <= scores[task]["avg_metric"] <= 100, scores
        assert set(root.rglob("*")) == before


@pytest.mark.parametrize(
    "prediction, message",
    [
        (b"\xffneutral\n", r"pred/xnli/test-ar.tsv(:1)?: .*UTF-8"),
        (b"", r"pred/xnli/test-ar.tsv: 0 examples, but .*gold/xnli/test-ar.tsv has 2"),
        (b"neutral\n" * 3, r"pred/xnli/test-ar.tsv: 3 examples"),
    ],
)
def test_score_cli_malformed_predictions_exit_2_one_line_no_output(monkeypatch, capsys, tmp_path, prediction, message):
    """The real command: the first language of xnli (ar) is malformed; exit 2, one line, no --output."""
    (tmp_path / "pred" / "xnli").mkdir(parents=True)
    (tmp_path / "gold" / "xnli").mkdir(parents=True)
    (tmp_path / "pred" / "xnli" / "test-ar.tsv").write_bytes(prediction)
    (tmp_path / "gold" / "xnli" / "test-ar.tsv").write_bytes(b"neutral\nentailment\n")
    output = tmp_path / "scores.json"
    code, out, err = run(monkeypatch, capsys, "score", "--predictions", tmp_path / "pred", "--labels", tmp_path / "gold",
                         "--benchmark", "xtreme", "--output", output)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert not output.exists()


def test_score_cli_malformed_gold_json_exit_2(monkeypatch, capsys, tmp_path):
    """Gold json nested 5,000 deep (xquad's first language, en): exit 2, one line naming it."""
    for side, text in (("pred", '{"q": "x"}'), ("gold", '{"data": [{"paragraphs": [{"qas": [{"id": "q", "answers": [{"text": ' + "[" * 5000)):
        (tmp_path / side / "xquad").mkdir(parents=True)
        (tmp_path / side / "xquad" / "test-en.json").write_text(text, encoding="utf-8")
    output = tmp_path / "scores.json"
    code, out, err = run(monkeypatch, capsys, "score", "--predictions", tmp_path / "pred", "--labels", tmp_path / "gold",
                         "--benchmark", "xtreme", "--output", output)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "gold/xquad/test-en.json" in err and not output.exists()
