"""Tiny random encoders with a tokenizer trained locally: for tests, the quickstart and studies.

The model is saved as a masked LM so MLM pretraining can continue from it: a phase that
trains masked-LM keeps its MLM head, any other phase loads the encoder alone (models.sources).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

from xstilts.atomic import atomic_directory

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Bump when the same texts and sizes would build a different model (it is in cache keys).
BUILDER_VERSION = 2


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
    with atomic_directory(Path(out_dir)) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)
