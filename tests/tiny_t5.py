"""A tiny T5 and a word-level tokenizer over a test's own texts, and a scripted stand-in model
whose `generate` answers from a table: for unit tests of the text-to-text formats."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from torch import nn
from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

from xstilts.models.text_to_text import TextToTextModel
from xstilts.models.tiny import untie_output_projection

SPECIALS = ["<pad>", "</s>", "<unk>"]


def build_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """Word-level tokenizer (white-space separated words, so decoding gives the text back) over the texts, appending </s> like T5's."""
    splitter = pre_tokenizers.WhitespaceSplit()
    words = sorted({piece for text in texts for piece, _ in splitter.pre_tokenize_str(text)})
    vocab = {token: index for index, token in enumerate(SPECIALS + words)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = splitter
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


def build_tiny_t5(tokenizer: PreTrainedTokenizerFast, seed: int = 0, d_model: int = 32, layers: int = 1) -> TextToTextModel:
    """A randomly initialised T5 v1.1-style model (gated GELU, LM head untied as in mT5, four
    heads: two learn the position-to-position alignment of tagging far more slowly) with
    `layers` encoder and decoder layers, over the tokenizer's vocabulary."""
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=d_model // 4, d_ff=2 * d_model, num_layers=layers,
        num_decoder_layers=layers, num_heads=4, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id, dropout_rate=0.0,
    )
    seq2seq = T5ForConditionalGeneration(config)
    untie_output_projection(seq2seq)
    return TextToTextModel(seq2seq)


class ScriptedGenerator(nn.Module):
    """Stands in for `seq2seq`: `generate` answers each input text from `answers` (input -> output).

    Records the batches it saw (as lists of input texts) and the generation arguments.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerFast, answers: dict[str, str]):
        super().__init__()
        # Keys as the model sees them: decoded from their token ids (word-level decoding
        # separates punctuation with spaces).
        self.tokenizer = tokenizer
        self.answers = {tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True): out for text, out in answers.items()}
        self.batches: list[list[str]] = []
        self.kwargs: list[dict] = []

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids, skip_special_tokens=True)
        self.batches.append(texts)
        self.kwargs.append(kwargs)
        outputs = self.tokenizer([self.answers[text] for text in texts], padding=True, return_tensors="pt")
        return outputs["input_ids"]


class ScriptedModel(nn.Module):
    """A TextToTextModel-shaped object around a ScriptedGenerator."""

    is_text_to_text = True

    def __init__(self, tokenizer: PreTrainedTokenizerFast, answers: dict[str, str]):
        super().__init__()
        self.seq2seq = ScriptedGenerator(tokenizer, answers)
