"""Featurised examples cached on disk, so that a second experiment on the same data tokenises nothing.

An entry is one Arrow IPC file, `<folder>/<key>.arrow`, read through a memory map. Its key
hashes everything that changes the features (see `feature_key`); an entry is written under a
temporary name and renamed into place, so a half-written entry is never read.

Features are stored column by column, each with the codec that round-trips it exactly:
ints, strings and lists of ints (the bulk: `input_ids`, `attention_mask`) as native Arrow
columns; anything else (QA offsets, a list of tuples or None; nested lists) pickled per row.

Example:
    >>> cache = feature_cache(store.cache_dir)          # None when XSTILTS_FEATURE_CACHE=0
    >>> features = featurize_cached(fmt, examples, tokenizer, spec, 128, cache=cache)
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import pickle
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel
from transformers import PreTrainedTokenizerBase

from xstilts.data.io import Example
from xstilts.tasks.spec import EVALUATION_ONLY_FIELDS, TEXT_TO_TEXT_FIELDS, TaskSpec

Feature = dict[str, Any]

#: bump when the file layout or the key's parts change, so older entries are never read
LAYOUT_VERSION = 1
#: set to 0 to featurise afresh every time (results are the same either way)
SWITCH = "XSTILTS_FEATURE_CACHE"
_INT_LIST = pa.list_(pa.int64())
HASH_CHUNK = 1000

_tokenizer_hashes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def hash_examples(examples: list[Example]) -> str:
    """sha256 of `json.dumps(examples, sort_keys=True, default=str)`, streamed one example at a time.

    Equal to hashing the whole list's JSON (what checkpoint keys always hashed) without
    holding that string in memory: a list's JSON is its items' JSON joined by ", " in brackets.
    """
    digest = hashlib.sha256(b"[")
    # Chunks of examples, not one at a time: one C-encoder call per chunk is several times faster.
    for start in range(0, len(examples), HASH_CHUNK):
        if start:
            digest.update(b", ")
        digest.update(json.dumps(examples[start : start + HASH_CHUNK], sort_keys=True, default=str)[1:-1].encode())
    digest.update(b"]")
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """Hash of the files the tokenizer saves (vocabulary, merges, settings), computed once per tokenizer.

    Two tokenizers share it only if they save the same files, so a different tokenizer
    never reads another's features.
    """
    if tokenizer in _tokenizer_hashes:
        return _tokenizer_hashes[tokenizer]
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    digest.update(f"{tokenizer.padding_side}/{tokenizer.truncation_side}".encode())
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        for file in sorted(Path(folder).rglob("*")):
            if file.is_file():
                digest.update(str(file.relative_to(folder)).encode())
                digest.update(hashlib.sha256(file.read_bytes()).digest())
    _tokenizer_hashes[tokenizer] = digest.hexdigest()
    return _tokenizer_hashes[tokenizer]


def feature_key(
    *, examples_hash: str, tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, fmt: Any, max_length: int,
    settings: BaseModel | None = None,
) -> str:
    """Content key of one featurised split.

    Args:
        examples_hash: `hash_examples` of the examples (plus how they were subsampled, if they were).
        fmt: the TaskFormat; its class and featuriser `version` are keyed.
        settings: the run's text-to-text settings (text-to-text mode), else None. The windows'
            strides are functions of `max_length` (windows.window_spans, span_qa.doc_stride), so
            `max_length` and the featuriser version cover them.
    """
    # As in checkpoint keys: evaluation-only fields never change features; text-to-text
    # fields change them only in text-to-text mode.
    excluded = set(EVALUATION_ONLY_FIELDS) | (set(TEXT_TO_TEXT_FIELDS) if settings is None else set())
    parts = {
        "layout": LAYOUT_VERSION,
        "examples": examples_hash,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "max_length": max_length,
        "format": [spec.format.value, f"{type(fmt).__module__}.{type(fmt).__qualname__}", fmt.version],
        "settings": settings.model_dump(mode="json") if settings is not None else None,
        "spec": spec.model_dump(mode="json", exclude=excluded),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


class FeatureCache:
    """Lists of features stored by key under `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.arrow"

    def load(self, key: str) -> list[Feature] | None:
        """The features stored under `key`, or None if there are none (or the file is unreadable)."""
        path = self.path(key)
        if not path.exists():
            return None
        collecting = gc.isenabled()
        gc.disable()  # millions of new lists and no garbage: collection passes would double the time
        try:
            with pa.memory_map(str(path)) as source:
                return decode(pa.ipc.open_file(source).read_all())
        except (pa.ArrowInvalid, OSError, KeyError, ValueError):
            return None  # not ours or damaged (entries are renamed into place whole): featurise again
        finally:
            if collecting:
                gc.enable()

    def store(self, key: str, features: list[Feature]) -> None:
        """Write `features` under `key`: to a temporary file, then renamed into place."""
        table = encode(features)
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as handle, pa.ipc.new_file(handle, table.schema) as writer:
                writer.write_table(table)
            os.replace(tmp, self.path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def feature_cache(cache_dir: Path) -> FeatureCache | None:
    """The cache under `cache_dir/features`, or None when XSTILTS_FEATURE_CACHE=0 turns it off."""
    if os.environ.get(SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    return FeatureCache(Path(cache_dir) / "features")


def featurize_cached(
    fmt: Any, examples: list[Example], tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, max_length: int, *,
    cache: FeatureCache | None, settings: BaseModel | None = None, examples_hash: str | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Feature]:
    """`fmt.featurize(examples, tokenizer, spec, max_length)`, read from `cache` when it holds them.

    Args:
        cache: where features are kept; None featurises without caching.
        settings: the text-to-text settings the format was built with (None in encoder mode).
        examples_hash: the examples' hash when the caller already has it (else computed here).
        log: told one line when the features come from the cache.
    """
    if cache is None:
        return fmt.featurize(examples, tokenizer, spec, max_length)
    key = feature_key(
        examples_hash=examples_hash or hash_examples(examples), tokenizer=tokenizer, spec=spec, fmt=fmt,
        max_length=max_length, settings=settings,
    )
    features = cache.load(key)
    if features is not None:
        if log is not None:
            log(f"{spec.name}: {len(examples)} examples' features from the cache ({cache.path(key)})")
        return features
    features = fmt.featurize(examples, tokenizer, spec, max_length)
    cache.store(key, features)
    return features


def column_codec(values: list[Any]) -> tuple[str, pa.Array]:
    """The codec that stores one column exactly, and the column encoded with it."""
    kinds = {type(value) for value in values}
    try:
        if kinds == {int}:
            return "int", pa.array(values, type=pa.int64())
        if kinds == {str}:
            return "str", pa.array(values, type=pa.string())
        if kinds == {list}:
            # Arrow infers list<int64> only when every element is an int; a null, a float, a
            # tuple or a nested list infers something else and takes the exact codec below.
            array = pa.array(values)
            if array.type == _INT_LIST and array.null_count == 0 and array.values.null_count == 0:
                return "int_list", array
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass  # an int beyond 64 bits, mixed element types: pickled below
    return "pickle", pickled(values)


def pickled(values: list[Any]) -> pa.Array:
    return pa.array([pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL) for value in values], type=pa.binary())


def encode(features: list[Feature]) -> pa.Table:
    """One column per feature key; features whose keys differ are pickled whole, one row each."""
    keys = list(features[0]) if features else []
    if any(list(feature) != keys for feature in features):
        columns, codecs = {"row": pickled(features)}, {"row": "row"}
    else:
        columns, codecs = {}, {}
        for key in keys:
            codecs[key], columns[key] = column_codec([feature[key] for feature in features])
    table = pa.table(columns) if columns else pa.table({})
    metadata = {"layout": str(LAYOUT_VERSION), "count": str(len(features)), "codecs": json.dumps(codecs)}
    return table.replace_schema_metadata(metadata)


def decode_column(column: pa.ChunkedArray, codec: str) -> list[Any]:
    if codec == "int_list":
        array = column.combine_chunks()
        offsets = array.offsets.to_numpy().tolist()
        # One bulk conversion of every id, then slices: far faster than a Python object per row from Arrow.
        values = array.values.to_numpy().tolist()
        return [values[start:end] for start, end in zip(offsets, offsets[1:])]
    if codec in ("int", "str"):
        return column.to_pylist()
    return [pickle.loads(value) for value in column.to_pylist()]


def decode(table: pa.Table) -> list[Feature]:
    """The features `encode` stored, exactly."""
    metadata = {key.decode(): value.decode() for key, value in (table.schema.metadata or {}).items()}
    if metadata.get("layout") != str(LAYOUT_VERSION):
        raise ValueError(f"feature cache layout {metadata.get('layout')!r}, expected {LAYOUT_VERSION}")
    codecs, count = json.loads(metadata["codecs"]), int(metadata["count"])
    if codecs == {"row": "row"}:
        return decode_column(table.column("row"), "pickle")
    if not codecs:
        return [{} for _ in range(count)]
    columns = [decode_column(table.column(key), codec) for key, codec in codecs.items()]
    return [dict(zip(codecs, row)) for row in zip(*columns)]
