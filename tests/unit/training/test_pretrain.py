"""MLM pretraining (phase 1 in miniature): repeatable from the seed."""

import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling

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


def test_masked_only_loss_is_the_models_own_loss(tiny_model):
    torch.manual_seed(0)
    model, tokenizer = AutoModelForMaskedLM.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)
    model.eval()
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.3)
    batch = collator([{"input_ids": ids} for ids in tokenizer(["the cat sat on the mat", "a dog ran home fast"])["input_ids"]])
    assert (batch["labels"] != -100).any()
    assert torch.allclose(masked_lm_loss(model, batch), model(**batch).loss, atol=1e-6)
