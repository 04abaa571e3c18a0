"""Subsets declared in a task spec: selection, carrying by item index, scores and errors."""

from __future__ import annotations

import textwrap

import pytest

from xstilts.errors import UserError
from xstilts.evaluation.subsets import subset_indices, subset_rows
from xstilts.tasks.registry import load_registry

SPEC = """
tasks:
  - name: toy-paws
    version: 1
    format: pair_classification
    metric: accuracy
    labels: ["0", "1"]
    languages: [en, de, fr]
    local: {{reader: xtreme_pair_tsv, path: "{{split}}-{{language}}.tsv", options: {{extra_columns: item_type}}}}
    subsets:
{subsets}
"""

# English: item types and labels; the same items (by index) in de and fr.
TYPES = ["swap", "plain", "swap", "plain", "swap", "plain"]
LABELS = ["0", "1", "0", "1", "1", "0"]


def examples(language: str, n: int = 6, with_ids: bool = True) -> list[dict]:
    rows = [{"text_a": f"a{i}", "text_b": f"b{i}", "label": LABELS[i % 6], "item_type": TYPES[i % 6]} for i in range(n)]
    if language != "en":  # other languages carry no item types: the subset comes from English
        rows = [{key: value for key, value in row.items() if key != "item_type"} for row in rows]
    if with_ids:
        rows = [{"id": f"{language}-{i}", **row} for i, row in enumerate(rows)]
    return rows


def load_spec(tmp_path, subsets: str, name: str = "toy-paws"):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(subsets=textwrap.indent(textwrap.dedent(subsets).strip(), " " * 6)), encoding="utf-8")
    return load_registry([path]).get(name), path


def rows_of(spec, language, predictions, data=None, tmp_path=None):
    data = data or {("test", lang): examples(lang) for lang in ("en", "de", "fr")}
    rows = subset_rows(
        spec, "test", language, data["test", language], predictions, load=lambda split, lang: data[split, lang],
        data_dir=tmp_path, run_id="r", phase="target",
    )
    return {(row.split, row.metric): row.value for row in rows}


def test_column_subset_scores_exactly_and_carries_to_other_languages(tmp_path):
    spec, _ = load_spec(tmp_path, "adversarial: {column: item_type, values: [swap]}\nplain: {column: item_type, values: [plain]}")
    # Gold 0 1 0 1 1 0; predictions right at 0, 3, 4, 5 -> swap items {0, 2, 4}: 2 of 3; plain {1, 3, 5}: 2 of 3.
    en = rows_of(spec, "en", ["0", "0", "1", "1", "1", "0"])
    assert en == {("test/adversarial", "accuracy"): pytest.approx(200 / 3), ("test/plain", "accuracy"): pytest.approx(200 / 3)}
    # German has no item_type column: the English selection {0, 2, 4} is carried by index.
    # Predictions right at 0, 1, 2 -> swap {0, 2, 4}: 2 of 3; plain {1, 3, 5}: 1 of 3.
    de = rows_of(spec, "de", ["0", "1", "0", "0", "0", "1"])
    assert de == {("test/adversarial", "accuracy"): pytest.approx(200 / 3), ("test/plain", "accuracy"): pytest.approx(100 / 3)}


def test_ids_and_ids_file_select_by_id_or_index(tmp_path):
    (tmp_path / "hard.txt").write_text("en-1\n\nen-4\n", encoding="utf-8")
    spec, _ = load_spec(tmp_path, "hard: {ids_file: hard.txt}\nfirst: {ids: [en-0]}")
    assert rows_of(spec, "fr", ["1", "1", "1", "1", "0", "0"], tmp_path=tmp_path) == {
        ("test/hard", "accuracy"): 50.0,  # items 1 (right) and 4 (wrong)
        ("test/first", "accuracy"): 0.0,
    }
    # Without an id field, an example's id is its 0-based index.
    spec, _ = load_spec(tmp_path, "hard: {ids: ['2', '5']}")
    data = {("test", lang): examples(lang, with_ids=False) for lang in ("en", "de")}
    assert subset_indices(spec, "hard", "test", "de", data["test", "de"], lambda s, l: data[s, l], None) == [2, 5]


