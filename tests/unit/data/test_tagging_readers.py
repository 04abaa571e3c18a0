"""Tagging readers: XTREME tsv (UDPOS, PAN-X, raw PAN-X prefixes) and CoNLL-U (UPOS, FEATS, gz, globs)."""

import gzip
import re

import pytest

from xstilts.data.loading import load_examples
from xstilts.data.tagging import read_conllu, read_xtreme_tagging_tsv
from xstilts.errors import UserError
from xstilts.tasks.registry import load_registry
from xstilts.tasks.spec import TaskSpec

REGISTRY = load_registry()
PANX = REGISTRY.get("panx")
UDPOS = REGISTRY.get("udpos")

CONLLU = """\
# newdoc id = doc1
# sent_id = s1
# text = Don't go.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVBP\tMood=Ind|Tense=Pres\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tgo\tgo\tVERB\tVB\tVerbForm=Inf\t0\troot\t_\t_
3.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t0:root\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

# sent_id = s2
1\tParis\tParis\tPROPN\tNNP\tNumber=Sing\t0\troot\t_\t_

"""


def feats_spec(column: str = "feats") -> TaskSpec:
    return TaskSpec(
        name="ud-feats", version=1, format="tagging", metric="seqeval_f1", languages=["en"],
        labels=["_", "Mood=Ind|Tense=Pres", "VerbForm=Inf", "Number=Sing"],
        local={"reader": "conllu", "path": "{language}-{split}.conllu", "options": {"column": column}},
    )


def test_panx_raw_lang_prefix_is_stripped(tmp_path):
    (tmp_path / "dev-en.tsv").write_text("en:Paris\tB-LOC\nen:is\tO\n\n\nen:en:\tO\r\nen:Bob\tB-PER\n", encoding="utf-8")
    examples = load_examples(PANX, "dev", "en", tmp_path)
    assert [(e["tokens"], e["labels"]) for e in examples] == [
        (["Paris", "is"], ["B-LOC", "O"]),
        (["en:", "Bob"], ["O", "B-PER"]),
    ]


def test_xtreme_tsv_without_prefix_keeps_colon_tokens(tmp_path):
    # Only some tokens look prefixed, so the file has no prefix and nothing is stripped.
    (tmp_path / "test-de.tsv").write_text("de:Paris\tB-LOC\nist\tO\n\nBerlin\tB-LOC\n", encoding="utf-8")
    examples = load_examples(PANX, "test", "de", tmp_path)
    assert [e["tokens"] for e in examples] == [["de:Paris", "ist"], ["Berlin"]]
    assert [e["labels"] for e in examples] == [["B-LOC", "O"], ["B-LOC"]]


def test_udpos_tsv(tmp_path):
    (tmp_path / "train-en.tsv").write_text("The\tDET\ncat\tNOUN\n.\tPUNCT\n", encoding="utf-8")
    (example,) = load_examples(UDPOS, "train", "en", tmp_path)
    assert example["tokens"] == ["The", "cat", "."] and example["labels"] == ["DET", "NOUN", "PUNCT"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("Paris\tB-LOC\nis\n", r"test-en.tsv:2: token without a label; unlabelled data"),
        ("Paris\tB-LOC\tx\n", r"test-en.tsv:1: expected `token<TAB>label`, got 3"),
        ("Paris\tB-LCO\n", r"test-en.tsv:1: unknown label 'B-LCO'.*did you mean 'B-LOC'"),
        ("\tO\n", r"test-en.tsv:1: empty token"),
        ("\n\n", r"test-en.tsv: no examples"),
    ],
)
def test_xtreme_tsv_malformed(tmp_path, content, message):
    (tmp_path / "test-en.tsv").write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        load_examples(PANX, "test", "en", tmp_path)


