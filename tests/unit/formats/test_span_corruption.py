"""Span corruption: T5's noise (share, spans, sentinels), exact reconstruction, determinism, featurisation."""

import numpy as np
import pytest
import torch

from xstilts.config.schema import TextToTextConfig
from xstilts.errors import UserError
from xstilts.formats.base import get_format
from xstilts.formats.batching import collate
from xstilts.formats.span_corruption import (
    SPAN_CORRUPTION, corrupt_spans, random_spans_noise_mask, random_segmentation, sentinel_ids,
)
from xstilts.models.tiny import train_unigram_tokenizer
from xstilts.tasks.registry import load_registry
from xstilts.tasks.spec import Format

SENTINELS = list(range(1000, 1032))
EOS = 1


def reconstruct(inputs: list[int], targets: list[int], sentinels=tuple(SENTINELS), eos: int = EOS) -> list[int]:
    """The original tokens: each sentinel of the input replaced by what follows it in the target."""
    assert inputs[-1] == eos and targets[-1] == eos
    spans, current = {}, None
    for token in targets[:-1]:
        if token in sentinels:
            current = token
            spans[current] = []
        else:
            spans[current].append(token)
    return [t for token in inputs[:-1] for t in (spans[token] if token in sentinels else [token])]


def test_random_segmentation_sums_and_has_no_empty_segment():
    rng = np.random.default_rng(0)
    for items, segments in [(10, 3), (5, 5), (7, 1), (40, 13)]:
        lengths = random_segmentation(items, segments, rng)
        assert lengths.sum() == items and len(lengths) == segments and lengths.min() >= 1


def test_mask_has_t5s_noise_count_and_span_count():
    # 100 tokens at 15%: round(15) noise tokens in round(15 / 3) = 5 spans, one more if the roll cuts one.
    for seed in range(50):
        mask = random_spans_noise_mask(100, noise_density=0.15, mean_noise_span_length=3.0, max_spans=31,
                                       rng=np.random.default_rng(seed))
        starts = int(mask[0]) + int(np.sum(mask[1:] & ~mask[:-1]))
        assert mask.sum() == 15 and starts in (5, 6)
        if starts == 6:  # the cut span wraps around: noise at both ends
            assert mask[0] and mask[-1]


@pytest.mark.parametrize("length", [2, 3, 7, 12, 30, 64, 200])
def test_input_and_target_reconstruct_the_sequence_exactly(length):
    tokens = list(range(10, 10 + length))
    for seed in range(40):
        inputs, targets = corrupt_spans(tokens, sentinel_ids=SENTINELS, eos_id=EOS, rng=np.random.default_rng(seed))
        assert reconstruct(inputs, targets) == tokens
        used = [token for token in inputs if token in SENTINELS]
        assert used == SENTINELS[: len(used)] and len(used) >= 1  # in order from <extra_id_0>
        assert [token for token in targets if token in SENTINELS] == used
        assert len(inputs) <= length + 1  # a sentinel never takes more room than its span


def test_noise_share_and_span_length_over_many_draws():
    rng = np.random.default_rng(7)
    tokens = list(range(10, 110))
    noise = spans = 0
    draws = 300
    for _ in range(draws):
        inputs, targets = corrupt_spans(tokens, sentinel_ids=SENTINELS, eos_id=EOS, rng=rng)
        spans += sum(token in SENTINELS for token in inputs)
        noise += len(targets) - 1 - sum(token in SENTINELS for token in targets)
    assert noise == 15 * draws  # exactly round(100 * 0.15) per sequence
    assert 2.5 <= noise / spans <= 3.0  # mean span 3, a little less when the roll cuts a span


def test_noise_is_spread_over_positions():
    """T5 without its random roll always corrupts the last tokens of a one-span sentence."""
    hits = np.zeros(12)
    for seed in range(600):
        mask = random_spans_noise_mask(12, noise_density=0.15, mean_noise_span_length=3.0, max_spans=31,
                                       rng=np.random.default_rng(seed))
        hits += mask
    assert hits.sum() == 2 * 600 and hits.min() > 0.5 * hits.mean()


def test_the_docstring_draw():
    # 8 tokens at 50%: round(4) noise tokens in round(4 / 3) = 1 span; seed 0 rolls it to the end.
    assert corrupt_spans([5, 6, 7, 8, 9, 10, 11, 12], sentinel_ids=[99, 98], eos_id=1, rng=np.random.default_rng(0),
                         noise_density=0.5) == ([5, 6, 7, 8, 99, 1], [99, 9, 10, 11, 12, 1])


def test_same_seed_same_corruption():
    tokens = list(range(10, 60))
    first = corrupt_spans(tokens, sentinel_ids=SENTINELS, eos_id=EOS, rng=np.random.default_rng(3))
    again = corrupt_spans(tokens, sentinel_ids=SENTINELS, eos_id=EOS, rng=np.random.default_rng(3))
    other = corrupt_spans(tokens, sentinel_ids=SENTINELS, eos_id=EOS, rng=np.random.default_rng(4))
    assert first == again and first != other


