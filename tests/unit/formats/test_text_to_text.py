"""Text-to-text formats: dispatch, features, loss, rank and generate predictions, scores."""

import pytest
import torch

from tiny_t5 import ScriptedModel, build_tiny_t5, build_tokenizer
from xstilts.config.schema import Precision, Scoring, TextToTextConfig
from xstilts.errors import UserError
from xstilts.formats.base import get_format
from xstilts.formats.batching import collate
from xstilts.formats.classification import PAIR_CLASSIFICATION
from xstilts.formats.text_rendering import render_input
from xstilts.formats.text_tagging import TextTagging
from xstilts.formats.text_to_text import INVALID_CHOICE, INVALID_LABEL, TextClassification, TextMultipleChoice, TextSpanQA
from xstilts.tasks.registry import load_registry
from xstilts.tasks.spec import Format, Prompt, TaskSpec

REGISTRY = load_registry()
CPU = torch.device("cpu")
RUN = dict(device=CPU, precision=Precision.FP32, batch_size=2)
PAIRS = [
    {"id": "0", "text_a": "cats purr", "text_b": "cats purr", "label": "1"},
    {"id": "1", "text_a": "dogs bark", "text_b": "cats purr", "label": "0"},
    {"id": "2", "text_a": "birds sing loudly", "text_b": "birds sing", "label": "1"},
]


def with_fields(name: str, **fields) -> TaskSpec:
    spec = REGISTRY.get(name)
    return TaskSpec.model_validate({**spec.model_dump(), **fields})


def pair_setup(prompt=None):
    spec = REGISTRY.get("pawsx")
    texts = [render_input(example, spec, prompt) for example in PAIRS] + ["yes no maybe Answer:"]
    return spec, build_tokenizer(texts)


def test_get_format_dispatches_by_mode():
    settings = TextToTextConfig(scoring=Scoring.GENERATE, num_beams=2)
    expected = {
        Format.PAIR_CLASSIFICATION: TextClassification, Format.SINGLE_CLASSIFICATION: TextClassification,
        Format.MULTIPLE_CHOICE: TextMultipleChoice, Format.SPAN_QA: TextSpanQA, Format.TAGGING: TextTagging,
    }
    for fmt, kind in expected.items():
        bound = get_format(fmt, settings)
        assert type(bound) is kind and bound.settings is settings
    assert get_format(Format.PAIR_CLASSIFICATION) is PAIR_CLASSIFICATION
    with pytest.raises(UserError, match="span_corruption' trains text-to-text models only: set `mode: text_to_text`"):
        get_format(Format.SPAN_CORRUPTION)
    with pytest.raises(UserError, match="'retrieval' has no text-to-text form"):
        get_format(Format.RETRIEVAL, settings)
    with pytest.raises(RuntimeError, match="no task head"):
        get_format(Format.TAGGING, settings).build_head(8, REGISTRY.get("udpos"), 0.1)


def test_get_format_span_corruption_is_the_shared_object():
    module = pytest.importorskip("xstilts.formats.span_corruption")
    assert get_format(Format.SPAN_CORRUPTION, TextToTextConfig()) is module.SPAN_CORRUPTION


def test_classification_features_and_loss_equal_the_models_own():
    spec, tokenizer = pair_setup()
    fmt = get_format(spec.format, TextToTextConfig())
    unlabelled = PAIRS[0] | {"label": None}
    features = fmt.featurize([*PAIRS, unlabelled], tokenizer, spec, max_length=64)
    assert features[0]["input_ids"] == tokenizer("pawsx: sentence1: cats purr sentence2: cats purr")["input_ids"]
    assert [f["target_ids"] for f in features[:3]] == [tokenizer(word)["input_ids"] for word in ("yes", "no", "yes")]
    assert [f["example_index"] for f in features] == [0, 1, 2, 3] and "target_ids" not in features[3]
    assert len(fmt.featurize(PAIRS, tokenizer, spec, max_length=4)[2]["input_ids"]) == 4  # truncated, eos kept
    model = build_tiny_t5(tokenizer)
    batch = collate(features[:3], tokenizer, CPU)
    ours = fmt.loss(model("pawsx", batch), batch)
    theirs = model.seq2seq(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)


def log_likelihood(model, input_ids, text, tokenizer) -> float:
    target = tokenizer(text)["input_ids"]
    with torch.no_grad():
        loss = model.seq2seq(input_ids=torch.tensor([input_ids]), labels=torch.tensor([target])).loss
    return -float(loss) * len(target)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_classification_picks_the_most_likely_label_word(seed):
    spec, tokenizer = pair_setup()
    fmt = get_format(spec.format, TextToTextConfig())
    features = fmt.featurize(PAIRS, tokenizer, spec, max_length=64)
    model = build_tiny_t5(tokenizer, seed=seed)
    predictions = fmt.predict(model, features, PAIRS, spec, tokenizer=tokenizer, **RUN)
    for feature, prediction in zip(features, predictions, strict=True):
        likelihoods = {label: log_likelihood(model, feature["input_ids"], spec.label_word(label), tokenizer) for label in spec.labels}
        assert prediction == max(likelihoods, key=likelihoods.get)
    assert list(fmt.score(predictions, PAIRS, spec)) == ["accuracy"]  # no invalid outputs when ranking


