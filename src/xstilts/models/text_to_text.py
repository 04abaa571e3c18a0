"""A text-to-text model (T5, mT5, FLAN-T5, mT0) behind the interface the loop and sweep use.

In text-to-text mode every task reads and writes text through the one language-model head, so
there are no task heads: `heads` stays empty, and `forward` returns the decoder's logits for the
target tokens (teacher forcing), from which a text-to-text format computes its loss. Predictions
come from the format's `predict` (rank classification or generation), not from `forward`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel


class TextToTextModel(nn.Module):
    """`seq2seq` is a transformers encoder-decoder LM (AutoModelForSeq2SeqLM)."""

    is_text_to_text = True

    def __init__(self, seq2seq: PreTrainedModel):
        super().__init__()
        self.seq2seq = seq2seq
        self.heads = nn.ModuleDict()  # none: the LM head serves every task

    @property
    def backbone(self) -> PreTrainedModel:
        """The transformers model a checkpoint saves (save_pretrained) and loads."""
        return self.seq2seq

    @property
    def encoder(self) -> nn.Module:
        """The encoder stack alone (retrieval embeds sentences with it)."""
        return self.seq2seq.get_encoder()

    @property
    def hidden_size(self) -> int:
        return self.seq2seq.config.d_model

    def forward(self, head: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[batch, target length, vocabulary] logits of the target tokens in `batch["labels"]`
        (padded with -100; transformers shifts them right into the decoder inputs)."""
        return self.seq2seq(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        ).logits

    def bind_heads(self) -> None:
        """Nothing to bind: there are no task heads."""

    def freeze_word_embeddings(self) -> None:
        """Keep the shared input embeddings fixed (encoder and decoder read the same matrix)."""
        self.seq2seq.get_input_embeddings().weight.requires_grad_(False)