def test_parallel_count_mismatch_names_task_split_and_counts(tmp_path):
    spec, _ = load_spec(tmp_path, "adversarial: {column: item_type, values: [swap]}")
    data = {("test", "en"): examples("en", 6), ("test", "de"): examples("de", 5)}
    with pytest.raises(UserError, match=r"task 'toy-paws', split 'test': .*en \(6 items\).*de has 5 items"):
        rows_of(spec, "de", ["0"] * 5, data=data)


def test_unknown_column_and_empty_selection_name_the_spec_file_and_subset(tmp_path):
    spec, path = load_spec(tmp_path, "adversarial: {column: item_typ, values: [swap]}")
    with pytest.raises(UserError) as error:
        rows_of(spec, "en", ["0"] * 6)
    message = str(error.value)
    assert message.startswith(f"{path}: task 'toy-paws', subset 'adversarial': column 'item_typ'") and "item_type" in message
    assert "\n" not in message
    spec, path = load_spec(tmp_path, "adversarial: {column: item_type, values: [negation]}")
    with pytest.raises(UserError, match=rf"^{path}: task 'toy-paws', subset 'adversarial': selects no example of test-en$"):
        rows_of(spec, "de", ["0"] * 6)
    spec, path = load_spec(tmp_path, "hard: {ids: [en-0, en-9]}")
    with pytest.raises(UserError, match=r"subset 'hard': 1 id\(s\) not in the test-en examples \(first: 'en-9'\)"):
        rows_of(spec, "en", ["0"] * 6)


def test_each_language_selects_on_its_own_examples_and_splits_limit_a_subset(tmp_path):
    spec, _ = load_spec(tmp_path, "mine: {column: text_b, values: [b1], language: each, splits: [test]}")
    data = {("test", "en"): examples("en", 6), ("test", "de"): examples("de", 3)}  # not parallel: fine with each
    assert rows_of(spec, "de", ["0", "1", "1"], data=data) == {("test/mine", "accuracy"): 100.0}
    dev = subset_rows(spec, "dev", "de", data["test", "de"], ["0"] * 3, load=None, data_dir=None, run_id="r", phase="p")
    assert dev == []


@pytest.mark.parametrize(
    "subsets, message",
    [
        ("bad: {column: item_type}", "column and values go together"),
        ("bad: {ids: [a], column: item_type, values: [x]}", "exactly one of"),
        ("bad: {ids: [a], language: xx}", "language 'xx' is not in languages"),
        ("bad: {ids: [a], splits: [train2]}", "splits \\['train2'\\] are not all in splits"),
    ],
)
def test_malformed_subsets_are_spec_errors_naming_file_and_key(tmp_path, subsets, message):
    with pytest.raises(UserError, match=rf"spec.yaml: task 'toy-paws', key '[^']*'.*{message}") as error:
        load_spec(tmp_path, subsets)
    assert "subsets.bad" in str(error.value) or "subset 'bad'" in str(error.value)


def test_subsets_stay_out_of_checkpoint_keys(tmp_path):
    from xstilts.experiments.fingerprint import task_versions

    with_subsets, _ = load_spec(tmp_path, "adversarial: {column: item_type, values: [swap]}")
    without = with_subsets.model_copy(update={"subsets": {}})
    assert task_versions([with_subsets]) == task_versions([without])
    assert "subsets" not in task_versions([with_subsets])["toy-paws"][0]


