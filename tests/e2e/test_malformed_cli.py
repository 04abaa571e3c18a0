"""Malformed data through the real CLI (issue 14): exit code 2, one error line naming the file
and line, no traceback, and no run written. The malformed file is the target's training file,
the first data a target-only run reads, so each case stops before any training."""

import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def target_only(tmp_path_factory, nli_fixture, tiny_model):
    root = tmp_path_factory.mktemp("malformed")
    config = {
        "name": "malformed",
        "model": str(tiny_model),
        "task_specs": [str(nli_fixture["spec"])],
        "target": {"task": "toy-xnli", "train": {"epochs": 1, "batch_size": 32, "max_length": 32}},
    }
    path = root / "exp.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def malformed_copy(nli_fixture, folder, line: int, replacement: bytes | None):
    """The fixture's xnli folder with line `line` (1-based) of train-en.tsv replaced (None: emptied file)."""
    folder.mkdir()
    for file in nli_fixture["xnli"].iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    lines = (folder / "train-en.tsv").read_bytes().split(b"\n")
    if replacement is None:
        lines = []
    else:
        lines[line - 1] = replacement
    (folder / "train-en.tsv").write_bytes(b"\n".join(lines))
    return folder


@pytest.mark.parametrize(
    "line, replacement, message",
    [
        (3, b"a premise\twithout its hypothesis", "train-en.tsv:3: expected 3 tab-separated fields"),
        (4, b"a premise\ta hypothesis\tentails", "train-en.tsv:4: unknown label 'entails' for task 'toy-xnli'"),
        (1, None, "train-en.tsv: no examples"),
    ],
    ids=["wrong-column-count", "label-outside-the-set", "empty-file"],
)
def test_a_malformed_training_file_exits_2_with_one_line_and_writes_nothing(
    target_only, nli_fixture, tmp_path, line, replacement, message
):
    data = malformed_copy(nli_fixture, tmp_path / "xnli", line, replacement)
    store = tmp_path / "store"
    result = subprocess.run(
        [sys.executable, "-m", "xstilts.cli", "run", str(target_only), f"data.toy-xnli={data}", "--store", str(store)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not (store / "runs").exists() or not any((store / "runs").iterdir())
