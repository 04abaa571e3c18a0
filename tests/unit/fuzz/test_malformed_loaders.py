"""Regression corpus of malformed configs, studies, task specs and score inputs (issue 14).

Every file under tests/fixtures/malformed/{config,study,spec,score} is a case the loader
fuzzers found (or one of their kind): each must give its one-line UserError naming the file
and the line or key, and nothing else. Also here: YAML is loaded safely, so a config, study or
spec cannot run code, and a spec cannot name a module to import.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from xstilts.config.loading import load_config
from xstilts.errors import UserError
from xstilts.evaluation.scorer import score_predictions
from xstilts.experiments.study import load_study
from xstilts.tasks.registry import TaskRegistry, load_registry

MALFORMED = Path(__file__).resolve().parents[2] / "fixtures" / "malformed"

# file -> the message after "FILE" (a regex).
CONFIG = {
    "invalid-utf8.yaml": r":2: config file is not UTF-8 text \(invalid continuation byte at byte 30\)",
    "nul-character.yaml": r":2: invalid YAML in config file \(character U\+0000 is not allowed\)",
    "deep-nesting.yaml": r":2: invalid YAML in config file \(values nested deeper than 64 levels\)",
    "billion-laughs.yaml": r":\d+: invalid YAML in config file \(aliases expand to more than 100000 values\)",
    "alias-chain.yaml": r":66: invalid YAML in config file \(aliases nest values deeper than 64 levels\)",
    "recursive-alias.yaml": r":3: invalid YAML in config file \(an alias refers to the value that contains it\)",
    "python-tag.yaml": r":1: invalid YAML in config file \(tag !!python/object/apply:os.system is not allowed",
    "python-name-tag.yaml": r":2: invalid YAML in config file \(tag !!python/name:os.system is not allowed",
    "huge-int.yaml": r":3: invalid YAML in config file \('9{20,}\.\.\. is not a valid !!int \('Exceeds the limit",
    "bad-date.yaml": r":1: invalid YAML in config file \('2020-13-45' is not a valid !!timestamp",
    "top-level-list.yaml": r": a config file must be a mapping of keys, not a list",
    "empty.yaml": r": a config file must be a mapping of keys, not an empty document",
    "comment-only.yaml": r": a config file must be a mapping of keys, not an empty document",
    "truncated.yaml": r":9: invalid YAML in config file \(expected the node content, but found '<stream end>'\)",
    "unknown-key.yaml": r": unknown key 'target.train.lerning_rate' \(did you mean 'target.train.learning_rate'\?\)",
    "wrong-type.yaml": r": key 'seed': Input should be a valid integer \(got \[1, 2\]\)",
}
STUDY = {
    "invalid-utf8.yaml": r":1: study file is not UTF-8 text",
    "python-tag.yaml": r":2: invalid YAML in study file \(tag !!python/object/apply:os.system is not allowed",
    "axis-number-key.yaml": r": key 'axes.arm': 1 is not a dotted key such as target.train.learning_rate",
    "axis-empty-key.yaml": r": key 'axes.arm': '' is not a dotted key",
    "grid-bomb.yaml": r": the axes make 100000000 grid points; a study may have at most 10000",
    "top-level-list.yaml": r": a study file must be a mapping of keys",
    "unknown-key.yaml": r": unknown key 'axis' \(did you mean 'axes'\?\)",
    "billion-laughs.yaml": r":\d+: invalid YAML in study file \(aliases expand to more than 100000 values\)",
}
SPEC = {
    "invalid-utf8.yaml": r":2: task spec file is not UTF-8 text",
    "python-tag.yaml": r":2: invalid YAML in task spec file \(tag !!python/object/apply:os.system is not allowed",
    "entry-not-mapping.yaml": r": tasks\[0\] must be a mapping of keys \(got 'xnli'\)",
    "entry-number.yaml": r": tasks\[0\] must be a mapping of keys \(got 1\)",
    "entry-without-name.yaml": r": tasks\[0\] needs a 'name' \(got None\)",
    "include-list.yaml": r": task 't', key 'include': a task name \(got \['xnli'\]\)",
    "tasks-not-list.yaml": r": a task spec file must contain a list under 'tasks:' \(got 'tasks:' holding a string\)",
    "no-tasks.yaml": r": a task spec file must contain a list under 'tasks:' \(got no 'tasks:' key\)",
    "newline-placeholder.yaml": r": task 't', key '\(task\)': task 't', prompt 'p': unknown placeholder \{text_a rm -rf\}",
    "deep-nesting.yaml": r":1: invalid YAML in task spec file \(values nested deeper than 64 levels\)",
    "truncated.yaml": r":4: invalid YAML in task spec file \(expected ',' or '\]', but got '<stream end>'\)",
}


# case folder -> (benchmark, task, language, the message after the named file; None: it scores).
SCORE = {
    "pred-invalid-utf8": ("xtreme", "xnli", "de", "pred/xnli/test-de.tsv", r":2: not UTF-8 text \(invalid start byte at byte 8\)"),
    "pred-byte-order-mark": ("xtreme", "xnli", "de", None, None),
    "gold-json-nested-too-deeply": ("xtreme", "xquad", "de", "gold/xquad/test-de.json", r": invalid JSON \(nested too deeply\)"),
    "pred-json-huge-int": ("xtreme", "xquad", "de", "pred/xquad/test-de.json", r": invalid JSON \(Exceeds the limit \(4300 digits\)"),
    "gold-answer-text-a-number": (
        "xtreme", "xquad", "de", "gold/xquad/test-de.json",
        r": not SQuAD-format json: data\[0\].paragraphs\[0\].qas\[0\].answers\[0\].text should be a str \(got 5\)",
    ),
    "gold-question-id-a-number": (
        "xtreme", "mlqa", "de", "gold/mlqa/test-de.json",
        r": not SQuAD-format json: data\[0\].paragraphs\[0\].qas\[0\].id should be a str \(got 5\)",
    ),
    "gold-jsonl-huge-int": ("xtreme-r", "xcopa", "et", "gold/xcopa/test-et.jsonl", r":2: invalid JSON \(Exceeds the limit"),
    "gold-json-invalid-utf8": ("xtreme-r", "mewslix", "de", "gold/mewslix/test-de.json", r":1: not UTF-8 text"),
}


def assert_one_line(load, path: Path, expected: str) -> None:
    with pytest.raises(UserError) as caught:
        load(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    assert re.match(re.escape(str(path)) + expected, message), message


def test_the_corpus_is_covered():
    for folder, table in (("config", CONFIG), ("study", STUDY), ("spec", SPEC), ("score", SCORE)):
        assert sorted(p.name for p in (MALFORMED / folder).iterdir()) == sorted(table), folder


@pytest.mark.parametrize("name", sorted(CONFIG))
def test_malformed_config(name):
    assert_one_line(load_config, MALFORMED / "config" / name, CONFIG[name])


@pytest.mark.parametrize("name", sorted(STUDY))
def test_malformed_study(name, tmp_path):
    assert_one_line(lambda path: load_study(path, tmp_path / "home"), MALFORMED / "study" / name, STUDY[name])
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("name", sorted(SPEC))
def test_malformed_spec(name):
    assert_one_line(lambda path: load_registry([path]), MALFORMED / "spec" / name, SPEC[name])


@pytest.mark.parametrize("case", sorted(SCORE))
def test_malformed_score_input(case, tmp_path):
    benchmark, task, language, named, expected = SCORE[case]
    folder = MALFORMED / "score" / case
    registry = TaskRegistry([load_registry().get(task).model_copy(update={"benchmarks": {benchmark: [language]}})])
    if expected is None:
        scores = score_predictions(folder / "pred", folder / "gold", benchmark, registry=registry)
        assert scores[task]["avg_metric"] == 100.0
        return
    assert_one_line(lambda _: score_predictions(folder / "pred", folder / "gold", benchmark, registry=registry), folder / named, expected)


def test_a_folder_or_unreadable_file_is_one_line(tmp_path):
    folder = tmp_path / "exp.yaml"
    folder.mkdir()
    assert_one_line(load_config, folder, r": cannot read config file \(Is a directory\)")
    assert_one_line(lambda path: load_registry([path]), folder, r": cannot read task spec file \(Is a directory\)")


def test_a_byte_order_mark_is_allowed(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_bytes(b"\xef\xbb\xbfname: a\nmodel: m\ntarget: {task: xnli}\n")
    assert load_config(path).name == "a"


def test_override_with_a_huge_number_is_one_line():
    base = {"name": "x", "model": "m", "target": {"task": "xnli"}}
    with pytest.raises(UserError, match=r"^<overrides>: key 'seed': Unable to parse input string as an integer, exceeded maximum size \(got '9999"):
        load_config(None, ["seed=" + "9" * 5000], base=base)


# --- YAML is loaded safely: nothing in a config, study or spec runs code ----------------------


@pytest.mark.parametrize(
    "kind, text",
    [
        ("config", "name: !!python/object/apply:os.system ['touch {marker}']\nmodel: m\n"),
        ("config", "name: x\nmodel: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n"),
        ("study", "name: s\nbase: !!python/object/apply:subprocess.call [['touch', '{marker}']]\naxes: {{s: {{key: seed, values: [0]}}}}\n"),
        ("spec", "tasks:\n  - name: t\n    include: xnli\n    description: !!python/object/apply:os.system ['touch {marker}']\n"),
        ("spec", "tasks:\n  - !!python/object/apply:builtins.exec [\"open('{marker}', 'w')\"]\n"),
    ],
)
def test_python_tags_are_refused_and_run_nothing(tmp_path, kind, text):
    marker = tmp_path / "PWNED"
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text.format(marker=marker), encoding="utf-8")
    load = {
        "config": load_config,
        "study": lambda p: load_study(p, tmp_path / "home"),
        "spec": lambda p: load_registry([p]),
    }[kind]
    with pytest.raises(UserError, match=r":\d+: invalid YAML in .* \(tag !!python/\S+ is not allowed") as caught:
        load(path)
    assert len(str(caught.value).splitlines()) == 1
    assert not marker.exists()


def test_a_spec_cannot_name_a_module_to_import(tmp_path, monkeypatch):
    """Readers, formats and heads come from fixed internal tables: a spec naming `os:system` as
    its reader is refused with a near match, and no module is imported for it."""
    from xstilts.data.readers import get_reader

    spec_file = tmp_path / "mine.yaml"
    spec_file.write_text(
        "tasks:\n  - name: evil\n    include: xnli\n    local: {reader: 'os:system', path: x}\n"
        "    hub: {id: some/data, reader: 'subprocess:call'}\n",
        encoding="utf-8",
    )
    spec = load_registry([spec_file]).get("evil")
    imported = []
    real_import = importlib.import_module
    monkeypatch.setattr(importlib, "import_module", lambda name, *a: imported.append(name) or real_import(name, *a))
    with pytest.raises(UserError, match=r"^task 'evil': unknown reader 'os:system'"):
        get_reader(spec.local.reader, spec)
    with pytest.raises(UserError, match=r"^task 'evil': unknown reader 'xtreme_pair_tsv:x' \(did you mean 'xtreme_pair_tsv'\?\)"):
        get_reader("xtreme_pair_tsv:x", spec)
    with pytest.raises(UserError, match=r"unknown reader 'subprocess:call'"):
        get_reader(spec.hub.reader, spec)
    assert imported == []


def test_format_and_metric_are_closed_enums(tmp_path):
    spec_file = tmp_path / "mine.yaml"
    spec_file.write_text("tasks:\n  - name: t\n    include: xnli\n    format: os.system\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"mine.yaml: task 't', key 'format': Input should be 'pair_classification'"):
        load_registry([spec_file])


def test_a_model_path_under_an_unknown_users_home_is_one_line(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("name: s\nbase: {model: '~nosuchuser-xstilts/m', target: {task: xnli}}\naxes: {s: {key: seed, values: [0]}}\n")
    with pytest.raises(UserError):
        load_study(path, tmp_path / "home")


def test_a_labels_file_that_is_not_utf8_is_one_line(tmp_path):
    (tmp_path / "feats.txt").write_bytes(b"_\nNumber=Sing\nGender=F\xe9m\n")
    with pytest.raises(UserError, match=r"feats.txt:3: label file of task 'ud-feats' is not UTF-8 text"):
        load_registry().get("ud-feats").resolve_labels(tmp_path)


@pytest.mark.parametrize(
    "command, kind, name",
    [
        (["run"], "config", "python-tag.yaml"),
        (["run"], "config", "billion-laughs.yaml"),
        (["run"], "config", "invalid-utf8.yaml"),
        (["tasks", "--spec"], "spec", "entry-not-mapping.yaml"),
        (["tasks", "--spec"], "spec", "newline-placeholder.yaml"),
        (["study", "plan"], "study", "grid-bomb.yaml"),
        (["study", "plan"], "study", "python-tag.yaml"),
    ],
)
def test_cli_prints_the_one_line_and_exits_2_writing_nothing(monkeypatch, capsys, tmp_path, command, kind, name):
    from clitools import run

    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    path = MALFORMED / kind / name
    code, out, err = run(monkeypatch, capsys, *command, path, *([] if kind == "spec" else ["--store", store]))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert str(path) in err
    assert list(tmp_path.iterdir()) == []
