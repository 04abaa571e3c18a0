"""The malformed-file corpus (tests/fixtures/malformed/<reader>/<what is wrong>.<ext>): inputs
the fuzzers found crashing a reader, and one representative of each kind of malformation.

Each corpus file replaces the file of its reader's valid set (tests/fuzz_cases.py) that ends
with the same suffix, and reading must give one `UserError` line naming that file. Loading
a task (`load_examples`) adds the checks over a whole split: an empty split, and a
language whose file uses labels outside the task's label set.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from fuzz_cases import READER_CASES, REGISTRY, check_user_error, write_files

from xstilts.data.hub import _hub_examples, read_rows_with
from xstilts.data.loading import load_examples
from xstilts.errors import UserError

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "malformed"
# One folder per reader (the corpus's other folders hold configs, specs, studies, score inputs).
CORPUS_FILES = sorted(path for reader in READER_CASES for path in (CORPUS / reader).glob("*") if path.is_file())


def replaced_file(reader: str, corpus_file: Path) -> str:
    """The file of the reader's valid set that the corpus file stands in for: the primary
    file when its suffix matches, else the one sibling with the corpus file's suffix."""
    case = READER_CASES[reader]
    names = [case.path, *sorted(set(case.files) - {case.path})]
    matches = [name for name in names if name.endswith("".join(corpus_file.suffixes[-1:]))]
    assert matches, f"{corpus_file}: no file of {reader}'s set ends with {corpus_file.suffix}"
    return matches[0]


def test_the_corpus_covers_every_reader():
    assert {path.parent.name for path in CORPUS_FILES} == set(READER_CASES)
    assert len(CORPUS_FILES) >= 2 * len(READER_CASES)


