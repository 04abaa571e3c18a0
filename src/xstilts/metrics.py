"""Scorer-exact metrics of the XTREME / XTREME-R leaderboard (google-research/xtreme evaluate.py).

Every function here reproduces the official scorer's arithmetic, including its quirks, so
that numbers are comparable with published results:

- tagging F1 is `seqeval.metrics.f1_score` in its default mode on the raw label sequences,
  POS tags included (seqeval then reads the first character of a tag as its chunk prefix);
  tags that are not chunks at all (UD FEATS strings, CCG supertags) are scored by token
  accuracy instead, as jiant does;
- SQuAD v1.1 EM/F1 (XQuAD, TyDiQA-GoldP) and MLQA EM/F1 follow the official
  `evaluate-v1.1.py` and `mlqa_evaluation_v1.py` token by token;
- BUCC F1 is computed over the set of (source id, target id) pairs;
- mAP@k is the LAReQA definition (divisor min(#relevant, k)); with a single relevant item it
  equals the mean reciprocal rank@k that Mewsli-X reports as "map@20".

Scale: functions returning one number (`accuracy`, `seqeval_f1`, `map_at_k`, ...) return a
fraction in [0, 1], as the underlying libraries do. Functions returning a dict
(`squad_em_f1`, `mlqa_em_f1`, `bucc_f1`) return the official scripts' dicts on the 0..100
scale. The leaderboard scorer (`xstilts.evaluation.scorer`) reports everything on 0..100.
"""

from __future__ import annotations

import logging
import re
import string
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

from seqeval.metrics import f1_score, precision_score, recall_score

from xstilts.errors import UserError

logger = logging.getLogger(__name__)

# Values that XTREME's preprocessing and common toolkits write where a test label was removed.
PLACEHOLDER_LABELS = frozenset({"", "_", "-", "?", "-1", "none", "null", "nan", "<unk>"})


def check_labelled(labels: Iterable, source: str, placeholders: Iterable[str] = PLACEHOLDER_LABELS) -> None:
    """Refuse to score gold data that carries no real labels (xtreme issue #24).

    Args:
        labels: gold labels; nested lists (tagging) are flattened.
        source: the file (or other origin) named in the error.
        placeholders: values that mean "no label" (compared case-insensitively).

    Raises:
        UserError: when there are no labels, or every label is a placeholder value.
    """
    flat = [str(x).strip() for x in _flatten(labels)]
    if not flat:
        raise UserError(f"{source}: no gold labels found; unlabelled data cannot be scored")
    blanks = {p.lower() for p in placeholders}
    if all(value.lower() in blanks for value in flat):
        raise UserError(
            f"{source}: every gold label is the placeholder {flat[0]!r}; "
            "this looks like unlabelled test data, which cannot be scored"
        )


def _flatten(labels: Iterable) -> list:
    flat = []
    for item in labels:
        if isinstance(item, list | tuple):
            flat.extend(item)
        else:
            flat.append(item)
    return flat


def accuracy(predictions: Sequence, labels: Sequence) -> float:
    """Fraction of predictions equal to their label (official `accuracy`, divided by 100).

    Example:
        >>> accuracy(["entailment", "neutral"], ["entailment", "contradiction"])
        0.5
    """
    if len(predictions) != len(labels):
        raise UserError(f"{len(predictions)} predictions for {len(labels)} labels")
    if not labels:
        raise UserError("no examples to score")
    correct = sum(int(p == g) for p, g in zip(predictions, labels, strict=True))
    return correct / len(predictions)


def tatoeba_accuracy(predicted_indices: Sequence[str], gold_indices: Sequence[str]) -> float:
    """Tatoeba retrieval accuracy: the official scorer compares the index lines as strings."""
    return accuracy(predicted_indices, gold_indices)


def _check_tagging(predictions: list[list[str]], labels: list[list[str]]) -> None:
    if len(predictions) != len(labels):
        raise UserError(f"{len(predictions)} predicted sentences for {len(labels)} gold sentences")
    for index, (pred, gold) in enumerate(zip(predictions, labels, strict=True)):
        if len(pred) != len(gold):
            raise UserError(f"sentence {index + 1}: {len(pred)} predicted labels for {len(gold)} tokens")


def _seqeval(metric: Callable, predictions: list[list[str]], labels: list[list[str]]) -> float:
    _check_tagging(predictions, labels)
    # seqeval warns once per non-BIO tag (every POS tag) and on empty entity sets; the
    # official scorer ignores both, so the warnings are noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(metric(labels, predictions))


