"""Text-to-text tagging (`w1 TAG1 w2 TAG2 ...`): chunking so every word is predicted, alignment of malformed outputs."""

import pytest
import torch

from tiny_t5 import ScriptedModel, build_tokenizer
from xstilts.config.schema import Precision, TextToTextConfig
from xstilts.formats.base import get_format
from xstilts.formats.text_rendering import UNALIGNED_TAG, render_input
from xstilts.tasks.registry import load_registry
from xstilts.tasks.spec import TaskSpec

REGISTRY = load_registry()
RUN = dict(device=torch.device("cpu"), precision=Precision.FP32, batch_size=2)
WORDS = [f"w{index}" for index in range(10)]
NER = ["O", "B-PER", "I-PER", "O", "B-LOC", "O", "O", "B-ORG", "I-ORG", "O"]


def spec_with(name: str, **fields) -> TaskSpec:
    return TaskSpec.model_validate({**REGISTRY.get(name).model_dump(), **fields})


def echoed(words: list[str], tags: list[str]) -> str:
    return " ".join(f"{word} {tag}" for word, tag in zip(words, tags, strict=True))


def tokenizer_for(spec: TaskSpec):
    return build_tokenizer([f"{spec.task_prefix}: " + " ".join(WORDS), " ".join(spec.labels), "Ada schläft gut !"])


@pytest.mark.parametrize(
    "max_length, max_target_length, spans",
    [
        (64, None, [(0, 10)]),
        (6, None, [(0, 4), (4, 8), (8, 10)]),  # input: "panx:" (one word-level token) + 4 words + eos
        (64, 7, [(0, 3), (3, 6), (6, 9), (9, 10)]),  # target: 3 words and their tags + eos
        (64, 4, [(index, index + 1) for index in range(10)]),  # target: 1 word and its tag + eos
        (3, None, [(index, index + 1) for index in range(10)]),  # a word alone is always a chunk
    ],
)
def test_long_sentences_are_cut_into_chunks_that_fit(max_length, max_target_length, spans):
    spec = spec_with("panx", max_target_length=max_target_length)
    tokenizer = tokenizer_for(spec)
    examples = [{"id": "s", "tokens": WORDS, "labels": NER}, {"id": "t", "tokens": ["w1"], "labels": ["O"]}]
    features = get_format(spec.format, TextToTextConfig()).featurize(examples, tokenizer, spec, max_length=max_length)
    assert [(f["word_start"], f["word_end"]) for f in features if f["example_index"] == 0] == spans
    assert [f["example_index"] for f in features] == [0] * len(spans) + [1]
    for feature in features[: len(spans)]:
        start, end = feature["word_start"], feature["word_end"]
        assert len(feature["input_ids"]) <= max(max_length, 3)
        assert feature["input_ids"] == tokenizer("panx: " + " ".join(WORDS[start:end]), truncation=True, max_length=max_length)["input_ids"]
        assert feature["target_ids"] == tokenizer(echoed(WORDS[start:end], NER[start:end]))["input_ids"]


def test_malformed_generations_give_counted_catch_alls_and_every_word_a_prediction():
    spec = REGISTRY.get("panx")
    tokenizer = tokenizer_for(spec)
    sentences = [WORDS[:3], WORDS[3:6], WORDS[6:8], WORDS[8:10], ["w0"], ["w1", "w2"]]
    gold = [["B-PER", "I-PER", "O"], ["O", "B-LOC", "O"], ["B-ORG", "O"], ["O", "O"], ["O"], ["B-PER", "O"]]
    outputs = [
        "w0 B-PER w1 I-PER w2 O",  # right
        "w3 O w4 B-LOC",  # too few: the last word is unaligned
        "w6 B-ORG w7 O w8 O w9 B-PER",  # too many: the extra pairs are ignored
        "w8 O w9 I-XYZ",  # an unknown tag
        "",  # empty
        "Ada schläft gut !",  # garbage
        # (more malformed forms: tests/unit/formats/test_text_rendering.py, align_tags)
    ]
    examples = [{"id": str(i), "tokens": words, "labels": tags} for i, (words, tags) in enumerate(zip(sentences, gold))]
    answers = {render_input({"tokens": words}, spec, None): output for words, output in zip(sentences, outputs)}
    fmt = get_format(spec.format, TextToTextConfig())
    features = fmt.featurize(examples, tokenizer, spec, max_length=64)
    predictions = fmt.predict(ScriptedModel(tokenizer, answers), features, examples, spec, tokenizer=tokenizer, **RUN)
    assert predictions == [
        ["B-PER", "I-PER", "O"],
        ["O", "B-LOC", UNALIGNED_TAG],
        ["B-ORG", "O"],
        ["O", UNALIGNED_TAG],
        [UNALIGNED_TAG],
        [UNALIGNED_TAG, UNALIGNED_TAG],
    ]
    scores = fmt.score(predictions, examples, spec)
    # gold entities: PER(s0), LOC(s1), ORG(s2), PER(s5) = 4; predicted: PER, LOC, ORG right, plus one
    # "unaligned" chunk per run of catch-alls (s1, s3, s4, s5) = 7: P 3/7, R 3/4, F1 = 2PR/(P+R) = 6/11
    assert list(scores) == ["f1", "precision", "recall", "unaligned_words"]
    assert scores["f1"] == pytest.approx(100 * 6 / 11)
    assert scores["precision"] == pytest.approx(100 * 3 / 7) and scores["recall"] == pytest.approx(75.0)
    assert scores["unaligned_words"] == pytest.approx(100 * 5 / 13)


