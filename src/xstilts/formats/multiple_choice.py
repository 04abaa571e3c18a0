"""Multiple choice (XCOPA, COPA, SIQA, HellaSwag, CosmosQA, CommonsenseQA): a softmax over the
choices of each example, as in XTREME-R's XCOPA fine-tuning.

Each (example, choice) pair is one feature, `context [+ question]` paired with the choice,
scored by one logit from the first token. The loss is the cross-entropy of the softmax
over all choices of an example, so a training batch must hold every choice of each of its
examples, consecutively: a feature carries `group` (its example's index) for a batcher
that keeps groups together, and `labels = [group, number of choices, is correct]`, from
which the loss rebuilds the groups and checks that none is cut.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from xstilts.data.io import Example
from xstilts.metrics import accuracy
from xstilts.formats.base import Feature
from xstilts.formats.classification import ClassificationHead
from xstilts.tasks.spec import TaskSpec


def first_segment(example: Example) -> str:
    """What each choice is paired with: the context, then the question (either may be empty)."""
    return " ".join(part for part in (example["context"], example["question"]) if part)


def grouped_choice_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over examples of the cross-entropy of a softmax over each example's choice scores.

    The choices of an example are consecutive in the batch (the batcher keeps a `group`
    together); an example may occur twice in one batch when the batch spans two passes.

    Args:
        scores: [N] one score per (example, choice) feature.
        labels: [N, 3] `(group, number of choices, is correct)` per feature.

    Raises:
        RuntimeError: when a batch holds only some choices of an example (a batching bug).
    """
    losses = []
    start = 0
    while start < len(labels):
        group, count = int(labels[start, 0]), int(labels[start, 1])
        members = labels[start : start + count, 0]
        if len(members) != count or bool((members != group).any()):
            raise RuntimeError(
                f"multiple-choice batch cuts example {group} (expected its {count} choices in a row): "
                "the training batcher must keep features with the same 'group' together"
            )
        target = labels[start : start + count, 2].argmax()
        losses.append(nn.functional.cross_entropy(scores[start : start + count].unsqueeze(0), target.unsqueeze(0)))
        start += count
    return torch.stack(losses).mean()


class MultipleChoice:
    """The TaskFormat for (context, question, choices) -> index of the correct choice."""

    version = 1

    def featurize(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, max_length: int
    ) -> list[Feature]:
        pairs = [(index, choice) for index, example in enumerate(examples) for choice in range(len(example["choices"]))]
        if not pairs:
            return []
        encoded = tokenizer(
            [first_segment(examples[index]) for index, _ in pairs],
            [examples[index]["choices"][choice] for index, choice in pairs],
            truncation=True,
            max_length=max_length,
        )
        features = []
        for row, (index, choice) in enumerate(pairs):
            example = examples[index]
            feature = {key: encoded[key][row] for key in encoded.keys()}
            feature.update(
                group=index,
                choice_index=choice,
                labels=[index, len(example["choices"]), int(choice == example["label"])],
            )
            features.append(feature)
        return features

    def build_head(self, hidden_size: int, spec: TaskSpec, dropout: float) -> nn.Module:
        return ClassificationHead(hidden_size, 1, dropout)

    def loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return grouped_choice_loss(output.float().squeeze(-1), batch["labels"])

    def reduce(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The score of each (example, choice) feature: [batch]."""
        return output[:, 0].float()

    def decode(self, outputs: np.ndarray, features: list[Feature], examples: list[Example], spec: TaskSpec) -> list:
        """The index of each example's best-scored choice (the first of equal scores)."""
        scores: dict[int, dict[int, float]] = defaultdict(dict)
        for score, feature in zip(outputs, features, strict=True):
            scores[feature["group"]][feature["choice_index"]] = float(score)
        return [max(scores[index], key=scores[index].get) for index in range(len(examples))]

    def score(self, predictions: list, examples: list[Example], spec: TaskSpec) -> dict[str, float]:
        return {"accuracy": 100.0 * accuracy(predictions, [example["label"] for example in examples])}


MULTIPLE_CHOICE = MultipleChoice()
