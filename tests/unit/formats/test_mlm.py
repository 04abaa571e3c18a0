"""MLM format: seeded static masking (rates, determinism, special tokens), windows, tied head, decode and score."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from torch import nn
from transformers import PreTrainedTokenizerFast
from transformers.activations import ACT2FN

from xstilts.errors import UserError
from xstilts.formats.mlm import IGNORE, MLM, mask_tokens, read_text_lines
from xstilts.tasks.registry import load_registry
from xstilts.formats.batching import collate

SPEC = load_registry().get("mlm-multilingual")
WORDS = ["the", "cat", "dog", "sat", "on", "mat", "der", "hund", "katze", "lief", "auf", "le", "chat", "chien"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
ID = {token: index for index, token in enumerate(VOCAB)}
SPECIAL = {ID[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")}


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.WordPiece(ID, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ID["[CLS]"]), ("[SEP]", ID["[SEP]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
    )


class Draws:
    """A generator stand-in returning hand-chosen draws in mask_tokens' order."""

    def __init__(self, selection, action, random_ids):
        self.uniform = [np.array(selection), np.array(action)]
        self.random_ids = np.array(random_ids)

    def random(self, n):
        return self.uniform.pop(0)[:n]

    def integers(self, high, size):
        return self.random_ids[:size]


def test_mask_tokens_hand_computed():
    ids = [10, 11, 12, 13, ID["[UNK]"], 14]
    draws = Draws(selection=[0.10, 0.50, 0.05, 0.149, 0.01, 0.15], action=[0.5, 0.0, 0.85, 0.95, 0.1, 0.0], random_ids=[7, 7, 9, 9, 9, 9])
    inputs, labels = mask_tokens(ids, draws, vocab_size=len(VOCAB), mask_id=ID["[MASK]"], special_ids=SPECIAL)
    # 0: selected, mask; 1: not selected; 2: selected, random id 9; 3: selected, kept;
    # 4: special ([UNK]) never selected; 5: 0.15 is not < 0.15
    assert inputs == [ID["[MASK]"], 11, 9, 13, ID["[UNK]"], 14]
    assert labels == [10, IGNORE, 12, 13, IGNORE, IGNORE]


