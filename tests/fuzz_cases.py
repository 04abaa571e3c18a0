"""Every data reader with a small valid file set, the spec it is read for, and a check that
its examples are well formed: what the fuzz tests mutate and the malformed corpus replays.

`READER_CASES[name]` is a `ReaderCase`: `files` maps a file name (relative to a data folder)
to its valid bytes, `path` is the file the reader is given, `read(path, spec)` calls it.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from xstilts.data.io import Example
from xstilts.data.readers import READERS, get_reader
from xstilts.data.retrieval import read_mewslix_candidates
from xstilts.tasks.registry import load_registry
from xstilts.tasks.spec import TaskSpec

REGISTRY = load_registry()


def jsonl(*rows: dict) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def with_options(task: str, **options: Any) -> TaskSpec:
    spec = REGISTRY.get(task)
    return spec.model_copy(update={"local": spec.local.model_copy(update={"options": {**spec.local.options, **options}})})


def ccg_spec() -> TaskSpec:
    return REGISTRY.get("ccg").model_copy(update={"labels": ["<UNK>", "NP", "S\\NP", "(S\\NP)/NP"], "labels_file": None})


@dataclass
class ReaderCase:
    task: str
    files: dict[str, bytes]
    path: str
    spec: TaskSpec | None = None
    read: Callable[[Path, TaskSpec], list[Example]] | None = None
    # file names worth mutating (default: every file of the set)
    mutable: list[str] = field(default_factory=list)
    # `.gz` files: the fuzzer mutates the text before compressing it, or the compressed bytes
    compressed: bool = False
    # the split and language whose file `path` is under the spec's `local.path` (None: not laid out so)
    split: str | None = "train"
    language: str = "en"

    def __post_init__(self) -> None:
        self.spec = self.spec or REGISTRY.get(self.task)
        self.read = self.read or get_reader(self.spec.local.reader, self.spec)
        self.mutable = self.mutable or sorted(self.files)


SQUAD = {
    "version": "1.1",
    "data": [{"title": "T", "paragraphs": [
        {"context": "Tesla was born in Smiljan. He died in 1943.",
         "qas": [{"id": "q1", "question": "Where was Tesla born?", "answers": [{"text": "Smiljan", "answer_start": 18}]},
                 {"id": "q2", "question": "When did he die?", "answers": [{"text": "1943", "answer_start": 38}]}]}]}],
}
XQUAD_R = {
    "data": [{"paragraphs": [
        {"context": "Tesla was born. He died in 1943.", "sentence_breaks": [[0, 15], [16, 32]],
         "qas": [{"id": "q1", "question": "When?", "answers": [{"text": "1943", "answer_start": 27}]}]}]}],
}
MEWSLIX = {
    "context": {"document_id": "d1", "language": "de", "text": "Merkel sprach. Scholz hörte.",
                "sentence_spans": [{"start": 0, "end": 14}, {"start": 15, "end": 28}]},
    "mentions": [{"example_id": "de-1", "entity_id": "Q567", "mention_span": {"start": 0, "end": 6, "text": "Merkel"}},
                 {"example_id": "de-2", "entity_id": "Q1", "mention_span": {"start": 15, "end": 21, "text": "Scholz"}}],
}
CHECKLIST = (
    "Field\ten\tde\tde-placeholders\n"
    "Name\tAnimal vs Vehicle\tTier\t\n"
    "Capability\tNER\tNER\t\n"
    "Context\t{first_name} has a {animal} and a {vehicle}.\t{first_name} hat ein {animal} und ein {vehicle}.\t\n"
    "Question\tWhat animal does {first_name} have?\tWelches Tier hat {first_name}?\t\n"
    "Answer\t{animal}\t{animal}\t\n"
    "animal\tdog\tHund\t\n"
    "animal\tcat\tKatze\t\n"
    "vehicle\tcar\tAuto\t\n"
    "\n"
)
CONLLU = (
    "# sent_id = s1\n# text = Don't go.\n"
    "1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "1\tDo\tdo\tAUX\t_\t_\t3\taux\t_\t_\n"
    "2\tn't\tnot\tPART\t_\t_\t3\tadvmod\t_\t_\n"
    "3\tgo\tgo\tVERB\t_\t_\t0\troot\t_\tSpaceAfter=No\n"
    "4\t.\t.\tPUNCT\t_\t_\t3\tpunct\t_\t_\n"
    "\n"
    "1\tYes\tyes\tINTJ\t_\t_\t0\troot\t_\t_\n"
    "\n"
)

READER_CASES: dict[str, ReaderCase] = {
    "mnli_jsonl": ReaderCase("mnli", {"train.jsonl": jsonl(
        {"premise": "A man sleeps.", "hypothesis": "A person rests.", "label": "entailment", "pairID": "p1"},
        {"premise": "A cat.", "hypothesis": "A dog.", "label": 2})}, "train.jsonl"),
    "xtreme_pair_tsv": ReaderCase("xnli", {"test-de.tsv": b"Ein Hund.\tEin Tier.\tentailment\nA\tB\tneutral\r\nC\tD\tcontradiction\n"},
                                  "test-de.tsv", split="test", language="de"),
    "single_tsv": ReaderCase("synth-topic", {"train-en.tsv": b"pasta and bread\tfood\nthe mountain\tnature\n"}, "train-en.tsv"),
    "xtreme_tagging_tsv": ReaderCase("panx", {"train-de.tsv": b"Paris\tB-LOC\nist\tO\nsch\xc3\xb6n\tO\n\nAngela\tB-PER\nMerkel\tI-PER\n"},
                                     "train-de.tsv", language="de"),
    "conllu": ReaderCase("udpos-conllu", {"UD_German/de_gsd-ud-train.conllu": CONLLU.encode()}, "UD_German/de_gsd-ud-train.conllu",
                         language="de"),
    "conllu_gz": ReaderCase("udpos-conllu", {"UD_German/de_gsd-ud-train.conllu.gz": gzip.compress(CONLLU.encode(), mtime=0)},
                            "UD_German/de_gsd-ud-train.conllu.gz", compressed=True, language="de"),
    "squad_json": ReaderCase("squad", {"train-v1.1.json": json.dumps(SQUAD, indent=1).encode()}, "train-v1.1.json"),
    "copa_jsonl": ReaderCase("copa", {"train.jsonl": jsonl(
        {"premise": "The man broke his toe.", "choice1": "He dropped a hammer.", "choice2": "He sang.",
         "question": "cause", "label": 0, "idx": 1},
        {"premise": "It rained.", "choice1": "The grass got wet.", "choice2": "The sun rose.",
         "question": "effect", "label": 0, "idx": 2})}, "train.jsonl"),
    "hellaswag_jsonl": ReaderCase("hellaswag", {"hellaswag_train.jsonl": jsonl(
        {"ind": 4, "ctx_a": "A man sits.", "ctx_b": "He", "endings": ["eats.", "runs.", "sleeps.", "sings."], "label": 2})},
        "hellaswag_train.jsonl"),
    "cosmosqa_csv": ReaderCase("cosmosqa", {"train.csv": (
        "id,context,question,answer0,answer1,answer2,answer3,label\r\n"
        'c1,"It rained, so we stayed.",Why?,Rain,Sun,"Wind, cold",None,0\r\n'
        "c2,We ate.,What?,Food,Air,Water,Sand,0\r\n").encode()}, "train.csv"),
    "commonsenseqa_jsonl": ReaderCase("commonsenseqa", {"train_rand_split.jsonl": jsonl(
        {"id": "a1", "answerKey": "B", "question": {"stem": "Where?", "choices": [
            {"label": "A", "text": "bank"}, {"label": "B", "text": "library"}]}},
        {"id": "a2", "answerKey": "A", "question": "What?", "choices": {"label": ["A", "B"], "text": ["x", "y"]}})},
        "train_rand_split.jsonl"),
    "siqa_jsonl": ReaderCase("siqa", {
        "train.jsonl": jsonl({"context": "C1", "question": "Q1?", "answerA": "a", "answerB": "b", "answerC": "c"},
                             {"context": "C2", "question": "Q2?", "answerA": "x", "answerB": "y", "answerC": "z"}),
        "train-labels.lst": b"1\n3\n"}, "train.jsonl"),
    "tatoeba_v1": ReaderCase("tatoeba", {"tatoeba.deu-eng.deu": b"Hallo.\nWie geht's?\n",
                                         "tatoeba.deu-eng.eng": b"Hello.\nHow are you?\n"}, "tatoeba.deu-eng.deu",
                         split="test", language="de"),
    "bucc": ReaderCase("bucc2018", {"de-en.dev.de": b"de-1\tHallo.\nde-2\tTsch\xc3\xbcss.\n",
                                    "de-en.dev.en": b"en-1\tHello.\nen-2\tBye.\n",
                                    "de-en.dev.gold": b"de-1\ten-1\nde-2\ten-2\n"}, "de-en.dev.de",
                       split="dev", language="de"),
    "xquad_r_json": ReaderCase("lareqa", {"de.json": json.dumps(XQUAD_R).encode()}, "de.json", split="test", language="de"),
    "mewslix_jsonl": ReaderCase("mewslix", {"wikinews_mentions-dev.jsonl": jsonl(MEWSLIX)}, "wikinews_mentions-dev.jsonl", split="dev", language="de"),
    "snli_jsonl": ReaderCase("snli", {"snli_1.0_train.jsonl": jsonl(
        {"sentence1": "A dog.", "sentence2": "An animal.", "gold_label": "entailment", "pairID": "s1"},
        {"sentence1": "A dog.", "sentence2": "A cat.", "gold_label": "-", "pairID": "s2"})}, "snli_1.0_train.jsonl"),
    "anli_jsonl": ReaderCase("anli", {
        f"{r}/dev.jsonl": jsonl({"uid": f"{r}-1", "context": "A dog.", "hypothesis": "An animal.", "label": "e"})
        for r in ("R1", "R2", "R3")}, "R1/dev.jsonl", split="dev"),
    "qqp_tsv": ReaderCase("qqp", {"train.tsv": (
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t1\t2\tHow?\tWhy?\t0\n2\t3\t4\tWhat?\tWhat is it?\t1\n").encode()},
        "train.tsv", spec=with_options("qqp", skip_malformed=False)),
    "paws_tsv": ReaderCase("paws", {"train.tsv": b"id\tsentence1\tsentence2\tlabel\n1\tA b.\tB a.\t0\n2\tC.\tC.\t1\n"}, "train.tsv"),
    "ccg_tsv": ReaderCase("ccg", {"train.tsv": b"John runs\tNP S\\NP\nJohn sees Mary\tNP (S\\NP)/NP NP\n"}, "train.tsv",
                          spec=ccg_spec()),
    "text_lines": ReaderCase("mlm-multilingual", {"en.txt": b"One sentence.\nAnother one.\n"}, "en.txt", split=None),
    "multichecklist_tsv": ReaderCase(
        "multichecklist", {"checklist_templates.tsv": CHECKLIST.encode()}, "checklist_templates.tsv",
        spec=with_options("multichecklist", samples=2), split="test", language="de",
        read=lambda path, spec: get_reader("multichecklist_tsv", spec)(path, spec, language="de")),
    # Not a registered reader, but read from user files the same way (Mewsli-X's entities).
    "mewslix_candidates": ReaderCase("mewslix", {"candidate_set_entities.jsonl": jsonl(
        {"entity_id": "Q567", "description": "Angela Merkel is a politician. She was chancellor.",
         "sentence_spans": [{"start": 0, "end": 30}, {"start": 31, "end": 50}]})}, "candidate_set_entities.jsonl", split=None,
        read=lambda path, spec: [{"id": key, "text": value} for key, value in read_mewslix_candidates(path).items()]),
}
assert set(READERS) <= set(READER_CASES), f"readers without a fuzz case: {set(READERS) - set(READER_CASES)}"


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def check_examples(name: str, examples: Any, spec: TaskSpec) -> None:
    """Assert that a reader's successful result is well formed for its format."""
    assert isinstance(examples, list), name
    labels = set(spec.labels or [])
    for example in examples:
        assert isinstance(example, dict) and isinstance(example["id"], str), example
        fmt = spec.format.value
        if name == "mewslix_candidates":
            assert isinstance(example["text"], str)
        elif fmt in ("pair_classification", "single_classification"):
            assert isinstance(example["text_a"], str) and isinstance(example.get("text_b", ""), str), example
            assert example["label"] is None or example["label"] in labels, example
        elif fmt == "tagging":
            assert _is_str_list(example["tokens"]) and example["tokens"], example
            assert example["labels"] is None or (len(example["labels"]) == len(example["tokens"])
                                                 and set(example["labels"]) <= labels), example
        elif fmt == "multiple_choice":
            assert isinstance(example["context"], str) and isinstance(example["question"], str), example
            assert _is_str_list(example["choices"]) and 0 <= example["label"] < len(example["choices"]), example
        elif fmt == "span_qa":
            assert isinstance(example["context"], str) and isinstance(example["question"], str), example
            for answer in example["answers"]:
                start = answer["answer_start"]
                assert example["context"][start:start + len(answer["text"])] == answer["text"], example
        elif fmt == "mlm":
            assert isinstance(example["text"], str) and example["text"].strip(), example
        elif name == "tatoeba_v1":
            assert isinstance(example["source"], str) and isinstance(example["target"], str)
        elif name == "bucc":
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in {**example["sources"], **example["targets"]}.items())
        elif name == "xquad_r_json":
            assert isinstance(example["context"], str) and _is_str_list(example["sentences"]), example
            for question in example["questions"]:
                assert isinstance(question["question"], str) and 0 <= question["answer_sentence"] < len(example["sentences"])
        elif name == "mewslix_jsonl":
            assert isinstance(example["query"], str) and isinstance(example["language"], str), example


