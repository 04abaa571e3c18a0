import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from xstilts.errors import UserError
from xstilts.formats.span_qa import (
    MAX_ANSWER_TOKENS,
    N_BEST,
    SPAN_QA,
    SpanHead,
    answer_positions,
    best_span,
    doc_stride,
    n_best,
)
from xstilts.models.tiny import train_wordpiece_tokenizer
from reduced_outputs import reduced
from xstilts.tasks.registry import load_registry

REGISTRY = load_registry()
WORDS = "the cat dog sat on under a mat house tree big small red paris".split()


@pytest.fixture(scope="module")
def wordpiece():
    return train_wordpiece_tokenizer([" ".join(WORDS)] * 20, vocab_size=120)


@pytest.fixture(scope="module")
def metaspace():
    """A sentencepiece-style tokenizer: its offsets include the space before a word."""
    pieces = ["<s>", "</s>", "<pad>", "<unk>", "\u2581", *(f"\u2581{word}" for word in WORDS), *"abcdefghijklmnopqrstuvwxyz"]
    tokenizer = Tokenizer(models.Unigram([(piece, -1.0) for piece in pieces], unk_id=3))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 1)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, cls_token="<s>", sep_token="</s>", pad_token="<pad>", unk_token="<unk>")


def example(context, answer, qid="q1", question="where is it", impossible=False):
    answers = [] if impossible else [{"text": answer, "answer_start": context.index(answer)}]
    return {"id": qid, "context": context, "question": question, "answers": answers, "is_impossible": impossible}


def span_text(feature, ex):
    start, end = feature["labels"]
    return ex["context"][feature["offsets"][start][0] : feature["offsets"][end][1]].strip()


def test_doc_stride_scales_with_max_length():
    assert [doc_stride(n) for n in (384, 512, 128, 64)] == [128, 128, 42, 21]


def test_answer_in_a_later_window_is_labelled_there_and_cls_elsewhere(wordpiece):
    context = " ".join(["the cat sat on a mat"] * 8) + " under the big red tree " + " ".join(["a dog"] * 4)
    ex = example(context, "big red tree")
    features = SPAN_QA.featurize([ex], wordpiece, REGISTRY.get("squad"), max_length=32)
    assert len(features) > 2 and {f["example_index"] for f in features} == {0}
    assert all(len(f["input_ids"]) <= 32 for f in features)
    labelled = [f for f in features if f["labels"] != [0, 0]]
    assert len(labelled) >= 1 and features[0]["labels"] == [0, 0]
    assert all(span_text(f, ex) == "big red tree" for f in labelled)
    # Consecutive windows overlap by the stride, so every context token is in some window.
    covered = {f["offsets"][i] for f in features for i in range(len(f["offsets"])) if f["offsets"][i]}
    assert max(end for _, end in covered) == len(context)


def test_metaspace_offsets_include_the_leading_space_and_decode_strips_it(metaspace):
    ex = example("the cat sat in paris", "paris")
    [feature] = SPAN_QA.featurize([ex], metaspace, REGISTRY.get("squad"), max_length=64)
    start, end = feature["labels"]
    assert ex["context"][feature["offsets"][start][0] : feature["offsets"][end][1]] == " paris"
    logits = np.full((len(feature["input_ids"]), 2), -5.0, dtype=np.float32)
    logits[start, 0] = logits[end, 1] = 5.0
    assert SPAN_QA.decode(reduced(SPAN_QA, logits[None], [feature]), [feature], [ex], REGISTRY.get("squad")) == ["paris"]


def test_long_questions_are_cut_to_leave_room_for_the_context(wordpiece):
    ex = example("the cat sat on a mat", "mat", question=" ".join(WORDS * 6))
    features = SPAN_QA.featurize([ex], wordpiece, REGISTRY.get("squad"), max_length=48)
    assert [span_text(f, ex) for f in features if f["labels"] != [0, 0]] == ["mat"]


def test_unanswerable_questions_point_at_cls():
    offsets = [None, None, (0, 3), (4, 7), None]
    assert answer_positions(example("the cat", "", impossible=True), offsets) == [0, 0]
    assert answer_positions(example("the cat", "cat"), offsets) == [3, 3]
    assert answer_positions(example("the cat", "cat"), [None, (0, 3), None]) == [0, 0]  # window ends before it


def window_best_span(start: np.ndarray, end: np.ndarray, offsets: list):
    """best_span of one window's full start and end logits, through the n-best reduction."""
    candidates = n_best(torch.tensor(np.stack([start, end], axis=-1))[None], torch.ones(1, len(start)))
    return best_span(candidates["positions"][0].numpy(), candidates["logits"][0].numpy(), offsets)


def test_best_span_respects_order_length_and_context():
    offsets = [None] + [(i, i + 1) for i in range(40)] + [None]
    start, end = np.zeros(42), np.zeros(42)
    start[0] = end[0] = 100.0  # CLS is never a span
    start[10], end[5] = 9.0, 9.0  # end before start: invalid
    end[12] = 4.0
    assert window_best_span(start, end, offsets)[1:] == (10, 12)
    start, end = np.zeros(42), np.zeros(42)
    start[1], end[1 + MAX_ANSWER_TOKENS] = 9.0, 9.0  # one token too long
    end[MAX_ANSWER_TOKENS] = 1.0
    assert window_best_span(start, end, offsets)[1:] == (1, MAX_ANSWER_TOKENS)