def test_token_only_test_file_is_read_for_prediction_only(tmp_path):
    """XTREME's PAN-X / UDPOS test files hold tokens only (labels withheld)."""
    (tmp_path / "test-en.tsv").write_text("en:Paris\nen:is\n\nen:big\n", encoding="utf-8")
    examples = load_examples(PANX, "test", "en", tmp_path, allow_unlabelled=True)
    assert [(e["tokens"], e["labels"]) for e in examples] == [(["Paris", "is"], None), (["big"], None)]
    with pytest.raises(UserError, match=r"test-en.tsv: no labels \(an unlabelled test file\)"):
        load_examples(PANX, "test", "en", tmp_path)
    (tmp_path / "test-en.tsv").write_text("Paris\nis\tO\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"test-en.tsv:2: a label in a file whose first token has none"):
        load_examples(PANX, "test", "en", tmp_path, allow_unlabelled=True)


def test_placeholder_labels_are_refused(tmp_path):
    spec = PANX.model_copy(update={"labels": ["_", *PANX.labels]})
    path = tmp_path / "test-en.tsv"
    path.write_text("Paris\t_\nis\t_\n", encoding="utf-8")
    with pytest.raises(UserError, match="placeholder '_'.*cannot be scored"):
        read_xtreme_tagging_tsv(path, spec)


def test_conllu_skips_ranges_and_empty_nodes(tmp_path):
    path = tmp_path / "en-dev.conllu"
    path.write_text(CONLLU, encoding="utf-8")
    examples = read_conllu(path, UDPOS)
    assert examples == [
        {"id": "s1", "tokens": ["Do", "n't", "go", "."], "labels": ["AUX", "PART", "VERB", "PUNCT"]},
        {"id": "s2", "tokens": ["Paris"], "labels": ["PROPN"]},
    ]


def test_conllu_gz_and_feats_column(tmp_path):
    with gzip.open(tmp_path / "en-dev.conllu.gz", "wt", encoding="utf-8") as handle:
        handle.write(CONLLU.replace("\n", "\r\n"))
    examples = read_conllu(tmp_path / "en-dev.conllu.gz", feats_spec())
    assert [e["labels"] for e in examples] == [["Mood=Ind|Tense=Pres", "_", "VerbForm=Inf", "_"], ["Number=Sing"]]


def test_conllu_unknown_column_option(tmp_path):
    (tmp_path / "en-dev.conllu").write_text(CONLLU, encoding="utf-8")
    with pytest.raises(UserError, match=r"key 'local.options.column': unknown CoNLL-U column 'feat'.*did you mean 'feats'"):
        read_conllu(tmp_path / "en-dev.conllu", feats_spec("feat"))


@pytest.mark.parametrize(
    "line, message",
    [
        ("5\tx\tx\tNOUN\t_\t_\t0\troot\t_", r"dev.conllu:11: expected 10 tab-separated CoNLL-U columns, got 9"),
        ("x5\tx\tx\tNOUN\t_\t_\t0\troot\t_\t_", r"dev.conllu:11: invalid CoNLL-U word ID 'x5'"),
        ("5\tx\tx\tNOUNS\t_\t_\t0\troot\t_\t_", r"dev.conllu:11: unknown label 'NOUNS'.*did you mean 'NOUN'"),
    ],
)
def test_conllu_malformed_lines_name_file_and_line(tmp_path, line, message):
    lines = CONLLU.splitlines()
    lines.insert(10, line)  # after the last word of s1: line 11
    (tmp_path / "en-dev.conllu").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=message):
        read_conllu(tmp_path / "en-dev.conllu", UDPOS)


def test_udpos_conllu_spec_resolves_a_treebank_glob(tmp_path):
    spec = REGISTRY.get("udpos-conllu")
    (tmp_path / "UD_English-EWT").mkdir()
    (tmp_path / "UD_English-EWT" / "en_ewt-ud-dev.conllu").write_text(CONLLU, encoding="utf-8")
    assert [len(e["tokens"]) for e in load_examples(spec, "dev", "en", tmp_path)] == [4, 1]

    with pytest.raises(UserError, match=r"must match exactly one file, found nothing"):
        load_examples(spec, "test", "en", tmp_path)
    (tmp_path / "UD_English-GUM").mkdir()
    (tmp_path / "UD_English-GUM" / "en_gum-ud-dev.conllu.gz").write_bytes(gzip.compress(CONLLU.encode()))
    with pytest.raises(UserError, match=r"exactly one file, found .*en_ewt-ud-dev.conllu, .*en_gum-ud-dev.conllu.gz"):
        load_examples(spec, "dev", "en", tmp_path)


def independent_reading(path) -> tuple[list[list[str]], int]:
    """(word forms per sentence, multiword-range lines), read straight from the lines by ID shape."""
    sentences, current, ranges = [], [], 0
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            first = line.split("\t", 1)[0]
            if not line.strip() and current:
                sentences.append(current)
                current = []
            elif re.fullmatch(r"\d+", first):
                current.append(line.split("\t")[1])
            elif re.fullmatch(r"\d+-\d+", first):
                ranges += 1
    return sentences + ([current] if current else []), ranges


@pytest.mark.parametrize(
    "treebank, sentences, words, ranges",
    [  # counts as SOURCES.md gives them
        ("UD_English-EWT/en_ewt-ud-dev", 2001, 25147, 359),
        ("UD_French-GSD/fr_gsd-ud-test", 416, 10018, 280),
        ("UD_Finnish-TDT/fi_tdt-ud-test", 1555, 21070, 27),
    ],
)
def test_real_ud_treebanks(real_data, treebank, sentences, words, ranges):
    path = real_data / "ud" / f"{treebank}.conllu.gz"
    examples = read_conllu(path, UDPOS)
    expected, range_lines = independent_reading(path)
    assert [e["tokens"] for e in examples] == expected
    assert (len(examples), sum(len(e["tokens"]) for e in examples), range_lines) == (sentences, words, ranges)
    assert all(len(e["tokens"]) == len(e["labels"]) for e in examples)


def test_real_ud_counts_match_sources_md(real_data):
    examples = load_examples(REGISTRY.get("udpos-conllu"), "dev", "en", real_data / "ud")
    assert (len(examples), sum(len(e["tokens"]) for e in examples)) == (2001, 25147)  # SOURCES.md
