import gzip
import json

import pytest

from xstilts.data.io import numbered_lines
from xstilts.data.loading import load_examples
from xstilts.errors import UserError
from xstilts.tasks.registry import load_registry
from xstilts.tasks.spec import TaskSpec

REGISTRY = load_registry()


def test_mnli_jsonl(tmp_path):
    rows = [
        {"premise": "A man sleeps.", "hypothesis": "A person rests.", "label": "entailment"},
        {"premise": "A cat.", "hypothesis": "A dog.", "label": 2},
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    examples = load_examples(REGISTRY.get("mnli"), "train", "en", tmp_path)
    assert [(e["text_a"], e["text_b"], e["label"]) for e in examples] == [
        ("A man sleeps.", "A person rests.", "entailment"),
        ("A cat.", "A dog.", "contradiction"),
    ]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"premise": "a", "hypothesis": "b"', r"train.jsonl:2: invalid JSON"),
        ('{"premise": "a", "label": "neutral"}', r"train.jsonl:2: missing field\(s\) hypothesis"),
        ('{"premise": "a", "hypothesis": "b", "label": "entailmnet"}', r"train.jsonl:2: unknown label 'entailmnet'.*did you mean 'entailment'"),
        ('{"premise": "a", "hypothesis": "b", "label": 7}', r"train.jsonl:2: label index 7 out of range"),
        ("[1, 2]", r"train.jsonl:2: expected a JSON object"),
    ],
)
def test_mnli_malformed_lines_name_file_and_line(tmp_path, line, message):
    good = json.dumps({"premise": "a", "hypothesis": "b", "label": "neutral"})
    (tmp_path / "train.jsonl").write_text(good + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=message):
        load_examples(REGISTRY.get("mnli"), "train", "en", tmp_path)


def test_xtreme_pair_tsv_xnli_and_pawsx(tmp_path):
    (tmp_path / "test-de.tsv").write_text("Ein Hund.\tEin Tier.\tentailment\r\nA\tB\tneutral\n", encoding="utf-8")
    examples = load_examples(REGISTRY.get("xnli"), "test", "de", tmp_path)
    assert [e["label"] for e in examples] == ["entailment", "neutral"] and examples[0]["text_b"] == "Ein Tier."
    (tmp_path / "dev-fr.tsv").write_text("a\tb\t1\nc\td\t0\n", encoding="utf-8")
    assert [e["label"] for e in load_examples(REGISTRY.get("pawsx"), "dev", "fr", tmp_path)] == ["1", "0"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("a\tb\tentailment\nc\td\n", r"test-de.tsv:2: expected 3 tab-separated fields"),
        ("a\tb\tentailment\nc\td\tyes\n", r"test-de.tsv:2: unknown label 'yes'"),
        ("\n", r"test-de.tsv: no examples"),
    ],
)
def test_xtreme_pair_tsv_malformed(tmp_path, content, message):
    (tmp_path / "test-de.tsv").write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        load_examples(REGISTRY.get("xnli"), "test", "de", tmp_path)


