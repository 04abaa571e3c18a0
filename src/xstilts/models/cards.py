"""Start-model cards: which of our tasks a start model was already trained on.

A card is a small YAML file in `models/cards/` (one per model family): the hub ids it covers,
name prefixes that identify the family in any spelling (a local copy `/models/flan-t5-large`,
`packaged:multilingual-e5-small`), the tasks of ours it has seen (registry names), and the
source that documents them. Reports flag every row whose target or intermediate task the start
model has seen (`xstilts.analysis.flags`). Users add or replace cards with a folder of their own
(`extra_dir`, or XSTILTS_MODEL_CARDS: folders separated by the platform's path separator).

    >>> sorted(seen_tasks("google/flan-t5-large"))[:3]
    ['anli', 'copa', 'cosmosqa']
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from xstilts.config.loading import read_yaml
from xstilts.errors import UserError, did_you_mean

ENV_VAR = "XSTILTS_MODEL_CARDS"
_REQUIRED = ("models", "seen_tasks", "source")
_OPTIONAL = ("family", "name_prefixes", "notes")
_PACKAGED = "packaged:"


@dataclass(frozen=True)
class Card:
    """What is known about one start model's training data."""

    model: str
    seen_tasks: frozenset[str]
    source: str
    family: str = ""
    notes: str = ""
    name_prefixes: tuple[str, ...] = ()


def shipped_cards_dir() -> Path:
    """The folder of cards shipped inside the package."""
    return Path(str(resources.files("xstilts.models") / "cards"))


def load_cards(extra_dir: Path | str | None = None) -> dict[str, Card]:
    """Model id -> Card, from the shipped cards, XSTILTS_MODEL_CARDS and `extra_dir` (later wins).

    Raises:
        UserError: a missing folder or a malformed card, naming the file and the key.
    """
    folders = [shipped_cards_dir()]
    folders += [Path(part) for part in os.environ.get(ENV_VAR, "").split(os.pathsep) if part]
    if extra_dir is not None:
        folders.append(Path(extra_dir))
    cards: dict[str, Card] = {}
    for folder in folders:
        if not folder.is_dir():
            raise UserError(f"{folder}: model card folder not found")
        for path in sorted(folder.glob("*.yaml")):
            cards.update(_read_card_file(path))
    return cards


def _read_card_file(path: Path) -> dict[str, Card]:
    document = read_yaml(path, "model card")
    if not isinstance(document, dict):
        raise UserError(f"{path}: a model card is a mapping with {', '.join(_REQUIRED)}")
    for key in document:
        if key not in _REQUIRED + _OPTIONAL:
            raise UserError(f"{path}: {key}: unknown key{did_you_mean(str(key), _REQUIRED + _OPTIONAL)}")
    for key in _REQUIRED:
        if key not in document:
            raise UserError(f"{path}: missing '{key}'")
    models = _string_list(path, "models", document["models"])
    if not models:
        raise UserError(f"{path}: models: list at least one model id")
    family = str(document.get("family") or path.stem)
    common = {
        "seen_tasks": frozenset(_string_list(path, "seen_tasks", document["seen_tasks"])),
        "source": " ".join(str(document["source"]).split()),
        "family": family,
        "notes": " ".join(str(document.get("notes") or "").split()),
        "name_prefixes": tuple(p.lower() for p in _string_list(path, "name_prefixes", document.get("name_prefixes") or [])),
    }
    return {model: Card(model=model, **common) for model in models}


def _string_list(path: Path, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise UserError(f"{path}: {key}: expected a list of names, got {value!r}")
    return list(value)


def _base_name(model: str) -> str:
    """The model's own name: no packaged: prefix, no organisation or folder, lower case."""
    return model.removeprefix(_PACKAGED).rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1].lower()


def card_for(model: str, cards: dict[str, Card] | None = None) -> Card | None:
    """The card of a start model: an exact hub id, else the same model name under another
    organisation or folder, else the family whose longest name prefix the name starts with."""
    cards = load_cards() if cards is None else cards
    if model in cards:
        return cards[model]
    name = _base_name(model)
    for card_id, card in cards.items():
        if _base_name(card_id) == name:
            return card
    matches = [(len(prefix), card) for card in cards.values() for prefix in card.name_prefixes if name.startswith(prefix)]
    return max(matches, key=lambda match: match[0])[1] if matches else None


def seen_tasks(model: str, cards: dict[str, Card] | None = None) -> set[str]:
    """The tasks of ours a start model was trained on; an unknown model has seen none we know of."""
    card = card_for(model, cards)
    return set(card.seen_tasks) if card is not None else set()
