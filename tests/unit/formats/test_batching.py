"""Collation and batching units: per-example label lists are never padded, an example's features travel together."""

import pytest
import torch

from xstilts.formats.batching import collate, collate_labels, example_units, prefetched, shuffled_examples, take
from xstilts.formats.multiple_choice import MULTIPLE_CHOICE
from xstilts.formats.span_qa import SPAN_QA
from xstilts.formats.tagging import TAGGING
from xstilts.models.tiny import train_wordpiece_tokenizer
from xstilts.tasks.registry import load_registry

REGISTRY = load_registry()
WORDS = "the cat dog sat on under a mat house tree big small red paris where is it".split()
CPU = torch.device("cpu")


@pytest.fixture(scope="module", params=["left", "right"])
def tokenizer(request):
    tokenizer = train_wordpiece_tokenizer([" ".join(WORDS)] * 20, vocab_size=120)
    tokenizer.padding_side = request.param
    return tokenizer


def qa_example(index: int, repeats: int) -> dict:
    context = " ".join(["the cat sat on a mat"] * repeats) + " under the big red tree"
    answer = "big red tree"
    return {"id": f"q{index}", "context": context, "question": "where is it",
            "answers": [{"text": answer, "answer_start": context.index(answer)}]}


def test_qa_start_end_are_stacked_unpadded_on_either_padding_side(tokenizer):
    features = SPAN_QA.featurize([qa_example(0, 1), qa_example(1, 3)], tokenizer, REGISTRY.get("squad"), max_length=64)
    assert len({len(f["input_ids"]) for f in features}) > 1  # the batch really is padded
    batch = collate(features, tokenizer, CPU)
    assert batch["labels"].tolist() == [f["labels"] for f in features]
    assert all(label != [0, 0] for label in batch["labels"].tolist())


def test_multiple_choice_triples_are_stacked_unpadded_on_either_padding_side(tokenizer):
    examples = [{"id": "1", "context": "the cat sat", "question": "", "choices": ["on a mat", "under the big red tree"], "label": 1}]
    features = MULTIPLE_CHOICE.featurize(examples, tokenizer, REGISTRY.get("xcopa"), max_length=32)
    batch = collate(features, tokenizer, CPU)
    assert batch["labels"].tolist() == [[0, 2, 0], [0, 2, 1]]


def test_per_position_labels_are_padded_on_the_tokenizers_side():
    features = [{"input_ids": [2, 5, 3], "labels": [-100, 7, -100]}, {"input_ids": [2, 5, 6, 8, 3], "labels": [-100, 1, 2, 3, -100]}]
    assert collate_labels(features, 5, "left").tolist()[0] == [-100, -100, -100, 7, -100]
    assert collate_labels(features, 5, "right").tolist()[0] == [-100, 7, -100, -100, -100]
    assert collate_labels(features, 5, "right").tolist()[1] == [-100, 1, 2, 3, -100]


def test_integer_labels_are_stacked():
    assert collate_labels([{"input_ids": [1, 2], "labels": 2}, {"input_ids": [1], "labels": 0}], 2, "left").tolist() == [2, 0]


def test_qa_windows_of_one_example_form_one_unit_and_travel_together():
    tokenizer = train_wordpiece_tokenizer([" ".join(WORDS)] * 20, vocab_size=120)
    examples = [qa_example(index, repeats) for index, repeats in enumerate([8, 1, 6, 1])]
    features = SPAN_QA.featurize(examples, tokenizer, REGISTRY.get("squad"), max_length=32)
    windows = [sum(f["example_index"] == index for f in features) for index in range(4)]
    assert windows[0] > 1 and windows[2] > 1
    units = example_units(features)
    assert len(units) == 4 and [len(unit) for unit in units] == windows
    batch = take(shuffled_examples(features, torch.Generator().manual_seed(0)), 2)
    drawn = {f["example_index"] for f in batch}
    assert len(drawn) == 2 and len(batch) == sum(windows[index] for index in drawn)


def test_tagging_windows_group_by_example_and_classification_features_stand_alone():
    tokenizer = train_wordpiece_tokenizer([" ".join(WORDS)] * 20, vocab_size=120)
    long = {"id": "a", "tokens": WORDS * 2, "labels": ["O"] * len(WORDS) * 2}
    short = {"id": "b", "tokens": WORDS[:3], "labels": ["O"] * 3}
    features = TAGGING.featurize([long, short], tokenizer, REGISTRY.get("panx"), max_length=12)
    assert len(features) > 3
    assert [len(unit) for unit in example_units(features)] == [len(features) - 1, 1]
    assert example_units([{"input_ids": [1], "labels": 0}] * 3) == [[0], [1], [2]]


def varied_features(n: int) -> list[dict]:
    """Multiple-choice-like features: example g has 2 choices of length 1 + (7g mod 23) and 2 + (7g mod 23)."""
    return [{"group": g, "input_ids": [1] * (1 + c + (7 * g) % 23)} for g in range(n) for c in range(2)]


def test_grouped_streams_give_batches_of_similar_length_in_random_order_and_keep_examples_whole():
    features = varied_features(400)  # lengths 1-24: each length about 17 times
    stream = shuffled_examples(features, torch.Generator().manual_seed(0), batch_size=8)
    passes = [[next(stream) for _ in range(400)] for _ in range(2)]
    for examples in passes:
        # Every example once per pass, its two choices together.
        assert sorted(example[0]["group"] for example in examples) == list(range(400))
        assert all(len(example) == 2 and example[0]["group"] == example[1]["group"] for example in examples)
        batches = [[len(example[1]["input_ids"]) for example in examples[start : start + 8]] for start in range(0, 400, 8)]
        # 400 examples in one chunk of 50 batches, sorted by length: a batch spans at most 2 lengths ...
        assert all(max(batch) - min(batch) <= 1 for batch in batches)
        # ... and the batches come in random order, not longest first.
        longest = [max(batch) for batch in batches]
        assert longest != sorted(longest, reverse=True) and longest != sorted(longest)
    assert [e[0]["group"] for e in passes[0]] != [e[0]["group"] for e in passes[1]]


def test_grouping_cuts_padding_of_dynamically_padded_batches():
    features = varied_features(320)

    def padding_share(batch_size):
        stream = shuffled_examples(features, torch.Generator().manual_seed(0), batch_size=batch_size)
        padded = real = 0
        for _ in range(20):
            batch = take(stream, 16)
            lengths = [len(f["input_ids"]) for f in batch]
            padded, real = padded + max(lengths) * len(lengths), real + sum(lengths)
        return 1 - real / padded

    assert padding_share(None) > 0.3 and padding_share(16) < 0.1


def test_prefetched_keeps_items_and_order_and_raises_the_producers_error():
    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        list(prefetched(failing()))
