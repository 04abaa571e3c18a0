"""Faults lose nothing: a writer killed (SIGKILL) mid-write leaves each artifact absent or whole
(the previous version, or the new one if it had finished), and no loader takes a leftover; a full
disk during a real `xstilts run` is one line, exit 2, and the earlier run's files are untouched.

The kills are forked children stopped at chosen points (a hook reports through a pipe and waits
to be killed), and at a few fixed delays wherever they are."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from clitools import run as run_cli
from xstilts import atomic
from xstilts.atomic import atomic_directory, atomic_write_bytes
from xstilts.cli import main
from xstilts.data import feature_cache as feature_cache_module
from xstilts.data.feature_cache import FeatureCache
from xstilts.experiments.store import ResultsStore
from xstilts.formats.base import get_format
from xstilts.models.multitask import MultiTaskModel
from xstilts.models.sources import load_encoder
from xstilts.results import ResultRow
from xstilts.tasks.registry import load_registry
from xstilts.training import checkpoint as checkpoint_module
from xstilts.training import resume
from xstilts.training.checkpoint import HeadInfo, is_checkpoint, read_metadata, save_checkpoint

DELAYS = (0.0, 0.003, 0.02)  # seconds after the fork: before, during and (likely) after the write
BIG = 8 * 1024 * 1024


def killed(action, *, at_hook: bool = True, delay: float = 0.0, once=None) -> None:
    """Fork a child that runs `action(reached)` and SIGKILL it: where it calls `reached()` (which
    tells the parent and waits), or `delay` seconds after the fork (or after `once()` is true)
    wherever it is."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read)

            def reached() -> None:
                os.write(write, b"!")
                time.sleep(60)

            action(reached)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    try:
        if at_hook:
            assert os.read(read, 1) == b"!", "the child ended before reaching its hook"
        else:
            deadline = time.monotonic() + 60
            while once is not None and not once() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    finally:
        os.close(read)


def tree(path: Path) -> dict[str, str] | None:
    """Relative path -> sha256 of every file under `path` (a file: its own hash); None if absent."""
    if not path.exists():
        return None
    if path.is_file():
        return {"": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(file.relative_to(path)): hashlib.sha256(file.read_bytes()).hexdigest()
            for file in sorted(path.rglob("*")) if file.is_file()}


def visible(folder: Path) -> list[str]:
    """What a loader's glob can see: the entries whose names do not start with "."."""
    return sorted(entry.name for entry in folder.iterdir() if not entry.name.startswith("."))


