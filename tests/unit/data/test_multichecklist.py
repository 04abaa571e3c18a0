"""MultiCheckList: reading the templates, deterministic generation, failure rates, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.data.loading import load_examples
from xstilts.data.multichecklist import read_multichecklist, read_templates
from xstilts.errors import UserError
from xstilts.evaluation.records import score_records
from xstilts.evaluation.subsets import subset_rows, with_failure_rate
from xstilts.tasks.registry import load_registry

# Two tests in en and xx (with an xx-placeholders pair, ignored), the second without argument rows.
TEMPLATES = [
    "Field\ten\txx\txx-placeholders\txx\txx-placeholders",
    "Name\tAnimal vs Vehicle\t\t\t\t",
    "Capability\tTaxonomy\t\t\t\t",
    "Context\t{first_name} has {animal} and {vehicle}.\t{first_name} hat {animal} und {vehicle}.\t\t\t",
    "Context\t{first_name} has {vehicle} and {animal}.\t\t\t\t",
    "Question\tWhat animal does {first_name} have?\tWelches Tier hat {first_name}?\t\t\t",
    "Answer\t{animal}\t{animal}\t\t\t",
    "animal\ta dog\tein Hund\t\teinen Hund\tbought",
    "animal\ta cat\teine Katze\t\t\t",
    "vehicle\ta car\tein Auto\t\t\t",
    "",
    "Name\tWho is COMP\t\t\t\t",
    "Capability\tVocabulary\t\t\t\t",
    "Context\t{first_name} is {adj[0]} than {first_name1}.\t{first_name} ist {adj[0]} als {first_name1}.\t\t\t",
    "Question\tWho is less {adj[1]}?\tWer ist weniger {adj[1]}?\t\t\t",
    "Answer\t{first_name1}\t{first_name1}\t\t\t",
    "adj\tolder, old\tälter, alt\t\t\t",
    "",
    "Name\tAnimal vs Vehicle v2\t\t\t\t",
    "Capability\tTaxonomy\t\t\t\t",
    "Context\t{first_name} bought {animal}. {first_name2} bought {vehicle}.\t\t\t\t",
    "Question\tWho bought a vehicle?\t\t\t\t",
    "Answer\t{first_name2}\t\t\t\t",
]
SPEC = """
tasks:
  - name: mcl-small
    include: multichecklist
    languages: [en, xx]
    local: {reader: multichecklist_tsv, path: checklist_templates.tsv, options: {samples: 3, seed: 5}}
    subsets:
      animal-vs-vehicle: {column: test, values: [animal-vs-vehicle], language: each}
      who-is-comp: {column: test, values: [who-is-comp], language: each}
      animal-vs-vehicle-v2: {column: test, values: [animal-vs-vehicle-v2], language: each}
