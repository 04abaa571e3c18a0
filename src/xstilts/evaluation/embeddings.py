"""Sentence embeddings for retrieval, their nearest neighbours, and the text prefixes a model's
recipe puts before each side (XTREME `third_party/utils_retrieve.py`, E5's model card).

- embeddings: mean of one hidden layer over the attention mask (special tokens included) or
  its first token, optionally L2-normalised (cosine similarity);
- sides: every retrieval task has a query side and a candidate side, each with its prefix
  (`RetrievalConfig.query_prefix`, `candidate_prefix`); an unset prefix is the model's recipe
  (`resolve_retrieval_config`): the packaged E5 models put `query: ` before both sides of a
  symmetric task (Tatoeba, BUCC) and `query: ` / `passage: ` before questions / candidates of a
  ranking task (LAReQA, Mewsli-X); other models get none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from xstilts.config.schema import Pooling, Precision, RetrievalConfig
from xstilts.data.io import Example
from xstilts.errors import UserError
from xstilts.formats.batching import autocast
from xstilts.models.packaged import get_packaged_model
from xstilts.models.sources import PACKAGED_PREFIX
from xstilts.tasks.spec import Format, Metric, TaskSpec

# Entries of a similarity block computed at once: bounds memory at ~128 MB of float32 per block.
SIMILARITY_BLOCK = 2**25
# A database up to this many rows is one block (each query block sees all of it at once); a
# larger one is split so that a query block still has this many rows, as BLAS is fast on tall blocks.
DATABASE_BLOCK = 2**14
ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Both sides are sentences of the same kind (bitext), so a prefix recipe uses its query prefix twice.
SYMMETRIC_METRICS = (Metric.ACCURACY, Metric.BUCC_F1)

Embed = Callable[[list[str]], np.ndarray]
SplitResult = tuple[str, str, dict[str, float] | None]  # split, prediction file text, scores (None: no gold)


@dataclass(frozen=True)
class Sides:
    """Embeds a retrieval task's query side and candidate side, each text after its side's prefix.

    Tatoeba: English sentences query the other language's; BUCC: source-language sentences
    are the queries, English the candidates (XTREME's mining direction; margins are symmetric);
    LAReQA, Mewsli-X: questions and mentions query the candidate pool.
    """

    embed: Embed
    query_prefix: str = ""
    candidate_prefix: str = ""

    def queries(self, texts: list[str]) -> np.ndarray:
        return self.embed([self.query_prefix + text for text in texts])

    def candidates(self, texts: list[str]) -> np.ndarray:
        return self.embed([self.candidate_prefix + text for text in texts])


def resolve_retrieval_config(cfg: RetrievalConfig, model: str, spec: TaskSpec) -> RetrievalConfig:
    """`cfg` with its unset prefixes replaced by `model`'s recipe for `spec`, so the run config
    records the prefixes that produced a number. A prefix the user set (even "") is kept; a
    task that is not a retrieval task is returned unchanged.

    Example:
        >>> resolve_retrieval_config(RetrievalConfig(), "packaged:multilingual-e5-small", tatoeba).query_prefix
        'query: '
    """
    if spec.format is not Format.RETRIEVAL:
        return cfg
    query, candidate = "", ""
    if model.startswith(PACKAGED_PREFIX):
        recipe = get_packaged_model(model[len(PACKAGED_PREFIX) :])
        symmetric = spec.metric in SYMMETRIC_METRICS
        query, candidate = recipe.query_prefix, recipe.query_prefix if symmetric else recipe.passage_prefix
    return cfg.model_copy(update={
        "query_prefix": query if cfg.query_prefix is None else cfg.query_prefix,
        "candidate_prefix": candidate if cfg.candidate_prefix is None else cfg.candidate_prefix,
    })


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
    is computed. Prefixes are the caller's (`Sides`): the sentences are embedded as given.

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
    queries: np.ndarray, database: np.ndarray, k: int, device: torch.device, block: int = SIMILARITY_BLOCK
) -> tuple[np.ndarray, np.ndarray]:
    """Similarities and indices of each query's k most similar database rows, best first.

    Similarity is the dot product, i.e. cosine for normalised embeddings (XTREME's faiss
    IndexFlatIP on L2-normalised vectors). The similarity matrix is never held whole: it is
    computed in blocks of at most about `block` entries (queries x database rows), and a large
    database is walked in row blocks with a running top k, so memory is bounded by the block
    whatever the two sizes (BUCC mining of 100k x 100k sentences stays under 2 GB).

    Example:
        >>> top_k(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), 1, torch.device("cpu"))[1][:, 0]
        array([0, 1, 2])
    """
    base = torch.from_numpy(database).to(device)
    database_rows = max(1, min(len(database), max(k, DATABASE_BLOCK, block // max(1, len(queries)))))
    rows = max(1, block // max(1, database_rows))
    sims, inds = [], []
    for start in range(0, len(queries), rows):
        values, indices = block_top_k(torch.from_numpy(queries[start : start + rows]).to(device), base, k, database_rows)
        sims.append(values.cpu().numpy())
        inds.append(indices.cpu().numpy())
    return np.concatenate(sims), np.concatenate(inds)


def block_top_k(
    queries: torch.Tensor, base: torch.Tensor, k: int, database_rows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top k of `queries @ base.T`, over `base` in blocks of `database_rows` rows.

    Each block's own top k is merged into the running one by a stable sort that puts the
    running (earlier rows) first, so equal similarities keep the lower database index first
    across blocks, as far as torch.topk orders ties within a block.
    """
    best_values = best_indices = None
    for start in range(0, max(1, len(base)), database_rows):  # one pass over an empty database too
        values, indices = (queries @ base[start : start + database_rows].T).topk(min(k, len(base) - start), dim=1)
        indices += start
        if best_values is None:
            best_values, best_indices = values, indices
            continue
        values, indices = torch.cat([best_values, values], dim=1), torch.cat([best_indices, indices], dim=1)
        order = values.sort(dim=1, descending=True, stable=True).indices[:, :k]
        best_values, best_indices = values.gather(1, order), indices.gather(1, order)
    return best_values, best_indices


def require_fields(examples: list[Example], fields: tuple[str, ...], spec: TaskSpec, where: str) -> None:
    """Fail with one line when a reader's examples lack what a retrieval evaluation reads."""
    missing = [field for field in fields if field not in examples[0]]
    if missing:
        raise UserError(
            f"{where}: task {spec.name!r} needs examples with {', '.join(fields)} (missing {', '.join(missing)}); "
            f"read its original files with a data directory"
        )
