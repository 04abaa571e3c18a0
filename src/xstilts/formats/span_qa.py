"""Extractive QA (SQuAD, XQuAD, MLQA, TyDiQA-GoldP): start/end logits per token, n-best decoding.

Long contexts are split into overlapping windows (question + context chunk); every window
is one feature and an example's answer is the best span over all of its windows. A
window that does not contain the answer, and an unanswerable question (SQuAD 2.0), is
trained to point at the first token (CLS). No-answer predictions are only made for tasks
that allow them: a spec with `local.options.allow_no_answer: true`, or data in which some
example is marked `is_impossible`.

Predictions are answer strings, one per example ("" for no answer); the leaderboard file
is `{question id: answer}` json.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from xstilts.data.io import Example
from xstilts.errors import UserError
from xstilts.metrics import mlqa_em_f1, squad_em_f1
from xstilts.formats.base import Feature
from xstilts.formats.windows import model_inputs
from xstilts.tasks.spec import Metric, TaskSpec

N_BEST = 20  # start and end candidates per window (HF / XTREME run_squad)
MAX_ANSWER_TOKENS = 30
MAX_QUESTION_TOKENS = 64  # XTREME's max_query_length; longer questions are cut at a token boundary
DOC_STRIDE = 128  # tokens shared by consecutive windows at max_length 384


def doc_stride(max_length: int) -> int:
    """Window overlap: 128 tokens (at 384), scaled down for short inputs so a window still advances
    past a question of up to max_length // 2 tokens."""
    return min(DOC_STRIDE, max_length // 3)


def question_token_limit(max_length: int) -> int:
    return min(MAX_QUESTION_TOKENS, max_length // 2)


def allows_no_answer(spec: TaskSpec, examples: list[Example]) -> bool:
    """SQuAD 2.0-style tasks may answer "": declared in the spec or evident from the data."""
    declared = bool(spec.local and spec.local.options.get("allow_no_answer"))
    return declared or any(example.get("is_impossible") for example in examples)


def answers_of(example: Example) -> list[dict[str, Any]]:
    """The example's answers as `[{text, answer_start}]`, also from the hub's dict of lists."""
    answers = example.get("answers") or []
    if isinstance(answers, dict):
        return [{"text": t, "answer_start": s} for t, s in zip(answers["text"], answers["answer_start"], strict=True)]
    return list(answers)


class SpanHead(nn.Module):
    """Linear layer to (start, end) logits per token, as in BERT / XLM-R QA heads (no dropout).

    Padding positions get a very low logit, so that the loss and the decoder never pick them.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.qa_outputs = nn.Linear(hidden_size, 2)

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.qa_outputs(hidden)
        padding = (batch["attention_mask"] == 0).unsqueeze(-1)
        return logits.masked_fill(padding, torch.finfo(logits.dtype).min / 2)


def _cut_questions(questions: list[str], tokenizer: PreTrainedTokenizerBase, limit: int) -> list[str]:
    encoded = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    return [
        question if len(offsets) <= limit else question[: offsets[limit - 1][1]]
        for question, offsets in zip(questions, encoded["offset_mapping"], strict=True)
    ]


def answer_positions(example: Example, offsets: list[tuple[int, int] | None]) -> list[int]:
    """[start, end] token indices of the first answer inside this window, or [0, 0] (CLS)."""
    answers = answers_of(example)
    context_tokens = [index for index, offset in enumerate(offsets) if offset is not None]
    if example.get("is_impossible") or not answers or not context_tokens:
        return [0, 0]
    start_char = answers[0]["answer_start"]
    end_char = start_char + len(answers[0]["text"])
    if offsets[context_tokens[0]][0] > start_char or offsets[context_tokens[-1]][1] < end_char:
        return [0, 0]
    start = max(index for index in context_tokens if offsets[index][0] <= start_char)
    end = min(index for index in context_tokens if offsets[index][1] >= end_char)
    return [start, end]


def n_best(output: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The N_BEST highest start and end logits of every window with their positions, and the
    CLS (no-answer) logits: all that decoding reads of a batch of head outputs.

    Args:
        output: [batch, time, 2] start and end logits.
        attention_mask: [batch, time], 0 on padding.

    Returns:
        `positions` (int32) and `logits` (float32), [batch, N_BEST, 2], best first, start in
        column 0 and end in column 1; `null`, [batch, 2], the logits at position 0. Padding
        ranks last; positions past a short batch's end are padding too (N_BEST is fixed, so
        batches concatenate).
    """
    # + 0.0 turns -0.0 into 0.0: a radix sort (as on CUDA) orders -0.0 below 0.0, numpy's argsort does not.
    logits = output.float() + 0.0
    masked = logits.masked_fill((attention_mask == 0).unsqueeze(-1), -torch.inf)
    if masked.shape[1] < N_BEST:
        masked = nn.functional.pad(masked, (0, 0, 0, N_BEST - masked.shape[1]), value=-torch.inf)
    # Stable: equal logits keep the lower position first, as np.argsort(-logits, kind="stable") did.
    values, positions = masked.sort(dim=1, descending=True, stable=True)
    # Copies, not views: a view would keep the batch's whole [batch, time, 2] tensors alive.
    return {"positions": positions[:, :N_BEST].int(), "logits": values[:, :N_BEST].clone(), "null": logits[:, 0].clone()}


def best_span(positions: np.ndarray, logits: np.ndarray, offsets: list) -> tuple[float, int, int] | None:
    """(score, start, end) of the best valid span among the n-best starts and ends of one window.

    Valid: both ends on context tokens of the window, start <= end, at most MAX_ANSWER_TOKENS
    tokens. Among equal scores the first found wins (starts, then ends, best first).

    Args:
        positions: [N_BEST, 2] the positions of the highest start (column 0) and end (column 1)
            logits, best first (`n_best`).
        logits: [N_BEST, 2] those logits (float32: a score is their float32 sum).
        offsets: the window's character offsets per token, None off the context.
    """
    best = None
    for start, start_logit in zip(positions[:, 0], logits[:, 0]):
        # Positions past the window's own tokens are padding of its batch.
        if start >= len(offsets) or offsets[start] is None:
            continue
        for end, end_logit in zip(positions[:, 1], logits[:, 1]):
            if end >= len(offsets) or offsets[end] is None or end < start or end - start + 1 > MAX_ANSWER_TOKENS:
                continue
            score = float(start_logit + end_logit)
            if best is None or score > best[0]:
                best = (score, int(start), int(end))
    return best


def decode_example(example: Example, windows: list[tuple[dict[str, np.ndarray], Feature]], allow_no_answer: bool) -> str:
    """The answer text of one example from the n-best candidates (`n_best`) of its windows."""
    best_score, best_text, null_score = -np.inf, "", np.inf
    for candidates, feature in windows:
        null = candidates["null"]
        null_score = min(null_score, float(null[0] + null[1]))
        span = best_span(candidates["positions"], candidates["logits"], feature["offsets"])
        if span is not None and span[0] > best_score:
            offsets = feature["offsets"]
            best_score = span[0]
            # Metaspace (sentencepiece) offsets include the space before a word: strip it.
            best_text = example["context"][offsets[span[1]][0] : offsets[span[2]][1]].strip()
    if allow_no_answer and null_score > best_score:
        return ""
    return best_text


class SpanQA:
    """The TaskFormat for (question, context) -> answer span."""

    version = 1

    def featurize(
        self, examples: list[Example], tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, max_length: int
    ) -> list[Feature]:
        if not examples:
            return []
        questions = _cut_questions([ex["question"] for ex in examples], tokenizer, question_token_limit(max_length))
        encoded = tokenizer(
            questions,
            [ex["context"] for ex in examples],
            truncation="only_second",
            max_length=max_length,
            stride=doc_stride(max_length),
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        features = []
        for index in range(len(encoded["input_ids"])):
            example_index = encoded["overflow_to_sample_mapping"][index]
            sequence_ids = encoded.sequence_ids(index)
            offsets = [
                tuple(offset) if sequence == 1 else None
                for offset, sequence in zip(encoded["offset_mapping"][index], sequence_ids, strict=True)
            ]
            feature = model_inputs(encoded, index)
            feature.update(
                example_index=example_index,
                offsets=offsets,
                labels=answer_positions(examples[example_index], offsets),
            )
            features.append(feature)
        return features

    def build_head(self, hidden_size: int, spec: TaskSpec, dropout: float) -> nn.Module:
        return SpanHead(hidden_size)

    def loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["labels"]
        start = nn.functional.cross_entropy(output[..., 0].float(), labels[:, 0])
        end = nn.functional.cross_entropy(output[..., 1].float(), labels[:, 1])
        return (start + end) / 2

    def reduce(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return n_best(output, batch["attention_mask"])

    def decode(
        self, outputs: dict[str, np.ndarray], features: list[Feature], examples: list[Example], spec: TaskSpec
    ) -> list:
        """The answer of every example, from `reduce`'s n-best candidates of every window."""
        windows: dict[int, list] = defaultdict(list)
        for row, feature in zip(range(len(outputs["null"])), features, strict=True):
            candidates = {key: value[row] for key, value in outputs.items()}
            windows[feature["example_index"]].append((candidates, feature))
        allow = allows_no_answer(spec, examples)
        return [decode_example(example, windows[index], allow) for index, example in enumerate(examples)]

    def score(self, predictions: list, examples: list[Example], spec: TaskSpec) -> dict[str, float]:
        predicted = {example["id"]: answer for example, answer in zip(examples, predictions, strict=True)}
        # An unanswerable question's gold answer is "" (as in the SQuAD 2.0 evaluation script).
        gold = {example["id"]: [a["text"] for a in answers_of(example)] or [""] for example in examples}
        if spec.metric is Metric.MLQA_EM_F1:
            return mlqa_em_f1(predicted, gold, language=mlqa_language(examples, spec))
        return squad_em_f1(predicted, gold, unanswerable=allows_no_answer(spec, examples))


def mlqa_language(examples: list[Example], spec: TaskSpec) -> str:
    """The one context language of an MLQA split, set on the examples by the reader."""
    languages = {example.get("language") for example in examples}
    if len(languages) != 1 or None in languages:
        raise UserError(
            f"task {spec.name!r}: MLQA scoring needs one context language per split on the examples "
            f"(set local.options.language_pattern); found {sorted(map(str, languages))}"
        )
    return languages.pop()


SPAN_QA = SpanQA()
