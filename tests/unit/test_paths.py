"""Names that become paths stay single names, and joined paths stay inside their root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xstilts.errors import UserError
from xstilts.evaluation.records import records_path
from xstilts.paths import component, contained


@pytest.mark.parametrize("name", ["xnli", "en", "test", "udpos-v2", "zh_Hant", "ü-ß", "..x", "a.b"])
def test_a_single_name_passes_unchanged(name):
    assert component(name, "task name") == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "is empty"), (" ", "is empty"), (".", "is '.' or '..'"), ("..", "is '.' or '..'"),
        ("../evil", "holds a path separator"), ("a/b", "holds a path separator"), ("a\\b", "holds a path separator"),
        ("..\\evil", "holds a path separator"), ("/etc", "is an absolute path"), ("C:\\x", "is an absolute path"),
        ("a\0b", "holds a NUL character"),
    ],
)
def test_anything_else_is_refused_with_the_value_named(name, problem):
    with pytest.raises(UserError) as error:
        component(name, "language")
    assert str(error.value) == f"language {name!r} {problem}: it must be a single file or folder name"


def test_contained_returns_the_joined_path(tmp_path):
    assert contained(tmp_path, "a", "b.txt") == tmp_path / "a" / "b.txt"
    assert contained(tmp_path, "a/../b") == tmp_path / "a/../b"  # still inside


@pytest.mark.parametrize("parts", [("..", "x"), ("a", "../../x"), ("/etc/passwd",), ("a", "/tmp/x")])
def test_contained_refuses_climbing_out_and_absolute_parts(tmp_path, parts):
    with pytest.raises(UserError, match="leads outside"):
        contained(tmp_path / "root", *parts, what="predictions file")


def test_a_symlink_below_the_root_that_leads_outside_is_refused(tmp_path):
    root, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    (root / "predictions").mkdir(parents=True)
    elsewhere.mkdir()
    (root / "predictions" / "xnli").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UserError) as error:
        contained(root / "predictions", "xnli", "test-en.tsv", what="predictions file")
    assert str(error.value) == (
        f"predictions file 'xnli/test-en.tsv' leads outside {root / 'predictions'} (to {elsewhere / 'test-en.tsv'})"
    )
    # A symlinked file counts too: writing through it would write outside.
    (root / "predictions" / "pawsx").mkdir()
    (root / "predictions" / "pawsx" / "test-en.tsv").symlink_to(elsewhere / "file")
    with pytest.raises(UserError, match="leads outside"):
        contained(root / "predictions", "pawsx", "test-en.tsv")


def test_a_symlink_inside_that_stays_inside_is_fine(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    assert contained(tmp_path, "alias", "f") == tmp_path / "alias" / "f"


def test_a_root_that_is_itself_a_symlink_is_written_through(tmp_path):
    """The user chose where the store lives: a symlinked store root is theirs to use."""
    (tmp_path / "big-disk").mkdir()
    (tmp_path / "home").symlink_to(tmp_path / "big-disk", target_is_directory=True)
    assert contained(tmp_path / "home", "runs", "r1") == tmp_path / "home" / "runs" / "r1"


def test_contained_refuses_nul(tmp_path):
    with pytest.raises(UserError, match="NUL"):
        contained(tmp_path, "a\0b")


def test_prediction_records_are_named_from_checked_names(tmp_path):
    assert records_path(tmp_path, "xnli", "test", "de") == tmp_path / "xnli" / "test-de.records.jsonl"
    with pytest.raises(UserError, match=r"^language '\.\./\.\./x' holds a path separator"):
        records_path(tmp_path, "xnli", "test", "../../x")
    with pytest.raises(UserError, match=r"^task name '\.\./evil' holds a path separator"):
        records_path(tmp_path, "../evil", "test", "de")
    os.symlink(tmp_path.parent, tmp_path / "xnli-link")
    with pytest.raises(UserError, match="leads outside"):
        records_path(tmp_path, "xnli-link", "test", "de")


def test_leaderboard_prediction_files_and_report_figures_are_contained(tmp_path):
    from xstilts.analysis.report import figure_path
    from xstilts.evaluation.leaderboard import prediction_path
    from xstilts.tasks.registry import load_registry

    xnli = load_registry().get("xnli")
    assert prediction_path(tmp_path, xnli, "test", "de") == tmp_path / "xnli" / "test-de.tsv"
    with pytest.raises(UserError, match=r"^split '\.\.' is '\.' or '\.\.'"):
        prediction_path(tmp_path, xnli, "..", "de")
    (tmp_path / "xnli").symlink_to(tmp_path.parent, target_is_directory=True)
    with pytest.raises(UserError, match="leads outside"):
        prediction_path(tmp_path, xnli, "test", "de")
    assert figure_path(tmp_path, "languages-xnli") == tmp_path / "languages-xnli.png"
    with pytest.raises(UserError, match=r"^figure name 'languages-\.\./\.\./x\.png' holds a path separator"):
        figure_path(tmp_path, "languages-../../x")


def test_a_store_whose_runs_folder_the_user_moved_is_written_through(tmp_path):
    """The store's own folders (runs/, checkpoints/) may be symlinks the user made, to a bigger
    disk say; what names pick below them may not lead outside."""
    from xstilts.experiments.run import run_directory
    from xstilts.experiments.store import ResultsStore

    (tmp_path / "disk").mkdir()
    store = ResultsStore(tmp_path / "store")
    (tmp_path / "store").mkdir(exist_ok=True)
    (tmp_path / "store" / "runs").symlink_to(tmp_path / "disk", target_is_directory=True)
    with run_directory(store, "exp-1") as folder:
        (folder / "results.json").write_text("[]")
    assert (tmp_path / "disk" / "exp-1" / "results.json").read_text() == "[]"
    with pytest.raises(UserError, match=r"^run id '\.\./exp' holds a path separator"):
        with run_directory(store, "../exp"):
            pass
