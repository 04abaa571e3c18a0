"""Content fingerprints for cache keys: everything that changes an artifact goes into its key."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

from xstilts.config.schema import TextToTextConfig
from xstilts.errors import UserError
from xstilts.formats.base import get_format
from xstilts.models.sources import resolve_model_source
from xstilts.tasks.spec import EVALUATION_ONLY_FIELDS, TEXT_TO_TEXT_FIELDS, TaskSpec
from xstilts.training.checkpoint import is_checkpoint
from xstilts.training.loop import TRAINING_VERSION


def hash_file(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_tree(path: Path) -> str:
    """Hash of every file's relative name and content under `path` (a model dir, a data dir)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(hash_file(file).encode())
    return digest.hexdigest()


def hash_json(value: Any) -> str:
    """Stable hash of a JSON-serialisable value (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def hub_commit(repo_id: str, revision: str | None) -> str:
    """The commit a hub model's revision resolves to, else the revision string itself.

    config.json is fetched (online) or looked up in the local Hugging Face cache (offline):
    its path in the cache, `.../snapshots/<commit>/config.json`, names the commit. Fetching
    it first means a model's first run keys on the same commit as every later one.
    """
    try:
        cached = hf_hub_download(repo_id, "config.json", revision=revision)
    except RevisionNotFoundError:
        raise UserError(f"key 'model_revision': model {repo_id!r} has no revision {revision!r}") from None
    except (OSError, ValueError, EntryNotFoundError):
        # Offline without a cached copy, or a repository the hub does not know: loading the
        # model reports that; the key falls back to the revision string.
        return revision or "main"
    return Path(cached).parent.name


def model_fingerprint(source: str, cache_dir: Path, revision: str | None = None) -> str:
    """What a start model is: the content of an xstilts checkpoint or a model directory
    (packaged models are directories too), or a hub id at the commit of its revision."""
    if is_checkpoint(source):
        return hash_tree(Path(source))
    resolved = resolve_model_source(source, cache_dir)
    if Path(resolved).is_dir():
        return hash_tree(Path(resolved))
    return f"{resolved}@{hub_commit(resolved, revision)}"


def task_versions(specs: list[TaskSpec], text_to_text: TextToTextConfig | None = None) -> dict[str, list]:
    """Each task's spec and its format's featuriser version, for checkpoint keys (`text_to_text`:
    the run's settings in text-to-text mode, whose formats have versions of their own)."""
    # Subsets and failure_rate only change what is evaluated: out of the key, so declaring a subset
    # reuses the checkpoints trained before it (and every key stays what it was). So do a spec's
    # text-to-text fields (prompts, label words) in encoder mode, where no text is rendered.
    excluded = set(EVALUATION_ONLY_FIELDS) | (set(TEXT_TO_TEXT_FIELDS) if text_to_text is None else set())
    return {
        spec.name: [spec.model_dump(mode="json", exclude=excluded), get_format(spec.format, text_to_text).version]
        for spec in specs
    }


def checkpoint_key(parts: dict[str, Any]) -> str:
    """Content key of a trained checkpoint: `parts` (start model, task config, data hashes,
    seeds, precision) plus the training code's version, so that a change to training that
    changes the weights it produces never reuses checkpoints made before it."""
    return hash_json({**parts, "training_version": TRAINING_VERSION})[:16]
