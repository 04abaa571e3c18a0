"""TaskSpec's text-to-text fields: prompts (placeholders checked at load), label words, prefix."""

import pytest

from xstilts.errors import UserError
from xstilts.tasks.registry import load_registry
from xstilts.tasks.spec import TEXT_TO_TEXT_FIELDS, TaskSpec, template_fields


def load_user_task(tmp_path, body: str) -> TaskSpec:
    path = tmp_path / "mine.yaml"
    path.write_text("tasks:\n  - name: t\n" + body, encoding="utf-8")
    return load_registry([path]).get("t")


def test_fields_are_exported_and_default_to_nothing():
    assert TEXT_TO_TEXT_FIELDS == {"prompts", "label_words", "text_prefix", "max_target_length"}
    assert set(TEXT_TO_TEXT_FIELDS) <= set(TaskSpec.model_fields)
    spec = load_registry().get("bucc2018")
    assert spec.prompts == {} and spec.label_words == {} and spec.text_prefix is None and spec.max_target_length is None


def test_prefix_defaults_to_the_head_so_tasks_sharing_a_head_share_it(tmp_path):
    registry = load_registry()
    assert registry.get("mnli").task_prefix == registry.get("xnli").task_prefix == "nli"
    assert registry.get("pawsx").task_prefix == "pawsx"
    assert load_user_task(tmp_path, "    include: xnli\n    text_prefix: xnli\n").task_prefix == "xnli"


def test_label_words_default_to_the_label_and_paws_says_yes_no():
    registry = load_registry()
    assert registry.get("xnli").label_word("neutral") == "neutral"
    for name in ("pawsx", "paws", "qqp", "synth-paws"):
        assert [registry.get(name).label_word(label) for label in ("0", "1")] == ["no", "yes"], name


def test_instruct_prompts_everywhere_natural():
    registry = load_registry()
    names = ["synth-mnli", "synth-xnli", "synth-paws", "synth-topic", "synth-squad", "synth-pos", "synth-ner",
             "synth-morph", "synth-copa", "xnli", "pawsx", "xcopa", "udpos", "panx", "xquad", "mlqa", "tydiqa",
             "mnli", "qqp", "anli", "squad", "copa", "siqa", "hellaswag", "cosmosqa", "commonsenseqa"]
    for name in names:
        assert "instruct" in registry.get(name).prompts, name


def test_template_fields():
    assert template_fields("a {x} b {{literal}} {y}") == ["x", "y"]


@pytest.mark.parametrize(
    "body, message",
    [
        ('    include: xnli\n    prompts: {p: {input: "Premise: {premise}"}}\n',
         r"task 't', prompt 'p': unknown placeholder \{premise\} in the input template; known: options, text_a, text_b"),
        ('    include: xnli\n    prompts: {p: {input: "{text_a} {optons}"}}\n',
         r"prompt 'p': unknown placeholder \{optons\} in the input template \(did you mean 'options'\?\)"),
        ('    include: xquad\n    prompts: {p: {input: "{question}", target: "A: {label}"}}\n',
         r"prompt 'p': unknown placeholder \{label\} in the target template"),
        ('    include: xnli\n    prompts: {p: {input: "{text_a", target: "{label}"}}\n', r"prompt 'p': input template: "),
        ('    include: xnli\n    prompts: {p: {input: "{text_a}", target: "yes"}}\n', r"must hold \{label\} exactly once"),
        ('    include: xnli\n    prompts: {p: {input: "{text_a}", target: "{label:>5}"}}\n', r"target template: placeholder \{label\} takes no"),
        ('    include: pawsx\n    label_words: {"0": "no"}\n', r"must cover exactly the labels: missing \['1'\]"),
        ('    include: pawsx\n    label_words: {"0": "no", "1": "no"}\n', "must be distinct"),
        ('    include: udpos\n    label_words: {ADJ: a b}\n', "must cover exactly"),
        ('    include: xquad\n    label_words: {a: b}\n', "format span_qa has no labels"),
        ('    include: bucc2018\n    prompts: {p: {input: "x"}}\n', "format retrieval has no text-to-text prompts"),
    ],
)
def test_bad_text_to_text_fields_are_one_line_errors(tmp_path, body, message):
    with pytest.raises(UserError, match=message) as error:
        load_user_task(tmp_path, body)
    assert "\n" not in str(error.value) and "mine.yaml: task 't'" in str(error.value)


def test_tagging_label_words_must_be_single_words(tmp_path):
    words = ", ".join(f"{tag}: w{index}" for index, tag in enumerate(load_registry().get("panx").labels))
    spec = load_user_task(tmp_path, f"    include: panx\n    label_words: {{{words}}}\n")
    assert spec.label_word("B-PER") == "w1"
    with pytest.raises(UserError, match="single words"):
        load_user_task(tmp_path, f"    include: panx\n    label_words: {{{words.replace('w0', 'w 0')}}}\n")
