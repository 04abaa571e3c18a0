"""Hard and easy subsets from a shallow English baseline (research question e).

A bag-of-n-grams logistic regression (scikit-learn) is trained on the task's English train split
and predicts the evaluation split; the items it gets wrong are "hard" (they need more than
surface cues), the ones it gets right "easy". Two baselines:

- `hypothesis-only`: only the second text of a pair (`text_b`), the classic annotation-artefact
  probe (Gururangan et al. 2018; Poliak et al. 2018); for multiple choice, each choice alone.
- `bag-of-words`: both texts concatenated; for multiple choice, context, question and choice.

Multiple choice is scored as a binary classifier over (item, choice): is this the right choice?
The item's prediction is the choice it rates most probable. The ids (see `subsets.example_id`)
are written one per line and used in a task spec as `{ids_file: FILE}`, carried by item index
from English to the other languages.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from xstilts.atomic import atomic_write_text
from xstilts.data.io import Example
from xstilts.data.loading import load_examples
from xstilts.errors import UserError
from xstilts.evaluation.subsets import example_id
from xstilts.tasks.spec import Format, TaskSpec


class Baseline(str, Enum):
    """The shallow English baselines of `build_hard_subset`."""

    HYPOTHESIS_ONLY = "hypothesis-only"
    BAG_OF_WORDS = "bag-of-words"


def _pair_text(example: Example, baseline: Baseline) -> str:
    if baseline is Baseline.HYPOTHESIS_ONLY:
        return example["text_b"]
    return f"{example['text_a']} {example.get('text_b', '')}".strip()


def _choice_texts(example: Example, baseline: Baseline) -> list[str]:
    if baseline is Baseline.HYPOTHESIS_ONLY:
        return list(example["choices"])
    prefix = f"{example.get('context', '')} {example.get('question', '')}".strip()
    return [f"{prefix} {choice}" for choice in example["choices"]]


def _classifier(seed: int):
    # Word unigrams and bigrams: shallow cues (negation words, overlap phrases), nothing deeper.
    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1), LogisticRegression(max_iter=2000, random_state=seed))


def _check(spec: TaskSpec, baseline: Baseline, train: list[Example]) -> None:
    if baseline is Baseline.HYPOTHESIS_ONLY and spec.format is not Format.MULTIPLE_CHOICE and "text_b" not in train[0]:
        raise UserError(f"task {spec.name!r}: the hypothesis-only baseline needs sentence pairs (text_b); use bag-of-words")


def _predict_labels(train: list[Example], evaluate: list[Example], baseline: Baseline, seed: int) -> list:
    """Classification: train on the texts' labels, predict each evaluated item's label."""
    labels = [example["label"] for example in train]
    if len(set(labels)) < 2:
        raise UserError("the baseline's train split has a single label: nothing to learn")
    model = _classifier(seed).fit([_pair_text(example, baseline) for example in train], labels)
    return list(model.predict([_pair_text(example, baseline) for example in evaluate]))


def _predict_choices(train: list[Example], evaluate: list[Example], baseline: Baseline, seed: int) -> list[int]:
    """Multiple choice: a right-choice classifier over (item, choice); each item takes its most
    probable choice (the first on ties)."""
    texts = [text for example in train for text in _choice_texts(example, baseline)]
    targets = [int(i == example["label"]) for example in train for i in range(len(example["choices"]))]
    model = _classifier(seed).fit(texts, targets)
    right = list(model.classes_).index(1)
    return [int(np.argmax(model.predict_proba(_choice_texts(example, baseline))[:, right])) for example in evaluate]


def build_hard_subset(
    spec: TaskSpec, data_dir: Path | None, *, baseline: Baseline | str = Baseline.HYPOTHESIS_ONLY, split: str = "test", seed: int = 0
) -> tuple[list[str], list[str], float]:
    """Split the English `split` of a task by what a shallow English baseline gets right.

    Args:
        spec: a pair/single classification or multiple-choice task with a train split.
        data_dir: its data folder (None: the hub).
        baseline: "hypothesis-only" (second text / each choice alone) or "bag-of-words".
        split: the split to divide (its training-language examples).
        seed: the logistic regression's random state.

    Returns:
        (hard_ids, easy_ids, baseline_accuracy): ids in file order of the items the baseline
        gets wrong and right, and its accuracy on the split in percent.

    Raises:
        UserError: an unsupported format, a hypothesis-only baseline without pairs, or a
            train split with a single label.
    """
    baseline = Baseline(baseline)
    if spec.format not in (Format.PAIR_CLASSIFICATION, Format.SINGLE_CLASSIFICATION, Format.MULTIPLE_CHOICE):
        raise UserError(f"task {spec.name!r}: hard subsets need a classification or multiple-choice task, not {spec.format.value}")
    train = load_examples(spec, "train", spec.train_language, data_dir)
    evaluate = load_examples(spec, split, spec.train_language, data_dir)
    _check(spec, baseline, train)
    if spec.format is Format.MULTIPLE_CHOICE:
        predictions = _predict_choices(train, evaluate, baseline, seed)
    else:
        predictions = _predict_labels(train, evaluate, baseline, seed)
    right = [prediction == example["label"] for prediction, example in zip(predictions, evaluate)]
    ids = [example_id(example, i) for i, example in enumerate(evaluate)]
    hard = [item for item, ok in zip(ids, right) if not ok]
    easy = [item for item, ok in zip(ids, right) if ok]
    return hard, easy, 100.0 * sum(right) / len(right)


def write_ids(path: Path, ids: list[str]) -> None:
    """An ids file for `{ids_file: ...}`: one id per line, written atomically."""
    atomic_write_text(Path(path), "".join(f"{item}\n" for item in ids))