def test_extra_columns_option_keeps_item_types_as_fields(tmp_path):
    from xstilts.data.loading import load_examples

    spec, _ = load_spec(tmp_path, "adversarial: {column: item_type, values: [swap]}")
    (tmp_path / "test-en.tsv").write_text("a b\tb a\t0\tswap\nc d\tc d\t1\tplain\n", encoding="utf-8")
    (tmp_path / "test-de.tsv").write_text("x y\ty x\t0\nz w\tz w\t1\n", encoding="utf-8")
    en = load_examples(spec, "test", "en", tmp_path)
    assert [(e["text_a"], e["label"], e["item_type"]) for e in en] == [("a b", "0", "swap"), ("c d", "1", "plain")]
    # A file may lack the extra columns (German takes the subset from English), but not some lines.
    assert [sorted(e) for e in load_examples(spec, "test", "de", tmp_path)] == [["id", "label", "text_a", "text_b"]] * 2
    (tmp_path / "test-de.tsv").write_text("x y\ty x\t0\nz w\tz w\t1\tswap\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"test-de.tsv:2: expected 3 tab-separated fields \(text_a, text_b, label\) as on the first line of this file, got 4"):
        load_examples(spec, "test", "de", tmp_path)
    (tmp_path / "test-de.tsv").write_text("x y\ty x\t0\tswap\nz w\tz w\t1\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"test-de.tsv:2: expected 4 tab-separated fields \(text_a, text_b, label, item_type\), got 3"):
        load_examples(spec, "test", "de", tmp_path)
    # Without the option an extra column stays an error, as before.
    plain = spec.model_copy(update={"local": spec.local.model_copy(update={"options": {}})})
    with pytest.raises(UserError, match=r"test-en.tsv:1: expected 3 tab-separated fields"):
        load_examples(plain, "test", "en", tmp_path)


def test_extra_columns_in_headed_paws_tsv(tmp_path):
    from xstilts.data.loading import load_examples

    base = load_registry().get("paws")
    spec = base.model_copy(update={"local": base.local.model_copy(update={"options": {"extra_columns": "item_type, source"}})})
    path = tmp_path / spec.local.path.format(split="train", language="en")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id\tsentence1\tsentence2\tlabel\titem_type\tsource\n7\ta\tb\t1\tswap\twiki\n", encoding="utf-8")
    assert load_examples(spec, "train", "en", tmp_path) == [
        {"id": "7", "text_a": "a", "text_b": "b", "label": spec.labels[1], "item_type": "swap", "source": "wiki"}
    ]
    path.write_text("id\tsentence1\tsentence2\tlabel\n7\ta\tb\t1\n", encoding="utf-8")  # without them: as before
    assert load_examples(spec, "train", "en", tmp_path) == [{"id": "7", "text_a": "a", "text_b": "b", "label": spec.labels[1]}]
    path.write_text("id\tsentence1\tsentence2\tlabel\titem_type\n7\ta\tb\t1\tswap\n", encoding="utf-8")
    with pytest.raises(UserError, match=r":1: expected the header 'id sentence1 sentence2 label item_type source'"):
        load_examples(spec, "train", "en", tmp_path)


def test_check_subsets_finds_mistakes_before_any_training(tmp_path):
    from xstilts.evaluation.subsets import check_subsets

    spec, _ = load_spec(tmp_path, "adversarial: {column: item_type, values: [swap]}\nhard: {ids: [en-1], splits: [test]}")
    data = {("test", "en"): examples("en"), ("test", "de"): examples("de"), ("dev", "en"): examples("en", 3), ("dev", "de"): examples("de", 2)}
    load = lambda split, language: data[split, language]  # noqa: E731
    check_subsets(spec, ["test"], ["en", "de"], load, None)  # fine
    with pytest.raises(UserError, match=r"split 'dev': subset 'adversarial' .* en \(3 items\).* de has 2 items"):
        check_subsets(spec, ["test", "dev"], ["en", "de"], load, None)
    data["dev", "de"] = [{**row, "label": None} for row in examples("de", 2)]  # unlabelled: never scored
    check_subsets(spec, ["test", "dev"], ["en", "de"], load, None)
