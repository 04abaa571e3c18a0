"""A tiny T5 learns learnable fixtures through the text-to-text formats' own featurize and loss
(a plain AdamW loop), and predicts well above chance by rank, by generation, and for tagging."""

import random

import pytest
import torch

from tiny_t5 import build_tiny_t5, build_tokenizer
from xstilts.config.schema import Precision, Scoring, TextToTextConfig
from xstilts.formats.base import get_format
from xstilts.formats.batching import collate
from xstilts.formats.text_rendering import render_input
from xstilts.metrics import token_accuracy
from xstilts.tasks.registry import load_registry

pytestmark = pytest.mark.slow

REGISTRY = load_registry()
CPU = torch.device("cpu")
CUES = {"food": ["apple", "bread"], "nature": ["tree", "river"], "sport": ["ball", "goal"], "travel": ["train", "plane"]}
FILLERS = "the a we saw one big small red old new today there".split()
NOUNS, VERBS = ["cat", "dog", "bird", "fish"], ["runs", "sleeps", "eats", "sings"]


def topic_examples(count: int, seed: int) -> list[dict]:
    """A sentence of fillers with one cue word that names the topic (copy-a-word-to-the-label)."""
    rng = random.Random(seed)
    examples = []
    for index in range(count):
        label = rng.choice(sorted(CUES))
        words = rng.sample(FILLERS, 4)
        words.insert(rng.randrange(5), rng.choice(CUES[label]))
        examples.append({"id": str(index), "text_a": " ".join(words), "label": label})
    return examples


def pos_examples(count: int, seed: int) -> list[dict]:
    """Noun/verb sequences of 2-5 words: each word's tag is fixed by the word itself."""
    rng = random.Random(seed)
    examples = []
    for index in range(count):
        words = [rng.choice(NOUNS + VERBS) for _ in range(rng.randint(2, 5))]
        examples.append({"id": str(index), "tokens": words, "labels": ["NOUN" if w in NOUNS else "VERB" for w in words]})
    return examples


def train(model, fmt, features, tokenizer, steps: int, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        picked = torch.randint(len(features), (16,), generator=generator).tolist()
        batch = collate([features[index] for index in picked], tokenizer, CPU)
        loss = fmt.loss(model("head", batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_classification_learns_in_rank_and_generate_mode():
    spec = REGISTRY.get("synth-topic")
    train_set, dev_set = topic_examples(400, seed=0), topic_examples(100, seed=1)
    tokenizer = build_tokenizer([render_input(example, spec, None) for example in train_set + dev_set] + sorted(CUES))
    model = build_tiny_t5(tokenizer, seed=0, d_model=64)
    fmt = get_format(spec.format, TextToTextConfig())
    train(model, fmt, fmt.featurize(train_set, tokenizer, spec, max_length=32), tokenizer, steps=300)
    features = fmt.featurize(dev_set, tokenizer, spec, max_length=32)
    run = dict(tokenizer=tokenizer, device=CPU, precision=Precision.FP32, batch_size=32)
    for scoring in Scoring:
        scored = get_format(spec.format, TextToTextConfig(scoring=scoring))
        scores = scored.score(scored.predict(model, features, dev_set, spec, **run), dev_set, spec)
        assert scores["accuracy"] > 80.0, (scoring, scores)  # chance: 25
        assert scores.get("invalid_outputs", 0.0) < 10.0


def test_tagging_learns_a_tag_per_word():
    """Targets echo each word before its tag (`cat NOUN runs VERB`): the tag follows from the word
    just written and is read back by the echo, not by position. With this word-level tokenizer
    and no dropout the echo learns about as fast as bare tag sequences did (F1 89.4 at 1,000
    steps); its gain shows through the loop with sentencepiece pieces and dropout (text_tagging)."""
    spec = REGISTRY.get("synth-pos")
    train_set, dev_set = pos_examples(400, seed=0), pos_examples(100, seed=1)
    tokenizer = build_tokenizer([render_input(example, spec, None) for example in train_set] + [" ".join(spec.labels)])
    model = build_tiny_t5(tokenizer, seed=0, d_model=64, layers=2)
    fmt = get_format(spec.format, TextToTextConfig())
    train(model, fmt, fmt.featurize(train_set, tokenizer, spec, max_length=32), tokenizer, steps=1000)
    features = fmt.featurize(dev_set, tokenizer, spec, max_length=32)
    predictions = fmt.predict(model, features, dev_set, spec, tokenizer=tokenizer, device=CPU, precision=Precision.FP32, batch_size=32)
    scores = fmt.score(predictions, dev_set, spec)
    # measured (seed 0): F1 71.3 / 83.6 / 88.4 at 300 / 700 / 1,000 steps; at 1,000: token accuracy
    # 93.9, 6.1% unaligned; chance: token accuracy 50
    assert scores["f1"] > 75.0 and scores["unaligned_words"] < 10.0, scores
    assert token_accuracy(predictions, [example["labels"] for example in dev_set]) > 0.85