def test_chunked_predictions_reassemble_in_word_order_with_token_accuracy():
    spec = REGISTRY.get("synth-morph")
    tokenizer = build_tokenizer(["synth-morph: " + " ".join(WORDS), " ".join(spec.labels)])
    tags = ["_", "Case=Nom|Number=Sing"] * 5
    example = {"id": "m", "tokens": WORDS, "labels": tags}
    fmt = get_format(spec.format, TextToTextConfig())
    features = fmt.featurize([example], tokenizer, spec, max_length=7)  # "synth-morph:" + 5 words + eos
    assert [(f["word_start"], f["word_end"]) for f in features] == [(0, 5), (5, 10)]
    answers = {
        render_input({"tokens": WORDS[:5]}, spec, None): echoed(WORDS[:5], tags[:5]),
        render_input({"tokens": WORDS[5:]}, spec, None): echoed(WORDS[5:], ["_"] * 5),  # right on 2 of 5 (words 6 and 8)
    }
    predictions = fmt.predict(ScriptedModel(tokenizer, answers), features, [example], spec, tokenizer=tokenizer, **RUN)
    assert predictions == [tags[:5] + ["_"] * 5]
    assert fmt.score(predictions, [example], spec) == {"accuracy": pytest.approx(70.0), "unaligned_words": 0.0}


def test_chunks_fit_with_a_sentencepiece_tokenizer_and_cover_every_word():
    from xstilts.models.tiny import train_unigram_tokenizer

    spec = spec_with("panx", max_target_length=20)
    words = "Ada Lovelace wrote notes on the Analytical Engine in London for Babbage".split() * 3
    corpus = [" ".join(words), " ".join(spec.labels), "panx: " + " ".join(words[:6])] * 20
    tokenizer = train_unigram_tokenizer(corpus, vocab_size=80)
    tags = (["B-PER", "I-PER"] + ["O"] * 9 + ["B-PER"]) * 3
    fmt = get_format(spec.format, TextToTextConfig())
    features = fmt.featurize([{"id": "x", "tokens": words, "labels": tags}], tokenizer, spec, max_length=16)
    covered = [index for f in features for index in range(f["word_start"], f["word_end"])]
    assert covered == list(range(len(words))) and len(features) > 3
    for feature in features:
        start, end = feature["word_start"], feature["word_end"]
        assert len(feature["input_ids"]) <= 16 and len(feature["target_ids"]) <= 20
        assert tokenizer.decode(feature["input_ids"], skip_special_tokens=True) == "panx: " + " ".join(words[start:end])
        assert tokenizer.decode(feature["target_ids"], skip_special_tokens=True) == echoed(words[start:end], tags[start:end])
    unlabelled = fmt.featurize([{"id": "x", "tokens": words, "labels": None}], tokenizer, spec, max_length=16)
    assert [(f["word_start"], f["word_end"]) for f in unlabelled] == [(f["word_start"], f["word_end"]) for f in features]
    assert not any("target_ids" in feature for feature in unlabelled)


def test_a_prompt_target_template_wraps_the_pairs_and_counts_in_the_target_budget():
    prompt = {"input": "Words: {tokens}", "target": "Tags: {tags} ."}
    spec = spec_with("panx", max_target_length=9, prompts={"p": prompt})
    tokenizer = build_tokenizer(["Words: Tags: . " + " ".join(WORDS), " ".join(spec.labels)])
    example = {"id": "p", "tokens": WORDS[:5], "labels": NER[:5]}
    fmt = get_format(spec.format, TextToTextConfig(prompt="p"))
    features = fmt.featurize([example], tokenizer, spec, max_length=32)
    # target room: 9 - "Tags:", "." and eos = 6 tokens = 3 words with their tags
    assert [(f["word_start"], f["word_end"]) for f in features] == [(0, 3), (3, 5)]
    assert tokenizer.decode(features[0]["target_ids"], skip_special_tokens=True) == "Tags: w0 O w1 B-PER w2 I-PER ."
    assert tokenizer.decode(features[1]["input_ids"], skip_special_tokens=True) == "Words: w3 w4"
    answers = {"Words: w0 w1 w2": "Tags: w0 O w1 B-PER w2 O .", "Words: w3 w4": "w3 O w4"}  # template left out: read as is
    predictions = fmt.predict(ScriptedModel(tokenizer, answers), features, [example], spec, tokenizer=tokenizer, **RUN)
    assert predictions == [["O", "B-PER", "O", "O", UNALIGNED_TAG]]
