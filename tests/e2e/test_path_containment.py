"""Names from a config or a task spec cannot make `xstilts run` or `xstilts eval` write outside
the store: a task named "../evil", a language "../../x" or an experiment named "../evil" is
refused with one line and exit status 2 before anything is written."""

from pathlib import Path

import pytest
import yaml

from clitools import run
from fixtures_nli import write_fixture

pytestmark = pytest.mark.slow


def tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@pytest.fixture
def workspace(tmp_path) -> dict:
    """A box holding the data, the specs and the store; the test checks that nothing appears
    in the box outside the store, nor next to the box."""
    box = tmp_path / "box"
    fixture = write_fixture(box / "data", n_train=40, n_eval=10, languages=("en", "de"))
    return {"box": box, "xnli": fixture["xnli"], "store": box / "store"}


def write_spec(box: Path, name: str, languages: list[str]) -> Path:
    spec = box / f"spec-{len(list(box.glob('spec-*')))}.yaml"
    spec.write_text(yaml.safe_dump({"tasks": [
        {"name": name, "include": "xnli", "description": "fixture", "languages": languages, "benchmarks": {}},
    ]}))
    return spec


def refused(monkeypatch, capsys, workspace, tmp_path, *args) -> str:
    """Run the CLI; assert it exits 2 with one line and wrote nothing outside the store."""
    box = workspace["box"]
    before, around = tree(box), set(tmp_path.parent.iterdir())
    code, _, err = run(monkeypatch, capsys, *args, "--store", workspace["store"])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert {path for path in tree(box) - before if not path.startswith("store")} == set()
    assert set(tmp_path.parent.iterdir()) == around
    assert not (workspace["store"] / "runs").exists() or not any((workspace["store"] / "runs").iterdir())
    return lines[0]


def experiment(workspace, tmp_path, spec: Path, task: str, name: str = "exp", languages=None) -> Path:
    target = {"task": task, "train": {"epochs": 1, "batch_size": 8, "max_length": 32}, "eval_splits": ["test"]}
    if languages:
        target["languages"] = languages
    config = {"name": name, "model": str(tmp_path / "no-model-needed"), "task_specs": [str(spec)],
              "data": {task: str(workspace["xnli"])}, "target": target}
    path = workspace["box"] / f"{name.replace('/', '_')}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_task_named_dot_dot_is_refused(monkeypatch, capsys, workspace, tmp_path):
    spec = write_spec(workspace["box"], "../evil", ["en", "de"])
    line = refused(monkeypatch, capsys, workspace, tmp_path, "run", experiment(workspace, tmp_path, spec, "../evil"))
    assert line == "error: task name '../evil' holds a path separator: it must be a single file or folder name"


def test_a_language_climbing_out_is_refused(monkeypatch, capsys, workspace, tmp_path):
    spec = write_spec(workspace["box"], "toy-xnli", ["en", "de", "../../x"])
    (workspace["xnli"] / "test-x.tsv").write_text((workspace["xnli"] / "test-de.tsv").read_text())
    line = refused(monkeypatch, capsys, workspace, tmp_path, "run", experiment(workspace, tmp_path, spec, "toy-xnli"))
    assert "language '../../x' holds a path separator" in line


def test_an_experiment_named_dot_dot_is_refused(monkeypatch, capsys, workspace, tmp_path):
    spec = write_spec(workspace["box"], "toy-xnli", ["en", "de"])
    config = experiment(workspace, tmp_path, spec, "toy-xnli", name="../evil")
    line = refused(monkeypatch, capsys, workspace, tmp_path, "run", config)
    assert "key 'name'" in line and "'../evil'" in line


def test_eval_of_a_task_named_dot_dot_is_refused(monkeypatch, capsys, workspace, tmp_path):
    spec = write_spec(workspace["box"], "../evil", ["en", "de"])
    line = refused(
        monkeypatch, capsys, workspace, tmp_path, "eval", "--model", tmp_path / "no-model-needed", "--task", "../evil",
        "--data-dir", workspace["xnli"], f"task_specs=[{spec}]",
    )
    assert line == "error: task name '../evil' holds a path separator: it must be a single file or folder name"