def seqeval_f1(predictions: list[list[str]], labels: list[list[str]]) -> float:
    """Entity-level F1 from `seqeval.metrics.f1_score` (default mode), as a fraction.

    POS tags go in unchanged, as in the official scorer: seqeval then treats the first
    character of a tag as its chunk prefix (NOUN -> chunk type "OUN").

    Example:
        >>> seqeval_f1([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]])
        1.0
    """
    return _seqeval(f1_score, predictions, labels)


def seqeval_precision(predictions: list[list[str]], labels: list[list[str]]) -> float:
    """Entity-level precision from `seqeval.metrics.precision_score`, as a fraction."""
    return _seqeval(precision_score, predictions, labels)


def seqeval_recall(predictions: list[list[str]], labels: list[list[str]]) -> float:
    """Entity-level recall from `seqeval.metrics.recall_score`, as a fraction."""
    return _seqeval(recall_score, predictions, labels)


def token_accuracy(predictions: list[list[str]], labels: list[list[str]]) -> float:
    """Fraction of tokens whose predicted tag equals the gold tag, over all sentences.

    For open tag inventories that are not BIO chunks (UD FEATS strings, CCG supertags),
    where seqeval would read the first character of each tag as a chunk prefix.

    Example:
        >>> token_accuracy([["Number=Sing", "_"]], [["Number=Plur", "_"]])
        0.5
    """
    _check_tagging(predictions, labels)
    return accuracy(_flatten(predictions), _flatten(labels))


# --- SQuAD v1.1 (XQuAD, TyDiQA-GoldP) --------------------------------------------------------

_ASCII_PUNCT = frozenset(string.punctuation)


def normalize_squad_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lower-case, drop ASCII punctuation, English articles, spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction_tokens: list[str], gold_tokens: list[str], empty_answers_match: bool = False) -> float:
    if empty_answers_match and not (prediction_tokens and gold_tokens):
        # SQuAD 2.0 (`evaluate-v2.0.py`): an empty answer scores 1 against an empty gold, else 0.
        return float(prediction_tokens == gold_tokens)
    common = Counter(prediction_tokens) & Counter(gold_tokens)
    num_same = sum(common.values())
    # Also covers empty predictions or answers: no overlap scores 0, as in the official script.
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _em_f1(
    predictions: Mapping[str, str],
    gold: Mapping[str, Sequence[str]],
    normalize: Callable[[str], str],
    empty_answers_match: bool = False,
) -> dict[str, float]:
    """Max over gold answers per question, mean over all gold questions, on 0..100."""
    if not gold:
        raise UserError("no gold questions to score")
    exact = f1 = 0.0
    missing = [qid for qid in gold if qid not in predictions]
    for qid, answers in gold.items():
        if not answers:
            raise UserError(f"question {qid!r} has no gold answer")
        if qid not in predictions:
            continue
        predicted = normalize(predictions[qid])
        normalized_answers = [normalize(answer) for answer in answers]
        exact += max(float(predicted == answer) for answer in normalized_answers)
        f1 += max(_token_f1(predicted.split(), answer.split(), empty_answers_match) for answer in normalized_answers)
    if missing:
        # The official scripts print one line per unanswered question and score it 0.
        logger.warning("%d of %d questions have no prediction and score 0 (first: %s)",
                       len(missing), len(gold), missing[0])
    return {"exact_match": 100.0 * exact / len(gold), "f1": 100.0 * f1 / len(gold)}


def squad_em_f1(
    predictions: Mapping[str, str], gold: Mapping[str, Sequence[str]], unanswerable: bool = False
) -> dict[str, float]:
    """SQuAD v1.1 exact match and F1 on the 0..100 scale (official `evaluate-v1.1.py`).

    With `unanswerable` (SQuAD 2.0), an unanswerable question has the gold answer "" and an
    empty prediction gets F1 1 for it, as in the official `evaluate-v2.0.py`.

    Every gold question counts; a question without a prediction scores 0 (the official
    script prints a message; we log one warning). Predictions for unknown ids are ignored.

    Example:
        >>> squad_em_f1({"q1": "The Eiffel Tower!"}, {"q1": ["Eiffel Tower", "tower"]})
        {'exact_match': 100.0, 'f1': 100.0}
    """
    return _em_f1(predictions, gold, normalize_squad_answer, empty_answers_match=unanswerable)


# --- MLQA ----------------------------------------------------------------------------------