"""


@pytest.fixture
def small(tmp_path):
    folder = tmp_path / "mcl"
    folder.mkdir()
    (folder / "checklist_templates.tsv").write_text("\n".join(TEMPLATES) + "\n", encoding="utf-8")
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    return load_registry([tmp_path / "spec.yaml"]).get("mcl-small"), folder


def test_templates_structure(small):
    _, folder = small
    languages, tests = read_templates(folder / "checklist_templates.tsv")
    assert languages == ["en", "xx"]
    assert [(t.slug, t.capability) for t in tests] == [
        ("animal-vs-vehicle", "Taxonomy"), ("who-is-comp", "Vocabulary"), ("animal-vs-vehicle-v2", "Taxonomy")]
    assert tests[0].values("animal", "xx") == ["ein Hund", "eine Katze"]  # first column only
    assert tests[2].values("animal", "en") == ["a dog", "a cat"]  # inherited: v2 has no argument rows


def test_generation_is_deterministic_and_every_answer_is_a_span(small):
    spec, folder = small
    en = load_examples(spec, "test", "en", folder)
    assert en == load_examples(spec, "test", "en", folder)
    other_seed = spec.model_copy(update={"local": spec.local.model_copy(update={"options": {"samples": 3, "seed": 6}})})
    assert en != load_examples(other_seed, "test", "en", folder)
    # 3 samples x (2 contexts x 1 QA) + 3 x 1 + 3 x 1; ids unique.
    assert [e["test"] for e in en] == ["animal-vs-vehicle"] * 6 + ["who-is-comp"] * 3 + ["animal-vs-vehicle-v2"] * 3
    assert len({e["id"] for e in en}) == len(en)
    for example in en:
        answer = example["answers"][0]
        assert example["context"][answer["answer_start"]:].startswith(answer["text"])
    comparison = en[6]
    first, second = comparison["context"].split(" is older than ")
    assert (comparison["question"], comparison["answers"][0]["text"]) == ("Who is less old?", second.rstrip("."))
    # xx: one context, and no v2 templates in its first column.
    xx = load_examples(spec, "test", "xx", folder)
    assert [e["test"] for e in xx] == ["animal-vs-vehicle"] * 3 + ["who-is-comp"] * 3
    assert xx[0]["question"].startswith("Welches Tier hat ") and xx[0]["answers"][0]["text"] in ("ein Hund", "eine Katze")


def test_failure_rate_per_test_and_overall_by_hand(small):
    spec, folder = small
    en = load_examples(spec, "test", "en", folder)
    gold = [e["answers"][0]["text"] for e in en]
    # Wrong: animal-vs-vehicle items 0, 1, 2 (3 of 6); who-is-comp item 6 (1 of 3); v2 none.
    predictions = ["x", "x", "x", *gold[3:6], "x", *gold[7:]]
    overall = with_failure_rate(spec, score_records(spec, en, predictions))
    assert overall["failure_rate"] == pytest.approx(100 * 4 / 12)
    rows = subset_rows(spec, "test", "en", en, predictions, load=None, data_dir=folder, run_id="r", phase="eval")
    failure = {row.split: row.value for row in rows if row.metric == "failure_rate"}
    assert failure == pytest.approx({"test/animal-vs-vehicle": 50.0, "test/who-is-comp": 100 / 3, "test/animal-vs-vehicle-v2": 0.0})
    # xx has no v2 cases: no rows for that test, the others as usual.
    xx = load_examples(spec, "test", "xx", folder)
    rows = subset_rows(spec, "test", "xx", xx, [e["answers"][0]["text"] for e in xx], load=None, data_dir=folder, run_id="r", phase="eval")
    assert sorted({row.split for row in rows}) == ["test/animal-vs-vehicle", "test/who-is-comp"]


@pytest.mark.parametrize(
    "line, text, message",
    [
        (1, "Fields\ten\txx\txx-placeholders\txx\txx-placeholders", "expected a header 'Field"),
        (3, "Capability\tTaxonomy\t\t\t\t\textra", "7 tab-separated fields, the header has 6"),
        (7, "Question\t{animal}?\t\t\t\t", "an Answer row must follow a Question row"),
        (2, "Name\t\t\t\t\t", "a Name row without the test's name"),
        (12, "\tWho is COMP\t\t\t\t", "a row without its kind"),
        (13, "Capability\tVocabulary\t\t\t\t", "a 'Capability' row outside a test"),
    ],
)
def test_bad_template_files_name_file_and_line(small, line, text, message):
    spec, folder = small
    lines = list(TEMPLATES)
    if line == 7:  # an Answer after an argument row instead of after its Question
        lines.insert(8, "Answer\t{animal}\t\t\t\t")
        line = 9
    elif line == 13:  # a row after the blank line that closed the test, before the next Name
        lines.insert(11, text)
        line = 12
    else:
        lines[line - 1] = text
    path = folder / "checklist_templates.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"^{path}:{line}: .*{message}"):
        read_multichecklist(path, spec, language="en")


def test_unknown_placeholder_and_language_and_options(small):
    spec, folder = small
    path = folder / "checklist_templates.tsv"
    lines = list(TEMPLATES)
    lines[5] = "Question\tWhat {pet} does {first_name} have?\tWelches Tier hat {first_name}?\t\t\t"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"^{path}:6: placeholder {{pet}} \(language en\) has no argument values"):
        read_multichecklist(path, spec, language="en")
    with pytest.raises(UserError, match=r"no column for language 'de' \(the file has 2: en xx\)"):
        read_multichecklist(path, spec, language="de")
    bad = spec.model_copy(update={"local": spec.local.model_copy(update={"options": {"samples": 0}})})
    with pytest.raises(UserError, match=r"task 'mcl-small': local.options.samples must be an integer of at least 1, got 0"):
        read_multichecklist(path, bad, language="en")


def test_official_templates_every_language_yields_cases(real_data):
    spec = load_registry().get("multichecklist")
    small = spec.model_copy(update={"local": spec.local.model_copy(update={"options": {"samples": 4, "seed": 42}})})
    folder = Path(real_data) / "multichecklist"
    slugs = set(spec.subsets)
    for language in spec.languages:
        examples = load_examples(small, "test", language, folder)
        tests = {example["test"] for example in examples}
        assert tests <= slugs and len(tests) >= 5, (language, tests)  # ru has no properties cases (see the module)
        for example in examples:
            answer = example["answers"][0]
            assert answer["text"] and example["context"][answer["answer_start"]:].startswith(answer["text"])
    en = load_examples(small, "test", "en", folder)
    assert {e["test"] for e in en} == slugs
    assert en == load_examples(small, "test", "en", folder)
    assert en[0]["id"] == "comparisons-0-0-0"
