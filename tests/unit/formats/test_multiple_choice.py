import numpy as np
import pytest
import torch

from xstilts.formats.multiple_choice import MULTIPLE_CHOICE, first_segment, grouped_choice_loss
from xstilts.models.tiny import train_wordpiece_tokenizer
from reduced_outputs import reduced
from xstilts.tasks.registry import load_registry

REGISTRY = load_registry()
EXAMPLES = [
    {"id": "1", "context": "the man fell", "question": "cause", "choices": ["he slipped", "he sang"], "label": 0},
    {"id": "2", "context": "", "question": "where is a tree", "choices": ["house", "park", "sea"], "label": 2},
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_wordpiece_tokenizer(["the man fell cause he slipped sang where is a tree house park sea"] * 10, vocab_size=100)


def test_one_feature_per_choice_with_group_and_labels(tokenizer):
    features = MULTIPLE_CHOICE.featurize(EXAMPLES, tokenizer, REGISTRY.get("xcopa"), max_length=32)
    assert [(f["group"], f["choice_index"], f["labels"]) for f in features] == [
        (0, 0, [0, 2, 1]), (0, 1, [0, 2, 0]),
        (1, 0, [1, 3, 0]), (1, 1, [1, 3, 0]), (1, 2, [1, 3, 1]),
    ]
    assert tokenizer.decode(features[1]["input_ids"], skip_special_tokens=True) == "the man fell cause he sang"
    assert first_segment(EXAMPLES[1]) == "where is a tree"


def test_loss_is_a_softmax_over_each_examples_choices():
    scores = torch.tensor([2.0, 0.5, 0.1, 0.2, 0.3])
    labels = torch.tensor([[0, 2, 1], [0, 2, 0], [1, 3, 0], [1, 3, 0], [1, 3, 1]])
    expected = (-torch.log_softmax(scores[:2], 0)[0] - torch.log_softmax(scores[2:], 0)[2]) / 2
    assert torch.allclose(grouped_choice_loss(scores, labels), expected)


def test_an_example_twice_in_a_batch_counts_twice():
    scores = torch.tensor([2.0, 0.5, 2.0, 0.5])
    labels = torch.tensor([[0, 2, 0], [0, 2, 1]] * 2)
    assert torch.allclose(grouped_choice_loss(scores, labels), -torch.log_softmax(scores[:2], 0)[1])


def test_loss_refuses_a_batch_that_cuts_an_example():
    with pytest.raises(RuntimeError, match=r"cuts example 1 \(expected its 3 choices in a row\)"):
        grouped_choice_loss(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([[0, 2, 1], [0, 2, 0], [1, 3, 0]]))
    with pytest.raises(RuntimeError, match="cuts example 0"):
        grouped_choice_loss(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([[0, 2, 1], [1, 2, 0], [1, 2, 1]]))


def test_head_scores_each_choice_with_one_logit():
    head = MULTIPLE_CHOICE.build_head(8, REGISTRY.get("xcopa"), dropout=0.0)
    assert head(torch.randn(5, 4, 8), {}).shape == (5, 1)


def test_decode_argmax_per_example_and_accuracy(tokenizer):
    features = MULTIPLE_CHOICE.featurize(EXAMPLES, tokenizer, REGISTRY.get("xcopa"), max_length=32)
    outputs = np.array([[0.1], [0.9], [0.3], [0.2], [0.25]], dtype=np.float32)
    predictions = MULTIPLE_CHOICE.decode(reduced(MULTIPLE_CHOICE, outputs, features), features, EXAMPLES, REGISTRY.get("xcopa"))
    assert predictions == [1, 0]
    assert MULTIPLE_CHOICE.score(predictions, EXAMPLES, REGISTRY.get("xcopa")) == {"accuracy": 0.0}
    assert MULTIPLE_CHOICE.score([0, 2], EXAMPLES, REGISTRY.get("xcopa")) == {"accuracy": 100.0}