def test_n_best_keeps_twenty_candidates_ties_in_position_order_and_padding_last():
    logits = torch.zeros(2, 8, 2)
    logits[0, 5, 0] = 1.0
    candidates = n_best(logits, torch.tensor([[1] * 8, [1] * 3 + [0] * 5]))
    assert candidates["positions"].shape == candidates["logits"].shape == (2, N_BEST, 2)
    assert candidates["positions"][0, :8, 0].tolist() == [5, 0, 1, 2, 3, 4, 6, 7]  # equal logits: lower position first
    assert candidates["positions"][1, :3, 1].tolist() == [0, 1, 2] and (candidates["logits"][1, 3:] == -torch.inf).all()
    assert candidates["null"].tolist() == [[0.0, 0.0], [0.0, 0.0]]
    offsets = [None, (0, 1), (1, 2)]
    # Positions past the window (batch padding) are never a span, however they rank.
    assert best_span(np.array([[7, 7], [2, 2]]), np.array([[9.0, 9.0], [1.0, 1.0]], dtype=np.float32), offsets) == (2.0, 2, 2)


def two_window_split():
    context = "the cat sat on the mat"
    ex = example(context, "mat")
    w1 = {"input_ids": [0] * 6, "offsets": [None, None, (0, 3), (4, 7), (8, 11), None], "example_index": 0}
    w2 = {"input_ids": [0] * 5, "offsets": [None, None, (12, 14), (19, 22), None], "example_index": 0}
    outputs = np.full((2, 8, 2), 1e9, dtype=np.float32)  # padded past each window with a huge fill value
    outputs[0, :6] = [[3, 3], [0, 0], [2, 1], [1, 2], [0, 0], [0, 0]]
    outputs[1, :5] = [[1, 1], [0, 0], [0, 0], [4, 4], [0, 0]]
    return ex, [w1, w2], outputs


def test_decode_takes_the_best_span_over_all_windows_and_ignores_padding():
    ex, windows, outputs = two_window_split()
    assert SPAN_QA.decode(reduced(SPAN_QA, outputs, windows), windows, [ex], REGISTRY.get("squad")) == ["mat"]


def test_no_answer_only_where_the_task_allows_it():
    ex, windows, outputs = two_window_split()
    outputs[1, 3] = [1, 1]  # best span now "the cat" in window 0: 2 + 2 = 4
    outputs[1, 0] = [5, 5]
    # null score = min over windows (3+3, 5+5) = 6 > best span 4: no answer, for SQuAD 2.0 only.
    assert SPAN_QA.decode(reduced(SPAN_QA, outputs, windows), windows, [ex], REGISTRY.get("squad2")) == [""]
    assert SPAN_QA.decode(reduced(SPAN_QA, outputs, windows), windows, [ex], REGISTRY.get("squad")) == ["the cat"]
    impossible = dict(ex, id="q2", is_impossible=True, answers=[])
    windows2 = [dict(w, example_index=1) for w in windows]
    both = windows + windows2
    predictions = SPAN_QA.decode(reduced(SPAN_QA, np.concatenate([outputs, outputs]), both), both, [ex, impossible], REGISTRY.get("squad"))
    assert predictions == ["", ""]  # the data itself shows the task has unanswerable questions


def test_head_masks_padding_and_loss_is_mean_of_start_and_end_cross_entropy():
    head = SpanHead(4)
    hidden = torch.randn(2, 5, 4)
    batch = {"attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]), "labels": torch.tensor([[1, 2], [0, 0]])}
    output = head(hidden, batch)
    assert output.shape == (2, 5, 2) and (output[1, 3:] < -1e30).all()
    expected = 0.5 * (
        torch.nn.functional.cross_entropy(output[..., 0], batch["labels"][:, 0])
        + torch.nn.functional.cross_entropy(output[..., 1], batch["labels"][:, 1])
    )
    assert torch.allclose(SPAN_QA.loss(output, batch), expected)


def test_score_squad_and_mlqa():
    gold = [example("a cat sat", "cat", "q1"), example("the dog", "dog", "q2"), example("x", "", "q3", impossible=True)]
    assert SPAN_QA.score(["the cat", "dog ran", ""], gold, REGISTRY.get("squad")) == pytest.approx(
        # q3 is unanswerable: an empty answer scores F1 1 there, as in SQuAD 2.0's script.
        {"exact_match": 200 / 3, "f1": 100 * (1 + 2 / 3 + 1) / 3}
    )
    mlqa = [dict(e, language="de") for e in gold[:2]]
    # German articles are removed by MLQA's normalisation, not SQuAD's.
    assert SPAN_QA.score(["der cat", "dog"], mlqa, REGISTRY.get("mlqa"))["exact_match"] == 100.0
    with pytest.raises(UserError, match="MLQA scoring needs one context language"):
        SPAN_QA.score(["cat", "dog"], gold[:2], REGISTRY.get("mlqa"))
