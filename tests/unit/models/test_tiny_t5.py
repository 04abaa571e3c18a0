"""The tiny T5: a deterministic SentencePiece Unigram tokenizer with T5's special tokens, and a
T5 v1.1-style model that saves and loads without missing or unexpected keys."""

import json
import random

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, T5EncoderModel

from xstilts.models.sources import quiet_transformers
from xstilts.models.tiny import SENTINEL_COUNT, build_tiny_t5, train_unigram_tokenizer
from xstilts.synthetic.grammar import Grammar


def corpus() -> list[str]:
    grammar = Grammar(random.Random(0))
    return [" ".join(token.lemma for phrase in clause for token in phrase.tokens) + " ."
            for _ in range(300) for clause in grammar.sentence().clauses]


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory):
    folder = tmp_path_factory.mktemp("t5") / "tiny-t5"
    return build_tiny_t5(folder, corpus(), vocab_size=200, d_model=32, num_layers=2, num_heads=4, d_ff=64, seed=3)


def test_same_texts_same_vocabulary():
    texts = corpus()
    vocabularies = [train_unigram_tokenizer(texts, vocab_size=200).get_vocab() for _ in range(3)]
    assert all(vocab == vocabularies[0] for vocab in vocabularies[1:])


def test_tokenizer_has_t5_special_tokens_and_sentinels():
    tokenizer = train_unigram_tokenizer(corpus(), vocab_size=200)
    assert [tokenizer.convert_ids_to_tokens(i) for i in range(3)] == ["<pad>", "</s>", "<unk>"]
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    sentinels = tokenizer.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(SENTINEL_COUNT)])
    # The sentinels follow the trained pieces, one id each, in order, and are the last ids.
    assert sentinels == list(range(len(tokenizer) - SENTINEL_COUNT, len(tokenizer)))
    assert len(tokenizer) <= 200 + SENTINEL_COUNT
    assert set(sentinels) <= set(tokenizer.all_special_ids)


def test_tokenizer_appends_eos_and_round_trips():
    tokenizer = train_unigram_tokenizer(corpus(), vocab_size=200)
    text = corpus()[0]
    encoded = tokenizer(text)
    assert set(encoded) == {"input_ids", "attention_mask"}  # no token_type_ids
    assert encoded["input_ids"][-1] == 1 and encoded["input_ids"].count(1) == 1
    assert tokenizer.convert_ids_to_tokens(encoded["input_ids"])[0].startswith("▁")  # Metaspace word marker
    assert tokenizer.decode(encoded["input_ids"], skip_special_tokens=True) == text
    pair = tokenizer("a b", "c d")["input_ids"]
    assert pair.count(1) == 2 and pair[-1] == 1
    assert pair == tokenizer("a b")["input_ids"] + tokenizer("c d")["input_ids"]


def test_model_is_t5_v1_1_style_and_reloads_without_key_problems(tiny_t5):
    config = json.loads((tiny_t5 / "config.json").read_text())
    assert config["feed_forward_proj"] == "gated-gelu" and config["decoder_start_token_id"] == 0
    assert (config["pad_token_id"], config["eos_token_id"]) == (0, 1)
    assert (config["d_model"], config["d_kv"], config["d_ff"], config["num_layers"], config["num_decoder_layers"]) == (32, 8, 64, 2, 2)
    with safe_open(tiny_t5 / "model.safetensors", "pt") as weights:
        saved = {key: weights.get_tensor(key) for key in ("shared.weight", "lm_head.weight")}
    assert not torch.equal(saved["shared.weight"], saved["lm_head.weight"])  # the head is not tied (mT5)
    with quiet_transformers():
        model, info = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5, output_loading_info=True)
        encoder, encoder_info = T5EncoderModel.from_pretrained(tiny_t5, output_loading_info=True)
    assert type(model).__name__ == "T5ForConditionalGeneration"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()
    assert torch.equal(model.lm_head.weight, saved["lm_head.weight"])
    assert model.config.scale_decoder_outputs is False  # T5 v1.1: no d_model^-0.5 on untied logits
    # The encoder alone: every encoder key, and only the LM head left over (as from any mT5 checkpoint).
    assert not encoder_info["missing_keys"] and encoder_info["unexpected_keys"] == {"lm_head.weight"}
    assert torch.equal(encoder.shared.weight, model.shared.weight)
    tokenizer = AutoTokenizer.from_pretrained(tiny_t5)
    assert len(tokenizer) == model.config.vocab_size and tokenizer.convert_tokens_to_ids("<extra_id_0>") > 2


def test_model_has_gradients_everywhere_and_reloads_identically(tiny_t5, tmp_path):
    with quiet_transformers():
        model = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5)
    tokenizer = AutoTokenizer.from_pretrained(tiny_t5)
    batch = tokenizer(corpus()[:4], padding=True, return_tensors="pt")
    targets = tokenizer(corpus()[4:8], padding=True, return_tensors="pt")["input_ids"]
    targets[targets == tokenizer.pad_token_id] = -100
    loss = model(**batch, labels=targets).loss
    assert torch.isfinite(loss) and loss.item() > 1.0
    loss.backward()
    assert model.lm_head.weight.grad is not None and model.shared.weight.grad is not None
    model.save_pretrained(tmp_path)
    with quiet_transformers():
        again = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    model.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(model(**batch, labels=targets).logits, again(**batch, labels=targets).logits)
