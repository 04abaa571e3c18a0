"""Checkpoints and the hand-off between phases (the one place weights move between phases).

A checkpoint directory holds `encoder/` (transformers save_pretrained, safetensors, plus
the tokenizer), `heads.safetensors` and `checkpoint.json` (which task, format and label
list each head was trained for, and the mode). In text-to-text mode `encoder/` holds the
whole encoder-decoder model and there are no heads: its LM head serves every task. It is written to a temporary directory and renamed, so a
directory that exists is complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedTokenizerBase

from xstilts.config.schema import HandOff, ModelMode
from xstilts.errors import UserError
from xstilts.atomic import atomic_directory
from xstilts.formats.base import get_format
from xstilts.models.multitask import MultiTaskModel
from xstilts.models.sources import load_encoder, load_seq2seq, quiet_transformers
from xstilts.models.text_to_text import TextToTextModel
from xstilts.tasks.spec import Format, TaskSpec

METADATA_FILE = "checkpoint.json"
HEADS_FILE = "heads.safetensors"
ENCODER_DIR = "encoder"


@dataclass(frozen=True)
class HeadInfo:
    """What a saved head was trained for; a head is reused only when all of it matches."""

    task: str
    format: str
    labels: tuple[str, ...]

    @classmethod
    def of(cls, spec: TaskSpec) -> HeadInfo:
        return cls(task=spec.name, format=spec.format.value, labels=tuple(spec.labels))


@dataclass
class LoadedCheckpoint:
    model: MultiTaskModel | TextToTextModel
    tokenizer: PreTrainedTokenizerBase
    kept_heads: list[str] = field(default_factory=list)
    dropped_heads: list[str] = field(default_factory=list)


def is_checkpoint(path: Path | str) -> bool:
    return (Path(path) / METADATA_FILE).is_file()


def save_checkpoint(
    path: Path,
    model: MultiTaskModel | TextToTextModel,
    tokenizer: PreTrainedTokenizerBase,
    heads: dict[str, HeadInfo],
    metadata: dict[str, Any],
) -> Path:
    """Write the model (encoder or encoder-decoder), tokenizer, heads and metadata atomically to `path`."""
    with quiet_transformers(), atomic_directory(Path(path)) as tmp:
        model.backbone.save_pretrained(tmp / ENCODER_DIR)
        tokenizer.save_pretrained(tmp / ENCODER_DIR)
        tensors = {
            f"{name}.{key}": value.detach().cpu().contiguous()
            for name, head in model.heads.items()
            for key, value in head.state_dict().items()
        }
        save_file(tensors, str(tmp / HEADS_FILE))
        document = {
            "mode": (ModelMode.TEXT_TO_TEXT if model.is_text_to_text else ModelMode.ENCODER).value,
            "heads": {name: {"task": h.task, "format": h.format, "labels": list(h.labels)} for name, h in heads.items()},
            **metadata,
        }
        (tmp / METADATA_FILE).write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")
    return Path(path)


def read_metadata(path: Path) -> dict[str, Any]:
    if not is_checkpoint(path):
        raise UserError(f"{path}: not an xstilts checkpoint (no {METADATA_FILE})")
    return json.loads((Path(path) / METADATA_FILE).read_text(encoding="utf-8"))


def checkpoint_mode(path: Path) -> ModelMode:
    """The mode a checkpoint was trained in (checkpoints older than text-to-text mode: encoder)."""
    return ModelMode(read_metadata(path).get("mode", ModelMode.ENCODER.value))


def load_checkpoint(
    path: Path,
    handoff: HandOff,
    wanted: dict[str, TaskSpec],
    cache_dir: Path,
    dropout: float = 0.1,
    mode: ModelMode = ModelMode.ENCODER,
) -> LoadedCheckpoint:
    """Load a checkpoint's encoder (strictly) and, in ENCODER_AND_MATCHING_HEADS mode, every
    saved head whose name, task format and label list match a wanted head.

    `wanted` maps head name -> the spec the next phase trains or evaluates with it. In `mode`
    text_to_text the whole encoder-decoder model loads (no heads); a text-to-text checkpoint
    also starts an encoder-mode phase (its encoder stack; decoder and LM head left out).

    Raises:
        UserError: not a checkpoint, or an encoder-mode checkpoint asked for in text-to-text mode.
    """
    metadata = read_metadata(path)
    saved_mode = ModelMode(metadata.get("mode", ModelMode.ENCODER.value))
    if mode is ModelMode.TEXT_TO_TEXT:
        if saved_mode is not ModelMode.TEXT_TO_TEXT:
            raise UserError(f"{path}: an encoder-mode checkpoint (no decoder) cannot start a text_to_text phase")
        seq2seq, tokenizer = load_seq2seq(str(Path(path) / ENCODER_DIR), cache_dir)
        return LoadedCheckpoint(model=TextToTextModel(seq2seq), tokenizer=tokenizer)
    strict = saved_mode is ModelMode.ENCODER
    encoder, tokenizer = load_encoder(str(Path(path) / ENCODER_DIR), cache_dir, strict=strict)
    model = MultiTaskModel(encoder)
    loaded = LoadedCheckpoint(model=model, tokenizer=tokenizer)
    saved = metadata["heads"]
    tensors = load_file(str(Path(path) / HEADS_FILE)) if saved else {}
    for name, info in saved.items():
        spec = wanted.get(name)
        matches = spec is not None and (info["format"], info["labels"]) == (spec.format.value, list(spec.labels))
        if handoff is HandOff.ENCODER_AND_MATCHING_HEADS and matches:
            model.heads[name] = load_head(name, spec, tensors, encoder, dropout, path)
            loaded.kept_heads.append(name)
        else:
            loaded.dropped_heads.append(name)
    model.bind_heads()
    return loaded


def load_head(name: str, spec: TaskSpec, tensors: dict, encoder: nn.Module, dropout: float, path: Path) -> nn.Module:
    head = get_format(Format(spec.format)).build_head(encoder.config.hidden_size, spec, dropout)
    # A head that shares encoder weights is bound first: the MLM head's vocabulary-sized
    # output bias exists only once it knows the encoder's vocabulary.
    bind = getattr(head, "bind_encoder", None)
    if bind is not None:
        bind(encoder)
    prefix = f"{name}."
    state = {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
    result = head.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(
            f"{path}: head {name!r} does not match its architecture "
            f"(missing {result.missing_keys}, unexpected {result.unexpected_keys})"
        )
    return head
