"""Featurised examples cached on disk, so that a second experiment on the same data tokenises nothing.

An entry is one Arrow IPC file, `<folder>/<key>.arrow`, read through a memory map. Its key
hashes everything that changes the features (see `feature_key`); an entry is written under a
temporary name and renamed into place, so a half-written entry is never read.

Features are stored column by column, each with the codec that round-trips it exactly:
Arrow's own types where they fit (ints, strings, floats, bools, nested lists with nulls;
tuples, such as QA offsets, come back as tuples), an int list holding one value throughout
(an attention mask of ones) as its lengths alone, and anything else (numpy arrays, ints
beyond 64 bits, mixed types) as JSON with a tag per non-JSON type. Nothing is pickled: a
store folder may come from someone else, and reading an entry never runs code from it.

Example:
    >>> cache = feature_cache(store.cache_dir)          # None when XSTILTS_FEATURE_CACHE=0
    >>> features = featurize_cached(fmt, examples, tokenizer, spec, 128, cache=cache)
"""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import marshal
import os
import tempfile
import weakref
from collections.abc import Callable
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel
from transformers import PreTrainedTokenizerBase

from xstilts.atomic import atomic_path
from xstilts.data.io import Example
from xstilts.tasks.spec import EVALUATION_ONLY_FIELDS, TEXT_TO_TEXT_FIELDS, TaskSpec

Feature = dict[str, Any]

#: bump when the file layout or the key's parts change, so older entries are never read
LAYOUT_VERSION = 2  # 2: no pickled columns (layout 1 entries are never read)
#: set to 0 to featurise afresh every time (results are the same either way)
SWITCH = "XSTILTS_FEATURE_CACHE"
_LEAVES = {int, float, bool, str, bytes}
_JSON_SCALARS = {type(None), bool, int, float, str}
HASH_CHUNK = 1000
#: bump when `hash_examples` changes what it hashes (phase-2 and feature keys both change)
HASH_VERSION = 2  # 2: marshal (1: the list's JSON)

_tokenizer_hashes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def hash_examples(examples: list[Example]) -> str:
    """sha256 of the examples' content, a few times faster than hashing their JSON.

    Chunks of examples are serialised by `marshal` at format version 2, which has no
    back-references, so equal content gives equal bytes whatever object sharing the reader
    left (strings, numbers, lists, tuples and dicts; dict keys in their order, which each
    reader fixes). A chunk holding another type (a Path, say) is hashed as JSON with str()
    for those values instead. Each chunk is tagged and length-prefixed, so no two example
    lists share a stream. Nothing is ever unmarshalled: this only hashes.
    """
    digest = hashlib.sha256(f"examples/{HASH_VERSION}".encode())
    for start in range(0, len(examples), HASH_CHUNK):
        chunk = examples[start : start + HASH_CHUNK]
        try:
            tag, data = b"m", marshal.dumps(chunk, 2)
        except ValueError:  # a type marshal does not know
            tag, data = b"j", json.dumps(chunk, sort_keys=True, default=str).encode("utf-8", "surrogatepass")
        digest.update(tag + len(data).to_bytes(8, "little") + data)
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
        except (pa.ArrowException, OSError, KeyError, ValueError, TypeError, IndexError):
            return None  # not ours or damaged (entries are renamed into place whole): featurise again
        finally:
            if collecting:
                gc.enable()

    def store(self, key: str, features: list[Feature]) -> None:
        """Write `features` under `key`: to a temporary file, then renamed into place."""
        table = encode(features)
        with atomic_path(self.path(key)) as tmp, open(tmp, "wb") as handle, pa.ipc.new_file(handle, table.schema) as writer:
            writer.write_table(table)


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


