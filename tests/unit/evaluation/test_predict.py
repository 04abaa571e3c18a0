"""Evaluation reduces each batch where it ran, in batches sorted by length: its predictions equal
those of the old path (every head output of the split kept in float32, in order, then decoded)."""

from collections import defaultdict

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from tiny_training import CPU, HIDDEN, REGISTRY, WORDS, pair_examples, tiny_tokenizer
from xstilts.config.schema import Precision
from xstilts.evaluation.predict import head_outputs, in_order, pad_time_axis, predict_split
from xstilts.formats.base import get_format
from xstilts.formats.batching import collate
from xstilts.formats.span_qa import MAX_ANSWER_TOKENS, N_BEST, SPAN_QA, allows_no_answer
from xstilts.models.multitask import MultiTaskModel
from xstilts.tasks.spec import Format


def choice_examples(n: int) -> list[dict]:
    return [
        {"id": str(i), "context": "the cat sat", "question": "",
         "choices": [" ".join(WORDS[(i + c) % 9 : (i + c) % 9 + 1 + (i + c) % 5]) for c in range(3)], "label": i % 3}
        for i in range(n)
    ]


def qa_examples(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        context = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(5 + 11 * (i % 4))) + " under the big red tree"
        answer = context.index("big red tree")
        rows.append({"id": str(i), "question": "where is it", "context": context,
                     "answers": [{"text": "big red tree", "answer_start": answer}], "is_impossible": False})
    return rows


def tag_examples(n: int) -> list[dict]:
    labels = REGISTRY.get("panx").labels
    sentences = [(WORDS * 3)[i % 5 : i % 5 + 3 + 7 * (i % 4)] for i in range(n)]
    return [{"id": str(i), "tokens": words, "labels": [labels[len(w) % 3] for w in words]} for i, words in enumerate(sentences)]


def mlm_examples(n: int) -> list[dict]:
    return [{"id": str(i), "text": " ".join(WORDS[i % 5 :] * (1 + i % 3))} for i in range(n)]


# task -> (examples, max_length): lengths vary, and QA and tagging examples span several windows.
CASES = {
    "xnli": (pair_examples, 24),
    "hellaswag": (choice_examples, 24),
    "squad": (qa_examples, 32),
    "panx": (tag_examples, 12),
    "mlm-multilingual": (mlm_examples, 12),
}


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def build_model(tokenizer, spec, fmt) -> MultiTaskModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.5,  # large random weights: outputs, and so predictions, vary with the input
    )
    model = MultiTaskModel(BertModel(config, add_pooling_layer=False), {spec.head_name: fmt.build_head(HIDDEN, spec, 0.1)})
    model.bind_heads()
    return model


@torch.no_grad()
def full_outputs(model, head, features, tokenizer, batch_size) -> np.ndarray:
    """The old path's outputs: every batch in order, whole, float32, joined on the CPU."""
    model.eval()
    chunks = [
        model(head, collate(features[start : start + batch_size], tokenizer, CPU)).float().numpy()
        for start in range(0, len(features), batch_size)
    ]
    return np.concatenate(pad_time_axis(chunks), axis=0)


def old_best_span(start_logits, end_logits, offsets):
    starts = np.argsort(-start_logits, kind="stable")[:N_BEST]
    ends = np.argsort(-end_logits, kind="stable")[:N_BEST]
    best = None
    for start in starts:
        if offsets[start] is None:
            continue
        for end in ends:
            if offsets[end] is None or end < start or end - start + 1 > MAX_ANSWER_TOKENS:
                continue
            score = float(start_logits[start] + end_logits[end])
            if best is None or score > best[0]:
                best = (score, int(start), int(end))
    return best


def old_span_decode(outputs, features, examples, spec):
    windows = defaultdict(list)
    for output, feature in zip(outputs, features, strict=True):
        windows[feature["example_index"]].append((output, feature))
    answers = []
    for index, example in enumerate(examples):
        best_score, best_text, null_score = -np.inf, "", np.inf
        for output, feature in windows[index]:
            length = len(feature["input_ids"])
            start_logits, end_logits = output[:length, 0], output[:length, 1]
            null_score = min(null_score, float(start_logits[0] + end_logits[0]))
            span = old_best_span(start_logits, end_logits, feature["offsets"])
            if span is not None and span[0] > best_score:
                best_score = span[0]
                best_text = example["context"][feature["offsets"][span[1]][0] : feature["offsets"][span[2]][1]].strip()
        answers.append("" if allows_no_answer(spec, examples) and null_score > best_score else best_text)
    return answers


def old_tagging_decode(outputs, features, examples, spec):
    predictions = [[None] * len(example["tokens"]) for example in examples]
    for row, feature in zip(outputs.argmax(axis=-1), features, strict=True):
        for position, word in enumerate(feature["word_index"]):
            if word >= 0:
                predictions[feature["example_index"]][word] = spec.labels[row[position]]
    return predictions


