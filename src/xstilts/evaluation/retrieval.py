"""Retrieval evaluated directly on an encoder (no head, no training): Tatoeba, BUCC, LAReQA, Mewsli-X.

All follow google-research/xtreme (`third_party/evaluate_retrieval.py`, `utils_retrieve.py`,
`utils_lareqa.py`, `utils_mewslix.py`):

- sentence embeddings: mean of one hidden layer over the attention mask (special tokens
  included) or its first token, cosine similarity;
- Tatoeba (`similarity_search`): the source sentences are the index and each English sentence
  is a query; prediction *i* is the source line nearest to English line *i*, scored against *i*;
- BUCC (`mine_bitext` with retrieval "max", ratio margin, k = 4, then `bucc_optimize`):
  candidates are mined in both directions, the threshold maximising F1 on the dev gold is
  applied to the test set;
- ranking (LAReQA, Mewsli-X, scored by mAP@20): every query ranks one candidate pool by cosine;
  the top 20 candidate ids are the prediction (see `ranking_results`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from xstilts.config.schema import Pooling, Precision, RetrievalConfig
from xstilts.data.io import Example
from xstilts.data.loading import load_examples, local_path
from xstilts.data.retrieval import read_mewslix_candidates
from xstilts.errors import UserError
from xstilts import metrics
from xstilts.evaluation.leaderboard import prediction_path
from xstilts.atomic import atomic_write_text
from xstilts.results import ResultRow
from xstilts.tasks.spec import Metric, TaskSpec
from xstilts.models.runtime import autocast

MARGIN_NEIGHBOURS = 4
# XTREME-R scores LAReQA and Mewsli-X on the top 20 candidates only.
RANKING_DEPTH = 20
RANKING_METRIC = "map@20"
# Rows of a similarity block computed at once: bounds memory at ~128 MB of float32 per block.
SIMILARITY_BLOCK = 2**25

ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

Embed = Callable[[list[str]], np.ndarray]
Pair = tuple[str, str]


@torch.no_grad()
def embed_sentences(
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sentences: list[str],
    cfg: RetrievalConfig,
    device: torch.device,
    precision: Precision,
) -> np.ndarray:
    """One embedding per sentence, in input order, as float32 `[len(sentences), hidden]`.

    The pooled layer is `hidden_states[cfg.layer]` (0 = the embedding output, -1 = the last
    layer). XTREME's `--specific_layer k` drops the embedding output first, so it is layer
    `k + 1` here. Batches are formed over sentences sorted by token count, so little padding
    is computed.

    Example:
        >>> embed_sentences(encoder, tokenizer, ["Hallo.", "Hello."], RetrievalConfig(), cpu, Precision.FP32).shape
        (2, 384)
    """
    if not sentences:
        return np.zeros((0, encoder.config.hidden_size), dtype=np.float32)
    lengths = [len(ids) for ids in tokenizer(sentences, truncation=True, max_length=cfg.max_length)["input_ids"]]
    order = sorted(range(len(sentences)), key=lengths.__getitem__)
    out = np.zeros((len(sentences), encoder.config.hidden_size), dtype=np.float32)
    was_training = encoder.training
    encoder.to(device).eval()
    for start in range(0, len(order), cfg.batch_size):
        chunk = order[start : start + cfg.batch_size]
        batch = tokenizer(
            [sentences[i] for i in chunk], padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt"
        )
        inputs = {key: batch[key].to(device) for key in ENCODER_INPUTS if key in batch}
        with autocast(device, precision):
            hidden_states = encoder(**inputs, output_hidden_states=True).hidden_states
        pooled = pool(select_layer(hidden_states, cfg.layer), inputs["attention_mask"], cfg.pooling)
        out[chunk] = pooled.float().cpu().numpy()
    encoder.train(was_training)
    if cfg.normalize:
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def select_layer(hidden_states: tuple[torch.Tensor, ...], layer: int) -> torch.Tensor:
    if not -len(hidden_states) <= layer < len(hidden_states):
        raise UserError(
            f"retrieval.layer={layer} is out of range: the model has {len(hidden_states) - 1} layers "
            f"(0 = embeddings .. {len(hidden_states) - 1}, or negative from the last)"
        )
    return hidden_states[layer]


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """`[batch, dim]` sentence vectors: masked mean of the tokens, or the first token."""
    if pooling is Pooling.CLS:
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1)


def top_k(
    queries: np.ndarray, database: np.ndarray, k: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Similarities and indices of each query's k most similar database rows, best first.

    Similarity is the dot product, i.e. cosine for normalised embeddings (XTREME's faiss
    IndexFlatIP on L2-normalised vectors).
    """
    base = torch.from_numpy(database).to(device)
    rows = max(1, SIMILARITY_BLOCK // max(1, len(database)))
    sims, inds = [], []
    for start in range(0, len(queries), rows):
        block = torch.from_numpy(queries[start : start + rows]).to(device) @ base.T
        values, indices = block.topk(k, dim=1)
        sims.append(values.cpu().numpy())
        inds.append(indices.cpu().numpy())
    return np.concatenate(sims), np.concatenate(inds)


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


def bucc_candidates(example: Example, embed: Embed, device: torch.device) -> dict[Pair, float]:
    """(source id, target id) -> margin score for one BUCC file set.

    As in XTREME, identical sentences are embedded once, and a sentence whose text occurs
    more than once in its file yields no candidate (its id would be ambiguous).
    """
    sides = []
    for sentences in (example["sources"], example["targets"]):
        ids_by_text: dict[str, list[str]] = {}
        for sentence_id, text in sentences.items():
            ids_by_text.setdefault(text, []).append(sentence_id)
        sides.append(ids_by_text)
    texts = [list(side) for side in sides]
    mined = mine_candidates(embed(texts[0]), embed(texts[1]), device)
    candidates: dict[Pair, float] = {}
    for source, target, score in mined:
        source_ids, target_ids = sides[0][texts[0][source]], sides[1][texts[1][target]]
        if len(source_ids) == 1 and len(target_ids) == 1:
            candidates[(source_ids[0], target_ids[0])] = score
    return candidates


# --- The sweep: every language of a retrieval task, scored and written like the leaderboard ---

SplitResult = tuple[str, str, dict[str, float] | None]  # split, prediction file text, scores (None: no gold)


def _check_schema(examples: list[Example], fields: tuple[str, ...], spec: TaskSpec, where: str) -> None:
    missing = [field for field in fields if field not in examples[0]]
    if missing:
        raise UserError(
            f"{where}: task {spec.name!r} needs examples with {', '.join(fields)} (missing {', '.join(missing)}); "
            f"read its original files with a data directory"
        )


def tatoeba_results(
    spec: TaskSpec, language: str, splits: list[str], data_dir: Path | None, embed: Embed, device: torch.device
) -> list[SplitResult]:
    results = []
    for split in splits:
        examples = load_examples(spec, split, language, data_dir)
        _check_schema(examples, ("source", "target"), spec, f"{split}-{language}")
        source = embed([example["source"] for example in examples])
        target = embed([example["target"] for example in examples])
        predicted = [str(index) for index in tatoeba_predictions(source, target, device)]
        # Line i of one side translates line i of the other, so the gold index is the position.
        accuracy = metrics.tatoeba_accuracy(predicted, [str(index) for index in range(len(examples))])
        results.append((split, "".join(f"{index}\n" for index in predicted), {"accuracy": 100 * accuracy}))
    return results


def load_bucc_set(spec: TaskSpec, split: str, language: str, data_dir: Path | None) -> Example:
    examples = load_examples(spec, split, language, data_dir)
    _check_schema(examples, ("sources", "targets", "gold"), spec, f"{split}-{language}")
    return examples[0]


def bucc_results(
    spec: TaskSpec, language: str, splits: list[str], data_dir: Path | None, embed: Embed, device: torch.device
) -> list[SplitResult]:
    dev = load_bucc_set(spec, "dev", language, data_dir)
    if dev["gold"] is None:
        raise UserError(
            f"task {spec.name!r} ({language}): the dev set has no gold file, and the mining threshold is tuned on it"
        )
    dev_candidates = bucc_candidates(dev, embed, device)
    threshold = select_threshold(dev_candidates, {tuple(pair) for pair in dev["gold"]})
    results = []
    for split in splits:
        example = dev if split == "dev" else load_bucc_set(spec, split, language, data_dir)
        candidates = dev_candidates if split == "dev" else bucc_candidates(example, embed, device)
        pairs = [pair for pair, score in candidates.items() if score >= threshold]
        # The official BUCC test gold is not public: such a set gets predictions and no score.
        scores = metrics.bucc_f1(pairs, map(tuple, example["gold"])) if example["gold"] is not None else None
        results.append((split, "".join(f"{source}\t{target}\n" for source, target in pairs), scores))
    return results


# --- Ranking (LAReQA, Mewsli-X): queries rank a candidate pool, scored by mAP@20 ---

Query = tuple[str, str, set[str]]  # query id, text, relevant candidate ids
RankingData = tuple[dict[str, str], dict[str, list[Query]]]  # candidate id -> text, language -> queries


def rank_candidates(
    query_emb: np.ndarray, candidate_emb: np.ndarray, candidate_ids: list[str], device: torch.device,
    k: int = RANKING_DEPTH,
) -> list[list[str]]:
    """Each query's k most similar candidate ids, best first (all of them when fewer)."""
    _, indices = top_k(query_emb, candidate_emb, min(k, len(candidate_ids)), device)
    return [[candidate_ids[index] for index in row] for row in indices]


def lareqa_data(spec: TaskSpec, split: str, languages: list[str], data_dir: Path) -> RankingData:
    """LAReQA's language-agnostic pool: every sentence of every language of the task.

    As in `utils_lareqa.load_data`, a candidate is one sentence of a paragraph, with id
    `{language}_{paragraph number}_{sentence position}`; a query is a question, with id
    `{question id}_{language}`, and its relevant candidates are the answer sentences of the
    same question id in *all* languages (11 for XQuAD-R). The pool always holds every language
    of the task, whichever languages are evaluated, so a language's score does not depend on
    the others being requested. A candidate's text is its sentence followed by its paragraph
    with newlines removed, as XTREME's `evaluate_retrieval.py` embeds it; questions are
    embedded alone.
    """
    paragraphs = {language: load_examples(spec, split, language, data_dir) for language in spec.languages}
    candidates: dict[str, str] = {}
    answers: dict[str, set[str]] = defaultdict(set)
    for language, examples in paragraphs.items():
        _check_schema(examples, ("context", "sentences", "questions"), spec, f"{split}-{language}")
        for paragraph in examples:
            prefix = f"{language}_{paragraph['id']}"
            for position, sentence in enumerate(paragraph["sentences"]):
                candidates[f"{prefix}_{position}"] = (sentence + paragraph["context"]).replace("\n", "")
            for question in paragraph["questions"]:
                answers[question["id"]].add(f"{prefix}_{question['answer_sentence']}")
    queries = {
        language: [
            (f"{question['id']}_{language}", question["question"], answers[question["id"]])
            for paragraph in paragraphs[language] for question in paragraph["questions"]
        ]
        for language in languages
    }
    return candidates, queries


def mewslix_data(spec: TaskSpec, split: str, languages: list[str], data_dir: Path) -> RankingData:
    """Mewsli-X: each mention ranks the whole entity candidate set; relevant is its gold entity.

    The mention file holds every language, so it is read once and split by `language`.
    Candidates come from the spec option `candidates_file`, beside the mention file.
    """
    if "candidates_file" not in spec.local.options:
        raise UserError(f"task {spec.name!r}: the local source needs the option candidates_file")
    mentions_path = local_path(spec, data_dir, split, languages[0])
    candidates = read_mewslix_candidates(mentions_path.parent / str(spec.local.options["candidates_file"]))
    examples = load_examples(spec, split, languages[0], data_dir)
    _check_schema(examples, ("language", "query", "entity_id"), spec, f"{split}-{languages[0]}")
    queries: dict[str, list[Query]] = {language: [] for language in languages}
    for example in examples:
        if example["language"] in queries:
            queries[example["language"]].append((example["id"], example["query"], {example["entity_id"]}))
    return candidates, queries


RANKING_DATA: dict[str, Callable[[TaskSpec, str, list[str], Path], RankingData]] = {
    "xquad_r_json": lareqa_data,
    "mewslix_jsonl": mewslix_data,
}


def ranking_results(
    spec: TaskSpec, languages: list[str], splits: list[str], data_dir: Path | None, embed: Embed, device: torch.device
) -> Iterator[tuple[str, SplitResult]]:
    """mAP@20 per (language, split); the candidate pool is embedded once per split.

    Predictions are `{query id: [top 20 candidate ids]}` json, the leaderboard format.
    """
    if data_dir is None or spec.local is None or spec.local.reader not in RANKING_DATA:
        raise UserError(
            f"task {spec.name!r}: ranking evaluation reads the original files "
            f"({', '.join(RANKING_DATA)}); give a data directory"
        )
    for split in splits:
        candidates, queries = RANKING_DATA[spec.local.reader](spec, split, languages, data_dir)
        candidate_ids = list(candidates)
        candidate_emb = embed(list(candidates.values()))
        for language in languages:
            if not queries[language] or not candidate_ids:
                raise UserError(f"task {spec.name!r} {split}-{language}: no queries or no candidates to rank")
            ids, texts, relevant = zip(*queries[language], strict=True)
            ranked = rank_candidates(embed(list(texts)), candidate_emb, candidate_ids, device)
            score = 100 * metrics.map_at_k(ranked, list(relevant), k=RANKING_DEPTH)
            text = json.dumps(dict(zip(ids, ranked, strict=True)), ensure_ascii=False)
            yield language, (split, text, {RANKING_METRIC: score})


Sweep = Callable[[TaskSpec, list[str], list[str], Path | None, Embed, torch.device], Iterator[tuple[str, SplitResult]]]


def per_language(results: Callable[..., list[SplitResult]]) -> Sweep:
    """A sweep from a function that evaluates one language on its own."""

    def sweep(spec, languages, splits, data_dir, embed, device):
        for language in languages:
            for result in results(spec, language, splits, data_dir, embed, device):
                yield language, result

    return sweep


RETRIEVAL_SWEEPS: dict[Metric, Sweep] = {
    Metric.ACCURACY: per_language(tatoeba_results),
    Metric.BUCC_F1: per_language(bucc_results),
    Metric.MAP_AT_20: ranking_results,
}


def run_retrieval_sweep(
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    spec: TaskSpec,
    *,
    languages: list[str],
    splits: list[str],
    data_dir: Path | None,
    cfg: RetrievalConfig,
    device: torch.device,
    precision: Precision,
    run_id: str,
    phase: str,
    predictions_dir: Path,
    progress: Progress | None = None,
) -> list[ResultRow]:
    """Evaluate the encoder itself on every (split, language) of a retrieval task.

    Predictions are written in the leaderboard layout (Tatoeba: one index per line; BUCC:
    `source_id<TAB>target_id` lines; LAReQA, Mewsli-X: `{query id: [ranked candidate ids]}`
    json); rows are returned, not stored, as in the zero-shot sweep. The sweep is picked by
    the task's metric.
    """
    if spec.metric not in RETRIEVAL_SWEEPS:
        raise UserError(f"task {spec.name!r}: retrieval scored by {spec.metric.value} is not supported yet")
    sweep = RETRIEVAL_SWEEPS[spec.metric]
    embed = partial(embed_sentences, encoder, tokenizer, cfg=cfg, device=device, precision=precision)
    rows: list[ResultRow] = []
    bar = progress.add_task(f"retrieval {spec.name}", total=len(languages) * len(splits)) if progress else None
    for language, (split, text, scores) in sweep(spec, languages, splits, data_dir, embed, device):
        atomic_write_text(prediction_path(predictions_dir, spec, split, language), text)
        rows.extend(
            ResultRow(run_id, phase, spec.name, language, split, metric, value)
            for metric, value in (scores or {}).items()
        )
        if bar is not None:
            progress.update(bar, advance=1, description=f"retrieval {spec.name} {split}-{language}")
    return rows
