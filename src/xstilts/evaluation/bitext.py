"""Bitext retrieval on an encoder: Tatoeba similarity search and BUCC margin mining.

Both follow google-research/xtreme (`third_party/evaluate_retrieval.py`, `utils_retrieve.py`):

- Tatoeba (`similarity_search`): the source sentences are the index and each English sentence
  is a query; prediction *i* is the source line nearest to English line *i*, scored against *i*;
- BUCC (`mine_bitext` with retrieval "max", ratio margin, k = 4, then `bucc_optimize`):
  candidates are mined in both directions, the threshold maximising F1 on the dev gold is
  applied to the test set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xstilts import metrics
from xstilts.data.io import Example
from xstilts.data.loading import load_examples
from xstilts.errors import UserError
from xstilts.evaluation.embeddings import Sides, SplitResult, require_fields, top_k
from xstilts.tasks.spec import TaskSpec

MARGIN_NEIGHBOURS = 4

Pair = tuple[str, str]


def tatoeba_predictions(
    source_emb: np.ndarray, target_emb: np.ndarray, device: torch.device | None = None
) -> list[int]:
    """For each English (target) sentence, the index of the most similar source sentence.

    This is the direction of XTREME's `similarity_search(x=source, y=english)`, which indexes
    the source side and queries it with the English side; gold for line i is i.
    """
    _, indices = top_k(target_emb, source_emb, 1, device or torch.device("cpu"))
    return [int(index) for index in indices[:, 0]]


def mine_candidates(
    source_emb: np.ndarray, target_emb: np.ndarray, device: torch.device, k: int = MARGIN_NEIGHBOURS
) -> list[tuple[int, int, float]]:
    """Ratio-margin bitext candidates, `(source index, target index, score)` by decreasing score.

    score(x, y) = cos(x, y) / ((mean cos of x's k nearest targets + mean cos of y's k nearest
    sources) / 2). Each sentence proposes its best-scoring neighbour among its k nearest, in
    both directions; proposals are then taken greedily by score, each sentence used at most
    once, and only positive scores are kept (XTREME `mine_bitext`, retrieval "max").
    """
    fwd_sim, fwd_ind = top_k(source_emb, target_emb, min(k, len(target_emb)), device)
    bwd_sim, bwd_ind = top_k(target_emb, source_emb, min(k, len(source_emb)), device)
    fwd_mean, bwd_mean = fwd_sim.mean(axis=1), bwd_sim.mean(axis=1)
    fwd_scores = fwd_sim / ((fwd_mean[:, None] + bwd_mean[fwd_ind]) / 2)
    bwd_scores = bwd_sim / ((bwd_mean[:, None] + fwd_mean[bwd_ind]) / 2)
    fwd_best = fwd_ind[np.arange(len(fwd_ind)), fwd_scores.argmax(axis=1)]
    bwd_best = bwd_ind[np.arange(len(bwd_ind)), bwd_scores.argmax(axis=1)]
    sources = np.concatenate([np.arange(len(source_emb)), bwd_best])
    targets = np.concatenate([fwd_best, np.arange(len(target_emb))])
    scores = np.concatenate([fwd_scores.max(axis=1), bwd_scores.max(axis=1)])
    seen_sources: set[int] = set()
    seen_targets: set[int] = set()
    candidates = []
    for index in np.argsort(-scores, kind="stable"):
        source, target = int(sources[index]), int(targets[index])
        if source in seen_sources or target in seen_targets:
            continue
        seen_sources.add(source)
        seen_targets.add(target)
        if scores[index] > 0:
            candidates.append((source, target, float(scores[index])))
    return candidates


def select_threshold(candidates: dict[Pair, float], gold: set[Pair]) -> float:
    """The score threshold maximising F1 against `gold` (XTREME `bucc_optimize`).

    Candidates are walked by decreasing score; at the first prefix with the best F1 the
    threshold is the midpoint between its last score and the next one. Where the best prefix
    is the whole list (XTREME would index past its end) the last score itself is used.
    """
    items = sorted(candidates.items(), key=lambda item: -item[1])
    extracted = correct = 0
    best_f1, threshold = 0.0, 0.0
    for index, (pair, score) in enumerate(items):
        extracted += 1
        correct += pair in gold
        if correct == 0:
            continue
        precision, recall = correct / extracted, correct / len(gold)
        f1 = 2 * precision * recall / (precision + recall)
        if f1 > best_f1:
            best_f1 = f1
            threshold = (score + items[index + 1][1]) / 2 if index + 1 < len(items) else score
    return threshold


def bucc_candidates(example: Example, sides: Sides, device: torch.device) -> dict[Pair, float]:
    """(source id, target id) -> margin score for one BUCC file set.

    As in XTREME, identical sentences are embedded once, and a sentence whose text occurs
    more than once in its file yields no candidate (its id would be ambiguous).
    """
    ids_by_side = []
    for sentences in (example["sources"], example["targets"]):
        ids_by_text: dict[str, list[str]] = {}
        for sentence_id, text in sentences.items():
            ids_by_text.setdefault(text, []).append(sentence_id)
        ids_by_side.append(ids_by_text)
    texts = [list(side) for side in ids_by_side]
    mined = mine_candidates(sides.queries(texts[0]), sides.candidates(texts[1]), device)
    candidates: dict[Pair, float] = {}
    for source, target, score in mined:
        source_ids, target_ids = ids_by_side[0][texts[0][source]], ids_by_side[1][texts[1][target]]
        if len(source_ids) == 1 and len(target_ids) == 1:
            candidates[(source_ids[0], target_ids[0])] = score
    return candidates


def tatoeba_results(
    spec: TaskSpec, language: str, splits: list[str], data_dir: Path | None, sides: Sides, device: torch.device
) -> list[SplitResult]:
    results = []
    for split in splits:
        examples = load_examples(spec, split, language, data_dir)
        require_fields(examples, ("source", "target"), spec, f"{split}-{language}")
        # English queries the other language's sentences (XTREME's direction).
        source = sides.candidates([example["source"] for example in examples])
        target = sides.queries([example["target"] for example in examples])
        predicted = [str(index) for index in tatoeba_predictions(source, target, device)]
        # Line i of one side translates line i of the other, so the gold index is the position.
        accuracy = metrics.tatoeba_accuracy(predicted, [str(index) for index in range(len(examples))])
        results.append((split, "".join(f"{index}\n" for index in predicted), {"accuracy": 100 * accuracy}))
    return results


def load_bucc_set(spec: TaskSpec, split: str, language: str, data_dir: Path | None) -> Example:
    examples = load_examples(spec, split, language, data_dir)
    require_fields(examples, ("sources", "targets", "gold"), spec, f"{split}-{language}")
    return examples[0]


def bucc_results(
    spec: TaskSpec, language: str, splits: list[str], data_dir: Path | None, sides: Sides, device: torch.device
) -> list[SplitResult]:
    dev = load_bucc_set(spec, "dev", language, data_dir)
    if dev["gold"] is None:
        raise UserError(
            f"task {spec.name!r} ({language}): the dev set has no gold file, and the mining threshold is tuned on it"
        )
    dev_candidates = bucc_candidates(dev, sides, device)
    threshold = select_threshold(dev_candidates, {tuple(pair) for pair in dev["gold"]})
    results = []
    for split in splits:
        example = dev if split == "dev" else load_bucc_set(spec, split, language, data_dir)
        candidates = dev_candidates if split == "dev" else bucc_candidates(example, sides, device)
        pairs = [pair for pair, score in candidates.items() if score >= threshold]
        # The official BUCC test gold is not public: such a set gets predictions and no score.
        scores = metrics.bucc_f1(pairs, map(tuple, example["gold"])) if example["gold"] is not None else None
        results.append((split, "".join(f"{source}\t{target}\n" for source, target in pairs), scores))
    return results