def old_choice_decode(outputs, features, examples, spec):
    scores = defaultdict(dict)
    for output, feature in zip(outputs, features, strict=True):
        scores[feature["group"]][feature["choice_index"]] = float(np.ravel(output)[0])
    return [max(scores[index], key=scores[index].get) for index in range(len(examples))]


# The decoders as they were before evaluation reduced per batch (MLM's head output is unchanged).
OLD_DECODE = {
    Format.PAIR_CLASSIFICATION: lambda outputs, features, examples, spec: [spec.labels[i] for i in outputs.argmax(axis=-1)],
    Format.TAGGING: old_tagging_decode,
    Format.MULTIPLE_CHOICE: old_choice_decode,
    Format.SPAN_QA: old_span_decode,
    Format.MLM: get_format(Format.MLM).decode,
}


@pytest.mark.parametrize("task", list(CASES))
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_per_batch_decode_predicts_what_the_full_outputs_did(tokenizer, task, batch_size):
    spec = REGISTRY.get(task)
    fmt = get_format(spec.format)
    build, max_length = CASES[task]
    examples = build(23)
    features = fmt.featurize(examples, tokenizer, spec, max_length)
    model = build_model(tokenizer, spec, fmt)
    outputs = full_outputs(model, spec.head_name, features, tokenizer, batch_size)
    expected = OLD_DECODE[spec.format](outputs, features, examples, spec)
    model.train()
    predictions = predict_split(
        model, spec, fmt, examples, features, tokenizer=tokenizer, device=CPU, precision=Precision.FP32, batch_size=batch_size
    )
    if spec.format is Format.MLM:
        # Log-probabilities of other batch shapes may differ in the last bits: compare them closely, the rest exactly.
        assert [(p["gold"], p["predicted"]) for p in predictions] == [(p["gold"], p["predicted"]) for p in expected]
        assert [p["log_probs"] for p in predictions] == [pytest.approx(p["log_probs"], rel=1e-5) for p in expected]
    else:
        assert predictions == expected
    assert len(set(map(str, predictions))) > 1 or spec.format is Format.MLM  # the fixture is not degenerate
    assert model.training  # evaluation leaves the model in the mode it found it


def test_span_qa_ties_and_short_windows_decode_as_before():
    """Equal logits, windows shorter than N_BEST and a no-answer task: the n-best candidates
    give the old full-logits decoder's answer."""
    rng = np.random.default_rng(0)
    spec = REGISTRY.get("squad2")
    context = "the cat sat on the mat under a big red tree"
    examples = [{"id": str(i), "question": "q", "context": context, "answers": [], "is_impossible": i == 0} for i in range(40)]
    words = [(start, start + len(word)) for start, word in ((context.index(w), w) for w in context.split())]
    features = []
    for i in range(80):
        length = int(rng.integers(4, 40))
        offsets = [None, None] + [words[k % len(words)] for k in range(length - 3)] + [None]
        features.append({"input_ids": [0] * length, "offsets": offsets, "example_index": i // 2})
    outputs = rng.integers(-2, 3, size=(80, 40, 2)).astype(np.float32)  # many equal logits
    mask = torch.tensor([[1] * len(f["input_ids"]) + [0] * (40 - len(f["input_ids"])) for f in features])
    reduced = {key: value.numpy() for key, value in SPAN_QA.reduce(torch.from_numpy(outputs), {"attention_mask": mask}).items()}
    assert SPAN_QA.decode(reduced, features, examples, spec) == old_span_decode(outputs, features, examples, spec)


@pytest.mark.parametrize("labels", [7, 1360])
def test_tagging_keeps_one_int32_per_position_whatever_the_label_count(tokenizer, labels):
    """What evaluation keeps across batches is [features, time] int32: CCG's ~1,360 tags cost no
    more than PAN-X's 7 (the old path kept [features, time, labels] float32)."""
    spec = REGISTRY.get("panx").model_copy(update={"labels": [f"T{i}" for i in range(labels)], "labels_file": None})
    fmt = get_format(spec.format)
    examples = [dict(e, labels=[f"T{i % labels}" for i in range(len(e["tokens"]))]) for e in tag_examples(20)]
    features = fmt.featurize(examples, tokenizer, spec, 16)
    kept = head_outputs(
        build_model(tokenizer, spec, fmt), spec.head_name, features,
        reduce=fmt.reduce, tokenizer=tokenizer, device=CPU, precision=Precision.FP32, batch_size=4,
    )
    longest = max(len(f["input_ids"]) for f in features)
    assert kept.shape == (len(features), longest) and kept.dtype == np.int32
    assert kept.nbytes == len(features) * longest * 4
    assert kept.max() < labels


def test_rows_computed_in_length_order_return_to_feature_order():
    order = [2, 0, 3, 1]
    rows = np.array([[20, 21], [0, 1], [30, 31], [10, 11]])
    assert in_order(rows, order).tolist() == [[0, 1], [10, 11], [20, 21], [30, 31]]
    assert in_order({"a": rows[:, 0]}, order)["a"].tolist() == [0, 10, 20, 30]
