"""The synthetic benchmark generator: determinism, formats, alignment, transformations."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from xstilts.config.loading import load_config
from xstilts.config.schema import QuickstartConfig
from xstilts.data.loading import load_examples
from xstilts.errors import UserError
from xstilts.evaluation.subsets import select
from xstilts.experiments.quickstart import QUICKSTART_CONFIG
from xstilts.synthetic import generate as gen
from xstilts.synthetic import generate_benchmark, load_languages
from xstilts.synthetic.grammar import MORPH_LABELS
from xstilts.tasks.registry import load_registry

SMALL = {
    "mlm": {"sentences": 300},
    **{t: {"train": 60, "dev": 20, "test": 25} for t in ("topic", "nli", "paraphrase", "pos", "ner", "copa", "morph")},
    "qa": {"train": 8, "dev": 5, "test": 6},
    "parallel": {"test": 40},
}
LANGS = ["en", "xa", "xb", "xc", "xd"]
UPOS = {"ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
        "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X"}
NER = {"O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"}


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("syn") / "bench"
    return out, generate_benchmark(out, seed=3, sizes=SMALL)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _tsv(path: Path, n_cols: int) -> list[list[str]]:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows and all(len(r) == n_cols and all(r) for r in rows), path
    return rows


def _tagged(path: Path) -> list[list[tuple[str, str]]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and "\n\n\n" not in text
    sents = []
    for block in text.strip("\n").split("\n\n"):
        rows = [line.split("\t") for line in block.split("\n")]
        assert all(len(r) == 2 and r[0] and " " not in r[0] for r in rows), path
        sents.append([(r[0], r[1]) for r in rows])
    return sents


def test_same_seed_gives_identical_bytes_and_other_seed_differs(bench, tmp_path):
    out, _ = bench
    again = generate_benchmark(tmp_path / "again", seed=3, sizes=SMALL)
    other = generate_benchmark(tmp_path / "other", seed=4, sizes=SMALL)
    assert _tree(tmp_path / "again") == _tree(out)
    assert again == json.loads((out / "manifest.json").read_text())
    differing = [k for k, v in _tree(tmp_path / "other").items() if k != "manifest.json" and v != _tree(out)[k]]
    assert len(differing) > 50 and other["seed"] == 4


def test_manifest_lists_languages_codes_and_counts(bench):
    out, manifest = bench
    assert [lang["code"] for lang in manifest["languages"]] == LANGS
    assert manifest["iso3_to_code"] == {"eng": "en", "qsa": "xa", "qsb": "xb", "qsc": "xc", "qsd": "xd"}
    assert manifest["files"]["nli"]["train.jsonl"] == 60 and manifest["files"]["mlm"]["xc.txt"] == 300
    for task, files in manifest["files"].items():
        for name in files:
            assert (out / task / name).is_file()
    assert not list(out.parent.glob(".bench.*")), "temporary folders left behind"


def test_pair_classification_files_parse(bench):
    out, _ = bench
    mnli = [json.loads(line) for line in (out / "nli/train.jsonl").read_text().splitlines()]
    assert len(mnli) == 60 and all(set(r) == {"premise", "hypothesis", "label"} for r in mnli)
    assert {r["label"] for r in mnli} == {"entailment", "neutral", "contradiction"}
    assert len(_tsv(out / "nli/train-en.tsv", 3)) == 60
    for lang in LANGS:
        for split in ("dev", "test"):
            assert {r[2] for r in _tsv(out / f"nli/{split}-{lang}.tsv", 3)} <= {"entailment", "neutral", "contradiction"}
            assert {r[2] for r in _tsv(out / f"paraphrase/{split}-{lang}.tsv", 4)} == {"0", "1"}
            assert {r[1] for r in _tsv(out / f"topic/{split}-{lang}.tsv", 2)} <= {"food", "sport", "travel", "nature"}


def test_nli_labels_do_not_follow_from_surface_overlap(bench):
    out, _ = bench
    # Every pair differs by one substituted word (a/an may follow it), whatever the label.
    for a, b, _ in _tsv(out / "nli/train-en.tsv", 3):
        ta, tb = a.split(), b.split()
        assert len(ta) == len(tb)
        assert 1 <= sum(x != y for x, y in zip(ta, tb) if {x, y} != {"a", "an"}) <= 1


def test_paraphrase_has_adversarial_same_bag_negatives(bench):
    out, _ = bench
    rows = _tsv(out / "paraphrase/train-en.tsv", 4)
    same_bag = [label for a, b, label, _ in rows if sorted(a.split()) == sorted(b.split()) and a != b]
    assert "0" in same_bag and "1" in same_bag


def test_qa_answer_offsets_point_at_answer_text_in_every_language(bench):
    out, _ = bench
    for lang in LANGS:
        for split in ("train", "dev", "test"):  # QA trains in every language (intermediate.train_languages)
            doc = json.loads((out / f"qa/{split}-{lang}.json").read_text(encoding="utf-8"))
            qas = [(p["context"], qa) for d in doc["data"] for p in d["paragraphs"] for qa in p["qas"]]
            assert len(qas) == 3 * SMALL["qa"][split]
            for context, qa in qas:
                assert qa["id"].startswith(f"syn-{split}-") and qa["question"].endswith("?")
                for ans in qa["answers"]:
                    start = ans["answer_start"]
                    assert ans["text"] and context[start:start + len(ans["text"])] == ans["text"]
    en = json.loads((out / "qa/test-en.json").read_text())["data"][0]["paragraphs"]
    xb = json.loads((out / "qa/test-xb.json").read_text())["data"][0]["paragraphs"]
    assert [q["id"] for p in en for q in p["qas"]] == [q["id"] for p in xb for q in p["qas"]]


def test_tagging_files_have_one_valid_tag_per_token(bench):
    out, _ = bench
    for task, labels in (("pos", UPOS), ("ner", NER)):
        for lang in LANGS:
            for split in (["train"] if lang == "en" else []) + ["dev", "test"]:
                sents = _tagged(out / f"{task}/{split}-{lang}.tsv")
                assert len(sents) == SMALL[task][split]
                assert {tag for s in sents for _, tag in s} <= labels


def test_tags_follow_tokens_through_transformations(bench):
    out, _ = bench
    en = _tagged(out / "ner/test-en.tsv")
    for lang in ("xa", "xb", "xc", "xd"):
        other = _tagged(out / f"ner/test-{lang}.tsv")
        for s_en, s_x in zip(en, other, strict=True):
            ents_en = [(f, t) for f, t in s_en if t != "O"]
            ents_x = [(f, t) for f, t in s_x if t != "O"]
            # Names are shared anchors: same tags, and the English form (a suffix may follow).
            assert [t for _, t in ents_x] == [t for _, t in ents_en]
            assert all(fx.startswith(fe) for (fe, _), (fx, _) in zip(ents_en, ents_x))
    pos_en, pos_xc = _tagged(out / "pos/test-en.tsv"), _tagged(out / "pos/test-xc.tsv")
    for s_en, s_xc in zip(pos_en, pos_xc, strict=True):
        count = lambda s, tag: sum(t == tag for _, t in s)  # noqa: E731
        assert count(s_xc, "NOUN") == count(s_en, "NOUN") and count(s_xc, "VERB") == count(s_en, "VERB")
        assert count(s_xc, "DET") == 0  # articles disappear, nothing else is lost


def test_sov_language_puts_the_verb_last(bench):
    out, _ = bench
    def verb_final(sents):
        return sum(all(s[i - 1][1] in ("VERB", "AUX") for i, (_, t) in enumerate(s) if t == "PUNCT") for s in sents)
    xb, en = _tagged(out / "pos/test-xb.tsv"), _tagged(out / "pos/test-en.tsv")
    assert verb_final(xb) == len(xb)
    assert verb_final(en) < len(en) / 2


def test_agglutinative_language_has_case_suffixes(bench):
    out, _ = bench
    nouns = [f for s in _tagged(out / "pos/test-xc.tsv") for f, t in s if t == "NOUN"]
    assert sum(f.endswith("ga") for f in nouns) > len(nouns) / 5  # accusative objects
    assert any(re.search(r"lar(ga|de|ne|dan|yla)?$", f) for f in nouns)  # plural before case


def test_script_language_uses_cyrillic_letters(bench):
    out, _ = bench
    words = [f for s in _tagged(out / "pos/test-xd.tsv") for f, t in s if t not in ("PROPN", "NUM", "PUNCT")]
    assert words and all(re.fullmatch(r"[\u0400-\u04FF]+", w) for w in words)
    names = [f for s in _tagged(out / "pos/test-xd.tsv") for f, t in s if t == "PROPN"]
    assert all(re.fullmatch(r"[A-Za-z]+", n) for n in names)  # anchors stay shared


def test_copa_and_topic_and_parallel_files(bench):
    out, manifest = bench
    for lang in LANGS:
        rows = [json.loads(line) for line in (out / f"copa/test-{lang}.jsonl").read_text().splitlines()]
        assert [r["idx"] for r in rows] == list(range(25))
        assert all(r["question"] in ("cause", "effect") and r["label"] in (0, 1) and r["choice1"] != r["choice2"]
                   for r in rows)
    for iso3, code in manifest["iso3_to_code"].items():
        if code == "en":
            continue
        src = (out / f"parallel/tatoeba.{iso3}-eng.{iso3}").read_text(encoding="utf-8").splitlines()
        eng = (out / f"parallel/tatoeba.{iso3}-eng.eng").read_text(encoding="utf-8").splitlines()
        assert len(src) == len(eng) == 40 and len(set(eng)) == 40 and all(src)
        assert sum(a == b for a, b in zip(src, eng)) == 0
        # No names or digits: they would identify a translation without any alignment.
        assert not any(re.search(r"\d|\b[A-Z]", line) for line in src + eng)


def test_monolingual_texts_are_not_translations(bench):
    out, _ = bench
    def anchors(line):
        return [w for w in line.split() if w[0].isupper() or w.isdigit()]
    en = (out / "mlm/en.txt").read_text().splitlines()
    for lang in ("xa", "xb"):
        other = (out / f"mlm/{lang}.txt").read_text(encoding="utf-8").splitlines()
        assert len(other) == len(en) == 300
        same = sum(anchors(a) == anchors(b) for a, b in zip(en, other) if anchors(a))
        assert same < 0.2 * len(en)


def test_custom_languages_file_and_clear_errors(tmp_path):
    spec = tmp_path / "langs.yaml"
    spec.write_text(
        "languages:\n"
        "  - {code: en, iso3: eng, description: base}\n"
        "  - {code: xg, iso3: qsg, description: greek VSO, transformations: "
        "[{type: vocabulary}, {type: script, alphabet: greek}, {type: word_order, order: VSO}]}\n")
    manifest = generate_benchmark(tmp_path / "b", seed=0, languages_file=spec, sizes=SMALL)
    assert [lang["code"] for lang in manifest["languages"]] == ["en", "xg"]
    first = (tmp_path / "b/topic/test-xg.tsv").read_text(encoding="utf-8").split("\t")[0]
    assert re.search(r"[\u0370-\u03FF]", first)
    spec.write_text("languages:\n  - {code: en, iso3: eng, description: b, transformations: [{type: scrpt}]}\n")
    with pytest.raises(UserError, match="did you mean 'script'"):
        load_languages(spec)
    with pytest.raises(UserError, match="unknown task 'nil'"):
        gen.resolve_sizes({"nil": {"train": 3}})


def test_interrupted_run_leaves_previous_output_untouched(tmp_path, monkeypatch):
    out = tmp_path / "bench"
    generate_benchmark(out, seed=0, sizes=SMALL)
    before = _tree(out)

    def boom(self):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(gen._Writer, "write_copa", boom)
    with pytest.raises(RuntimeError):
        generate_benchmark(out, seed=1, sizes=SMALL)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench"]


def test_every_synthetic_task_is_read_by_its_real_reader(bench):
    out, _ = bench
    registry = load_registry()
    # The quickstart config maps every synthetic task to the generator folder it reads.
    folders = load_config(QUICKSTART_CONFIG, [], schema=QuickstartConfig).data
    assert {name for name in registry.names() if name.startswith("synth-")} == set(folders)
    trained_everywhere = {"synth-mnli", "synth-squad"}  # intermediate tasks: train in every language
    for name, folder in folders.items():
        spec = registry.get(name)
        for split in spec.splits:
            for language in ([spec.train_language] if split == "train" and name not in trained_everywhere else spec.languages):
                examples = load_examples(spec, split, language, out / folder)
                if folder == "mlm":  # span corruption reads every language's text at once
                    size = SMALL["mlm"]["sentences"] * len(spec.languages)
                else:
                    size = SMALL[folder][split] * (3 if folder == "qa" else 1)  # three questions a paragraph
                assert len(examples) == size, (name, split, language)
                if spec.format.value == "tagging":
                    assert all(len(e["tokens"]) == len(e["labels"]) and set(e["labels"]) <= set(spec.labels)
                               for e in examples)


# The files of the tasks that existed before the non-English training splits, synth-morph and the
# paraphrase item types, at SMALL and seed 3, hashed by the generator of commit 64e2d0f: the
# quickstart's documented numbers depend on these bytes (paraphrase: its first three columns,
# the ones the item_type column was added beside).
OLD_FILES_DIGEST = "5d8b2a95db9f2631752a488fda6354304581e81727942829e0019e4115835bfb"
OLD_FILE_COUNT = 92


def _is_new_file(rel: str) -> bool:
    return rel.startswith("morph/") or bool(re.fullmatch(r"nli/x\w/.*|qa/train-x\w\.json", rel))


def test_old_tasks_files_keep_their_bytes(bench):
    out, _ = bench
    digests = {}
    for path in sorted(out.rglob("*")):
        rel = str(path.relative_to(out))
        if not path.is_file() or rel == "manifest.json" or _is_new_file(rel):
            continue
        data = path.read_bytes()
        if rel.startswith("paraphrase/"):
            data = b"".join(b"\t".join(line.split(b"\t")[:3]) + b"\n" for line in data.splitlines())
        digests[rel] = hashlib.sha256(data).hexdigest()
    assert len(digests) == OLD_FILE_COUNT
    assert hashlib.sha256("".join(f"{k}:{v}\n" for k, v in digests.items()).encode()).hexdigest() == OLD_FILES_DIGEST


def test_intermediate_training_data_in_every_language_realises_the_english_items(bench):
    out, manifest = bench
    registry = load_registry()
    english = load_examples(registry.get("synth-mnli"), "train", "en", out / "nli")
    assert [e["text_a"] for e in english] == [json.loads(line)["premise"] for line in (out / "nli/train.jsonl").read_text().splitlines()]
    for lang in LANGS[1:]:
        for split in ("train", "dev"):
            assert manifest["files"]["nli"][f"{lang}/{split}.jsonl"] == SMALL["nli"][split]
        other = load_examples(registry.get("synth-mnli"), "train", lang, out / "nli")
        assert [e["label"] for e in other] == [e["label"] for e in english]
        # Realised, not copied: no English content word survives (names and digits do).
        assert all(e["text_a"] != o["text_a"] for e, o in zip(english, other))
        # The dev items are those of the XNLI-layout dev file of the same language.
        dev = load_examples(registry.get("synth-mnli"), "dev", lang, out / "nli")
        tsv = _tsv(out / f"nli/dev-{lang}.tsv", 3)
        assert [(e["text_a"], e["text_b"], e["label"]) for e in dev] == [tuple(row) for row in tsv]
    en_qa = json.loads((out / "qa/train-en.json").read_text())["data"][0]["paragraphs"]
    xc_qa = json.loads((out / "qa/train-xc.json").read_text(encoding="utf-8"))["data"][0]["paragraphs"]
    assert [q["id"] for p in en_qa for q in p["qas"]] == [q["id"] for p in xc_qa for q in p["qas"]]


def test_morph_tags_are_case_and_number_of_noun_phrase_heads(bench):
    out, _ = bench
    # xc's suffixes (languages.yaml): plural lar, then acc ga, loc de, dat ne, abl dan, ins yla.
    suffix = {"Nom": "", "Acc": "ga", "Loc": "de", "Dat": "ne", "Abl": "dan", "Ins": "yla"}
    sents = {lang: _tagged(out / f"morph/test-{lang}.tsv") for lang in LANGS}
    for lang in LANGS:
        tags = {tag for s in sents[lang] for _, tag in s}
        assert tags <= set(MORPH_LABELS) and {"_", "Case=Nom|Number=Sing", "Case=Acc|Number=Sing"} <= tags
    counted = []
    for s_en, s_xc, s_xa in zip(sents["en"], sents["xc"], sents["xa"], strict=True):
        # Tags follow their tokens: the same feature strings, sentence by sentence, in every language.
        feats = [sorted(t for _, t in s if t != "_") for s in (s_en, s_xc, s_xa)]
        assert feats[0] == feats[1] == feats[2]
        for form, tag in s_xc:
            if tag == "_":
                continue
            case, number = (part.split("=")[1] for part in tag.split("|"))
            stem = form[: len(form) - len(suffix[case])] if suffix[case] else form
            assert form.endswith(suffix[case]) and stem.endswith("lar") == (number == "Plur"), (form, tag)
            counted.append(case)
    assert {"Nom", "Acc"} <= set(counted) and len(set(counted)) >= 4
    # English: an accusative head is an object, so it follows the verb; a locative head follows in/at.
    for sent in sents["en"]:
        words = [w for w, _ in sent]
        for i, (word, tag) in enumerate(sent):
            if tag.startswith("Case=Loc"):
                assert {"in", "at"} & set(words[:i]), (words, word)


def test_paraphrase_item_types_say_which_edit_made_the_pair(bench):
    out, _ = bench
    label_of = {"swap": "0", "substitution": "0", "synonym": "1", "adjunct": "1"}
    types = {}
    for lang in LANGS:
        rows = _tsv(out / f"paraphrase/test-{lang}.tsv", 4)
        assert all(r[3] in gen.ITEM_TYPES and r[2] == label_of[r[3]] and r[0] != r[1] for r in rows)
        types[lang] = [r[3] for r in rows]
        if lang == "xa":  # no agreement, no case: swaps and fronted adjuncts keep the bag of words
            same_bag = [sorted(a.split()) == sorted(b.split()) for a, b, _, _ in rows]
            assert same_bag == [t in ("swap", "adjunct") for t in types[lang]]
    assert all(types[lang] == types["en"] for lang in LANGS)  # parallel: the same item, the same type
    assert set(types["en"]) == set(gen.ITEM_TYPES)
    # The spec's adversarial subset is the same-bag pairs (read through the item_type column).
    spec = load_registry().get("synth-paws")
    examples = load_examples(spec, "test", "en", out / "paraphrase")
    indices = select(spec, "adversarial", spec.subsets["adversarial"], examples, "test-en", out / "paraphrase")
    assert indices == [i for i, t in enumerate(types["en"]) if t in ("swap", "adjunct")]
