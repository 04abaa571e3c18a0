"""Tiny random models with a tokenizer trained locally: for tests, the quickstart and studies.

A tiny BERT (WordPiece) is saved as a masked LM so MLM pretraining can continue from it: a phase
that trains masked-LM keeps its MLM head, any other phase loads the encoder alone
(models.sources). A tiny T5 (SentencePiece-style Unigram) is saved as a T5ForConditionalGeneration
in the T5 v1.1 / mT5 layout (gated-GELU feed-forward, output projection not tied to the
embeddings), for span-corruption pretraining and both ways of using a seq2seq model.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import sentencepiece
import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from torch import nn
from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

from xstilts.atomic import atomic_directory
from xstilts.formats.span_corruption import sentinel_tokens
from xstilts.models.packaged_tokenizer import sentencepiece_charsmap
from xstilts.models.sources import quiet_transformers

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Bump when the same texts and sizes would build a different model (it is in cache keys).
BUILDER_VERSION = 2
# T5's special tokens, at T5's ids (pad 0 is also the decoder's start token, eos 1, unk 2).
T5_SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>"]
# T5's sentinels mark the spans that span corruption removed: <extra_id_0>, <extra_id_1>, ...
SENTINEL_COUNT = 32
# Bump when the same texts and sizes would build a different tiny T5 (it is in cache keys).
T5_BUILDER_VERSION = 1


def train_wordpiece_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A BERT-style WordPiece tokenizer trained on `texts` (built with `tokenizers`, not a slow class).

    The same texts always give the same vocabulary. `tokenizers`' trainer numbers the
    continuing-subword symbols ("##a") in hash-map order and breaks merge ties by those
    numbers, so plain training differs from run to run (huggingface/tokenizers#1794); here
    every such symbol is registered up front, in sorted order, and the trained vocabulary is
    then loaded into a plain WordPiece model with only the real special tokens.
    """
    texts = list(texts)
    normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    inner = {char for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
             for char in word[1:]}
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS + ["##" + char for char in sorted(inner)], min_frequency=1
    )
    draft = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    draft.normalizer, draft.pre_tokenizer = normalizer, pre_tokenizer
    draft.train_from_iterator(texts, trainer=trainer)
    tokenizer = Tokenizer(models.WordPiece(draft.get_vocab(with_added_tokens=False), unk_token="[UNK]"))
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
    tokenizer.decoder = decoders.WordPiece()
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def build_tiny_model(
    out_dir: Path,
    texts: Iterable[str],
    *,
    vocab_size: int = 2000,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    max_positions: int = 256,
    seed: int = 0,
) -> Path:
    """Train a tokenizer on `texts`, build a random BERT of the given size, save both to `out_dir`.

    Example:
        >>> build_tiny_model(Path("tiny"), ["a small corpus", "of sentences"], vocab_size=200)
    """
    tokenizer = train_wordpiece_tokenizer(texts, vocab_size=vocab_size)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=hidden_size * 4,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = BertForMaskedLM(config)
    with quiet_transformers(), atomic_directory(Path(out_dir)) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)


def train_unigram_tokenizer(
    texts: Iterable[str], vocab_size: int, *, sentinels: int = SENTINEL_COUNT
) -> PreTrainedTokenizerFast:
    """A T5-style SentencePiece Unigram tokenizer trained on `texts`, built with `tokenizers`.

    The pieces and their scores come from SentencePiece's own Unigram trainer (the trainer of
    T5's `spiece.model`; one thread, so the same texts always give the same vocabulary), with
    T5's settings: `<pad>`, `</s>`, `<unk>` at ids 0, 1, 2, no `<s>`, every character kept.
    (`tokenizers`' UnigramTrainer gives another vocabulary on every run.) The tokenizer itself
    is a `tokenizers` Unigram model with SentencePiece's `nmt_nfkc` normalisation, runs of
    spaces collapsed and words marked by a leading "▁" (Metaspace); it appends `</s>` to every
    text (a pair: `A </s> B </s>`). The sentinels `<extra_id_0>`... follow the trained pieces as
    additional special tokens, as in T5 (32,000 pieces + 100 sentinels).

    Args:
        texts: the training sentences.
        vocab_size: the most SentencePiece pieces, special tokens included; a small corpus may
            support fewer (its vocabulary is then smaller), the sentinels come on top.
        sentinels: how many `<extra_id_N>` tokens to add.
    """
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)), model_writer=model, model_type="unigram", vocab_size=vocab_size,
        hard_vocab_limit=False, character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        normalization_rule_name="nmt_nfkc", num_threads=1, minloglevel=2,
    )
    trained = sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = [(trained.id_to_piece(i), trained.get_score(i)) for i in range(trained.get_piece_size())]
    if [piece for piece, _ in pieces[: len(T5_SPECIAL_TOKENS)]] != T5_SPECIAL_TOKENS:
        raise RuntimeError(f"SentencePiece put the special tokens elsewhere: {pieces[:3]}")
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=T5_SPECIAL_TOKENS.index("<unk>"), byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(sentencepiece_charsmap("nmt_nfkc")), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.add_special_tokens(T5_SPECIAL_TOKENS + sentinel_tokens(sentinels))
    eos_id = tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B:1 </s>:1", special_tokens=[("</s>", eos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=sentinel_tokens(sentinels),
        model_input_names=["input_ids", "attention_mask"],
    )


def build_tiny_t5(
    out_dir: Path,
    texts: Iterable[str],
    *,
    vocab_size: int = 2000,
    d_model: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    d_ff: int = 256,
    seed: int = 0,
) -> Path:
    """Train a Unigram tokenizer on `texts`, build a random T5 v1.1-style model, save both to `out_dir`.

    `num_layers` encoder and as many decoder blocks, `d_model / num_heads` per head. Loads with
    AutoModelForSeq2SeqLM (every key), T5EncoderModel (the encoder; `lm_head.weight` is left
    over, as for any mT5 checkpoint) and AutoTokenizer.

    Example:
        >>> build_tiny_t5(Path("tiny-t5"), ["a small corpus", "of sentences"], vocab_size=200)
    """
    tokenizer = train_unigram_tokenizer(texts, vocab_size=vocab_size)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=d_model // num_heads,
        d_ff=d_ff,
        num_layers=num_layers,
        num_decoder_layers=num_layers,
        num_heads=num_heads,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    untie_output_projection(model)
    with quiet_transformers(), atomic_directory(Path(out_dir)) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)


def untie_output_projection(model: T5ForConditionalGeneration) -> None:
    """Give the LM head weights of its own, as T5 v1.1 and mT5 have.

    transformers 5 always builds a T5 with the head tied to the embeddings (T5Config forces
    `tie_word_embeddings` to True and keeps only "don't scale the decoder output" from False);
    a checkpoint whose `lm_head.weight` differs from `shared.weight` loads untied, as mT5's
    does. The head is initialised like T5X's output layer (variance scaling over the fan-in,
    std d_model^-0.5) rather than transformers' std 1, which starts a tiny model with logits
    an order of magnitude too large.
    """
    vocab, d_model = model.shared.weight.shape
    model.lm_head.weight = nn.Parameter(torch.randn(vocab, d_model) * d_model**-0.5)
    model.all_tied_weights_keys.pop("lm_head.weight", None)
