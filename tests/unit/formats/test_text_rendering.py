"""Examples as text: the mT5 default renderings, prompt templates, and reading outputs back."""

import pytest

from xstilts.errors import UserError
from xstilts.formats.text_rendering import (
    NO_ANSWER_WORD,
    UNALIGNED_TAG,
    align_tags,
    default_target,
    find_prompt,
    read_answer,
    render_input,
    unwrap_target,
    wrap_target,
)
from xstilts.tasks.registry import load_registry
from xstilts.tasks.spec import Prompt

REGISTRY = load_registry()
PAIR = {"id": "1", "text_a": "A man sleeps.", "text_b": "A person rests.", "label": "entailment"}
COPA = {"id": "0", "context": "The glass broke.", "question": "cause", "choices": ["It fell.", "It sang."], "label": 0}
QA = {"id": "q", "context": "Ada lives in Rome.", "question": "Where?", "answers": [{"text": "Rome", "answer_start": 13}]}


def test_default_inputs_and_targets_of_every_format():
    xnli, pawsx, topic = REGISTRY.get("xnli"), REGISTRY.get("pawsx"), REGISTRY.get("synth-topic")
    assert render_input(PAIR, xnli, None) == "nli: premise: A man sleeps. hypothesis: A person rests."
    assert default_target(PAIR, xnli, False) == "entailment"
    paraphrase = PAIR | {"label": "1"}
    assert render_input(paraphrase, pawsx, None) == "pawsx: sentence1: A man sleeps. sentence2: A person rests."
    assert default_target(paraphrase, pawsx, False) == "yes"
    single = {"id": "2", "text_a": "We ate bread.", "label": "food"}
    assert render_input(single, topic, None) == "synth-topic: sentence: We ate bread."
    assert default_target(single, topic, False) == "food"
    xcopa = REGISTRY.get("xcopa")
    assert render_input(COPA, xcopa, None) == "xcopa: context: The glass broke. question: cause options: (1) It fell. (2) It sang."
    assert default_target(COPA, xcopa, False) == "It fell."
    csqa = COPA | {"context": ""}
    assert render_input(csqa, xcopa, None) == "xcopa: question: cause options: (1) It fell. (2) It sang."
    xquad = REGISTRY.get("xquad")
    assert render_input(QA, xquad, None) == "xquad: question: Where? context: Ada lives in Rome."
    assert default_target(QA, xquad, False) == "Rome"
    udpos = REGISTRY.get("udpos")
    tagged = {"id": "3", "tokens": ["Ada", "sleeps"], "labels": ["PROPN", "VERB"]}
    assert render_input(tagged, udpos, None) == "udpos: Ada sleeps"
    assert default_target(tagged, udpos, False) == "Ada PROPN sleeps VERB"


def test_unanswerable_becomes_a_word_only_where_no_answer_is_allowed():
    impossible = QA | {"answers": [], "is_impossible": True}
    squad2 = REGISTRY.get("squad2")
    assert default_target(impossible, squad2, True) == NO_ANSWER_WORD
    assert default_target(impossible, squad2, False) == ""
    assert read_answer(" unanswerable ", squad2, None, True) == ""
    assert read_answer("unanswerable", squad2, None, False) == "unanswerable"


def test_prompt_templates_render_the_input_and_wrap_the_target():
    pawsx = REGISTRY.get("pawsx")
    prompt = find_prompt(pawsx, "instruct")
    assert render_input(PAIR, pawsx, prompt) == (
        "Sentence 1: A man sleeps. Sentence 2: A person rests. Do these two sentences mean the same thing? OPTIONS: no, yes"
    )
    udpos = REGISTRY.get("udpos")
    assert render_input({"tokens": ["a", "b"]}, udpos, Prompt(input="{tokens} | {{x}} {options}")).startswith("a b | {x} ADJ ADP")
    assert render_input(COPA, REGISTRY.get("xcopa"), Prompt(input="{options}")) == "(1) It fell. (2) It sang."
    wrapped = Prompt(input="{text_a}", target="Answer: {label}.")
    assert wrap_target("yes", pawsx, wrapped) == "Answer: yes."
    assert unwrap_target(" Answer: yes. ", pawsx, wrapped) == "yes"
    assert unwrap_target("yes", pawsx, wrapped) == "yes"  # a model that drops the fixed text is read as it is
    assert wrap_target("yes", pawsx, None) == "yes"


