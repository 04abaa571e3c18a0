"""Tagging format: first-subword alignment, windows that never truncate, zero-subword words, decode, loss, F1."""

from collections import Counter

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from xstilts.errors import UserError
from xstilts.evaluation.predict import pad_time_axis, primary_score
from xstilts.formats.tagging import IGNORE, TAGGING, owning_window, window_spans
from xstilts.tasks.registry import load_registry
from xstilts.tasks.spec import Metric
from xstilts.formats.batching import collate
from reduced_outputs import reduced

PANX = load_registry().get("panx")
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog", "run", "##ning", "##s", "Paris", "in"]
ID = {token: index for index, token in enumerate(VOCAB)}
O, B_PER, B_LOC = PANX.labels.index("O"), PANX.labels.index("B-PER"), PANX.labels.index("B-LOC")


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """A WordPiece tokenizer with a hand-written vocabulary, so subwords are known in advance."""
    backend = Tokenizer(models.WordPiece(ID, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ID["[CLS]"]), ("[SEP]", ID["[SEP]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )


def example(tokens, labels=None, id_="e"):
    return {"id": id_, "tokens": tokens, "labels": labels or ["O"] * len(tokens)}


def test_first_subword_alignment_matches_hand_computed(tokenizer):
    (feature,) = TAGGING.featurize([example(["the", "dogs", "running", "Paris"], ["O", "B-PER", "O", "B-LOC"])], tokenizer, PANX, 32)
    assert feature["input_ids"] == [ID[t] for t in ["[CLS]", "the", "dog", "##s", "run", "##ning", "Paris", "[SEP]"]]
    assert feature["labels"] == [IGNORE, O, B_PER, IGNORE, O, IGNORE, B_LOC, IGNORE]
    assert feature["word_index"] == [-1, 0, 1, -1, 2, -1, 3, -1]
    assert feature["attention_mask"] == [1] * 8
    # token_type_ids exactly when the tokenizer itself emits them
    assert ("token_type_ids" in feature) == ("token_type_ids" in tokenizer("the")) and feature.get("token_type_ids", [0] * 8) == [0] * 8
    assert feature["example_index"] == 0


def test_window_spans_overlap_and_cover():
    assert window_spans(3, 4) == [(0, 3)]
    assert window_spans(10, 4) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert window_spans(11, 6) == [(0, 6), (3, 9), (5, 11)]
    spans = [(0, 6), (3, 9), (5, 11)]
    assert owning_window(5, spans) == 1  # context 0 in windows 0 and 2, min(2, 3) in window 1
    assert owning_window(4, spans) == 0  # min(4, 1) == min(1, 4): the earlier window wins the tie
    assert owning_window(0, [(0, 6), (3, 9)]) == 0 and owning_window(8, [(0, 6), (3, 9), (5, 11)]) == 2


FIRST_PIECE = {"dogs": "dog", "running": "run"}


def long_sentence(n_words: int):
    words = [["the", "dogs", "running", "Paris", "cat"][i % 5] for i in range(n_words)]
    labels = [["O", "B-PER", "I-PER", "B-LOC", "O"][i % 5] for i in range(n_words)]
    return example(words, labels, id_="long")


def test_long_sentence_every_word_predicted_exactly_once(tokenizer):
    sentence = long_sentence(53)  # 53 words -> 74 subwords
    features = TAGGING.featurize([example(["cat"]), sentence], tokenizer, PANX, 12)
    windows = [f for f in features if f["example_index"] == 1]
    assert len(windows) == len(window_spans(74, 10)) == 14  # more windows than 74 / 10: they overlap
    assert all(len(f["input_ids"]) <= 12 and f["input_ids"][0] == ID["[CLS]"] and f["input_ids"][-1] == ID["[SEP]"] for f in windows)
    owned = Counter(w for f in windows for w in f["word_index"] if w >= 0)
    assert owned == Counter(range(53))
    for feature in windows:
        for position, word in enumerate(feature["word_index"]):
            if word >= 0:
                assert feature["labels"][position] == PANX.labels.index(sentence["labels"][word])
                assert VOCAB[feature["input_ids"][position]] == FIRST_PIECE.get(sentence["tokens"][word], sentence["tokens"][word])
            else:
                assert feature["labels"][position] == IGNORE


def one_hot_outputs(features, examples, length, wrong=True):
    """Head outputs that predict the gold label at owned positions and a wrong one everywhere else."""
    outputs = np.zeros((len(features), length, len(PANX.labels)), dtype=np.float32)
    for row, feature in enumerate(features):
        gold = examples[feature["example_index"]]["labels"]
        for position, word in enumerate(feature["word_index"]):
            label = PANX.labels.index(gold[word]) if word >= 0 else PANX.labels.index("B-ORG")
            outputs[row, position, label] = 1.0 if word >= 0 or wrong else 0.0
    return outputs


def test_decode_reassembles_windows_in_order(tokenizer):
    examples = [long_sentence(53), example(["Paris", "in"], ["B-LOC", "O"]), long_sentence(21)]
    features = TAGGING.featurize(examples, tokenizer, PANX, 12)
    predictions = TAGGING.decode(reduced(TAGGING, one_hot_outputs(features, examples, 16), features), features, examples, PANX)
    assert predictions == [e["labels"] for e in examples]
    assert TAGGING.score(predictions, examples, PANX) == {"f1": 100.0, "precision": 100.0, "recall": 100.0}


@pytest.mark.parametrize("odd", ["\u200b", "", "\x00", "\ufeff"])
def test_zero_subword_words_become_unk_and_get_a_prediction(tokenizer, odd):
    examples = [example(["Paris", odd, "cat"], ["B-LOC", "B-PER", "O"])]
    (feature,) = TAGGING.featurize(examples, tokenizer, PANX, 16)
    assert feature["input_ids"] == [ID["[CLS]"], ID["Paris"], ID["[UNK]"], ID["cat"], ID["[SEP]"]]
    assert feature["word_index"] == [-1, 0, 1, 2, -1] and feature["labels"][2] == B_PER
    outputs = reduced(TAGGING, one_hot_outputs([feature], examples, 5), [feature])
    assert TAGGING.decode(outputs, [feature], examples, PANX) == [["B-LOC", "B-PER", "O"]]


def test_max_length_without_room_is_a_user_error(tokenizer):
    with pytest.raises(UserError, match="max_length 3 leaves 1 subwords per window"):
        TAGGING.featurize([example(["cat"])], tokenizer, PANX, 3)


def test_collate_pads_labels_and_loss_ignores_them(tokenizer):
    features = TAGGING.featurize([example(["the", "dogs"], ["O", "B-PER"]), example(["cat"], ["B-LOC"])], tokenizer, PANX, 16)
    batch = collate(features, tokenizer, torch.device("cpu"))
    assert batch["labels"].tolist() == [[IGNORE, O, B_PER, IGNORE, IGNORE], [IGNORE, B_LOC, IGNORE, IGNORE, IGNORE]]
    logits = torch.randn(2, 5, len(PANX.labels))
    expected = torch.nn.functional.cross_entropy(logits[[0, 0, 1], [1, 2, 1]], torch.tensor([O, B_PER, B_LOC]))
    assert torch.allclose(TAGGING.loss(logits, batch), expected)
    assert TAGGING.loss(logits, {"labels": torch.full((2, 5), IGNORE)}).item() == 0.0  # not NaN


def test_head_outputs_of_varying_lengths_are_padded_on_the_time_axis(tokenizer):
    head = TAGGING.build_head(8, PANX, dropout=0.0)
    assert head(torch.zeros(2, 5, 8), {}).shape == (2, 5, len(PANX.labels))
    padded = pad_time_axis([np.ones((2, 5, 3)), np.ones((1, 7, 3))], fill=0.0)
    assert [p.shape for p in padded] == [(2, 7, 3), (1, 7, 3)] and padded[0][:, 5:].sum() == 0
    assert [p.shape for p in pad_time_axis([np.ones((2, 3)), np.ones((1, 3))])] == [(2, 3), (1, 3)]


def test_score_is_seqeval_on_0_100_and_refuses_placeholders():
    gold = [example(["Ann", "Lee", "in", "Rome"], ["B-PER", "I-PER", "O", "B-LOC"])]
    scores = TAGGING.score([["B-PER", "I-PER", "O", "O"]], gold, PANX)
    assert scores == pytest.approx({"f1": 200 / 3, "precision": 100.0, "recall": 50.0})
    with pytest.raises(UserError, match="placeholder"):
        TAGGING.score([["O", "O"]], [example(["a", "b"], ["_", "_"])], PANX)


@pytest.mark.parametrize("task", ["ud-feats", "ccg"])
def test_feats_and_ccg_are_selected_and_reported_by_token_accuracy(task):
    """Whole FEATS strings and CCG supertags are not BIO chunks: seqeval F1 reads their first
    character as a chunk prefix (here 0.0 for FEATS and 40.0 for CCG, with three tags of four right)."""
    labels = ["Number=Sing", "Number=Plur", "_"] if task == "ud-feats" else ["<UNK>", "NP", "S[dcl]\\NP", "NP/N"]
    spec = load_registry().get(task).model_copy(update={"labels": labels, "labels_file": None})
    gold = [labels[0], labels[1], labels[1], labels[2]]
    predicted = [labels[1], labels[1], labels[1], labels[2]]
    examples = [example(["a", "b", "c", "d"], gold)]
    assert TAGGING.score([predicted], examples, spec) == {"accuracy": 75.0}
    assert primary_score(TAGGING.score([predicted], examples, spec), spec) == 75.0
    registry = load_registry()
    assert registry.get("udpos").metric is registry.get("panx").metric is Metric.SEQEVAL_F1



def test_unlabelled_sentences_are_featurised_and_decoded_without_labels(tokenizer):
    """An unlabelled test file (labels None) gets the same windows, no labels, and one prediction per word."""
    labelled = [long_sentence(21), example(["Paris", "in"], ["B-LOC", "O"])]
    unlabelled = [dict(e, labels=None) for e in labelled]
    features = TAGGING.featurize(unlabelled, tokenizer, PANX, 12)
    reference = TAGGING.featurize(labelled, tokenizer, PANX, 12)
    assert [{k: v for k, v in f.items() if k != "labels"} for f in reference] == features
    assert "labels" not in collate(features, tokenizer, torch.device("cpu"))
    predictions = TAGGING.decode(reduced(TAGGING, one_hot_outputs(reference, labelled, 12), features), features, unlabelled, PANX)
    assert predictions == [e["labels"] for e in labelled]
