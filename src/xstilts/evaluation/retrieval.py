"""Retrieval evaluated directly on an encoder (no head, no training): Tatoeba, BUCC, LAReQA, Mewsli-X.

The sweep over a task's languages lives here; the parts follow google-research/xtreme and
sit in their own modules: sentence embeddings, nearest neighbours and the query/candidate
prefixes in `embeddings`, Tatoeba and BUCC in `bitext`, LAReQA and Mewsli-X in `ranking`.
Their public names are importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import torch
from rich.progress import Progress
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from xstilts.atomic import atomic_write_text
from xstilts.config.schema import Precision, RetrievalConfig
from xstilts.errors import UserError
from xstilts.evaluation.bitext import (MARGIN_NEIGHBOURS, bucc_candidates, bucc_results, mine_candidates,
                                       select_threshold, tatoeba_predictions, tatoeba_results)
from xstilts.evaluation.embeddings import (Sides, SplitResult, embed_sentences, pool, resolve_retrieval_config,
                                           select_layer, top_k)
from xstilts.evaluation.leaderboard import prediction_path
from xstilts.evaluation.ranking import (RANKING_DEPTH, RANKING_METRIC, lareqa_data, mewslix_data, rank_candidates,
                                        ranking_results)
from xstilts.results import ResultRow
from xstilts.tasks.spec import Metric, TaskSpec

__all__ = [
    "MARGIN_NEIGHBOURS", "RANKING_DEPTH", "RANKING_METRIC", "RETRIEVAL_SWEEPS", "Sides", "bucc_candidates",
    "bucc_results", "embed_sentences", "lareqa_data", "mewslix_data", "mine_candidates", "pool", "rank_candidates",
    "ranking_results", "resolve_retrieval_config", "run_retrieval_sweep", "select_layer", "select_threshold",
    "tatoeba_predictions", "tatoeba_results", "top_k",
]

Sweep = Callable[[TaskSpec, list[str], list[str], Path | None, Sides, torch.device], Iterator[tuple[str, SplitResult]]]


def per_language(results: Callable[..., list[SplitResult]]) -> Sweep:
    """A sweep from a function that evaluates one language on its own."""

    def sweep(spec, languages, splits, data_dir, sides, device):
        for language in languages:
            for result in results(spec, language, splits, data_dir, sides, device):
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
    the task's metric. `cfg`'s prefixes are used as given (unset: none); a run resolves them
    per model first (`resolve_retrieval_config`), so its config records them.
    """
    if spec.metric not in RETRIEVAL_SWEEPS:
        raise UserError(f"task {spec.name!r}: retrieval scored by {spec.metric.value} is not supported yet")
    sweep = RETRIEVAL_SWEEPS[spec.metric]
    embed = partial(embed_sentences, encoder, tokenizer, cfg=cfg, device=device, precision=precision)
    sides = Sides(embed, query_prefix=cfg.query_prefix or "", candidate_prefix=cfg.candidate_prefix or "")
    rows: list[ResultRow] = []
    bar = progress.add_task(f"retrieval {spec.name}", total=len(languages) * len(splits)) if progress else None
    for language, (split, text, scores) in sweep(spec, languages, splits, data_dir, sides, device):
        atomic_write_text(prediction_path(predictions_dir, spec, split, language), text)
        rows.extend(
            ResultRow(run_id, phase, spec.name, language, split, metric, value)
            for metric, value in (scores or {}).items()
        )
        if bar is not None:
            progress.update(bar, advance=1, description=f"retrieval {spec.name} {split}-{language}")
    return rows