@pytest.mark.parametrize("corpus_file", CORPUS_FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_a_malformed_file_gives_one_line_naming_it(corpus_file):
    reader = corpus_file.parent.name
    case = READER_CASES[reader]
    target = replaced_file(reader, corpus_file)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_files(folder, case.files | {target: corpus_file.read_bytes()})
        with pytest.raises(UserError) as error:
            examples = case.read(folder / case.path, case.spec)
            if not examples:  # as data.loading.load_examples refuses an empty split
                raise UserError(f"{folder / case.path}: no examples")
        check_user_error(str(error.value), folder)
        assert str(folder / target) in str(error.value) or str(folder / case.path) in str(error.value)


LAID_OUT = sorted(name for name, case in READER_CASES.items() if case.split is not None)


@pytest.mark.parametrize("reader", LAID_OUT)
@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf\n"], ids=["empty", "blank-lines", "bom-only"])
def test_an_empty_split_is_one_line_naming_its_file(reader, content):
    if reader == "tatoeba_v1" and content:
        pytest.skip("Tatoeba keeps blank lines as (empty) sentence pairs, so that the two files stay aligned")
    case = READER_CASES[reader]
    # Every file the split is read from (ANLI's split is one file in each round's folder).
    split_files = {name: content for name in case.files if Path(name).name == Path(case.path).name}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_files(folder, case.files | split_files)
        with pytest.raises(UserError) as error:
            load_examples(case.spec, case.split, case.language, folder)
        check_user_error(str(error.value), folder)


@pytest.mark.parametrize("reader", LAID_OUT)
def test_a_valid_split_loads(reader):
    case = READER_CASES[reader]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_files(folder, case.files)
        assert load_examples(case.spec, case.split, case.language, folder, allow_unlabelled=True)


@pytest.mark.parametrize(
    ("task", "files", "bad_language", "message"),
    [
        # PAN-X: the German file tags MISC, which the task's (and English's) label set lacks.
        ("panx", {"train-en.tsv": "Paris\tB-LOC\nis\tO\n", "train-de.tsv": "Paris\tB-LOC\nEuro\tB-MISC\n"}, "de",
         r"train-de.tsv:2: unknown label 'B-MISC' for task 'panx'"),
        # XNLI: the French file writes its labels in French.
        ("xnli", {"train-en.tsv": "a\tb\tentailment\n", "train-fr.tsv": "a\tb\timplication\n"}, "fr",
         r"train-fr.tsv:1: unknown label 'implication' for task 'xnli'"),
    ],
)
def test_a_language_whose_labels_differ_from_the_tasks_is_refused(task, files, bad_language, message):
    spec = REGISTRY.get(task)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_files(folder, {name: text.encode() for name, text in files.items()})
        assert load_examples(spec, "train", "en", folder)
        with pytest.raises(UserError, match=message) as error:
            load_examples(spec, "train", bad_language, folder)
        check_user_error(str(error.value), folder)


def test_xquad_r_sentence_breaks_as_start_end_objects_read():
    """`_sentences` accepts `{start, end}` objects; the answer's sentence lookup unpacked them as
    pairs and compared the key names with the offset (TypeError, found by the fuzzer)."""
    case = READER_CASES["xquad_r_json"]
    document = json.loads(case.files[case.path])
    document["data"][0]["paragraphs"][0]["sentence_breaks"] = [{"start": 0, "end": 15}, {"start": 16, "end": 32}]
    with tempfile.TemporaryDirectory() as tmp:
        write_files(Path(tmp), {case.path: json.dumps(document).encode()})
        [example] = case.read(Path(tmp) / case.path, case.spec)
    assert example["sentences"] == ["Tesla was born.", "He died in 1943."]
    assert example["questions"][0]["answer_sentence"] == 1


class HubRows(list):
    """Rows as `datasets` yields them, with the dataset's `features`."""

    features: dict = {}


def hub_rows(rows: list[dict], features: dict) -> HubRows:
    wrapped = HubRows(rows)
    wrapped.features = features
    return wrapped


def _class_label(task: str):
    import datasets

    return datasets.ClassLabel(names=REGISTRY.get(task).labels)


# Hub rows the fuzzer found crashing the row mapping (KeyError, ValueError) or passing through
# as examples no format can featurise (a None text, a label-less pair, tokens without labels).
HUB_CASES = {
    "column-missing": ("xnli", [{"premise": "A.", "label": 0}], r"row 0: no column\(s\) 'hypothesis'"),
    "class-id-out-of-range": ("xnli", [{"premise": "A.", "hypothesis": "B.", "label": 3}], r"row 0: column 'label'"),
    "text-none": ("xnli", [{"premise": "A.", "hypothesis": None, "label": 0}], r"row 0: text_b must be text"),
    "label-column-absent": ("xnli", [{"premise": "A.", "hypothesis": "B."}], r"row 0: no label"),
    "tokens-none": ("panx", [{"tokens": None, "ner_tags": [0]}], r"row 0: tokens must be a list of strings"),
    "labels-count-differs": ("panx", [{"tokens": ["Paris", "is"], "ner_tags": [5]}], r"row 0: expected one label per token"),
    "tag-id-out-of-range": ("panx", [{"tokens": ["Paris"], "ner_tags": [99]}], r"row 0: column 'ner_tags'"),
}


@pytest.mark.parametrize("case", sorted(HUB_CASES))
def test_malformed_hub_rows_give_one_line(case):
    import datasets

    task, rows, message = HUB_CASES[case]
    label = _class_label(task)
    features = {"label": label} if task == "xnli" else {"ner_tags": datasets.Sequence(label)}
    with pytest.raises(UserError, match=message) as error:
        _hub_examples(hub_rows(rows, features), REGISTRY.get(task), "train", "en", "hub dataset 'x'")
    assert len(str(error.value).splitlines()) == 1 and str(error.value).startswith("hub dataset 'x' row 0: ")


def test_hub_rows_for_a_local_reader_with_a_none_text_give_one_line():
    rows = [{"premise": None, "choice1": "a", "choice2": "b", "question": "cause", "label": 0, "idx": 1}]
    with pytest.raises(UserError, match=r"^hub dataset 'x': row:1: the context must be text, got NoneType") as error:
        read_rows_with("copa_jsonl", rows, REGISTRY.get("copa"), "hub dataset 'x'")
    assert len(str(error.value).splitlines()) == 1


@pytest.mark.parametrize("task", ["copa", "xnli"])
def test_an_empty_hub_split_is_one_line(task, monkeypatch):
    """Both hub paths (rows parsed by a local reader, rows mapped by columns) refuse an empty split."""
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: hub_rows([], {}))
    language = "de" if task == "xnli" else "en"
    with pytest.raises(UserError, match=r"^task .*|^hub dataset .*: no examples$") as error:
        load_examples(REGISTRY.get(task), "train", language, None)
    assert len(str(error.value).splitlines()) == 1 and str(error.value).endswith("no examples")