def check_user_error(message: str, folder: Path) -> None:
    """One line that names a file of the data folder (the CLI prints exactly this)."""
    assert len(message.splitlines()) == 1 and message == message.strip(), repr(message)
    assert str(folder) in message, f"the error names no data file: {message!r}"


@st.composite
def byte_mutants(draw, seeds: list[bytes], *, pieces: list[bytes], long_pieces: list[bytes], empties: list[bytes],
                 max_delete: int, line_ops: bool = False) -> bytes:
    """A seed document with one to three byte-level mutations: truncation, an inserted piece
    (or random bytes), a deletion, a replaced byte, a BOM, a very long line, the whole file
    replaced by an `empties` entry and, with `line_ops`, a duplicated or re-indented line."""
    data = bytearray(draw(st.sampled_from(seeds)))
    ops = ["truncate", "insert", "delete", "replace", "bom", "long_line", "empty"] + (["dup_line", "indent"] if line_ops else [])
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(ops))
        at = draw(st.integers(0, len(data)))
        if op == "truncate":
            data = data[:at]
        elif op == "insert":
            data[at:at] = draw(st.sampled_from(pieces) | st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, max_delete))]
        elif op == "replace" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == "bom":
            data[0:0] = b"\xef\xbb\xbf"
        elif op == "long_line":
            data[at:at] = draw(st.sampled_from(long_pieces)) * draw(st.sampled_from([1000, 100_000]))
        elif op == "empty":
            data = bytearray(draw(st.sampled_from(empties)))
        elif op in ("dup_line", "indent"):
            lines = bytes(data).split(b"\n")
            index = draw(st.integers(0, len(lines) - 1))
            if op == "dup_line":
                lines.insert(index, lines[index])
            else:
                lines[index] = b" " * draw(st.integers(1, 3)) + lines[index]
            data = bytearray(b"\n".join(lines))
    return bytes(data)
