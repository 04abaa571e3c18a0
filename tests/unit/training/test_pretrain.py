"""MLM pretraining (phase 1 in miniature): repeatable from the seed; the fast loss is the model's own."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import (BertConfig, BertForMaskedLM, DistilBertConfig, DistilBertForMaskedLM, XLMRobertaConfig,
                          XLMRobertaForMaskedLM)

from xstilts.training.pretrain import masked_lm_loss, pretrain_mlm


def test_same_seed_same_weights_other_seed_other_weights(tiny_model, nli_fixture, tmp_path):
    text = tmp_path / "en.txt"
    text.write_text("\n".join(line.replace("\t", " ") for line in nli_fixture["corpus"]) + "\n", encoding="utf-8")
    runs = [pretrain_mlm(tiny_model, [text], tmp_path / f"mlm-{i}", steps=8, batch_size=16, seed=3) for i in range(2)]
    first, second = (load_file(run / "model.safetensors") for run in runs)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    before = load_file(tiny_model / "model.safetensors")
    assert any(not torch.equal(before[k], first[k]) for k in first)
    other = load_file(pretrain_mlm(tiny_model, [text], tmp_path / "mlm-other", steps=8, batch_size=16, seed=4) / "model.safetensors")
    assert any(not torch.equal(other[k], first[k]) for k in first)


@pytest.mark.parametrize("model_class, config_class", [
    (BertForMaskedLM, BertConfig), (XLMRobertaForMaskedLM, XLMRobertaConfig), (DistilBertForMaskedLM, DistilBertConfig),
])
def test_masked_only_loss_for_each_head_layout(model_class, config_class):
    torch.manual_seed(0)
    sizes = dict(vocab_size=50, max_position_embeddings=40)
    if config_class is DistilBertConfig:
        config = config_class(dim=32, n_layers=1, n_heads=2, hidden_dim=64, **sizes)
    else:
        config = config_class(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, **sizes)
    model = model_class(config).eval()
    input_ids = torch.randint(5, 50, (3, 9))
    labels = torch.where(torch.rand(3, 9) < 0.3, input_ids, torch.full_like(input_ids, -100))
    labels[0, 0] = input_ids[0, 0]
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}
    assert torch.allclose(masked_lm_loss(model, batch), model(**batch).loss, atol=1e-6)


def test_adamw_groups_leave_biases_and_layernorm_undecayed(tiny_model, nli_fixture, tmp_path, monkeypatch):
    built = []

    class RecordingAdamW(torch.optim.AdamW):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(torch.optim, "AdamW", RecordingAdamW)
    text = tmp_path / "en.txt"
    text.write_text("\n".join(line.replace("\t", " ") for line in nli_fixture["corpus"][:64]) + "\n", encoding="utf-8")
    pretrain_mlm(tiny_model, [text], tmp_path / "mlm", steps=1, batch_size=8)
    decay = {group["weight_decay"]: group["params"] for group in built[0].param_groups}
    # In a BERT masked LM every bias and LayerNorm weight is 1-D and every other parameter 2-D.
    assert set(decay) == {0.0, 0.01}
    assert {p.dim() for p in decay[0.0]} == {1} and {p.dim() for p in decay[0.01]} == {2}
    model = BertForMaskedLM.from_pretrained(tiny_model)
    assert len(decay[0.0]) + len(decay[0.01]) == len(list(model.parameters()))

