from __future__ import annotations

import pytest

from xstilts.errors import UserError
from xstilts.models.cards import card_for, load_cards, seen_tasks
from xstilts.tasks.registry import load_registry

FLAN = {"mnli", "anli", "squad", "qqp", "paws", "hellaswag", "cosmosqa", "pawsx", "snli", "squad2", "copa"}


def test_every_shipped_card_names_registered_tasks_and_a_source():
    registry = load_registry()
    cards = load_cards()
    for model, card in cards.items():
        assert card.source, model
        unknown = sorted(task for task in card.seen_tasks if task not in registry)
        assert not unknown, f"{model}: {unknown}"
    families = {card.family for card in cards.values()}
    assert {"flan-t5", "mt0", "t5", "t5-v1_1", "mt5", "xlm-roberta", "mbert", "multilingual-e5"} <= families


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("google/flan-t5-large", FLAN),
        ("google/flan-t5-xxl", FLAN),
        ("/models/flan-t5-base", FLAN),  # a local copy, matched by name
        ("my-org/flan-t5-large-finetuned", FLAN),  # the family, by name prefix
        ("bigscience/mt0-xxl-mt", {"pawsx", "paws", "qqp"}),
        ("t5-base", {"mnli", "qqp", "copa", "squad"}),
        ("google/t5-v1_1-large", set()),  # C4 only: the longer prefix wins over "t5-"
        ("google/mt5-large", set()),
        ("xlm-roberta-large", set()),
        ("bert-base-multilingual-cased", set()),
        ("packaged:multilingual-e5-small", {"mnli", "snli", "squad", "qqp"}),
        ("some-org/unknown-model", set()),
        ("/runs/abc/checkpoints/target", set()),
    ],
)
def test_seen_tasks(model, expected):
    assert seen_tasks(model) == expected


def test_unknown_model_has_no_card():
    assert card_for("gpt2") is None
    assert card_for("google/flan-t5-small").family == "flan-t5"


def test_user_cards_extend_and_replace(tmp_path, monkeypatch):
    folder = tmp_path / "cards"
    folder.mkdir()
    (folder / "mine.yaml").write_text(
        "models: [me/tiny-t5, google/mt0-large]\nseen_tasks: [synth-paws]\nsource: our own run\n"
    )
    cards = load_cards(folder)
    assert seen_tasks("me/tiny-t5", cards) == {"synth-paws"}
    assert cards["me/tiny-t5"].family == "mine"
    assert seen_tasks("google/flan-t5-large", cards) == FLAN
    monkeypatch.setenv("XSTILTS_MODEL_CARDS", str(folder))
    assert seen_tasks("me/tiny-t5") == {"synth-paws"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: [a]\nseen_tasks: []\n", "missing 'source'"),
        ("models: [a]\nseen_task: []\nsource: s\n", "seen_task: unknown key (did you mean 'seen_tasks'?)"),
        ("models: a\nseen_tasks: []\nsource: s\n", "models: expected a list of names"),
        ("models: []\nseen_tasks: []\nsource: s\n", "models: list at least one model id"),
    ],
)
def test_malformed_card_names_file_and_key(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(UserError) as error:
        load_cards(tmp_path)
    assert "bad.yaml" in str(error.value) and message in str(error.value)


def test_missing_card_folder(tmp_path):
    with pytest.raises(UserError, match="model card folder not found"):
        load_cards(tmp_path / "nowhere")
