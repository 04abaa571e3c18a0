"""One shared encoder with one head per task (heads may be shared across tasks and languages)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel


class MultiTaskModel(nn.Module):
    """`encoder` produces token states; `heads[name]` maps them to a task's outputs."""

    is_text_to_text = False

    def __init__(self, encoder: PreTrainedModel, heads: dict[str, nn.Module] | None = None):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads or {})

    @property
    def backbone(self) -> PreTrainedModel:
        """The transformers model a checkpoint saves (save_pretrained) and loads."""
        return self.encoder

    @property
    def hidden_size(self) -> int:
        return self.encoder.config.hidden_size

    def forward(self, head: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "token_type_ids") if key in batch}
        hidden = self.encoder(**inputs).last_hidden_state
        return self.heads[head](hidden, batch)

    def bind_heads(self) -> None:
        """Give heads that share encoder weights (the MLM decoder is the input embedding
        matrix) their encoder; called whenever heads are built or loaded."""
        for head in self.heads.values():
            bind = getattr(head, "bind_encoder", None)
            if bind is not None:
                bind(self.encoder)

    def freeze_word_embeddings(self) -> None:
        """Keep the input word embeddings fixed: the shared cross-lingual space must not drift
        toward English-only tokens during English fine-tuning (REFERENCE §8)."""
        self.encoder.get_input_embeddings().weight.requires_grad_(False)