def encode(features: list[Feature]) -> pa.Table:
    """One column per feature key; features whose keys differ are stored whole, as JSON, one row each."""
    keys = list(features[0]) if features else []
    ragged = any(list(feature) != keys for feature in features) or not all(isinstance(key, str) for key in keys)
    if ragged:
        columns, codecs = {"feature": json_column(features, "feature")}, {"feature": ["json"]}
    else:
        columns, codecs = {}, {}
        for key in keys:
            codecs[key], columns[key] = column_codec([feature[key] for feature in features], key)
    metadata = {
        "layout": str(LAYOUT_VERSION), "count": str(len(features)), "codecs": json.dumps(codecs), "ragged": str(int(ragged)),
    }
    return pa.table(columns).replace_schema_metadata(metadata)


def decode(table: pa.Table) -> list[Feature]:
    """The features `encode` stored, exactly."""
    metadata = {key.decode(): value.decode() for key, value in (table.schema.metadata or {}).items()}
    if metadata.get("layout") != str(LAYOUT_VERSION):
        raise ValueError(f"feature cache layout {metadata.get('layout')!r}, expected {LAYOUT_VERSION}")
    codecs, count = json.loads(metadata["codecs"]), int(metadata["count"])
    if metadata["ragged"] == "1":
        return decode_column(table.column("feature"), codecs["feature"])
    if not codecs:
        return [{} for _ in range(count)]
    columns = [decode_column(table.column(key), codec) for key, codec in codecs.items()]
    return list(map(dict, map(zip, repeat(list(codecs)), zip(*columns))))


def column_codec(values: list[Any], key: str) -> tuple[list, pa.Array]:
    """The codec that stores one column exactly, and the column encoded with it.

    Codecs: ["arrow", tuple_depths] (Arrow's own types: ints, floats, bools, strings and
    nested lists of them, with nulls; containers at `tuple_depths` come back as tuples),
    ["fill", value] (lists holding one int throughout, e.g. an attention mask of ones: only
    their lengths are stored) and ["json"] (anything else, as tagged JSON per row).
    """
    tuple_depths = arrow_shape(values)
    if tuple_depths is not None:
        try:
            array = pa.array(values)
        except (pa.ArrowException, OverflowError):
            array = None  # an int beyond 64 bits: JSON below
        if array is not None:
            if not tuple_depths and pa.types.is_list(array.type) and pa.types.is_int64(array.type.value_type):
                fill = fill_value(array)
                if fill is not None:
                    return ["fill", fill], pa.array(np.diff(array.offsets.to_numpy()), type=pa.int32())
            return ["arrow", tuple_depths], array
    return ["json"], json_column(values, key)


def arrow_shape(values: list[Any]) -> list[int] | None:
    """The depths at which `values` hold tuples, if Arrow stores them exactly once they are lists, else None.

    Exact when every depth holds one kind of container (list or tuple) or one kind of leaf
    (int, float, bool, str, bytes), besides None: then Arrow infers that type and gives
    those values back. Checked a depth at a time, so the loops run in C.
    """
    level, tuple_depths, depth = values, [], 0
    while level:
        kinds = set(map(type, level)) - {type(None)}
        if not kinds:
            break
        if len(kinds) > 1:
            return None
        (kind,) = kinds
        if kind in _LEAVES:
            break
        if kind not in (list, tuple):
            return None
        if kind is tuple:
            tuple_depths.append(depth)
        level = [item for container in level if container is not None for item in container]
        depth += 1
    return tuple_depths


def fill_value(array: pa.ListArray) -> int | None:
    """The one int every list of `array` holds throughout (and at least once), if there is one."""
    if array.null_count or array.offset or len(array.values) == 0 or array.values.null_count:
        return None
    flat = array.values.to_numpy()
    first = int(flat[0])
    return first if bool((flat == first).all()) else None


def decode_column(column: pa.ChunkedArray, codec: list) -> list[Any]:
    name = codec[0]
    if name == "arrow":
        return arrow_values(column.combine_chunks(), set(codec[1]))
    if name == "fill":
        value = int(codec[1])
        return [[value] * length for length in column.to_numpy().tolist()]
    if name == "json":
        return [json.loads(text, object_hook=untag) for text in column.to_pylist()]
    raise ValueError(f"unknown feature codec {name!r}")


