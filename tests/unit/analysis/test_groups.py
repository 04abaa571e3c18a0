from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import yaml

from xstilts.analysis.groups import (
    MORPHOLOGY_TYPES,
    PROPERTIES,
    group_languages,
    language_property,
    load_language_groups,
)
from xstilts.errors import UserError
from xstilts.tasks.registry import load_registry

BENCHMARKS = ("xtreme", "xtreme-r")


def _benchmark_languages() -> list[tuple[str, str]]:
    pairs = set()
    for spec in load_registry():
        if any(bench in spec.benchmarks for bench in BENCHMARKS):
            pairs |= {(spec.name, language) for language in spec.languages}
    return sorted(pairs)


@pytest.mark.parametrize(("task", "language"), _benchmark_languages())
def test_every_xtreme_language_has_every_property(task, language):
    groups = load_language_groups()
    assert language in groups, f"{task}: {language} is missing from language_groups.yaml"
    assert set(groups[language]) == set(PROPERTIES)
    assert groups[language]["morphology"] in MORPHOLOGY_TYPES


def test_synthetic_languages_are_described_as_built():
    languages_file = Path(str(resources.files("xstilts.synthetic") / "languages.yaml"))
    codes = [entry["code"] for entry in yaml.safe_load(languages_file.read_text())["languages"]]
    groups = load_language_groups()
    for code in codes:
        assert set(groups[code]) == set(PROPERTIES), code
    assert groups["xc"]["morphology"] == "agglutinative"
    assert groups["xd"]["script"] == "Cyrillic"
    assert groups["xa"]["genus"] == groups["xb"]["genus"] == groups["xc"]["genus"] != groups["xd"]["genus"]


def test_standard_typology():
    groups = load_language_groups()
    for code in "tr fi hu et eu ja ko ta te kk ml az qu ka sw".split():
        assert groups[code]["morphology"] == "agglutinative", code
    for code in "zh vi th yo".split():
        assert groups[code]["morphology"] == "isolating", code
    indo_european = [code for code, props in groups.items() if props["family"] == "Indo-European"]
    assert len(indo_european) > 20
    assert all(groups[code]["morphology"] == "fusional" for code in indo_european)
    assert (groups["de"]["genus"], groups["ru"]["script"], groups["hi"]["script"]) == ("Germanic", "Cyrillic", "Devanagari")


def test_group_languages_keeps_unknown_languages():
    groups = load_language_groups()
    grouped = group_languages(["de", "tr", "zz", "fi", "zh"], "morphology", groups)
    assert grouped == {"agglutinative": ["tr", "fi"], "fusional": ["de"], "isolating": ["zh"], "unknown": ["zz"]}
    assert list(grouped)[-1] == "unknown"
    assert language_property("zz", "script", groups) == "unknown"


def test_user_file_overrides_and_extends(tmp_path, monkeypatch):
    user = tmp_path / "groups.yaml"
    user.write_text("languages:\n  fa: {morphology: agglutinative}\n  zz: {family: Testic, script: Latin}\n")
    groups = load_language_groups(user)
    assert groups["fa"] == {"family": "Indo-European", "genus": "Iranian", "script": "Arabic", "morphology": "agglutinative"}
    assert groups["zz"] == {"family": "Testic", "script": "Latin"}
    assert group_languages(["zz"], "morphology", groups) == {"unknown": ["zz"]}
    monkeypatch.setenv("XSTILTS_LANGUAGE_GROUPS", str(user))
    assert load_language_groups()["fa"]["morphology"] == "agglutinative"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("languages:\n  fa: {scrpit: Arabic}\n", "languages.fa.scrpit: unknown property (did you mean 'script'?)"),
        ("languages:\n  fa: {morphology: agglutinating}\n", "languages.fa.morphology: 'agglutinating' is not one of"),
        ("languages:\n  fa: Arabic\n", "languages.fa: expected a mapping"),
        ("- fa\n", "a mapping under 'languages:'"),
        ("languages: {fa: {script: ''}}\n", "languages.fa.script: expected a non-empty string"),
    ],
)
def test_malformed_user_file_names_file_and_key(tmp_path, text, message):
    user = tmp_path / "bad.yaml"
    user.write_text(text)
    with pytest.raises(UserError) as error:
        load_language_groups(user)
    assert str(user) in str(error.value)
    assert message in str(error.value)


def test_unknown_property_to_group_by():
    with pytest.raises(UserError, match="did you mean 'family'"):
        group_languages(["de"], "famliy", load_language_groups())
