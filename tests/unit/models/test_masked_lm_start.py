"""Continued MLM from a pretrained model keeps the model's own MLM head (BERT and XLM-R layouts),
saves and reloads it, and falls back to a new head, saying so, when the model has none."""

from types import SimpleNamespace

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertForMaskedLM, BertModel, XLMRobertaConfig, XLMRobertaForMaskedLM

from xstilts.config.schema import HandOff, ModelMode
from xstilts.errors import UserError
from xstilts.experiments.phases import add_missing_heads, load_start
from xstilts.formats.batching import collate
from xstilts.formats.mlm import MLM
from xstilts.models.sources import SAFE_LOADING, load_masked_lm
from xstilts.models.tiny import train_wordpiece_tokenizer
from xstilts.tasks.registry import load_registry
from xstilts.training.checkpoint import HEADS_FILE, HeadInfo, load_checkpoint, save_checkpoint

SPEC = load_registry().get("mlm-multilingual")
TEXTS = ["the cat sat on the mat today", "der hund lief auf die matte", "le chat dort sous la table rouge"] * 6
LAYOUTS = {
    # family: (model class, config class, head parameter prefix in the saved model)
    "bert": (BertForMaskedLM, BertConfig, "cls.predictions."),
    "xlm-roberta": (XLMRobertaForMaskedLM, XLMRobertaConfig, "lm_head."),
}
# Saved head name -> the name of the same tensor in xstilts' MLM head.
HEAD_NAMES = {
    "bert": {"transform.dense.weight": "dense.weight", "transform.dense.bias": "dense.bias",
             "transform.LayerNorm.weight": "layer_norm.weight", "transform.LayerNorm.bias": "layer_norm.bias",
             "bias": "bias"},
    "xlm-roberta": {"dense.weight": "dense.weight", "dense.bias": "dense.bias", "layer_norm.weight": "layer_norm.weight",
                    "layer_norm.bias": "layer_norm.bias", "bias": "bias"},
}


def tiny_masked_lm(directory, family: str, tie: bool = True):
    """A tiny masked LM saved to `directory`, its head perturbed so no default init can match it."""
    model_class, config_class, _ = LAYOUTS[family]
    tokenizer = train_wordpiece_tokenizer(TEXTS, vocab_size=120)
    config = config_class(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=80, pad_token_id=tokenizer.pad_token_id, layer_norm_eps=1e-5, tie_word_embeddings=tie,
    )
    torch.manual_seed(0)
    model = model_class(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith(LAYOUTS[family][2]):
                parameter.add_(0.5 * torch.randn_like(parameter))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model.eval(), tokenizer


def fake_context(tmp_path):
    """What load_start reads from a run: the store's cache folder, the seed, the hub revision, the
    loading policy, the mode and the console."""
    return SimpleNamespace(store=SimpleNamespace(cache_dir=tmp_path / "cache"), seed=0, model_revision=None,
                           load_policy=SAFE_LOADING, mode=ModelMode.ENCODER, console=Console(record=True, width=200))


def masked_batch(tokenizer):
    features = MLM.featurize([{"id": str(i), "text": text} for i, text in enumerate(TEXTS)], tokenizer, SPEC, 32)
    return collate(features, tokenizer, torch.device("cpu"))


def own_loss(model, batch) -> torch.Tensor:
    inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "token_type_ids", "labels") if key in batch}
    with torch.no_grad():
        return model(**inputs).loss


def xstilts_loss(multitask, head_name, batch) -> torch.Tensor:
    multitask.eval()
    with torch.no_grad():
        return MLM.loss(multitask(head_name, batch), batch)


@pytest.mark.parametrize("family", sorted(LAYOUTS))
def test_the_start_models_own_head_is_kept_and_gives_its_own_loss(tmp_path, family):
    original, tokenizer = tiny_masked_lm(tmp_path / "model", family)
    ctx = fake_context(tmp_path)
    loaded = load_start(str(tmp_path / "model"), HandOff.ENCODER_ONLY, {SPEC.head_name: SPEC}, ctx, dropout=0.1)
    add_missing_heads(loaded, [SPEC], dropout=0.1)
    head = loaded.model.heads[SPEC.head_name].state_dict()
    saved = {key[len(LAYOUTS[family][2]):]: value for key, value in original.state_dict().items()
             if key.startswith(LAYOUTS[family][2]) and "decoder" not in key}
    assert {HEAD_NAMES[family][key] for key in saved} == set(head)
    for key, value in saved.items():
        assert torch.equal(head[HEAD_NAMES[family][key]], value), key
    batch = masked_batch(tokenizer)
    assert (batch["labels"] != -100).sum() > 10
    # Step 0 of continued MLM: the same loss as the original model's own on the same batch.
    assert torch.allclose(xstilts_loss(loaded.model, SPEC.head_name, batch), own_loss(original, batch), atol=1e-5)
    assert "starts from its pretrained head" in ctx.console.export_text()


