"""Property-based fuzzing of every data reader and of the hub adapter's row mapping (issue 14).

Each case starts from a valid file set of the reader's format (tests/fuzz_cases.py) and
mutates one of its files: truncation at a byte, invalid UTF-8, a BOM, dropped/added
columns, an empty file, blank lines, a token replaced by random or huge text (labels
outside the label set, spans that miss their context), duplicated lines (duplicate ids),
a JSON value replaced or deleted, or wholly random bytes. The property: the reader
returns well-formed examples, or raises `UserError` as one line naming the file; any
other exception is a bug. `XSTILTS_FUZZ_EXAMPLES` sets the cases per reader (default 100).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import tempfile
from pathlib import Path

import pytest
from fuzz_cases import READER_CASES, REGISTRY, check_examples, check_user_error, write_files
from hypothesis import given
from hypothesis import strategies as st

from xstilts.data.hub import _hub_examples, read_rows_with
from xstilts.errors import UserError

BOM = b"\xef\xbb\xbf"
INVALID_UTF8 = [b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\x80abc", b"\xf0\x28\x8c\x28", b"\xe2\x82"]
HUGE = "x" * 140_000  # over the csv module's field limit (131,072)
TOKEN = re.compile(rb"[^\t\n\r \",:{}\[\]]+")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**20) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=5,
)


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True) or [b""]


def truncate(draw, data: bytes) -> bytes:
    return data[: draw(st.integers(0, max(len(data) - 1, 0)))]


def invalid_utf8(draw, data: bytes) -> bytes:
    at = draw(st.integers(0, len(data)))
    return data[:at] + draw(st.sampled_from(INVALID_UTF8)) + data[at:]


def bom(draw, data: bytes) -> bytes:
    return BOM + data


def empty(draw, data: bytes) -> bytes:
    return draw(st.sampled_from([b"", b"\n", b"\n\n\r\n", b"   \n\t\n"]))


def blank_lines(draw, data: bytes) -> bytes:
    lines = _lines(data)
    at = draw(st.integers(0, len(lines)))
    return b"".join(lines[:at] + [draw(st.sampled_from([b"\n", b"\r\n", b" \t \n"]))] + lines[at:])


def duplicate_line(draw, data: bytes) -> bytes:
    lines = _lines(data)
    at = draw(st.integers(0, len(lines) - 1))
    return b"".join(lines[: at + 1] + [lines[at]] + lines[at + 1 :])


def drop_line(draw, data: bytes) -> bytes:
    lines = _lines(data)
    at = draw(st.integers(0, len(lines) - 1))
    return b"".join(lines[:at] + lines[at + 1 :])


def columns(draw, data: bytes) -> bytes:
    """Drop a tab-separated column of one line, or add one (wrong column counts)."""
    lines = _lines(data)
    at = draw(st.integers(0, len(lines) - 1))
    body = lines[at].rstrip(b"\r\n")
    end = lines[at][len(body):]
    fields = body.split(b"\t")
    if draw(st.booleans()) and len(fields) > 1:
        del fields[draw(st.integers(0, len(fields) - 1))]
    else:
        fields.insert(draw(st.integers(0, len(fields))), draw(st.sampled_from([b"", b"extra", b"0", b"\t"])))
    lines[at] = b"\t".join(fields) + end
    return b"".join(lines)


def replace_token(draw, data: bytes) -> bytes:
    """A token (a label, an id, an offset, a word) becomes random, empty or huge text."""
    tokens = list(TOKEN.finditer(data))
    if not tokens:
        return data
    token = draw(st.sampled_from(tokens))
    text = draw(st.one_of(st.text(max_size=6), st.sampled_from(["", HUGE, "-1", "99", "O", "B-XYZ", "1.5", "None", "\u2028"])))
    return data[: token.start()] + text.encode("utf-8", "surrogatepass") + data[token.end() :]


def insert_text(draw, data: bytes) -> bytes:
    at = draw(st.integers(0, len(data)))
    return data[:at] + draw(st.text(min_size=1, max_size=10)).encode("utf-8", "surrogatepass") + data[at:]


def _mutate_json(draw, value):
    """`value` with one nested value replaced, deleted, or changed in type."""
    if isinstance(value, dict) and value and draw(st.integers(0, 3)):
        key = draw(st.sampled_from(sorted(value)))
        if draw(st.integers(0, 4)) == 0:
            return {k: v for k, v in value.items() if k != key}
        return value | {key: _mutate_json(draw, value[key])}
    if isinstance(value, list) and value and draw(st.integers(0, 3)):
        at = draw(st.integers(0, len(value) - 1))
        choice = draw(st.integers(0, 5))
        if choice == 0:
            return value[:at] + value[at + 1 :]
        if choice == 1:
            return value + [value[at]]  # a duplicate (ids, questions, answers)
        return value[:at] + [_mutate_json(draw, value[at])] + value[at + 1 :]
    if isinstance(value, int) and not isinstance(value, bool) and draw(st.booleans()):
        return value + draw(st.integers(-3, 3))  # an offset or label off by a little
    return draw(JSON_VALUES)


def json_value(draw, data: bytes) -> bytes:
    """Parse the file (or one of its jsonl lines), change one value, write it back."""
    try:
        return json.dumps(_mutate_json(draw, json.loads(data)), ensure_ascii=False).encode()
    except (ValueError, RecursionError):
        pass
    lines = _lines(data)
    at = draw(st.integers(0, len(lines) - 1))
    try:
        lines[at] = json.dumps(_mutate_json(draw, json.loads(lines[at])), ensure_ascii=False).encode() + b"\n"
    except ValueError:
        return data
    return b"".join(lines)


def random_bytes(draw, data: bytes) -> bytes:
    return draw(st.binary(max_size=300))


def report(test: str, cases: int) -> None:
    """Append `cases-run test` to the file named by XSTILTS_FUZZ_REPORT (the issue's closing note)."""
    if os.environ.get("XSTILTS_FUZZ_REPORT"):
        with open(os.environ["XSTILTS_FUZZ_REPORT"], "a", encoding="utf-8") as handle:
            handle.write(f"{cases} {test}\n")


MUTATIONS = [truncate, invalid_utf8, bom, empty, blank_lines, duplicate_line, drop_line, columns,
             replace_token, insert_text, json_value, json_value, random_bytes]


@st.composite
def mutated_files(draw, name: str) -> dict[str, bytes]:
    case = READER_CASES[name]
    files = dict(case.files)
    target = draw(st.sampled_from(case.mutable))
    data = files[target]
    inside = case.compressed and draw(st.booleans())
    data = gzip.decompress(data) if inside else data
    for _ in range(draw(st.integers(1, 3))):
        data = draw(st.sampled_from(MUTATIONS))(draw, data)
    files[target] = gzip.compress(data, mtime=0) if inside else data
    return files


def read_outcome(name: str, files: dict[str, bytes]) -> str:
    """Read a file set; 'ok' or 'error' (a well-formed UserError); anything else raises."""
    case = READER_CASES[name]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_files(folder, files)
        try:
            examples = case.read(folder / case.path, case.spec)
        except UserError as error:
            check_user_error(str(error), folder)
            return "error"
        check_examples(name, examples, case.spec)
        return "ok"


@pytest.mark.parametrize("name", sorted(READER_CASES))
def test_a_valid_file_set_reads(name):
    assert read_outcome(name, READER_CASES[name].files) == "ok"


@pytest.mark.parametrize("name", sorted(READER_CASES))
def test_a_mutated_file_reads_or_gives_one_line_naming_it(name):
    outcomes = []

    @given(files=mutated_files(name))
    def fuzz(files):
        outcomes.append(read_outcome(name, files))

    fuzz()
    report(f"{name} ({outcomes.count('error')} gave a UserError)", len(outcomes))
    assert "error" in outcomes  # the mutations do reach the readers' checks


# The hub adapter: rows as `datasets` yields them (dicts with the dataset's own column names;
# class-label columns as ints with `features` naming them), mapped to examples by the spec.
class Rows(list):
    features: dict = {}


def _hub_case(task: str):
    import datasets

    names = datasets.ClassLabel(names=REGISTRY.get(task).labels)
    return {
        "xnli": ([{"premise": "A dog.", "hypothesis": "An animal.", "label": 0}], {"label": names}),
        "panx": ([{"tokens": ["Paris", "is"], "ner_tags": [5, 0], "langs": ["fr", "fr"]}],
                 {"ner_tags": datasets.Sequence(names)}),
        "snli": ([{"premise": "A dog.", "hypothesis": "A cat.", "label": 2}, {"premise": "x", "hypothesis": "y", "label": -1}],
                 {"label": names}),
    }[task]


@pytest.mark.parametrize("task", ["xnli", "panx", "snli"])
def test_hub_rows_map_to_examples_or_give_one_line(task):
    rows, features = _hub_case(task)
    spec = REGISTRY.get(task)

    cases = []

    @given(rows=st.lists(st.sampled_from(rows), max_size=4), mutate=st.data())
    def fuzz(rows, mutate):
        cases.append(1)
        rows = [_mutate_json(mutate.draw, row) if mutate.draw(st.booleans()) else row for row in rows]
        rows = Rows(row for row in rows if isinstance(row, dict))  # the hub yields dicts
        rows.features = features
        try:
            examples = _hub_examples(rows, spec, "train", "en", "hub dataset 'x'")
        except UserError as error:
            assert len(str(error).splitlines()) == 1 and "hub dataset 'x'" in str(error)
            return
        for example in examples:
            check_examples(task, [example], spec)

    fuzz()
    report(f"hub-rows:{task}", len(cases))


@pytest.mark.parametrize("task", ["copa", "cosmosqa", "siqa", "hellaswag", "commonsenseqa"])
def test_hub_rows_parsed_by_a_local_reader_give_one_line(task):
    spec = REGISTRY.get(task)
    name = spec.hub.reader
    case = READER_CASES[name]
    if name == "cosmosqa_csv":
        import csv
        import io

        base = list(csv.DictReader(io.StringIO(case.files[case.path].decode())))
    else:
        base = [json.loads(line) for line in case.files[case.path].splitlines()]
        if name == "siqa_jsonl":
            base = [row | {"label": "1"} for row in base]

    cases = []

    @given(data=st.data())
    def fuzz(data):
        cases.append(1)
        rows = [_mutate_json(data.draw, row) if data.draw(st.booleans()) else row for row in base]
        rows = [row for row in rows if isinstance(row, dict)]
        keys = list(dict.fromkeys(key for row in rows for key in row))  # the dataset's columns
        rows = [{key: row.get(key) for key in keys} for row in rows]
        try:
            examples = read_rows_with(name, rows, spec, "hub dataset 'x'")
        except UserError as error:
            assert len(str(error).splitlines()) == 1 and "hub dataset 'x'" in str(error), str(error)
            return
        check_examples(name, examples, spec)

    fuzz()
    report(f"hub-rows:{task} (via {name})", len(cases))