def arrow_values(array: pa.Array, tuple_depths: set[int], depth: int = 0) -> list[Any]:
    """`array.to_pylist()`, with tuples at `tuple_depths`, built from whole buffers (several times faster)."""
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
        if pa.types.is_integer(array.type) and not array.null_count:
            return array.to_numpy().tolist()  # one bulk conversion, not a Python scalar per value
        return array.to_pylist()
    items = arrow_values(array.values, tuple_depths, depth + 1)
    offsets = array.offsets.to_numpy()
    lengths = np.diff(offsets)
    valid = array.is_valid().to_numpy(zero_copy_only=False) if array.null_count else None
    if depth in tuple_depths:
        width = int(lengths.max()) if len(lengths) else 0
        if width and offsets[0] == 0 and bool((lengths[valid] if valid is not None else lengths).min() == width):
            # Every tuple has one length (offset pairs): zip slices the flat values in C.
            tuples = zip(*[iter(items[: offsets[-1]])] * width)
            if valid is None:
                return list(tuples)
            # Tuples into the valid slots of an object array, Nones elsewhere: no Python-level loop.
            rows = np.full(len(array), None, dtype=object)
            rows[valid] = np.fromiter(tuples, dtype=object, count=int(valid.sum()))
            return rows.tolist()
        rows = [tuple(items[start:end]) for start, end in zip(offsets.tolist(), offsets[1:].tolist())]
    else:
        rows = [items[start:end] for start, end in zip(offsets.tolist(), offsets[1:].tolist())]
    if valid is not None:
        rows = [row if keep else None for row, keep in zip(rows, valid.tolist())]
    return rows


def json_column(values: list[Any], key: str) -> pa.Array:
    try:
        return pa.array([json.dumps(tag(value), allow_nan=True) for value in values], type=pa.string())
    except TypeError as error:
        raise TypeError(f"feature cache: cannot store {key!r} exactly: {error}") from None


def tag(value: Any) -> Any:
    """`value` as plain JSON, with a one-key object naming the type of anything JSON would not give back as it was.

    Lists, None, bools, ints (of any size), floats and strings are JSON's own; every JSON
    object is a tag, so a stored dict is tagged too and never mistaken for one.
    """
    kind = type(value)
    if kind in _JSON_SCALARS:
        return value
    if kind is list:
        return [tag(item) for item in value]
    if kind is tuple:
        return {"tuple": [tag(item) for item in value]}
    if kind is dict:
        return {"dict": [[tag(k), tag(v)] for k, v in value.items()]}
    if kind is bytes:
        return {"bytes": base64.b64encode(value).decode()}
    if kind is complex:
        return {"complex": [value.real, value.imag]}
    if kind is np.ndarray and value.dtype != object:
        return {"ndarray": [value.dtype.str, list(value.shape), base64.b64encode(np.ascontiguousarray(value).tobytes()).decode()]}
    if isinstance(value, np.generic) and value.dtype != object:
        return {"numpy": [value.dtype.str, base64.b64encode(value.tobytes()).decode()]}
    raise TypeError(f"{kind.__module__}.{kind.__qualname__} has no exact encoding")


def untag(obj: dict) -> Any:
    """The value one tag stands for (`json.loads` calls this innermost first)."""
    if len(obj) != 1:
        raise ValueError("not a feature cache tag")
    (name, payload), = obj.items()
    if name == "tuple":
        return tuple(payload)
    if name == "dict":
        return {k: v for k, v in payload}
    if name == "bytes":
        return base64.b64decode(payload)
    if name == "complex":
        return complex(*payload)
    if name == "ndarray":
        dtype, shape, data = payload
        return np.frombuffer(base64.b64decode(data), dtype=_plain_dtype(dtype)).reshape(shape).copy()
    if name == "numpy":
        dtype, data = payload
        return np.frombuffer(base64.b64decode(data), dtype=_plain_dtype(dtype))[0]
    raise ValueError(f"unknown feature cache tag {name!r}")


def _plain_dtype(text: str) -> np.dtype:
    dtype = np.dtype(text)
    if dtype.hasobject:
        raise ValueError("object arrays are never read from the feature cache")
    return dtype