def on_second_call(reached, real):
    calls = []

    def hooked(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            reached()
        return real(*args, **kwargs)

    return hooked


def half_then(reached):
    """An open() whose first write stops half-way, for the child to be killed there."""
    real_open = open

    class Half:
        def __init__(self, path, mode):
            self.handle = real_open(path, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            data = bytes(data)
            self.handle.write(data[: len(data) // 2])
            self.handle.flush()
            reached()

        def __getattr__(self, name):
            return getattr(self.handle, name)

    return Half


def test_a_killed_file_writer_leaves_the_old_file_or_the_new_one(tmp_path):
    target = tmp_path / "predictions" / "test-de.records.jsonl"
    old, new = b"old\n" * 10, b"new!" * (BIG // 4)
    atomic_write_bytes(target, old)

    def mid_write(reached):
        atomic.open = half_then(reached)
        atomic_write_bytes(target, new)

    def before_rename(reached):
        real = os.replace
        os.replace = lambda *args: (reached(), real(*args))
        atomic_write_bytes(target, new)

    for action in (mid_write, before_rename):
        killed(action)
        assert target.read_bytes() == old, action.__name__
    for delay in DELAYS:
        killed(lambda reached: atomic_write_bytes(target, new), at_hook=False, delay=delay)
        assert target.read_bytes() in (old, new), delay
    assert visible(target.parent) == [target.name]


def test_a_killed_directory_writer_leaves_the_old_directory_or_nothing(tmp_path):
    target = tmp_path / "report"
    with atomic_directory(target) as tmp:
        (tmp / "index.html").write_text("old")
    old = tree(target)

    def write_new(reached=None, stop_after_first=False):
        with atomic_directory(target) as tmp:
            (tmp / "index.html").write_text("new")
            if stop_after_first:
                reached()
            (tmp / "big.bin").write_bytes(b"x" * BIG)

    def before_publish(reached):
        real = os.replace
        os.replace = lambda *args: (reached(), real(*args))  # the old one is not even moved aside
        write_new()

    def between_renames(reached):
        os.replace = on_second_call(reached, os.replace)  # the old one aside, the new one not in place
        write_new()

    killed(lambda reached: write_new(reached, stop_after_first=True))
    assert tree(target) == old
    killed(before_publish)
    assert tree(target) == old
    killed(between_renames)
    assert tree(target) is None  # absent, never half-removed: a reader rebuilds it
    assert visible(tmp_path) == []


def test_a_killed_resume_state_write_or_removal_leaves_the_last_complete_state(tmp_path):
    folder = tmp_path / "resume"
    for step in (1, 2):
        with atomic_directory(folder / f"step-{step:08d}") as tmp:
            (tmp / resume.TENSORS_FILE).write_bytes(b"t" * 1000)
            (tmp / resume.STATE_FILE).write_text(f'{{"step": {step}}}')

    def write_step_3(reached):
        with atomic_directory(folder / "step-00000003") as tmp:
            (tmp / resume.STATE_FILE).write_text('{"step": 3}')  # the state first, its tensors not yet
            reached()

    def remove_step_2(reached):
        resume.shutil.rmtree = lambda path, **kwargs: ((Path(path) / resume.STATE_FILE).unlink(), reached())
        resume.discard_state(folder / "step-00000002")

    killed(write_step_3)
    assert resume.latest_state(folder) == folder / "step-00000002" and resume.saved_step(folder) == 2
    killed(remove_step_2)
    assert resume.latest_state(folder) == folder / "step-00000001" and visible(folder) == ["step-00000001"]


def test_a_killed_feature_cache_write_is_never_loaded(tmp_path):
    cache = FeatureCache(tmp_path / "features")
    old = [{"input_ids": [1, 2, 3], "label": 0}]
    new = [{"input_ids": list(range(200)), "label": index % 3} for index in range(5000)]
    cache.store("key", old)

    def mid_write(reached):
        feature_cache_module.open = half_then(reached)
        cache.store("key", new)

    killed(mid_write)
    assert cache.load("key") == old
    for delay in DELAYS:
        killed(lambda reached: cache.store("key", new), at_hook=False, delay=delay)
        assert cache.load("key") in (old, new), delay
    assert visible(cache.folder) == ["key.arrow"]
    for leftover in cache.folder.iterdir():  # whatever a kill left is dot-named and loads as nothing
        assert leftover.name == "key.arrow" or leftover.name.startswith(".key.")


def test_a_killed_checkpoint_save_leaves_the_previous_checkpoint(tmp_path, tiny_model):
    registry = load_registry()
    encoder, tokenizer = load_encoder(str(tiny_model), tmp_path / "cache")
    mnli = registry.get("mnli")
    model = MultiTaskModel(encoder, {"nli": get_format(mnli.format).build_head(encoder.config.hidden_size, mnli, 0.1)})
    target = tmp_path / "checkpoints" / "phase2-key"

    def save(version: str) -> None:
        save_checkpoint(target, model, tokenizer, heads={"nli": HeadInfo.of(mnli)}, metadata={"version": version})

    save("old")
    old = tree(target)

    def at_heads(reached):
        checkpoint_module.save_file = lambda *args, **kwargs: reached()  # the encoder written, not the heads
        save("new")

    def before_publish(reached):
        real = os.replace
        os.replace = lambda *args: (reached(), real(*args))
        save("new")

    for action in (at_heads, before_publish):
        killed(action)
        assert tree(target) == old, action.__name__
    for delay in (0.0, 0.02, 0.1):
        killed(lambda reached: save("new"), at_hook=False, delay=delay)
        assert tree(target) == old or read_metadata(target)["version"] == "new", delay
    assert visible(target.parent) == [target.name] and is_checkpoint(target)
    assert set(load_file(str(target / checkpoint_module.HEADS_FILE))) == {f"nli.{key}" for key in model.heads["nli"].state_dict()}


def test_a_killed_store_writer_leaves_whole_runs(tmp_path):
    store = ResultsStore(tmp_path)

    def write_runs(reached):
        for index in range(10_000):
            run = f"r{index}"
            store.start_run(run, "exp", {})
            store.complete_run(run, [ResultRow(run, "target", "xnli", f"l{i}", "test", "accuracy", 1.0) for i in range(300)], [])

    def some_completed() -> bool:
        return sum(run["status"] == "completed" for run in ResultsStore(tmp_path, read_only=True).runs()) >= 2

    for delay in (0.0, 0.013, 0.05):
        killed(write_runs, at_hook=False, delay=delay, once=some_completed)
        counts = {}
        for row in ResultsStore(tmp_path).results():
            counts[row.run] = counts.get(row.run, 0) + 1
        assert counts and set(counts.values()) == {300}, delay  # every stored run whole
        with sqlite3.connect(store.path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, nli_fixture, tiny_model):
    """A store holding one completed tiny run: (config, store folder)."""
    root = tmp_path_factory.mktemp("faults")
    train = {"epochs": 1, "learning_rate": 1e-3, "batch_size": 32, "max_length": 64}
    config = root / "exp.yaml"
    config.write_text(yaml.safe_dump({
        "name": "faults", "model": str(tiny_model), "task_specs": [str(nli_fixture["spec"])], "device": "cpu",
        "data": {"mnli": str(nli_fixture["mnli"]), "toy-xnli": str(nli_fixture["xnli"])},
        "intermediate": {"tasks": ["mnli"], "train": train}, "target": {"task": "toy-xnli", "train": train},
    }), encoding="utf-8")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(root)
        monkeypatch.setattr("sys.argv", ["xstilts", "run", str(config), "--store", str(root / "store")])
        try:
            main()
        except SystemExit as exit_:
            assert not exit_.code
    return config, root / "store"


@pytest.mark.slow
@pytest.mark.parametrize(("full", "overrides"), [
    ("checkpoints", ["seed=7"]),  # a new seed: new checkpoints to save, and the disk is full there
    ("predictions", []),  # the same run: both checkpoints reused, the predictions cannot be written
])
def test_a_full_disk_during_a_run_is_one_line_and_keeps_the_earlier_run(monkeypatch, capsys, finished_run, full, overrides):
    config, home = finished_run
    before = tree(home)
    first_rows = ResultsStore(home).results()
    assert first_rows and ResultsStore(home).runs()[0]["status"] == "completed"
    assert any(name.startswith("checkpoints/") for name in before) and any("/predictions/" in name for name in before)

    real = os.replace

    def full_disk(source, destination, *args, **kwargs):
        if f"{os.sep}{full}{os.sep}" in f"{os.sep}{Path(destination).relative_to(home)}{os.sep}":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(source))
        return real(source, destination, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "replace", full_disk)
    code, _, err = run_cli(monkeypatch, capsys, "run", config, *overrides, "--store", home)
    monkeypatch.undo()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    written = "checkpoints/[^/ ]+" if full == "checkpoints" else r"runs/[^/. ][^/ ]*/predictions/\S+"  # not a temporary's name
    assert re.fullmatch(rf"error: cannot write {re.escape(str(home))}/{written}: No space left on device; "
                        "earlier results are intact", errors[0]), errors[0]

    after = tree(home)
    store_files = {"results.sqlite", "results.sqlite-wal", "results.sqlite-shm"}
    # Every file of the first run is byte-identical; the failed run added no checkpoint, run
    # folder or leftover (what it may add: its training state, for a rerun to resume).
    assert {name: after.get(name) for name in before if name not in store_files} == {
        name: digest for name, digest in before.items() if name not in store_files}
    added = set(after) - set(before)
    assert not [name for name in added if name.startswith(("checkpoints/", "runs/", "cache/"))], added
    assert not [name for name in after if any(part.startswith(".") for part in Path(name).parts)]
    store = ResultsStore(home)
    assert store.results() == first_rows and store.errors() == []
    failed = store.runs()[-1]
    assert failed["status"] == "failed" and failed["message"] == errors[0].removeprefix("error: ")
