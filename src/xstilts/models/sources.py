"""Model sources: a hub id, a local directory, or `packaged:NAME`; every load is checked.

jiant silently ignored weights that failed to load (#1327/#1329). Here a missing or
unexpected key is an error, with documented exceptions for *start* models: a pooler absent
from a checkpoint is allowed because no xstilts head reads it, and heads the loaded class
has no place for (`cls.`, `lm_head.`: pretraining heads when loading the encoder alone; the
next-sentence head and pooler when loading a masked LM) are left out on purpose.

A phase that trains masked-LM from a pretrained model keeps that model's own MLM head
(`load_masked_lm`): a random head would send random gradients into the encoder from step one.

Nothing a model source holds runs as code unless the user says so (`LoadPolicy`): weights load
from safetensors only, as pickle can run code when unpickled; pickle weights load only with
`allow_pickle_weights`, and then through torch.load(weights_only=True), which refuses anything
but tensors and plain containers. A model whose config asks for custom code (`auto_map`) loads
only with `trust_remote_code`; without it that model is refused, not quietly loaded with
transformers' built-in class, so the flag never changes which model a source gives (and is in
no checkpoint key).
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSeq2SeqLM, AutoModelForTextEncoding,
                          AutoTokenizer, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase)
from transformers.models.auto.tokenization_auto import get_tokenizer_config

from xstilts.errors import UserError
from xstilts.formats.mlm import MaskedLMHead

PACKAGED_PREFIX = "packaged:"
PRETRAINING_HEAD_PREFIXES = ("cls.", "lm_head.")
UNUSED_POOLER_PREFIX = "pooler."
# Parts of a pretraining checkpoint a masked LM has no place for: BERT's next-sentence head.
UNUSED_BY_MASKED_LM = ("cls.seq_relationship.",)
# Where the pretrained MLM head's transform and output bias live, per architecture family:
# (dense, LayerNorm, bias). The decoder is the tied input embedding matrix in all of them.
MLM_HEAD_LAYOUTS = (
    ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias"),  # BERT
    ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias"),  # RoBERTa, XLM-R, CamemBERT
    ("vocab_transform", "vocab_layer_norm", "vocab_projector.bias"),  # DistilBERT
)
# Weight files that torch.load unpickles (transformers' own names first: the message names one).
PICKLE_WEIGHT_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
PICKLE_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
# What a Trainer saves next to the weights: pickled too, but from_pretrained never reads them.
NOT_WEIGHTS = ("training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth", "scaler.pt")


@dataclass(frozen=True)
class LoadPolicy:
    """What loading a model may run: pickle weights (through torch.load(weights_only=True)) and
    the model's own Python code (`auto_map`) are both off unless the config turns them on.

    Example:
        >>> load_encoder("old-model-dir", cache_dir, policy=LoadPolicy(allow_pickle_weights=True))
    """

    allow_pickle_weights: bool = False
    trust_remote_code: bool = False

    def model_kwargs(self) -> dict:
        """`from_pretrained` keywords of a model class."""
        weights = {"weights_only": True} if self.allow_pickle_weights else {"use_safetensors": True}
        return {"trust_remote_code": self.trust_remote_code, **weights}

    def code_kwargs(self) -> dict:
        """`from_pretrained` keywords of AutoConfig and AutoTokenizer."""
        return {"trust_remote_code": self.trust_remote_code}


# The default: safetensors only, no model code.
SAFE_LOADING = LoadPolicy()


def resolve_model_source(source: str, cache_dir: Path) -> str:
    """Turn a user's model string into something `from_pretrained` accepts."""
    if source.startswith(PACKAGED_PREFIX):
        from xstilts.models.packaged import materialize_packaged_model

        return str(materialize_packaged_model(source[len(PACKAGED_PREFIX) :], cache_dir))
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise UserError(f"{path}: not a model directory (no config.json)")
        return str(path)
    if source.startswith((".", "/", "~")) or path.suffix or source.count("/") > 1:
        raise UserError(f"model {source!r}: no such directory")
    return source


