from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.analysis.reference import get_reference, load_references, reference_table
from xstilts.errors import UserError
from xstilts.tasks.registry import load_registry

REFERENCE_MD = Path(__file__).resolve().parents[4] / "shared" / "REFERENCE.md"


def test_shipped_references_have_sources_and_our_task_names():
    references = load_references()
    assert {"xstilts", "mt5-zero-shot"} <= set(references)
    registry = load_registry()
    for reference in references.values():
        assert reference.source and reference.url.startswith("https://")
        for score in reference.scores:
            assert score.task in registry, score.task
            assert set(score.values) == set(reference.columns)
    assert references["xstilts"].metrics() == {
        "xnli": "accuracy", "pawsx": "accuracy", "panx": "f1", "xquad": "f1", "mlqa": "f1", "tydiqa": "f1"
    }
    assert "Phang et al. 2020" in references["xstilts"].source and "mT5 README" in references["xstilts"].source


def test_shipped_numbers_are_those_of_reference_md():
    if not REFERENCE_MD.exists():
        pytest.skip(f"{REFERENCE_MD} is absent (a fresh clone has no ../shared)")
    text = " ".join(REFERENCE_MD.read_text().split())
    references = load_references()
    xstilts = references["xstilts"]
    for score in xstilts.scores:
        quoted = f"{score.name} {score.values['X-STILTs']:.1f}/{score.values['XLM-R Large']:.1f}"
        assert quoted in text, quoted
    for column in references["mt5-zero-shot"].columns:
        size = column.removeprefix("mT5-")
        numbers = " / ".join(f"{score.values[column]:.1f}" for score in references["mt5-zero-shot"].scores)
        assert f"{size} {numbers}" in text, (size, numbers)


def test_reference_table_puts_published_beside_ours():
    ours = {("best", "xnli"): 81.0, ("best", "xquad"): 75.2, ("none", "xnli"): 78.7, ("none", "panx"): 66.0}
    table = reference_table(ours, "xstilts", {"none": "XLM-R Large", "best": "X-STILTs"})
    assert table.columns == ["arm", "reference", "task", "metric", "published as", "ours", "published", "ours - published"]
    rows = {(row[0], row[2]): row for row in table.rows}
    assert len(table.rows) == 12
    assert rows[("none", "xnli")][5:] == [78.7, 79.2, pytest.approx(-0.5)]
    assert rows[("none", "panx")][3:] == ["f1", "WikiANN", 66.0, 65.4, pytest.approx(0.6)]
    assert rows[("best", "xquad")][1] == "X-STILTs"
    assert rows[("best", "xquad")][5:] == [75.2, 77.2, pytest.approx(-2.0)]
    assert rows[("best", "tydiqa")][5:] == [None, 76.0, None]
    assert any("we have no result for" in note and "none/pawsx" in note and "best/tydiqa" in note for note in table.notes)
    assert any("Phang et al. 2020" in note and "https://" in note for note in table.notes)
    assert table.name == "reference-xstilts"


def test_reference_table_errors_name_what_is_wrong():
    with pytest.raises(UserError, match="did you mean 'xstilts'"):
        reference_table({}, "xstilt", {})
    with pytest.raises(UserError, match="did you mean 'mT5-Large'"):
        reference_table({}, "mt5-zero-shot", {"large": "mT5-Lage"})


def test_user_references_extend_and_replace(tmp_path, monkeypatch):
    user = tmp_path / "refs.yaml"
    user.write_text(
        "references:\n  mine:\n    title: T\n    source: S\n    url: https://example.org\n"
        "    columns: [A]\n    scores:\n      - {task: xnli, metric: accuracy, values: {A: 50}}\n"
    )
    references = load_references(user)
    assert "xstilts" in references and references["mine"].scores[0].values == {"A": 50.0}
    table = reference_table({("x", "xnli"): 52.5}, "mine", {"x": "A"}, references=references)
    assert table.rows == [["x", "A", "xnli", "accuracy", "xnli", 52.5, 50.0, 2.5]]
    monkeypatch.setenv("XSTILTS_REFERENCES", str(user))
    assert get_reference("mine").title == "T"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  r: {title: T, source: S, url: u, columns: [A]}\n", "references.r: missing 'scores'"),
        ("  r: {title: T, source: S, url: u, columns: [A], scores: [], sorce: x}\n", "references.r.sorce: unknown key"),
        ("  r: {title: T, source: S, url: u, columns: [A], scores: [{task: xnli, metric: accuracy, values: {B: 1}}]}\n",
         "references.r.scores[0].values.B: not one of the columns"),
        ("  r: {title: T, source: S, url: u, columns: [A], scores: [{task: xnli, metric: accuracy, values: {A: high}}]}\n",
         "references.r.scores[0].values.A: expected a number"),
    ],
)
def test_malformed_reference_file(tmp_path, body, message):
    user = tmp_path / "bad.yaml"
    user.write_text("references:\n" + body)
    with pytest.raises(UserError) as error:
        load_references(user)
    assert str(user) in str(error.value) and message in str(error.value)
