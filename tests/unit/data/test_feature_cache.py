"""Feature cache: exact round trip in every format, keys, atomic entries, the off switch, the streaming hash."""

import ast
import json
import os
import pickle  # only to forge a hostile cache entry
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from fixtures_formats import write_formats_fixture
from tiny_t5 import build_tokenizer
from tiny_training import pair_examples, tiny_tokenizer
from xstilts.config.schema import TextToTextConfig
from xstilts.data import feature_cache as cache_module
from xstilts.data.feature_cache import (FeatureCache, decode, encode, feature_cache, feature_key, featurize_cached,
                                        hash_examples, tokenizer_fingerprint)
from xstilts.data.loading import load_examples
from xstilts.formats.base import get_format
from xstilts.models.tiny import train_wordpiece_tokenizer
from xstilts.tasks.registry import load_registry
from xstilts.tasks.spec import Format


@pytest.fixture(scope="module")
def formats_fixture(tmp_path_factory):
    fixture = write_formats_fixture(tmp_path_factory.mktemp("formats"))
    registry = load_registry(fixture["specs"])
    tokenizer = train_wordpiece_tokenizer(fixture["corpus"], vocab_size=400)
    return fixture, registry, tokenizer


def split_of(fixture, registry, task, split="train", language="en"):
    spec = registry.get(task)
    return spec, load_examples(spec, split, language, fixture["data"][task])


@pytest.mark.parametrize(
    ("task", "text_to_text"),
    [("toy-xnli", False), ("toy-topic", False), ("toy-pos", False), ("toy-qa", False), ("toy-copa", False),
     ("toy-xnli", True), ("toy-pos", True)],
)
def test_cached_features_equal_fresh_features_in_every_format(formats_fixture, task, text_to_text, tmp_path):
    fixture, registry, tokenizer = formats_fixture
    spec, examples = split_of(fixture, registry, task)
    settings = TextToTextConfig() if text_to_text else None
    if text_to_text:
        tokenizer = build_tokenizer(fixture["corpus"])
    fmt = get_format(spec.format, settings)
    fresh = fmt.featurize(examples, tokenizer, spec, 48)
    cache = FeatureCache(tmp_path)
    cold = featurize_cached(fmt, examples, tokenizer, spec, 48, cache=cache, settings=settings)
    lines = []
    warm = featurize_cached(fmt, examples, tokenizer, spec, 48, cache=cache, settings=settings, log=lines.append)
    assert cold == fresh and warm == fresh and len(lines) == 1 and "from the cache" in lines[0]
    # Equal values of other types (a tuple for a list) would compare equal in places and not in others.
    assert_exact(warm, fresh)
    assert len(list(tmp_path.glob("*.arrow"))) == 1


def test_text_to_text_and_mlm_round_trip(formats_fixture, tmp_path):
    fixture, registry, _ = formats_fixture
    settings = TextToTextConfig()
    spec, examples = split_of(fixture, registry, "toy-qa")
    tokenizer = build_tokenizer(fixture["corpus"])
    fmt = get_format(spec.format, settings)
    cache = FeatureCache(tmp_path)
    featurize_cached(fmt, examples, tokenizer, spec, 48, cache=cache, settings=settings)
    assert featurize_cached(fmt, examples, tokenizer, spec, 48, cache=cache, settings=settings) == fmt.featurize(
        examples, tokenizer, spec, 48
    )
    mlm = load_registry().get("mlm-multilingual")
    lines = [{"id": str(i), "text": " ".join(random.Random(i).choices(["the", "cat", "sat", "on", "mat"], k=40))} for i in range(30)]
    wordpiece = tiny_tokenizer()
    fresh = get_format(Format.MLM).featurize(lines, wordpiece, mlm, 16)
    featurize_cached(get_format(Format.MLM), lines, wordpiece, mlm, 16, cache=cache)
    assert featurize_cached(get_format(Format.MLM), lines, wordpiece, mlm, 16, cache=cache) == fresh


def assert_exact(decoded, features):
    """Equal values of equal types all the way down (1 == 1.0 == True and [1] != (1,) alone would not show it)."""
    assert len(decoded) == len(features)
    for got, want in zip(decoded, features):
        assert_same(got, want)


def assert_same(got, want):
    assert type(got) is type(want), (got, want)
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want, equal_nan=want.dtype.kind in "fc")
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for key in want:
            assert_same(got[key], want[key])
    elif isinstance(want, list | tuple):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert_same(a, b)
    elif isinstance(want, float) and want != want:
        assert got != got
    else:
        assert got == want


