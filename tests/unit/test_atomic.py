"""Write-then-rename helpers: a failed write leaves the previous artifact and no temporary; write
faults (disk full, permissions, read-only) become one WriteFault naming the artifact."""

import errno
import os
import pickle
import stat
import sys

import pytest

from xstilts import atomic
from xstilts.atomic import WriteFault, atomic_directory, atomic_path, atomic_write_bytes, atomic_write_text, fault_errno


def entries(folder):
    return sorted(path.name for path in folder.iterdir())


def fail_with(code, filename=None):
    def raiser(*args, **kwargs):
        raise OSError(code, os.strerror(code), filename)

    return raiser


def test_a_written_file_has_the_mode_open_would_give_it(tmp_path):
    atomic_write_text(tmp_path / "out" / "a.txt", "hello")
    mode = stat.S_IMODE((tmp_path / "out" / "a.txt").stat().st_mode)
    assert (tmp_path / "out" / "a.txt").read_text() == "hello" and mode == 0o666 & ~atomic._UMASK
    with atomic_directory(tmp_path / "dir") as tmp:
        (tmp / "f").write_text("x")
    assert stat.S_IMODE((tmp_path / "dir").stat().st_mode) == 0o777 & ~atomic._UMASK
    assert entries(tmp_path) == ["dir", "out"] and entries(tmp_path / "out") == ["a.txt"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS])
def test_a_failed_rename_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch, code):
    target = tmp_path / "preds.tsv"
    atomic_write_text(target, "old\n")
    monkeypatch.setattr(atomic.os, "replace", fail_with(code))
    with pytest.raises(WriteFault) as caught:
        atomic_write_text(target, "new\n" * 1000)
    assert str(caught.value) == f"cannot write {target}: {os.strerror(code)}; earlier results are intact"
    assert caught.value.path == target and caught.value.errno == code
    assert target.read_text() == "old\n" and entries(tmp_path) == ["preds.tsv"]


def test_a_full_disk_during_the_write_itself(tmp_path, monkeypatch):
    target = tmp_path / "cache.arrow"
    atomic_write_bytes(target, b"old")

    class FullFile:
        def __init__(self, path, mode):
            self.handle = open(path, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "open", FullFile, raising=False)
    with pytest.raises(WriteFault, match=r"cannot write .*cache\.arrow: No space left on device; earlier results are intact$"):
        atomic_write_bytes(target, b"new" * 10_000)
    assert target.read_bytes() == b"old" and entries(tmp_path) == ["cache.arrow"]


def test_a_folder_whose_parent_is_a_file_is_a_write_fault(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a folder")
    with pytest.raises(WriteFault, match=r"cannot write .*blocker/sub/x\.json: Not a directory"):
        atomic_write_text(tmp_path / "blocker" / "sub" / "x.json", "{}")
    with pytest.raises(WriteFault, match=r"cannot write .*blocker/ckpt: Not a directory"):
        with atomic_directory(tmp_path / "blocker" / "ckpt"):
            pass
    assert entries(tmp_path) == ["blocker"]


def test_a_fault_inside_a_directory_names_the_file_where_it_was_going(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.os, "replace", fail_with(errno.ENOSPC))
    with pytest.raises(WriteFault) as caught:
        with atomic_directory(tmp_path / "run") as tmp:
            atomic_write_text(tmp / "predictions" / "dev-de.tsv", "0\n")
    assert caught.value.path == tmp_path / "run" / "predictions" / "dev-de.tsv" and entries(tmp_path) == []


def test_a_directory_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_directory(target) as tmp:
        (tmp / "old.bin").write_bytes(b"1")
    with atomic_directory(target) as tmp:
        (tmp / "new.bin").write_bytes(b"2")
    assert entries(target) == ["new.bin"] and entries(tmp_path) == ["ckpt"]


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    # safetensors (Rust) raises its own type, the errno only in the message
    type("SafetensorError", (Exception,), {})("Error while serializing: I/O error: No space left on device (os error 28)"),
], ids=["oserror", "rust-error"])
def test_a_full_disk_inside_a_directory_keeps_the_old_directory(tmp_path, error):
    target = tmp_path / "ckpt"
    with atomic_directory(target) as tmp:
        (tmp / "weights").write_bytes(b"old")
    with pytest.raises(WriteFault, match=r"ckpt: No space left on device") as caught:
        with atomic_directory(target) as tmp:
            (tmp / "weights").write_bytes(b"new, half")
            raise error
    assert caught.value.__cause__ is error
    assert (target / "weights").read_bytes() == b"old" and entries(tmp_path) == ["ckpt"]


