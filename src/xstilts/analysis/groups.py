"""Language groups as data: family, genus, script and morphological type per language.

The shipped table (`analysis/data/language_groups.yaml`) covers every language of every
XTREME / XTREME-R task and the synthetic miniature's languages. A user file (the `path`
argument, or the XSTILTS_LANGUAGE_GROUPS environment variable) overrides or extends it,
property by property, so a user can reclassify one contested language without copying the rest.

    >>> groups = load_language_groups()
    >>> group_languages(["fi", "de", "tr"], "morphology", groups)
    {'agglutinative': ['fi', 'tr'], 'fusional': ['de']}
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from xstilts.config.loading import read_yaml
from xstilts.errors import UserError, did_you_mean

PROPERTIES = ("family", "genus", "script", "morphology")
MORPHOLOGY_TYPES = ("agglutinative", "fusional", "isolating", "polysynthetic")
UNKNOWN = "unknown"  # the group of a language the file does not describe
ENV_VAR = "XSTILTS_LANGUAGE_GROUPS"


def shipped_groups_file() -> Path:
    """The language-group file shipped inside the package."""
    return Path(str(resources.files("xstilts.analysis") / "data" / "language_groups.yaml"))


def load_language_groups(path: Path | str | None = None) -> dict[str, dict[str, str]]:
    """Language code -> {property: value}: the shipped table, overridden by the user's file.

    Args:
        path: a YAML file of the shipped layout (`languages: {code: {property: value}}`);
            None reads XSTILTS_LANGUAGE_GROUPS when set, else only the shipped table.

    Raises:
        UserError: a malformed file, an unknown property or an unknown morphological type,
            naming the file and the key.
    """
    groups = _read_groups(shipped_groups_file())
    user = path if path is not None else os.environ.get(ENV_VAR) or None
    if user is not None:
        for language, properties in _read_groups(Path(user)).items():
            groups.setdefault(language, {}).update(properties)
    return groups


def _read_groups(path: Path) -> dict[str, dict[str, str]]:
    document = read_yaml(path, "language groups file")
    if not isinstance(document, dict) or not isinstance(document.get("languages"), dict):
        raise UserError(f"{path}: a language groups file must hold a mapping under 'languages:'")
    groups: dict[str, dict[str, str]] = {}
    for language, properties in document["languages"].items():
        key = f"languages.{language}"
        if not isinstance(properties, dict):
            raise UserError(f"{path}: {key}: expected a mapping of property -> value, got {properties!r}")
        for name, value in properties.items():
            if name not in PROPERTIES:
                raise UserError(f"{path}: {key}.{name}: unknown property{did_you_mean(str(name), PROPERTIES)}")
            if not isinstance(value, str) or not value.strip():
                raise UserError(f"{path}: {key}.{name}: expected a non-empty string, got {value!r}")
            if name == "morphology" and value not in MORPHOLOGY_TYPES:
                raise UserError(
                    f"{path}: {key}.morphology: {value!r} is not one of {', '.join(MORPHOLOGY_TYPES)}"
                    f"{did_you_mean(value, MORPHOLOGY_TYPES)}"
                )
        groups[str(language)] = {str(name): str(value) for name, value in properties.items()}
    return groups


def language_property(language: str, prop: str, groups: dict[str, dict[str, str]]) -> str:
    """The value of `prop` for `language`, or "unknown" when the table does not say."""
    _check_property(prop)
    return groups.get(language, {}).get(prop, UNKNOWN)


def group_languages(
    languages: list[str], prop: str, groups: dict[str, dict[str, str]]
) -> dict[str, list[str]]:
    """Group languages by one property.

    Args:
        languages: language codes, in the order they should appear inside each group.
        prop: family, genus, script or morphology.
        groups: the table from `load_language_groups`.

    Returns:
        group value -> languages, groups sorted by name with "unknown" (languages the table
        does not describe) last; no language is dropped.
    """
    _check_property(prop)
    grouped: dict[str, list[str]] = {}
    for language in languages:
        grouped.setdefault(language_property(language, prop, groups), []).append(language)
    names = sorted(name for name in grouped if name != UNKNOWN) + ([UNKNOWN] if UNKNOWN in grouped else [])
    return {name: grouped[name] for name in names}


def _check_property(prop: str) -> None:
    if prop not in PROPERTIES:
        raise UserError(f"unknown language property {prop!r}{did_you_mean(prop, PROPERTIES)}; choose from {', '.join(PROPERTIES)}")