def test_unlabelled_test_tsv_is_read_for_prediction_only(tmp_path):
    """XTREME withholds XNLI / PAWS-X test labels: the test tsv has no label column."""
    (tmp_path / "test-de.tsv").write_text("Ein Hund.\tEin Tier.\nA\tB\n", encoding="utf-8")
    examples = load_examples(REGISTRY.get("xnli"), "test", "de", tmp_path, allow_unlabelled=True)
    assert [(e["text_a"], e["text_b"], e["label"]) for e in examples] == [("Ein Hund.", "Ein Tier.", None), ("A", "B", None)]
    with pytest.raises(UserError, match=r"test-de.tsv: no labels \(an unlabelled test file\).*not trained on"):
        load_examples(REGISTRY.get("xnli"), "test", "de", tmp_path)
    (tmp_path / "test-de.tsv").write_text("a\tb\nc\td\tneutral\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"test-de.tsv:2: expected 2 tab-separated fields \(text_a, text_b\) as on the first line"):
        load_examples(REGISTRY.get("xnli"), "test", "de", tmp_path, allow_unlabelled=True)


def test_missing_file_unknown_language_and_split(tmp_path):
    with pytest.raises(UserError, match=r"test-de.tsv: file not found"):
        load_examples(REGISTRY.get("xnli"), "test", "de", tmp_path)
    with pytest.raises(UserError, match="no language 'ja'"):
        load_examples(REGISTRY.get("xnli"), "test", "ja", tmp_path)
    with pytest.raises(UserError, match="no split 'validation'"):
        load_examples(REGISTRY.get("xnli"), "validation", "de", tmp_path)


def test_hub_adapter_reads_hub_schema_from_a_local_hub_folder(tmp_path):
    """The real `datasets.load_dataset` path, offline: a folder laid out like the hub's xnli."""
    hub = tmp_path / "xnli-hub"
    (hub / "de").mkdir(parents=True)
    rows = [
        {"premise": "Ein Hund.", "hypothesis": "Ein Tier.", "label": 0},
        {"premise": "no", "hypothesis": "consensus", "label": -1},  # the hub's "no gold label": skipped
        {"premise": "x", "hypothesis": "y", "label": 2},
    ]
    (hub / "de" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (hub / "README.md").write_text(
        "---\nconfigs:\n- config_name: de\n  data_files:\n  - split: test\n    path: de/test.jsonl\n---\n", encoding="utf-8"
    )
    fields = REGISTRY.get("xnli").model_dump()
    fields["hub"]["id"] = str(hub)
    spec = TaskSpec.model_validate(fields)
    examples = load_examples(spec, "test", "de", data_dir=None)
    assert [(e["text_a"], e["text_b"], e["label"]) for e in examples] == [
        ("Ein Hund.", "Ein Tier.", "entailment"),
        ("x", "y", "contradiction"),
    ]


def hub_folder(root, config, split, rows):
    """A local folder laid out like a hub dataset with one config and one jsonl split."""
    (root / config).mkdir(parents=True)
    (root / config / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "README.md").write_text(
        f"---\nconfigs:\n- config_name: {config}\n  data_files:\n  - split: {split}\n    path: {config}/{split}.jsonl\n---\n",
        encoding="utf-8",
    )
    return root


@pytest.mark.parametrize(
    "task, row, expected",
    [
        ("hellaswag", {"ctx_a": "A man", "ctx_b": "then", "endings": ["a", "b", "c", "d"], "label": "2"},
         ("A man", ["then a", "then b", "then c", "then d"], 2)),
        ("cosmosqa", {"id": "q1", "context": "C", "question": "Q?", "answer0": "w", "answer1": "x",
                      "answer2": "y", "answer3": "z", "label": 1}, ("C", ["w", "x", "y", "z"], 1)),
    ],
)
def test_hub_multiple_choice_rows_go_through_the_local_reader(tmp_path, task, row, expected):
    fields = REGISTRY.get(task).model_dump()
    # One folder name per task: datasets caches a local folder by its name and data file names.
    fields["hub"].update(id=str(hub_folder(tmp_path / f"{task}-hub", "default", "validation", [row])), config="default")
    (example,) = load_examples(TaskSpec.model_validate(fields), "dev", "en", data_dir=None)
    assert (example["context"], example["choices"], example["label"]) == expected


def test_hub_class_ids_become_the_datasets_own_label_names(tmp_path):
    """PAN-X on the hub stores tag ids whose order is the dataset's, not the spec's."""
    import datasets

    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    folder = tmp_path / "panx-hub"
    datasets.Dataset.from_dict({"tokens": [["Angela", "Merkel", "spricht"]], "ner_tags": [[1, 2, 0]]},
                               features=features).save_to_disk(str(folder / "saved"))
    loaded = datasets.load_from_disk(str(folder / "saved"))
    from xstilts.data.hub import class_label_names

    row = class_label_names(dict(loaded[0]), loaded.features)
    assert row["ner_tags"] == ["B-PER", "I-PER", "O"]


def test_invalid_utf8_names_the_file_and_its_first_bad_line(tmp_path):
    content = "Ein Hund.\tEin Tier.\tentailment\nA\tB\tneutral\n".encode() + b"caf\xe9\tB\tneutral\n"
    (tmp_path / "test-de.tsv").write_bytes(content)
    with pytest.raises(UserError, match=r"test-de.tsv:3: not valid UTF-8 \(invalid continuation byte\)"):
        load_examples(REGISTRY.get("xnli"), "test", "de", tmp_path)
    (tmp_path / "test-de.tsv.gz").write_bytes(gzip.compress(content))
    with pytest.raises(UserError, match=r"test-de.tsv.gz:3: not valid UTF-8"):
        list(numbered_lines(tmp_path / "test-de.tsv.gz"))


def test_invalid_utf8_in_a_json_file_names_the_file(tmp_path):
    rows = {"version": "1", "data": [{"title": "t", "paragraphs": []}]}
    (tmp_path / "train.jsonl").write_bytes(json.dumps(rows).encode() + b"\n" + b'{"premise": "\xff"}\n')
    with pytest.raises(UserError, match=r"train.jsonl:2: not valid UTF-8"):
        load_examples(REGISTRY.get("mnli"), "train", "en", tmp_path)
