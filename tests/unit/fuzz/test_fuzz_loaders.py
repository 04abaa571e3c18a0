"""Fuzzing the config, study and task spec loaders (issue 14).

Each test starts from valid documents (the shipped configs and studies, built-in task specs)
and mutates them: bytes (truncation, invalid UTF-8, a BOM, control characters, very long
lines, YAML syntax such as tags, anchors and aliases) and structure (wrong types, unknown and
misspelt keys, deleted keys, deep values, a top level that is not a mapping). The property:
the loader returns, or raises UserError with one line that names the file (and a line or a
key), and writes nothing. Any other exception fails the test.

Cases per test: the profile's max_examples (XSTILTS_FUZZ_EXAMPLES, default 100).
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fuzz_cases
import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from xstilts.config.loading import known_keys, load_config
from xstilts.config.schema import ExperimentConfig
from xstilts.errors import UserError
from xstilts.experiments.study import load_study
from xstilts.tasks import registry as registry_module
from xstilts.tasks.registry import load_registry

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
STUDIES = [ROOT / "configs" / "studies" / name for name in ("rq-e-size-mini.yaml", "rq-b-language-mini.yaml", "paper-9x9.yaml")]
SPECS = ROOT / "src" / "xstilts" / "tasks" / "specs"
# A user's spec file that uses most TaskSpec fields, next to built-in ones.
USER_SPEC = """\
tasks:
  - name: my-nli
    include: xnli
    version: 3
    languages: [en, de, fr]
    benchmarks: {xtreme: [de, fr]}
    subsets:
      hard: {ids: ["1", "2"], splits: [test]}
      neg: {column: label, values: [contradiction], language: each}
    prompts:
      plain: {input: "{text_a} {text_b} {options}", target: "{label}"}
    label_words: {entailment: yes, neutral: maybe, contradiction: no}
  - name: my-tags
    version: 1
    format: tagging
    metric: seqeval_f1
    languages: [en, de]
    labels: [O, B-X, I-X]
    local: {reader: xtreme_tagging_tsv, path: "{split}-{language}.tsv"}
    hub: {id: some/dataset, config: "x.{language}", splits: {dev: validation}}
"""
STUDY = """\
name: fuzz
base:
  model: hub-model
  intermediate: {tasks: [mnli], train: {epochs: 1, learning_rate: 1.0e-3}}
  target: {task: xnli, train: {epochs: 1}}
axes:
  arm:
    values:
      none: {intermediate: null}
      nli: {intermediate.tasks: [mnli]}
  seed: {key: seed, values: [0, 1]}
