"""Sentence and sentence-pair classification (XNLI, PAWS-X, MNLI, QQP): one label per example,
scored by accuracy on the official 0..100 scale."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from xstilts.data.io import Example
from xstilts.metrics import accuracy
from xstilts.formats.base import Feature
from xstilts.tasks.spec import TaskSpec


class ClassificationHead(nn.Module):
    """Dense + tanh + linear on the first token, as in the XLM-R classification head."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        first = self.dropout(hidden[:, 0])
        return self.out_proj(self.dropout(torch.tanh(self.dense(first))))


class SentenceClassification:
    """The TaskFormat for text_a [+ text_b] -> label."""

    version = 1

    def featurize(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, max_length: int
    ) -> list[Feature]:
        encoded = tokenizer(
            [example["text_a"] for example in examples],
            [example.get("text_b") or "" for example in examples] if examples and "text_b" in examples[0] else None,
            truncation=True,
            max_length=max_length,
        )
        label_ids = {label: index for index, label in enumerate(spec.labels)}
        features = []
        for index, example in enumerate(examples):
            feature = {key: encoded[key][index] for key in encoded.keys()}
            if example["label"] is not None:  # None: an unlabelled test file, predicted on only
                feature["labels"] = label_ids[example["label"]]
            features.append(feature)
        return features

    def build_head(self, hidden_size: int, spec: TaskSpec, dropout: float) -> nn.Module:
        return ClassificationHead(hidden_size, len(spec.labels), dropout)

    def loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(output.float(), batch["labels"])

    def reduce(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The index of each example's best label (the first of equal logits, as numpy's argmax)."""
        return output.argmax(dim=-1)

    def decode(self, outputs: np.ndarray, features: list[Feature], examples: list[Example], spec: TaskSpec) -> list:
        """The label of every example, from `reduce`'s label indices."""
        return [spec.labels[index] for index in outputs]

    def score(self, predictions: list, examples: list[Example], spec: TaskSpec) -> dict[str, float]:
        return {"accuracy": 100.0 * accuracy(predictions, [example["label"] for example in examples])}


# One implementation serves both: featurize encodes text_b only when the examples have it.
PAIR_CLASSIFICATION = SentenceClassification()
SINGLE_CLASSIFICATION = PAIR_CLASSIFICATION