def test_the_decoder_is_the_encoders_input_embedding_matrix(tmp_path):
    tiny_masked_lm(tmp_path / "model", "bert")
    encoder, _, head, reason = load_masked_lm(str(tmp_path / "model"), tmp_path / "cache")
    assert reason == "" and head._embeddings[0] is encoder.get_input_embeddings()
    assert head.bias.shape == (encoder.config.vocab_size,)


def test_checkpoint_saves_and_reloads_the_head_without_a_second_embedding_matrix(tmp_path):
    original, tokenizer = tiny_masked_lm(tmp_path / "model", "xlm-roberta")
    loaded = load_start(str(tmp_path / "model"), HandOff.ENCODER_ONLY, {SPEC.head_name: SPEC}, fake_context(tmp_path), 0.1)
    with torch.no_grad():  # as if trained: the reloaded head must be this one, not the start model's
        for parameter in loaded.model.heads[SPEC.head_name].parameters():
            parameter.add_(0.1)
    path = save_checkpoint(tmp_path / "ckpt", loaded.model, tokenizer, heads={SPEC.head_name: HeadInfo.of(SPEC)},
                           metadata={"phase": "test"})
    tensors = load_file(str(path / HEADS_FILE))
    assert sorted(tensors) == sorted(f"{SPEC.head_name}.{key}" for key in
                                     ("dense.weight", "dense.bias", "layer_norm.weight", "layer_norm.bias", "bias"))
    reloaded = load_checkpoint(path, HandOff.ENCODER_AND_MATCHING_HEADS, {SPEC.head_name: SPEC}, tmp_path / "cache")
    assert reloaded.kept_heads == [SPEC.head_name]
    expected = loaded.model.heads[SPEC.head_name].state_dict()
    actual = reloaded.model.heads[SPEC.head_name].state_dict()
    assert expected.keys() == actual.keys() and all(torch.equal(expected[key], actual[key]) for key in expected)
    batch = masked_batch(tokenizer)
    assert torch.allclose(xstilts_loss(reloaded.model, SPEC.head_name, batch),
                          xstilts_loss(loaded.model, SPEC.head_name, batch), atol=1e-6)
    # Loading stays strict: a head file without the output bias is an error, not a zero bias.
    del tensors[f"{SPEC.head_name}.bias"]
    save_file(tensors, str(path / HEADS_FILE))
    with pytest.raises(UserError, match=rf"head '{SPEC.head_name}' does not match.*missing \['bias'\]"):
        load_checkpoint(path, HandOff.ENCODER_AND_MATCHING_HEADS, {SPEC.head_name: SPEC}, tmp_path / "cache")


def test_a_model_without_an_mlm_head_gets_a_new_head_and_says_so(tmp_path):
    _, tokenizer = tiny_masked_lm(tmp_path / "mlm", "bert")
    BertModel.from_pretrained(tmp_path / "mlm", add_pooling_layer=False).save_pretrained(tmp_path / "bare")
    tokenizer.save_pretrained(tmp_path / "bare")
    encoder, _, head, reason = load_masked_lm(str(tmp_path / "bare"), tmp_path / "cache")
    assert head is None and reason == "its weights hold no masked-LM head"
    ctx = fake_context(tmp_path)
    loaded = load_start(str(tmp_path / "bare"), HandOff.ENCODER_ONLY, {SPEC.head_name: SPEC}, ctx, dropout=0.1)
    assert not loaded.model.heads
    add_missing_heads(loaded, [SPEC], dropout=0.1)
    new = loaded.model.heads[SPEC.head_name]
    assert torch.equal(new.bias, torch.zeros(encoder.config.vocab_size))  # a new head: BERT's zero bias
    assert "has no pretrained masked-LM head to keep (its weights hold no masked-LM head): new" in ctx.console.export_text()


def test_an_untied_decoder_is_not_kept_half_right(tmp_path):
    # xstilts' head decodes with the input embeddings; a model with its own decoder matrix
    # would give other logits, so its head is not copied.
    tiny_masked_lm(tmp_path / "model", "bert", tie=False)
    _, _, head, reason = load_masked_lm(str(tmp_path / "model"), tmp_path / "cache")
    assert head is None and "other logits" in reason


def test_a_partial_mlm_head_is_an_error(tmp_path):
    tiny_masked_lm(tmp_path / "model", "bert")
    weights = load_file(str(tmp_path / "model" / "model.safetensors"))
    del weights["cls.predictions.transform.dense.bias"]
    save_file(weights, str(tmp_path / "model" / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(UserError, match="masked-LM head is incomplete.*transform.dense.bias"):
        load_masked_lm(str(tmp_path / "model"), tmp_path / "cache")


def test_pretraining_checkpoints_with_pooler_and_next_sentence_head_load(tmp_path):
    from transformers import BertForPreTraining

    original, tokenizer = tiny_masked_lm(tmp_path / "mlm", "bert")
    pretraining = BertForPreTraining.from_pretrained(tmp_path / "mlm")
    pretraining.save_pretrained(tmp_path / "pretraining")
    tokenizer.save_pretrained(tmp_path / "pretraining")
    _, _, head, reason = load_masked_lm(str(tmp_path / "pretraining"), tmp_path / "cache")
    assert reason == "" and torch.equal(head.bias, original.cls.predictions.bias)