def test_a_failed_publish_puts_the_old_directory_back(tmp_path, monkeypatch):
    target = tmp_path / "report"
    with atomic_directory(target) as tmp:
        (tmp / "index.html").write_text("old")
    real, calls = os.replace, []

    def second_rename_fails(source, destination):
        calls.append(destination)
        if len(calls) == 2:  # the first moved the old report aside; the new one cannot follow
            raise OSError(errno.EACCES, "Permission denied", str(source))
        real(source, destination)

    monkeypatch.setattr(atomic.os, "replace", second_rename_fails)
    with pytest.raises(WriteFault, match="report: Permission denied"):
        with atomic_directory(target) as tmp:
            (tmp / "index.html").write_text("new")
    assert (target / "index.html").read_text() == "old" and entries(tmp_path) == ["report"]


def test_other_errors_pass_unchanged_and_leave_nothing(tmp_path):
    with pytest.raises(ValueError, match="bug"):
        with atomic_path(tmp_path / "plot.png"):
            raise ValueError("bug")
    # A permission error about some other file (an input being read) is not a write fault.
    unreadable = OSError(errno.EACCES, "Permission denied", str(tmp_path.parent / "data.tsv"))
    with pytest.raises(OSError) as caught:
        with atomic_directory(tmp_path / "run"):
            raise unreadable
    assert caught.value is unreadable and entries(tmp_path) == []


def test_a_write_fault_passes_handlers_of_ordinary_errors_and_pickles(tmp_path):
    # Per-language handlers catch Exception; a full disk must stop the run instead.
    assert not issubclass(WriteFault, Exception)
    fault = pickle.loads(pickle.dumps(WriteFault(tmp_path / "x", errno.EROFS)))
    assert (fault.path, fault.errno, str(fault)) == (
        tmp_path / "x", errno.EROFS, f"cannot write {tmp_path / 'x'}: Read-only file system; earlier results are intact")


def test_fault_errno_knows_write_faults_only():
    assert fault_errno(OSError(errno.ENOSPC, "x")) == errno.ENOSPC
    assert fault_errno(OSError(errno.ENOENT, "x")) is None
    assert fault_errno(RuntimeError("I/O error: Disk quota exceeded (os error 122)")) == errno.EDQUOT
    assert fault_errno(RuntimeError("(os error 2)")) is None and fault_errno(ValueError("no errno")) is None


def test_the_cli_prints_a_write_fault_as_one_line_and_exits_2(tmp_path, monkeypatch, capsys):
    from xstilts import cli
    from xstilts.experiments.store import ResultsStore
    from xstilts.results import ResultRow

    store = ResultsStore(tmp_path / "store")
    store.add_results([ResultRow("r", "target", "xnli", "de", "test", "accuracy", 50.0)])
    (tmp_path / "blocker").write_text("a file")
    output = tmp_path / "blocker" / "rows.json"
    monkeypatch.setattr(cli.err, "width", 80)  # the line must not wrap even in a narrow terminal
    monkeypatch.setattr(sys, "argv", ["xstilts", "results", "--format", "json", "--output", str(output), "--store", str(tmp_path / "store")])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.splitlines() == [f"error: cannot write {output}: Not a directory; earlier results are intact"]
    monkeypatch.setattr(sys, "argv", ["xstilts", "results", "--format", "csv", "--store", str(tmp_path / "store")])
    monkeypatch.setattr("xstilts.experiments.export.export_results", fail_with(errno.ENOSPC, "/var/tmp/x"))
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == ["error: cannot write /var/tmp/x: No space left on device; earlier results are intact"]