def test_unknown_prompt_is_a_one_line_error_naming_task_prompt_and_prompts():
    with pytest.raises(UserError, match=r"task 'xnli' has no prompt 'instrut' \(did you mean 'instruct'\?\) \(its prompts: instruct\)"):
        find_prompt(REGISTRY.get("xnli"), "instrut")
    with pytest.raises(UserError, match=r"has no prompt 'x' \(its prompts: none\)"):
        find_prompt(REGISTRY.get("bucc2018"), "x")
    assert find_prompt(REGISTRY.get("xnli"), None) is None


WORDS = ["Ada", "sees", "Rome"]


@pytest.mark.parametrize(
    "output, expected, unaligned",
    [
        ("Ada PROPN sees VERB Rome PROPN", ["PROPN", "VERB", "PROPN"], 0),
        ("Ada PROPN sees VERB", ["PROPN", "VERB", UNALIGNED_TAG], 1),  # too few pairs
        ("Ada PROPN Rome PROPN", ["PROPN", UNALIGNED_TAG, "PROPN"], 1),  # a pair dropped inside: no shift
        ("Ada PROPN sees VERB Rome PROPN Rome NOUN ADJ", ["PROPN", "VERB", "PROPN"], 0),  # too many: extra ignored
        ("Ada PROPN Ada PROPN sees VERB Rome PROPN", ["PROPN", "VERB", "PROPN"], 0),  # a pair repeated
        ("Rome PROPN sees VERB Ada X", ["X", "VERB", "PROPN"], 0),  # pairs out of order: read by the echo
        ("Rome PROPN sees VERB Ada VREB", [UNALIGNED_TAG, "VERB", "PROPN"], 1),  # ... and an unknown tag
        ("Ada PROPN sees VERB sees NOUN", ["PROPN", "VERB", UNALIGNED_TAG], 1),  # another word's echo is not a guess
        ("Ada PROPN seen VERB Rome PROPN", ["PROPN", "VERB", "PROPN"], 0),  # a mis-copied word between matches
        ("Ada PROPN sees VREB Rome PROPN", ["PROPN", UNALIGNED_TAG, "PROPN"], 1),  # unknown tag
        ("Ada sees VERB Rome PROPN", [UNALIGNED_TAG, "VERB", "PROPN"], 1),  # a tag left out
        ("PROPN VERB PROPN", [UNALIGNED_TAG] * 3, 3),  # bare tags: one pair, matching no word
        ("", [UNALIGNED_TAG] * 3, 3),  # empty
        ("Ada schläft in Rom", [UNALIGNED_TAG] * 3, 3),  # garbage (an accidental translation)
        ("  Ada\tPROPN sees  VERB\nRome PROPN ", ["PROPN", "VERB", "PROPN"], 0),  # any white space separates
    ],
)
def test_align_tags_gives_every_word_one_prediction(output, expected, unaligned):
    assert align_tags(output, WORDS, REGISTRY.get("udpos")) == (expected, unaligned)


def test_align_tags_reads_a_word_that_is_a_label_word_as_a_word():
    spec = REGISTRY.get("panx")
    words = ["O", "Ada", "O"]
    target = default_target({"tokens": words, "labels": ["O", "B-PER", "O"]}, spec, False)
    assert target == "O O Ada B-PER O O"
    assert align_tags(target, words, spec) == (["O", "B-PER", "O"], 0)


def test_align_tags_reads_label_words_back_into_labels(tmp_path):
    words = ", ".join(f"{tag}: t{index}" for index, tag in enumerate(REGISTRY.get("panx").labels))
    path = tmp_path / "mine.yaml"
    path.write_text(f"tasks:\n  - name: t\n    include: panx\n    label_words: {{{words}}}\n", encoding="utf-8")
    spec = load_registry([path]).get("t")
    assert default_target({"tokens": ["a", "b"], "labels": ["B-PER", "O"]}, spec, False) == "a t1 b t0"
    assert align_tags("a t1 b t0 c B-PER", ["a", "b", "c"], spec) == (["B-PER", "O", UNALIGNED_TAG], 1)


DUMMY = {
    "pair_classification": PAIR,
    "single_classification": {"id": "s", "text_a": "We ate bread.", "label": None},
    "multiple_choice": COPA,
    "span_qa": QA,
    "tagging": {"id": "t", "tokens": ["Ada", "sleeps"], "labels": None},
}


@pytest.mark.parametrize("spec", [spec for spec in REGISTRY if spec.prompts], ids=lambda spec: spec.name)
def test_every_shipped_prompt_renders(spec):
    example = DUMMY[spec.format.value]
    for name in spec.prompts:
        text = render_input(example, spec, find_prompt(spec, name))
        assert "{" not in text and text != render_input(example, spec, None), (spec.name, name)