def corpus(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return [{"id": str(i), "text": " ".join(rng.choice(WORDS, size=8))} for i in range(n)]


def test_masking_rates_match_the_recipe(tokenizer):
    features = MLM.featurize(corpus(), tokenizer, SPEC, max_length=32)
    inputs = np.array([f["input_ids"][1:-1] for f in features])
    labels = np.array([f["labels"][1:-1] for f in features])
    selected = labels != IGNORE
    n = inputs.size  # 24,000 eligible tokens: the std of the 15% rate is 0.23 points
    assert abs(selected.sum() / n - 0.15) < 0.01
    masked = (inputs == ID["[MASK]"]) & selected
    unchanged = (inputs == labels) & selected
    assert abs(masked.sum() / selected.sum() - 0.8) < 0.02
    # 10% kept, plus the random replacements that drew the original id (1 in the vocabulary size)
    assert abs(unchanged.sum() / selected.sum() - (0.1 + 0.1 / len(VOCAB))) < 0.02
    assert (inputs[~selected] == np.array([[ID[w] for w in e["text"].split()] for e in corpus()])[~selected]).all()


def test_masking_is_deterministic_per_example_index(tokenizer):
    examples = corpus(50)
    first = MLM.featurize(examples, tokenizer, SPEC, max_length=32)
    assert first == MLM.featurize(examples, tokenizer, SPEC, max_length=32)
    assert MLM.featurize(examples[:7], tokenizer, SPEC, max_length=32) == first[:7]
    assert MLM.featurize(examples[1:2], tokenizer, SPEC, max_length=32) != first[1:2]  # index 0 now: other masks


def test_special_tokens_are_never_masked_and_long_lines_become_windows(tokenizer):
    text = " ".join(["the", "[UNK]", "cat"] * 40)  # 120 tokens, windows of 14 with max_length 16
    features = MLM.featurize([{"id": "a", "text": text}], tokenizer, SPEC, max_length=16)
    assert len(features) == math.ceil(120 / 14) and {f["example_index"] for f in features} == {0}
    for feature in features:
        ids, labels = feature["input_ids"], feature["labels"]
        assert ids[0] == ID["[CLS]"] and ids[-1] == ID["[SEP]"] and labels[0] == labels[-1] == IGNORE
        assert len(ids) <= 16 and feature["attention_mask"] == [1] * len(ids)
        assert all(label not in SPECIAL for label in labels if label != IGNORE)
    assert sum(len(f["input_ids"]) - 2 for f in features) == 120  # nothing truncated
    originals = [ID[t] for t in ["the", "[UNK]", "cat"] * 40]
    content = [i for f in features for i in f["input_ids"][1:-1]]
    assert [c for c, o in zip(content, originals) if o == ID["[UNK]"]] == [ID["[UNK]"]] * 40


def test_tied_head_outputs_gold_log_prob_and_prediction(tokenizer):
    torch.manual_seed(0)
    embeddings = nn.Embedding(len(VOCAB), 8)
    encoder = nn.Module()
    encoder.get_input_embeddings = lambda: embeddings
    head = MLM.build_head(8, SPEC, dropout=0.1)
    with pytest.raises(RuntimeError, match="not bound"):
        head(torch.zeros(1, 3, 8), {"labels": torch.tensor([[IGNORE, 5, IGNORE]])})
    head.bind_encoder(encoder)
    # The decoder is the embedding matrix: the head saves its transform and output bias only.
    assert set(head.state_dict()) == {"dense.weight", "dense.bias", "layer_norm.weight", "layer_norm.bias", "bias"}
    assert head.bias.shape == (len(VOCAB),) and not head.bias.any()
    with torch.no_grad():
        head.bias.copy_(torch.randn(len(VOCAB)))
    hidden = torch.randn(2, 3, 8)
    labels = torch.tensor([[IGNORE, 5, IGNORE], [7, IGNORE, IGNORE]])
    output = head(hidden, {"labels": labels})
    states = head.layer_norm(nn.functional.gelu(head.dense(hidden)))
    log_probs = (states @ embeddings.weight.t() + head.bias).log_softmax(-1)
    assert output.shape == (2, 3, 2) and output[0, 0].tolist() == [0.0, 0.0]
    assert torch.allclose(output[0, 1, 0], log_probs[0, 1, 5]) and output[0, 1, 1] == log_probs[0, 1].argmax()
    assert torch.allclose(output[1, 0, 0], log_probs[1, 0, 7])
    loss = MLM.loss(output, {"labels": labels})
    assert torch.allclose(loss, -(log_probs[0, 1, 5] + log_probs[1, 0, 7]) / 2)
    loss.backward()
    assert embeddings.weight.grad is not None and embeddings.weight.grad.abs().sum() > 0  # the decoder is tied
    assert head.bias.grad is not None and head.bias.grad[[5, 7]].abs().sum() > 0


def test_head_takes_activation_and_norm_epsilon_from_the_encoder_config():
    # As BERT's and XLM-R's own heads (hidden_act, layer_norm_eps), and DistilBERT's (activation).
    embeddings = nn.Embedding(len(VOCAB), 8)
    for config, activation, eps in (
        (SimpleNamespace(hidden_act="relu", layer_norm_eps=1e-5), nn.ReLU, 1e-5),
        (SimpleNamespace(activation="gelu"), type(ACT2FN["gelu"]), 1e-12),
    ):
        encoder = SimpleNamespace(get_input_embeddings=lambda: embeddings, config=config)
        head = MLM.build_head(8, SPEC, dropout=0.1)
        head.bind_encoder(encoder)
        assert isinstance(head.activation, activation) and head.layer_norm.eps == eps
    wrong = nn.Embedding(len(VOCAB) + 1, 8)
    with pytest.raises(ValueError, match="bias has 19 entries, the encoder's vocabulary 20"):
        head.bind_encoder(SimpleNamespace(get_input_embeddings=lambda: wrong, config=None))


def test_decode_and_score_hand_computed():
    features = [
        {"labels": [IGNORE, 5, 6, IGNORE], "example_index": 0},
        {"labels": [IGNORE, 7, IGNORE], "example_index": 0},
        {"labels": [IGNORE, IGNORE, 8, IGNORE], "example_index": 1},
    ]
    outputs = np.zeros((3, 4, 2), dtype=np.float32)
    outputs[0, 1], outputs[0, 2], outputs[1, 1], outputs[2, 2] = (-0.5, 5), (-1.0, 9), (-2.0, 7), (-0.5, 8)
    examples = [{"id": "a", "text": ""}, {"id": "b", "text": ""}]
    predictions = MLM.decode(outputs, features, examples, SPEC)
    assert predictions[0] == {"gold": [5, 6, 7], "predicted": [5, 9, 7], "log_probs": [-0.5, -1.0, -2.0]}
    scores = MLM.score(predictions, examples, SPEC)
    assert list(scores) == ["accuracy", "perplexity"]
    assert scores["accuracy"] == pytest.approx(75.0)
    assert scores["perplexity"] == pytest.approx(math.exp(4.0 / 4))


def test_collated_labels_are_padded_with_ignore(tokenizer):
    features = MLM.featurize([{"id": "a", "text": "the cat"}, {"id": "b", "text": "the cat sat on the mat"}], tokenizer, SPEC, 32)
    batch = collate(features, tokenizer, torch.device("cpu"))
    assert batch["labels"].shape == batch["input_ids"].shape and (batch["labels"][0, 4:] == IGNORE).all()


def test_text_lines_reads_every_language_of_a_folder(tmp_path):
    spec = SPEC.model_copy(update={"languages": ["en", "de"]})
    (tmp_path / "en.txt").write_text("the cat\n\n the dog \n", encoding="utf-8")
    (tmp_path / "de.txt").write_text("der hund\n", encoding="utf-8")
    assert read_text_lines(tmp_path, spec) == [
        {"id": "en-1", "text": "the cat", "language": "en"},
        {"id": "en-3", "text": "the dog", "language": "en"},
        {"id": "de-1", "text": "der hund", "language": "de"},
    ]
    assert [e["id"] for e in read_text_lines(tmp_path / "de.txt", spec)] == ["de-1"]
    (tmp_path / "de.txt").unlink()
    with pytest.raises(UserError, match=r"de.txt: file not found"):
        read_text_lines(tmp_path, spec)