zip: [[arm, seed]]
executor: {kind: slurm, slurm: {local: true, extra: {constraint: a100}}}
report: {arm_axis: arm, baseline: none, seed_axis: seed}
"""

INVALID_UTF8 = [b"\xff", b"\xfe", b"\xc3", b"\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80"]
YAML_PIECES = [
    b"\xef\xbb\xbf", b"\x00", b"\t", b"\r", b"\r\n", b"\x1b", "\u2028".encode(), "\x85".encode(), b": ", b"- ",
    b"{", b"}", b"[", b"]", b",", b"&a ", b"*a", b"*b", b"&a [*a]", b"!!python/name:os.system ",
    b"!!python/object/apply:os.system ['true'] ", b"!!binary ", b"!!set ", b"!!omap ", b"!custom ", b"'", b'"',
    b"#", b"? ", b"<<: ", b"%YAML 1.1\n", b"---\n", b"...\n", b"|\n", b">-\n", b"~", b"2020-13-45", b"1" * 5000,
    b"0x", b"0o9", b".nan", b"-.inf", b"1e999", b"\\", b"%",
]


def byte_mutants(seeds: list[bytes]):
    """A seed document with one to three byte-level mutations (YAML pieces, line operations)."""
    return fuzz_cases.byte_mutants(
        seeds, pieces=INVALID_UTF8 + YAML_PIECES, long_pieces=[b"a", b"[a, ", b"{a: ", b"- ", b" "], max_delete=40, line_ops=True,
        empties=[b"", b"\n", b"   ", b"---", b"# only a comment\n", b"~", b"[]", b"{}", b"0", b"''"],
    )


KEY_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    KEY_TEXT,
    st.sampled_from(["", "1e-5", "xnli", "mnli", "en", "test", "local", "nan", "-1", "0", "yes", "a\nb", "x" * 10_000,
                     "{split}", "{", "{text_a!r}", "os:system", "quickstart:initial", "../../etc/passwd", "seed"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.one_of(KEY_TEXT, st.integers(), st.none(), st.booleans()), inner, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path (tuple of keys and indices) to a value inside a parsed document."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _misspell(draw, key: Any) -> Any:
    text = str(key)
    if not text:
        return "x"
    at = draw(st.integers(0, len(text) - 1))
    return draw(st.sampled_from([text[:at] + text[at + 1 :], text[:at] + "x" + text[at:], text.upper(), text + "_", text.replace("_", "-")]))


@st.composite
def structure_mutants(draw, seeds: list[bytes]) -> bytes:
    """A seed document, parsed, with one to three mutations of its structure, dumped back."""
    document = yaml.safe_load(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(document))
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["set", "set", "delete", "unknown_key", "misspell", "wrap", "deep", "top"]))
        if op == "top" or not path:
            document = draw(VALUES) if op == "top" else document
            continue
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        if op == "set":
            parent[last] = draw(VALUES)
        elif op == "delete":
            del parent[last]
        elif op == "unknown_key" and isinstance(parent, dict):
            parent[_misspell(draw, last) if draw(st.booleans()) else draw(KEY_TEXT)] = draw(VALUES)
        elif op == "misspell" and isinstance(parent, dict):
            parent[_misspell(draw, last)] = parent.pop(last)
        elif op == "wrap":
            parent[last] = draw(st.sampled_from([[parent[last]], {"value": parent[last]}, str(parent[last])]))
        elif op == "deep":
            value = parent[last]
            for _ in range(draw(st.integers(10, 80))):
                value = [value]
            parent[last] = value
    return yaml.safe_dump(document, allow_unicode=draw(st.booleans()), sort_keys=False).encode("utf-8")


def mutants(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(byte_mutants(seeds), structure_mutants(seeds))


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="xstilts-fuzz-") as folder:
        yield Path(folder)


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


# Problems of the whole document, which has no better place to name than the file.
WHOLE_FILE = r"must be a mapping of keys|must contain a list under 'tasks:'"


def assert_one_line_error_or_loads(load: Callable[[Path], Any], path: Path) -> None:
    """The fuzz property: `load(path)` returns, or raises UserError with one line naming the file
    and a line (`FILE:N`) or a quoted key or value; nothing is written next to the file."""
    before = _files(path.parent)
    try:
        load(path)
        event("loaded")
    except UserError as exc:
        event("UserError")
        message = str(exc)
        assert len(message.splitlines()) == 1, message
        assert str(path) in message, message
        assert re.search(rf"{re.escape(str(path))}:\d+: ", message) or re.search(WHOLE_FILE + r"|['\"]", message), message
    assert _files(path.parent) == before


def _write(root: Path, data: bytes, name: str = "file.yaml") -> Path:
    path = root / name
    path.write_bytes(data)
    return path


CONFIG_SEEDS = [path.read_bytes() for path in CONFIGS]


@given(data=mutants(CONFIG_SEEDS))
def test_fuzz_config_loader(data):
    with workdir() as root:
        assert_one_line_error_or_loads(load_config, _write(root, data))


OVERRIDE_KEYS = known_keys(ExperimentConfig)


@given(
    keys=st.lists(st.sampled_from(OVERRIDE_KEYS) | KEY_TEXT, min_size=1, max_size=3),
    values=st.lists(st.sampled_from(["", "[", "]", "{a: ", "1e-5", "null", "[de, fr]", "!!python/name:os.system", "&a [*a]", "1" * 5000, "a=b", "2020-13-45"]) | KEY_TEXT, min_size=3, max_size=3),
    separators=st.lists(st.sampled_from(["=", "=", ":", "", "=="]), min_size=3, max_size=3),
)
def test_fuzz_config_overrides(keys, values, separators):
    """`key=value` overrides over a valid config: a bad one is one line naming the override or the key."""
    overrides = [f"{key}{sep}{value}" for key, value, sep in zip(keys, values, separators)]
    with workdir() as root:
        path = _write(root, CONFIG_SEEDS[0])
        try:
            load_config(path, overrides)
        except UserError as exc:
            message = str(exc)
            assert len(message.splitlines()) == 1, message
            assert "override" in message or str(path) in message, message


@pytest.fixture
def small_builtins(monkeypatch):
    """Only nli.yaml as the built-in specs: reading all of them costs 0.3 s a case. mnli and xnli
    (which the seeds include) are there."""
    monkeypatch.setattr(registry_module, "builtin_spec_files", lambda: [SPECS / "nli.yaml"])


SPEC_SEEDS = [USER_SPEC.encode(), (SPECS / "nli.yaml").read_bytes(), (SPECS / "paraphrase.yaml").read_bytes()]


@given(data=mutants(SPEC_SEEDS))
def test_fuzz_task_spec_loader(small_builtins, data):
    with workdir() as root:
        assert_one_line_error_or_loads(lambda path: load_registry([path]), _write(root, data))


STUDY_SEEDS = [STUDY.encode(), *(path.read_bytes() for path in STUDIES)]


@given(data=mutants(STUDY_SEEDS))
def test_fuzz_study_loader(data):
    with workdir() as root:
        assert_one_line_error_or_loads(lambda path: load_study(path, root / "home"), _write(root, data))
