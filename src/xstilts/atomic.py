"""Write-then-rename helpers: an interrupted or failed write never leaves a half-written artifact.

Every artifact (checkpoints, resume states, epoch snapshots, feature caches, predictions, run
folders, reports, exports) is written under a temporary sibling name that starts with "." and
renamed into place whole, so a reader sees either the previous version or the new one. A kill
leaves at most a dot-named leftover, which no loader or glob in xstilts matches.

A write that fails because the disk is full, over quota, read-only or not writable raises
`WriteFault`, which the CLI prints as one line (exit 2); the temporary is removed first.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Why a write fails that the user, not xstilts, has to fix: no space, quota, permissions, a
# read-only file system, a folder whose parent is a file.
FAULT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR})
# Libraries written in Rust (safetensors, tokenizers) raise their own exception types for I/O
# errors, with the errno only in the message: "... No space left on device (os error 28)".
RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")

# mkstemp and mkdtemp create private files (0600, 0700); artifacts get the modes that a plain
# open() or mkdir() would give them, since a store or cache may be shared. Read once, at import,
# because reading the umask means setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK


class WriteFault(BaseException):
    """An artifact could not be written (disk full, quota, permissions, read-only file system).

    A BaseException, like KeyboardInterrupt: the handlers that turn one language's failure into
    that language's error row catch Exception, and a full disk fails every language alike, so
    the run has to stop, leaving the results written before it as they were.
    """

    def __init__(self, path: Path | str, code: int):
        super().__init__(str(path), code)  # args rebuild it when pickled (a worker's fault)
        self.path, self.errno = Path(path), code

    def __str__(self) -> str:
        return f"cannot write {self.path}: {os.strerror(self.errno)}; earlier results are intact"


def fault_errno(exc: BaseException) -> int | None:
    """The errno of a write failure the user has to fix (FAULT_ERRNOS), else None."""
    if isinstance(exc, OSError):
        return exc.errno if exc.errno in FAULT_ERRNOS else None
    match = RUST_OS_ERROR.search(str(exc))
    code = int(match.group(1)) if match else None
    return code if code in FAULT_ERRNOS else None


def _is_temporary_of(filename: str, target: Path) -> bool:
    """Whether `filename` is `target` itself, inside it, or one of its temporary siblings."""
    try:
        relative = Path(os.path.abspath(filename)).relative_to(os.path.abspath(target.parent))
    except ValueError:
        return False
    first = relative.parts[0] if relative.parts else ""
    return first == target.name or first.startswith(f".{target.name}.")


def _raise_fault(exc: BaseException, target: Path, *, from_body: bool) -> None:
    """Re-raise `exc`, as a WriteFault naming `target` when it is a write fault of `target`.

    An error raised by the caller's own code (`from_body`) counts only when it names no file or a
    file of the artifact: a permission error on reading some input stays what it is.
    """
    code = None if isinstance(exc, WriteFault) else fault_errno(exc)
    filename = getattr(exc, "filename", None)
    if code is None or (from_body and filename is not None and not _is_temporary_of(str(filename), target)):
        raise exc
    raise WriteFault(target, code) from exc


@contextmanager
def _writing(target: Path) -> Iterator[None]:
    """The helpers' own steps (making the folder, the temporary, the rename): faults name `target`."""
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 - re-raised, as a WriteFault when it is one
        _raise_fault(exc, target, from_body=False)


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:  # a file where the folder should be
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path.parent)) from exc


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _publish_directory(tmp: Path, target: Path) -> None:
    """Rename `tmp` to `target`. A directory cannot be renamed over a non-empty one, so an old
    `target` is first renamed aside and removed afterwards (put back if the second rename fails):
    a kill in between leaves `target` absent and the old one under a dot name, never half-removed."""
    aside = None
    if os.path.lexists(target):
        aside = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
        try:
            os.replace(target, aside)
        except FileNotFoundError:  # a concurrent writer moved it first
            aside = None
    try:
        os.replace(tmp, target)
    except BaseException:
        if aside is not None and not os.path.lexists(target):
            os.replace(aside, target)  # the old one back: a failed write changes nothing
        raise
    if aside is not None:
        _remove(aside)


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `target` in one rename.

    Example:
        >>> with atomic_directory(Path("out/checkpoint")) as tmp:
        ...     model.save_pretrained(tmp)
    """
    target = Path(target)
    with _writing(target):
        _make_parent(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, DIR_MODE)
        _publish_directory(tmp, target)
    except BaseException as exc:  # noqa: BLE001 - cleaned up, then re-raised
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, WriteFault) and exc.path.is_relative_to(tmp):  # a file inside: named where it was going
            raise WriteFault(target / exc.path.relative_to(tmp), exc.errno) from exc.__cause__
        _raise_fault(exc, target, from_body=True)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling path for a library that writes by path (savefig, safetensors'
    save_file, pyarrow); on success it is renamed to `path`, on any error removed.

    Example:
        >>> with atomic_path(Path("figures/deltas.png")) as tmp:
        ...     fig.savefig(tmp, format="png")
    """
    path = Path(path)
    with _writing(path):
        _make_parent(path)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as exc:  # noqa: BLE001 - cleaned up, then re-raised
        tmp.unlink(missing_ok=True)
        _raise_fault(exc, path, from_body=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
