"""Ranking retrieval on an encoder (LAReQA, Mewsli-X), scored by mAP@20 as XTREME-R does.

Every query ranks one candidate pool by cosine; the top 20 candidate ids are the prediction
(google-research/xtreme `utils_lareqa.py`, `utils_mewslix.py`). Questions and mentions are
the query side, the pool the candidate side (`Sides`: E5 puts `query: ` and `passage: ` there).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from xstilts import metrics
from xstilts.data.loading import load_examples, local_path
from xstilts.data.retrieval import read_mewslix_candidates
from xstilts.errors import UserError
from xstilts.evaluation.embeddings import Sides, SplitResult, require_fields, top_k
from xstilts.tasks.spec import TaskSpec

# XTREME-R scores LAReQA and Mewsli-X on the top 20 candidates only.
RANKING_DEPTH = 20
RANKING_METRIC = "map@20"

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
        require_fields(examples, ("context", "sentences", "questions"), spec, f"{split}-{language}")
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
    require_fields(examples, ("language", "query", "entity_id"), spec, f"{split}-{languages[0]}")
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
    spec: TaskSpec, languages: list[str], splits: list[str], data_dir: Path | None, sides: Sides, device: torch.device
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
        candidate_emb = sides.candidates(list(candidates.values()))
        for language in languages:
            if not queries[language] or not candidate_ids:
                raise UserError(f"task {spec.name!r} {split}-{language}: no queries or no candidates to rank")
            ids, texts, relevant = zip(*queries[language], strict=True)
            ranked = rank_candidates(sides.queries(list(texts)), candidate_emb, candidate_ids, device)
            score = 100 * metrics.map_at_k(ranked, list(relevant), k=RANKING_DEPTH)
            text = json.dumps(dict(zip(ids, ranked, strict=True)), ensure_ascii=False)
            yield language, (split, text, {RANKING_METRIC: score})