# Article patterns of mlqa_evaluation_v1.py. Arabic is handled apart (see below); hi and zh
# have none.
_MLQA_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
}
MLQA_LANGUAGES = ("en", "es", "hi", "vi", "de", "ar", "zh")
_CJK = re.compile("[\u4e00-\u9fa5]")


def _is_mlqa_punct(ch: str) -> bool:
    """The official PUNCT set: Unicode category P* plus ASCII `string.punctuation`."""
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def _mixed_segmentation(text: str) -> list[str]:
    """Whitespace tokens, except that each CJK character and punctuation mark is its own token."""
    tokens: list[str] = []
    pending = ""
    for ch in text:
        if _CJK.match(ch) or _is_mlqa_punct(ch):
            tokens.extend(pending.split())
            pending = ""
            tokens.append(ch)
        else:
            pending += ch
    tokens.extend(pending.split())
    return tokens


def normalize_mlqa_answer(text: str, language: str) -> str:
    """MLQA normalisation: lower, drop Unicode punctuation, per-language articles, re-segment."""
    if language not in MLQA_LANGUAGES:
        raise UserError(f"MLQA has no answer normalisation for language {language!r}")
    text = "".join(ch for ch in text.lower() if not _is_mlqa_punct(ch))
    if language == "ar":
        # The official pattern '\sال^|ال' can only ever match its second branch, so every
        # occurrence of the letters "ال" is replaced, also inside words.
        text = text.replace("ال", " ")
    elif language in _MLQA_ARTICLES:
        text = _MLQA_ARTICLES[language].sub(" ", text)
    tokens = _mixed_segmentation(text) if language == "zh" else text.split()
    return " ".join(token for token in tokens if token.strip())


def mlqa_em_f1(
    predictions: Mapping[str, str], gold: Mapping[str, Sequence[str]], language: str
) -> dict[str, float]:
    """MLQA exact match and F1 on the 0..100 scale (official `mlqa_evaluation_v1.py`).

    `language` is the answer (context) language; it selects the article list and, for zh,
    the mixed segmentation that makes each Chinese character a token.

    Example:
        >>> round(mlqa_em_f1({"q1": "北京大学"}, {"q1": ["北京"]}, "zh")["f1"], 2)
        66.67
    """
    return _em_f1(predictions, gold, lambda text: normalize_mlqa_answer(text, language))


# --- Retrieval -----------------------------------------------------------------------------


def bucc_f1(
    predicted_pairs: Iterable[tuple[str, str]], gold_pairs: Iterable[tuple[str, str]]
) -> dict[str, float]:
    """BUCC mining precision, recall and F1 over sets of pairs, on the 0..100 scale.

    Example:
        >>> bucc_f1({("de-1", "en-1"), ("de-2", "en-9")}, {("de-1", "en-1"), ("de-3", "en-3")})
        {'f1': 50.0, 'precision': 50.0, 'recall': 50.0}
    """
    predicted = set(predicted_pairs)
    gold = set(gold_pairs)
    correct = len(predicted & gold)
    if correct == 0:
        return {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    precision = correct / len(predicted)
    recall = correct / len(gold)
    f1 = 2 * precision * recall / (precision + recall)
    return {"f1": f1 * 100, "precision": precision * 100, "recall": recall * 100}


def average_precision_at_k(ranked: Sequence[str], relevant: set[str], k: int | None = 20) -> float:
    """LAReQA AP@k: precision at each first hit in the top k, divided by min(#relevant, k)."""
    if not relevant:
        raise UserError("a query has no relevant item; average precision is undefined")
    top = list(ranked[:k]) if k else list(ranked)
    seen: set[str] = set()
    hits = 0
    score = 0.0
    for rank, item in enumerate(top, start=1):
        # A repeated item counts once, at its first position.
        if item in relevant and item not in seen:
            hits += 1
            score += hits / rank
        seen.add(item)
    return score / (min(len(relevant), k) if k else len(relevant))


def map_at_k(ranked: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int = 20) -> float:
    """Mean average precision at k (LAReQA, Mewsli-X in XTREME-R), as a fraction.

    With one relevant item per query this is the mean reciprocal rank within the top k,
    which is what Mewsli-X's official evaluation computes and reports as "map@20".

    Example:
        >>> map_at_k([["a", "b", "c"], ["x", "y"]], [{"b"}, {"z"}], k=20)
        0.25
    """
    if len(ranked) != len(relevant):
        raise UserError(f"{len(ranked)} rankings for {len(relevant)} queries")
    if not ranked:
        raise UserError("no queries to score")
    return sum(average_precision_at_k(r, g, k) for r, g in zip(ranked, relevant, strict=True)) / len(ranked)