def test_generated_labels_match_exactly_and_anything_else_is_invalid():
    prompt = Prompt(input="{text_a} ? {text_b}", target="Answer: {label}")
    spec, tokenizer = pair_setup(prompt)
    spec = with_fields("pawsx", prompts={"p": prompt})
    fmt = get_format(spec.format, TextToTextConfig(prompt="p", scoring=Scoring.GENERATE))
    features = fmt.featurize(PAIRS, tokenizer, spec, max_length=64)
    assert features[0]["target_ids"] == tokenizer("Answer: yes")["input_ids"]
    outputs = {"cats purr ? cats purr": "Answer: yes", "dogs bark ? cats purr": "maybe", "birds sing loudly ? birds sing": "no"}
    predictions = fmt.predict(ScriptedModel(tokenizer, outputs), features, PAIRS, spec, tokenizer=tokenizer, **RUN)
    assert predictions == ["1", INVALID_LABEL, "0"]
    scores = fmt.score(predictions, PAIRS, spec)
    assert list(scores) == ["accuracy", "invalid_outputs"]
    assert scores["accuracy"] == pytest.approx(100 / 3) and scores["invalid_outputs"] == pytest.approx(100 / 3)


COPA = [
    {"id": "0", "context": "glass broke", "question": "cause", "choices": ["it fell", "it sang"], "label": 0},
    {"id": "1", "context": "man laughed", "question": "cause", "choices": ["joke told", "rain fell", "sun set"], "label": 0},
    {"id": "2", "context": "ice melted", "question": "effect", "choices": ["it froze", "water pooled"], "label": 1},
]


def copa_setup():
    spec = REGISTRY.get("xcopa")
    return spec, build_tokenizer([render_input(example, spec, None) for example in COPA] + ["no idea"])


def test_multiple_choice_rank_picks_the_most_likely_choice_text():
    spec, tokenizer = copa_setup()
    fmt = get_format(spec.format, TextToTextConfig())
    features = fmt.featurize(COPA, tokenizer, spec, max_length=64)
    assert features[2]["target_ids"] == tokenizer("water pooled")["input_ids"]
    model = build_tiny_t5(tokenizer, seed=4)
    predictions = fmt.predict(model, features, COPA, spec, tokenizer=tokenizer, **RUN)
    for feature, example, prediction in zip(features, COPA, predictions, strict=True):
        likelihoods = [log_likelihood(model, feature["input_ids"], choice, tokenizer) for choice in example["choices"]]
        assert prediction == likelihoods.index(max(likelihoods))


def test_multiple_choice_generate_counts_invalid_outputs():
    spec, tokenizer = copa_setup()
    fmt = get_format(spec.format, TextToTextConfig(scoring=Scoring.GENERATE))
    features = fmt.featurize(COPA, tokenizer, spec, max_length=64)
    outputs = dict(zip((render_input(example, spec, None) for example in COPA), ["it fell", "no idea", "it froze"]))
    predictions = fmt.predict(ScriptedModel(tokenizer, outputs), features, COPA, spec, tokenizer=tokenizer, **RUN)
    assert predictions == [0, INVALID_CHOICE, 0]
    assert fmt.score(predictions, COPA, spec) == {"accuracy": pytest.approx(100 / 3), "invalid_outputs": pytest.approx(100 / 3)}


def test_qa_generates_answers_and_reports_diagnostics():
    spec = with_fields("squad2", local={"reader": "squad_json", "path": "x", "options": {"allow_no_answer": True}})
    examples = [
        {"id": "a", "context": "Ada lives in Rome", "question": "Where ?", "answers": [{"text": "Rome", "answer_start": 13}]},
        {"id": "b", "context": "Bob is tall", "question": "Who ?", "answers": [{"text": "Bob", "answer_start": 0}]},
        {"id": "c", "context": "Cy is here", "question": "Why ?", "answers": [], "is_impossible": True},
    ]
    inputs = [render_input(example, spec, None) for example in examples]
    tokenizer = build_tokenizer(inputs + ["unanswerable Robert"])
    fmt = get_format(spec.format, TextToTextConfig(max_new_tokens=9))
    features = fmt.featurize(examples, tokenizer, spec, max_length=64)
    assert [f["target_ids"] for f in features] == [tokenizer(text)["input_ids"] for text in ("Rome", "Bob", "unanswerable")]
    model = ScriptedModel(tokenizer, dict(zip(inputs, ["Rome", "Robert", "unanswerable"])))
    predictions = fmt.predict(model, features, examples, spec, tokenizer=tokenizer, **RUN)
    assert predictions == ["Rome", "Robert", ""]
    assert model.seq2seq.kwargs[0]["max_new_tokens"] == 9
    # EM 2/3 (Rome; "" for the unanswerable); F1 the same; 1 of 2 non-empty answers not in context
    assert fmt.score(predictions, examples, spec) == {
        "exact_match": pytest.approx(200 / 3), "f1": pytest.approx(200 / 3), "wrong_script": 0.0, "not_in_context": 50.0,
    }


def test_unknown_prompt_fails_at_featurize():
    spec, tokenizer = pair_setup()
    with pytest.raises(UserError, match=r"task 'pawsx' has no prompt 'instrukt' \(did you mean 'instruct'\?\)"):
        get_format(spec.format, TextToTextConfig(prompt="instrukt")).featurize(PAIRS, tokenizer, spec, max_length=64)


def test_default_max_new_tokens_come_from_settings_spec_or_format():
    spec = REGISTRY.get("xquad")
    assert get_format(spec.format, TextToTextConfig()).max_new_tokens(spec) == 32
    assert get_format(spec.format, TextToTextConfig()).max_new_tokens(with_fields("xquad", max_target_length=7)) == 7
    assert get_format(spec.format, TextToTextConfig(max_new_tokens=5)).max_new_tokens(with_fields("xquad", max_target_length=7)) == 5