def test_short_sequences():
    assert corrupt_spans([5], sentinel_ids=SENTINELS, eos_id=EOS, rng=np.random.default_rng(0)) == ([5, EOS], [EOS])
    assert corrupt_spans([], sentinel_ids=SENTINELS, eos_id=EOS, rng=np.random.default_rng(0)) == ([EOS], [EOS])
    # Two tokens: one is noise (at least one, never all), either one.
    pairs = {tuple(map(tuple, corrupt_spans([5, 6], sentinel_ids=SENTINELS, eos_id=EOS, rng=np.random.default_rng(seed))))
             for seed in range(20)}
    assert pairs == {((5, 1000, EOS), (1000, 6, EOS)), ((1000, 6, EOS), (1000, 5, EOS))}


@pytest.fixture(scope="module")
def tokenizer():
    words = "the cat dog sat on mat der hund katze lief auf le chat chien".split()
    texts = [" ".join(words[(i * 7 + j) % len(words)] for j in range(3 + i % 9)) for i in range(400)]
    return train_unigram_tokenizer(texts, vocab_size=60)


SPEC = load_registry().get("span-corruption-multilingual")


def examples(texts):
    return [{"id": f"en-{i}", "text": text, "language": "en"} for i, text in enumerate(texts)]


def test_featurize_is_deterministic_and_windows_long_lines(tokenizer):
    texts = ["the cat sat on the mat", "der hund lief auf " * 12, "le chat"]
    features = SPAN_CORRUPTION.featurize(examples(texts), tokenizer, SPEC, max_length=16)
    assert features == SPAN_CORRUPTION.featurize(examples(texts), tokenizer, SPEC, max_length=16)
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    windows = [-(-len(row) // 15) for row in ids]
    assert [f["example_index"] for f in features] == [i for i, n in enumerate(windows) for _ in range(n)]
    assert windows[1] >= 3
    sentinel = sentinel_ids(tokenizer)
    assert sentinel == tokenizer.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(32)])
    rebuilt: dict[int, list[int]] = {}
    for feature in features:
        assert len(feature["input_ids"]) <= 16 and feature["attention_mask"] == [1] * len(feature["input_ids"])
        window = reconstruct(feature["input_ids"], feature["target_ids"], set(sentinel), tokenizer.eos_token_id)
        rebuilt.setdefault(feature["example_index"], []).extend(window)
    assert [rebuilt[i] for i in range(3)] == ids


def test_noise_depends_on_the_example_position_and_text(tokenizer):
    text = "the cat sat on the mat the dog sat on the mat le chat"
    first = SPAN_CORRUPTION.featurize(examples(["le chat", text]), tokenizer, SPEC, max_length=64)
    other_neighbour = SPAN_CORRUPTION.featurize(examples(["der hund", text]), tokenizer, SPEC, max_length=64)
    assert first[1] == other_neighbour[1]  # only its own position and text decide an example's noise
    draws = {tuple(f["input_ids"]) for f in SPAN_CORRUPTION.featurize(examples([text] * 12), tokenizer, SPEC, max_length=64)}
    assert len(draws) > 3  # the same text at other positions gets other noise
    texts = {tuple(f["target_ids"]) for f in SPAN_CORRUPTION.featurize(examples([text + " dog" * k for k in range(8)]), tokenizer, SPEC, max_length=64)}
    assert len(texts) > 3


def test_loss_is_token_cross_entropy_over_targets(tokenizer):
    features = SPAN_CORRUPTION.featurize(examples(["the cat sat on the mat", "le chat"]), tokenizer, SPEC, max_length=32)
    batch = collate(features, tokenizer, torch.device("cpu"))
    assert (batch["labels"] == -100).sum() == abs(len(features[0]["target_ids"]) - len(features[1]["target_ids"]))
    vocabulary = len(tokenizer)
    logits = torch.zeros(*batch["labels"].shape, vocabulary)
    # Uniform logits: the loss is log(vocabulary) whatever the targets.
    assert SPAN_CORRUPTION.loss(logits, batch).item() == pytest.approx(np.log(vocabulary), rel=1e-6)
    logits[0, 0, batch["labels"][0, 0]] = 100.0  # one token certain: it drops out of the mean
    tokens = int((batch["labels"] != -100).sum())
    assert SPAN_CORRUPTION.loss(logits, batch).item() == pytest.approx(np.log(vocabulary) * (tokens - 1) / tokens, rel=1e-5)


def test_format_is_text_to_text_only_and_train_only(tokenizer):
    assert get_format(Format.SPAN_CORRUPTION, TextToTextConfig()) is SPAN_CORRUPTION
    with pytest.raises(UserError, match="mode: text_to_text"):
        get_format(Format.SPAN_CORRUPTION)
    with pytest.raises(UserError, match="trained only"):
        SPAN_CORRUPTION.score([], [], SPEC)
    with pytest.raises(UserError, match="trained only"):
        SPAN_CORRUPTION.predict(None, [], [], SPEC, tokenizer=tokenizer)
    with pytest.raises(RuntimeError, match="no task head"):
        SPAN_CORRUPTION.build_head(32, SPEC, 0.1)