def check_loading_info(info: dict, source: str, strict: bool) -> None:
    """Raise when weights were left uninitialised or silently dropped."""
    missing = sorted(info.get("missing_keys", ()))
    unexpected = sorted(info.get("unexpected_keys", ()))
    mismatched = sorted(str(key) for key in info.get("mismatched_keys", ()))
    if not strict:
        missing = [key for key in missing if not key.startswith(UNUSED_POOLER_PREFIX)]
        unexpected = [key for key in unexpected if not key.startswith(PRETRAINING_HEAD_PREFIXES)]
    problems = [
        f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mismatched", mismatched))
        if keys
    ]
    if problems:
        raise UserError(f"model {source!r}: weights do not match the architecture ({'; '.join(problems)})")


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' own loading report: we check it ourselves and fail on problems,
    and its warnings would otherwise be printed for users to learn to ignore. Its loading and
    saving progress bars go too (ours are rich's)."""
    previous, bars = transformers.logging.get_verbosity(), transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        yield
    finally:
        transformers.logging.set_verbosity(previous)
        if bars:
            transformers.logging.enable_progress_bar()


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def cannot_load(source: str, exc: OSError) -> UserError:
    return UserError(f"model {source!r}: cannot load ({first_line(exc)})")


def pickle_refused(source: str, files: str) -> UserError:
    return UserError(
        f"model {source!r}: weights are pickle files ({files}); pickle can run code. Convert to safetensors, "
        "or set allow_pickle_weights: true to load them with torch.load(weights_only=True)"
    )


def remote_code_refused(source: str, where: str) -> UserError:
    return UserError(
        f"model {source!r}: its {where} asks to run the model's own Python code (auto_map); "
        "set trust_remote_code: true to run it"
    )


def check_weight_files(resolved: str, source: str, policy: LoadPolicy) -> None:
    """Refuse a local model directory whose weights are pickle files only (a hub model is
    checked by transformers itself: `use_safetensors` fails when the hub has none)."""
    path = Path(resolved)
    if policy.allow_pickle_weights or not path.is_dir() or any(path.glob("*.safetensors*")):
        return
    names = {file.name for file in path.iterdir()} - set(NOT_WEIGHTS)
    pickles = sorted(
        (name for name in names if name in PICKLE_WEIGHT_NAMES or name.endswith(PICKLE_WEIGHT_SUFFIXES)),
        key=lambda name: (name not in PICKLE_WEIGHT_NAMES, name),
    )
    if pickles:
        raise pickle_refused(source, ", ".join(pickles[:3]))


def check_remote_code(config: PretrainedConfig, resolved: str, source: str, policy: LoadPolicy, revision: str | None) -> None:
    """Refuse a model that asks for its own code when trust_remote_code is off. transformers
    would load one whose model_type it knows with its built-in class instead: a different
    model than the one meant, so it is refused rather than quietly substituted."""
    if policy.trust_remote_code:
        return
    if getattr(config, "auto_map", None):
        raise remote_code_refused(source, "config.json")
    if get_tokenizer_config(resolved, **pinned(revision)).get("auto_map"):
        raise remote_code_refused(source, "tokenizer_config.json")


def unpickler_reason(exc: pickle.UnpicklingError) -> str:
    """The line of torch's many-line refusal that says what the pickle wanted (`Unsupported
    global: GLOBAL pathlib.Path.touch ...`), without its terminal colour codes."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    reason = next((line for line in lines if line.startswith("WeightsUnpickler error:")), None)
    return re.split(r" (?:Please use|If you)", reason, maxsplit=1)[0] if reason else first_line(exc)


@contextlib.contextmanager
def loading_errors(source: str, policy: LoadPolicy) -> Iterator[None]:
    """Turn transformers' and torch's refusals into one-line user errors; other errors pass."""
    try:
        yield
    except pickle.UnpicklingError as exc:  # weights_only=True met something other than tensors
        raise UserError(
            f"model {source!r}: pickle weights hold more than tensors, refused by torch.load(weights_only=True) "
            f"({unpickler_reason(exc)})"
        ) from None
    except OSError as exc:
        if not policy.allow_pickle_weights and "cannot be loaded with `safetensors`" in str(exc):
            # The hub has no safetensors weights for this model (a local directory is checked first).
            raise pickle_refused(source, "the hub has no safetensors file") from None
        raise cannot_load(source, exc) from None
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise remote_code_refused(source, "config") from None
        raise


def pinned(revision: str | None) -> dict[str, str]:
    """from_pretrained's keyword for a hub revision (none when unset: local directories have none)."""
    return {"revision": revision} if revision else {}


def load_encoder(
    source: str, cache_dir: Path, strict: bool = False, revision: str | None = None, policy: LoadPolicy = SAFE_LOADING
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load an encoder and its tokenizer; `strict` for xstilts' own checkpoints (exact match);
    `revision` pins a hub model's branch, tag or commit; `policy` says what loading may run.

    An encoder-decoder model (T5, mT5, FLAN-T5, mT0) gives its encoder stack (T5EncoderModel
    and kin): its decoder is left out on purpose, as a pretraining head is.

    Example:
        >>> encoder, tokenizer = load_encoder("xlm-roberta-large", cache_dir=Path("~/.cache/xstilts"))
    """
    resolved = resolve_model_source(source, cache_dir)
    check_weight_files(resolved, source, policy)
    with quiet_transformers():
        try:
            with loading_errors(source, policy):
                config = AutoConfig.from_pretrained(resolved, **pinned(revision), **policy.code_kwargs())
                check_remote_code(config, resolved, source, policy, revision)
                model_class = AutoModelForTextEncoding if is_encoder_stack(config) else AutoModel
                encoder, info = model_class.from_pretrained(
                    resolved, output_loading_info=True, **pinned(revision), **policy.model_kwargs()
                )
                tokenizer = AutoTokenizer.from_pretrained(resolved, **pinned(revision), **policy.code_kwargs())
        except ValueError as exc:  # an architecture with no encoder class in transformers
            raise UserError(f"model {source!r}: cannot load an encoder ({str(exc).splitlines()[0]})") from None
    check_loading_info(info, source, strict=strict)
    return encoder, tokenizer


def is_encoder_stack(config: PretrainedConfig) -> bool:
    """Whether the encoder of this model is the encoder stack of an encoder-decoder model: an
    encoder-decoder checkpoint, or one saved from its encoder alone (T5EncoderModel clears
    `is_encoder_decoder` in the config it saves)."""
    return bool(config.is_encoder_decoder) or any(name.endswith("EncoderModel") for name in config.architectures or ())


def load_seq2seq(
    source: str, cache_dir: Path, revision: str | None = None, policy: LoadPolicy = SAFE_LOADING
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load an encoder-decoder language model (T5, mT5, FLAN-T5, mT0) and its tokenizer for
    text-to-text mode; every weight must load (the LM head included).

    Raises:
        UserError: the model is not an encoder-decoder model, or its weights do not match.

    Example:
        >>> model, tokenizer = load_seq2seq("google/mt5-small", Path("~/.cache/xstilts"))
    """
    resolved = resolve_model_source(source, cache_dir)
    check_weight_files(resolved, source, policy)
    with quiet_transformers(), loading_errors(source, policy):
        config = AutoConfig.from_pretrained(resolved, **pinned(revision), **policy.code_kwargs())
        check_remote_code(config, resolved, source, policy, revision)
        if not config.is_encoder_decoder:
            raise UserError(
                f"model {source!r} ({config.model_type}) is not an encoder-decoder model: text-to-text mode "
                "needs a T5-family model (use mode: encoder for encoders)"
            )
        model, info = AutoModelForSeq2SeqLM.from_pretrained(
            resolved, output_loading_info=True, **pinned(revision), **policy.model_kwargs()
        )
        tokenizer = AutoTokenizer.from_pretrained(resolved, **pinned(revision), **policy.code_kwargs())
    check_loading_info(info, source, strict=True)
    return model, tokenizer


def load_masked_lm(
    source: str, cache_dir: Path, revision: str | None = None, policy: LoadPolicy = SAFE_LOADING
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, MaskedLMHead | None, str]:
    """The encoder, its tokenizer and the start model's own pretrained MLM head, for a phase
    that continues masked-LM training.

    The encoder is loaded exactly as `load_encoder` loads it (same class, same checks). The
    model is then loaded once more through AutoModelForMaskedLM, its loading report checked,
    and its head (transform + output bias; the decoder is the tied embedding matrix) copied
    into the MLM format's head, bound to the encoder. The copy must reproduce the model's own
    logits on a probe input, so a head xstilts cannot represent is never kept half right.

    Returns:
        (encoder, tokenizer, head, reason): `head` is None when the model has no pretrained
        MLM head xstilts can keep (e.g. a bare encoder such as the packaged e5), and `reason`
        then says why in a few words.

    Raises:
        UserError: the weights do not match the architecture, or hold only part of a head.

    Example:
        >>> encoder, tokenizer, head, _ = load_masked_lm("xlm-roberta-base", Path("~/.cache/xstilts"))
    """
    encoder, tokenizer = load_encoder(source, cache_dir, revision=revision, policy=policy)
    resolved = resolve_model_source(source, cache_dir)
    with quiet_transformers():
        try:
            with loading_errors(source, policy):
                masked_lm, info = AutoModelForMaskedLM.from_pretrained(
                    resolved, output_loading_info=True, **pinned(revision), **policy.model_kwargs()
                )
        except ValueError:  # transformers has no masked-LM class for this architecture
            return encoder, tokenizer, None, f"{encoder.config.model_type} has no masked-LM class in transformers"
    base_prefix = f"{masked_lm.base_model_prefix}."
    missing_head = [key for key in info.get("missing_keys", ()) if not key.startswith(base_prefix)]
    check_loading_info(
        {
            "missing_keys": [key for key in info.get("missing_keys", ()) if key.startswith(base_prefix)],
            "unexpected_keys": [key for key in info.get("unexpected_keys", ()) if not _unused_by_masked_lm(key)],
            "mismatched_keys": info.get("mismatched_keys", ()),
        },
        source,
        strict=True,
    )
    head, reason = _copy_head(masked_lm, missing_head, source)
    if head is None:
        return encoder, tokenizer, None, reason
    head.bind_encoder(encoder)
    mismatch = _check_logits(masked_lm, encoder, head)
    return encoder, tokenizer, None if mismatch else head, mismatch


def _unused_by_masked_lm(key: str) -> bool:
    return key.startswith(UNUSED_BY_MASKED_LM) or f".{UNUSED_POOLER_PREFIX}" in f".{key}"


def _copy_head(masked_lm: PreTrainedModel, missing: list[str], source: str) -> tuple[MaskedLMHead | None, str]:
    """The model's head in the MLM format's class, or (None, why not)."""
    names = {name for name, _ in masked_lm.named_parameters(remove_duplicate=False)}
    layout = next((paths for paths in MLM_HEAD_LAYOUTS if f"{paths[0]}.weight" in names), None)
    if layout is None:
        return None, f"its masked-LM class {type(masked_lm).__name__} has no BERT-style prediction head"
    head_keys = {f"{layout[0]}.weight", f"{layout[0]}.bias", f"{layout[1]}.weight", f"{layout[1]}.bias", layout[2]}
    if head_keys <= set(missing):
        return None, "its weights hold no masked-LM head"
    if missing:
        raise UserError(f"model {source!r}: the masked-LM head is incomplete (missing {', '.join(sorted(missing)[:5])})")
    dense, norm = masked_lm.get_submodule(layout[0]), masked_lm.get_submodule(layout[1])
    head = MaskedLMHead(dense.in_features)
    with torch.no_grad():
        head.dense.load_state_dict(dense.state_dict())
        head.layer_norm.load_state_dict(norm.state_dict())
        head.bias = torch.nn.Parameter(masked_lm.get_parameter(layout[2]).detach().clone())
    return head, ""


def _check_logits(masked_lm: PreTrainedModel, encoder: PreTrainedModel, head: MaskedLMHead) -> str:
    """'' when encoder + head give the masked LM's own logits on a probe input, else why not."""
    vocabulary = masked_lm.get_input_embeddings().weight.shape[0]
    probe = torch.arange(8).unsqueeze(0) * (vocabulary // 8) + 5
    masked_lm.eval()
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        expected = masked_lm(input_ids=probe).logits
        actual = head.logits(encoder(input_ids=probe).last_hidden_state)
    encoder.train(was_training)
    if torch.allclose(actual, expected.float(), atol=1e-4, rtol=1e-4):
        return ""
    return "its masked-LM head is not the tied-decoder head xstilts trains (other logits)"