EVERY_KIND = [
    {"ids": [1, 2, 3], "n": 4, "s": "a", "t": [(0, 1), None, (2, 5)], "nested": [[1], [2, 3]], "f": 0.5, "flag": True,
     "array": np.arange(3), "big": 2**70, "empty": [], "mask": [1, 1, 1], "types": [0, 0, 0], "none": None,
     "holes": [1, None, 3], "floats": [0.1, -0.0, float("inf")], "bools": [True, False], "strings": ["x", None],
     "deep": [[[1, 2]], [[3]]], "pairs": ((1, 2), (3, 4)), "ragged_tuples": [(1,), (2, 3), ()],
     "mixed": [1, "a", 2.5, None], "tuple_or_list": [(1, 2), [3]], "bytes": b"\x00\xff", "dict": {"a": 1, 2: (3,)},
     "matrix": np.arange(6, dtype=np.float32).reshape(2, 3), "scalar": np.int64(7), "complex": 1 + 2j, "nan": float("nan"),
     "int_float": [1, 2.0]},
    {"ids": [], "n": -1, "s": "", "t": [], "nested": [], "f": 1.0, "flag": False, "array": np.arange(0), "big": 1,
     "empty": [], "mask": [1], "types": [0, 0], "none": None, "holes": None, "floats": [], "bools": [], "strings": [],
     "deep": [], "pairs": ((5, 6),), "ragged_tuples": [None], "mixed": [], "tuple_or_list": [], "bytes": b"",
     "dict": {}, "matrix": np.zeros((0, 2), dtype=np.uint8), "scalar": np.int64(-1), "complex": 0j, "nan": 2.0,
     "int_float": [3]},
]


def test_encode_is_exact_for_every_value_kind():
    assert_exact(decode(encode(EVERY_KIND)), EVERY_KIND)
    decoded = decode(encode(EVERY_KIND))
    assert decoded[0]["t"] == [(0, 1), None, (2, 5)] and decoded[0]["matrix"].flags.writeable
    ragged = [{"a": 1}, {"a": 2, "b": [3], "t": (4, None)}, {}, {"x": np.arange(2), "y": {"z": [(1, 2)]}}]
    assert_exact(decode(encode(ragged)), ragged)
    assert decode(encode([])) == [] and decode(encode([{}, {}])) == [{}, {}]


def test_columns_use_arrow_types_where_they_fit():
    codecs = json.loads(encode(EVERY_KIND).schema.metadata[b"codecs"])
    assert codecs["ids"] == ["arrow", []] and codecs["nested"] == ["arrow", []] and codecs["holes"] == ["arrow", []]
    assert codecs["t"] == ["arrow", [1]] and codecs["pairs"] == ["arrow", [0, 1]] and codecs["floats"] == ["arrow", []]
    # Lists holding one int throughout keep only their lengths; they come back as lists of that int.
    assert codecs["mask"] == ["fill", 1] and codecs["types"] == ["fill", 0]
    for key in ("array", "big", "mixed", "tuple_or_list", "dict", "int_float"):
        assert codecs[key] == ["json"], key


def test_an_unstorable_value_is_an_error_not_a_guess(tmp_path):
    with pytest.raises(TypeError, match="'odd'"):
        FeatureCache(tmp_path).store("k", [{"odd": object()}])
    assert not list(tmp_path.iterdir())


