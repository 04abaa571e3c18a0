"""Sentences longer than the model's maximum (issue 14): featurising them truncates or windows
them to `max_length`; it is neither an error nor a crash. Covers a line of thousands of words
in every format with a head, and one word whose subwords alone overflow a window."""

from __future__ import annotations

import pytest
from fuzz_cases import REGISTRY

from xstilts.formats.base import get_format
from xstilts.models.tiny import train_wordpiece_tokenizer

WORDS = "the dog cat runs sleeps Paris is a man woman".split()
LONG = " ".join(WORDS * 300)  # 3,000 words
SUBWORDS = "s" * 90  # one word of 90 word pieces with this vocabulary
MAX_LENGTH = 32


@pytest.fixture(scope="module")
def tokenizer():
    built = train_wordpiece_tokenizer([" ".join(WORDS)] * 20, vocab_size=120)
    assert len(built.tokenize(SUBWORDS)) > MAX_LENGTH
    return built


CASES = {
    "pair": ("xnli", [{"id": "1", "text_a": LONG, "text_b": LONG, "label": "neutral"}]),
    "single": ("synth-topic", [{"id": "1", "text_a": LONG, "label": "food"}]),
    "tagging": ("panx", [{"id": "1", "tokens": LONG.split(), "labels": ["O"] * len(LONG.split())}]),
    "tagging-one-long-word": ("panx", [{"id": "1", "tokens": ["Paris", SUBWORDS, "is"], "labels": ["B-LOC", "O", "O"]}]),
    "span-qa": ("squad", [{"id": "1", "context": f"{LONG} Paris", "question": LONG, "is_impossible": False,
                           "answers": [{"text": "Paris", "answer_start": len(LONG) + 1}]}]),
    "span-qa-answer-longer-than-a-window": ("squad", [{"id": "1", "context": f"a a {SUBWORDS} end", "question": "what",
                                                      "answers": [{"text": SUBWORDS, "answer_start": 4}], "is_impossible": False}]),
    "multiple-choice": ("copa", [{"id": "1", "context": LONG, "question": "cause", "choices": [LONG, "a dog"], "label": 0}]),
    "mlm": ("mlm-multilingual", [{"id": "1", "text": LONG, "language": "en"}]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_sentence_longer_than_the_maximum_is_cut_to_it(case, tokenizer):
    task, examples = CASES[case]
    spec = REGISTRY.get(task)
    features = get_format(spec.format).featurize(examples, tokenizer, spec, MAX_LENGTH)
    assert features and all(len(feature["input_ids"]) <= MAX_LENGTH for feature in features)
    if case in ("tagging", "mlm"):  # windowed, never truncated: the windows cover the whole line
        assert len(features) > len(LONG.split()) // MAX_LENGTH
