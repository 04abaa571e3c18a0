"""The tiny vocabulary, tokenizer and pair examples the training-loop tests share."""

import torch

from xstilts.models.tiny import train_wordpiece_tokenizer
from xstilts.tasks.registry import load_registry

REGISTRY = load_registry()
WORDS = "the cat dog sat on under a mat house tree big small red paris where is it".split()
CPU = torch.device("cpu")
HIDDEN = 16


def tiny_tokenizer():
    """A WordPiece tokenizer over WORDS (the same every time)."""
    return train_wordpiece_tokenizer([" ".join(WORDS)] * 20, vocab_size=120)


def pair_examples(n: int, offset: int = 0) -> list[dict]:
    """`n` XNLI-shaped examples; `offset` shifts the hypotheses (a different split of the same kind)."""
    labels = REGISTRY.get("xnli").labels
    return [
        {"id": str(i), "text_a": " ".join(WORDS[i % 7 : i % 7 + 4]), "text_b": WORDS[(i + offset) % len(WORDS)], "label": labels[i % 3]}
        for i in range(n)
    ]