def test_the_module_never_unpickles():
    tree = ast.parse(Path(cache_module.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in node.names} | {node.module.split(".")[0] for node in ast.walk(tree)
                                            if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "_pickle"}
    assert "pickle" not in {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    # marshal only writes (the examples' hash): nothing is ever read back through it.
    assert not {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name) and node.value.id == "marshal"} - {"dumps"}


class Boobytrap:
    def __reduce__(self):
        return (Path.write_text, (Path(os.environ["TRAP_FILE"]), "ran"))


@pytest.mark.parametrize("layout", [1, 2])
def test_an_entry_holding_a_pickle_is_a_miss_and_never_runs(tmp_path, monkeypatch, layout):
    trap = tmp_path / "trap"
    monkeypatch.setenv("TRAP_FILE", str(trap))
    payload = pickle.dumps([{"input_ids": Boobytrap()}])
    cache = FeatureCache(tmp_path / "features")
    cache.folder.mkdir()
    # Layout 1 wrote exactly this (a pickled whole-feature column); a layout-2 file that claims a pickle codec is forged.
    for codecs, column in (('{"row": "row"}', "row"), ('{"input_ids": ["pickle"]}', "input_ids"),
                           ('{"input_ids": ["json"]}', "input_ids")):
        table = pa.table({column: pa.array([payload], type=pa.binary())}).replace_schema_metadata(
            {"layout": str(layout), "count": "1", "codecs": codecs, "ragged": "0"})
        with pa.ipc.new_file(str(cache.path("k")), table.schema) as writer:
            writer.write_table(table)
        assert cache.load("k") is None
    assert not trap.exists()


def test_key_changes_with_every_part(formats_fixture):
    fixture, registry, tokenizer = formats_fixture
    spec, examples = split_of(fixture, registry, "toy-xnli")
    fmt = get_format(spec.format)
    base = dict(examples_hash=hash_examples(examples), tokenizer=tokenizer, spec=spec, fmt=fmt, max_length=32)
    other_tokenizer = tiny_tokenizer()
    keys = {
        feature_key(**base),
        feature_key(**{**base, "examples_hash": hash_examples(examples[1:])}),
        feature_key(**{**base, "tokenizer": other_tokenizer}),
        feature_key(**{**base, "max_length": 64}),
        feature_key(**{**base, "spec": spec.model_copy(update={"labels": list(reversed(spec.labels))})}),
        feature_key(**{**base, "fmt": get_format(spec.format, TextToTextConfig()), "settings": TextToTextConfig()}),
        feature_key(**{**base, "fmt": get_format(spec.format, TextToTextConfig(prompt="x")), "settings": TextToTextConfig(prompt="x")}),
    }
    assert len(keys) == 7
    # Evaluation-only spec fields do not change features: same key.
    assert feature_key(**{**base, "spec": spec.model_copy(update={"failure_rate": True})}) == feature_key(**base)
    assert tokenizer_fingerprint(tiny_tokenizer()) == tokenizer_fingerprint(other_tokenizer)


def test_the_examples_hash_follows_content_and_nothing_else():
    examples = pair_examples(2500)
    same = [{key: str(value).encode().decode() if isinstance(value, str) else value for key, value in example.items()} for example in examples]
    assert same == examples and all(a[k] is not b[k] for a, b in zip(examples, same) for k in a if isinstance(a[k], str) and len(a[k]) > 1)
    assert hash_examples(same) == hash_examples(examples)  # equal content, other objects: one hash
    changed = [dict(example) for example in examples]
    changed[1777]["text_a"] += "!"
    hashes = {hash_examples(x) for x in (examples, changed, examples[:-1], examples[:1000], examples[:1000] + examples[1001:], [])}
    assert len(hashes) == 6
    # A chunk with a type marshal cannot write is hashed as JSON, through str().
    odd = [{"b": [1, {"x": None}], "a": "é\"\n", "p": object}]
    assert hash_examples(odd) == hash_examples(list(odd)) != hash_examples([{**odd[0], "p": int}])
    assert hash_examples([{"a": [1]}]) != hash_examples([{"a": (1,)}])
    assert hash_examples([{"a": 1}]) != hash_examples([{"a": 1.0}]) != hash_examples([{"a": True}])


def test_half_written_or_damaged_entries_are_never_read(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.store("k", [{"input_ids": [1, 2]}])
    leftovers = [path.name for path in tmp_path.iterdir()]
    assert leftovers == ["k.arrow"]  # the temporary file was renamed into place
    cache.path("k").write_bytes(cache.path("k").read_bytes()[:-20])
    assert cache.load("k") is None and cache.load("missing") is None


def test_store_failure_leaves_nothing(tmp_path, monkeypatch):
    def broken(features):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cache_module, "encode", broken)
    with pytest.raises(RuntimeError):
        FeatureCache(tmp_path).store("k", [{"a": 1}])
    assert not list(tmp_path.iterdir())


def test_switch_turns_the_cache_off(tmp_path, monkeypatch):
    monkeypatch.setenv("XSTILTS_FEATURE_CACHE", "0")
    assert feature_cache(tmp_path) is None
    monkeypatch.setenv("XSTILTS_FEATURE_CACHE", "1")
    assert feature_cache(tmp_path).folder == tmp_path / "features"
