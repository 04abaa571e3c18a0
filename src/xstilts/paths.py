"""Paths built from names stay inside the folder they are meant for.

Names from configs, task specs, data folders and the store (a task, a language, a split, an
experiment or run id) become file and folder names. `component` checks that a name is one path
component and nothing else; `contained` joins names onto a root and refuses a result outside it.

The rule for symlinks: the root is resolved first, so a store or output folder that is itself
a symlink (the user's choice of where it lives) is written through; a symlink *below* the root
that leads outside it is refused, as a name that climbs out with `..` is.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from xstilts.errors import UserError


def component(value: str, what: str = "name") -> str:
    """`value` unchanged when it can be a single file or folder name.

    Raises:
        UserError: `value` is empty, `.` or `..`, holds a path separator or a NUL, or is absolute;
            the message names `what` and the value.

    Example:
        >>> component("xnli", "task name")
        'xnli'
    """
    text = str(value)
    problem = (
        "is empty" if not text.strip()
        else "is '.' or '..'" if text in (".", "..")
        else "holds a NUL character" if "\0" in text
        else "is an absolute path" if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute()
        else "holds a path separator" if "/" in text or "\\" in text
        else ""
    )
    if problem:
        raise UserError(f"{what} {text!r} {problem}: it must be a single file or folder name")
    return text


def contained(root: Path | str, *parts: str, what: str = "path") -> Path:
    """`root` joined with `parts`, refused when it would lead outside `root`.

    `..` and absolute parts are refused, as is a symlink below `root` (existing folders or the
    file itself) that resolves outside it; `root` itself is resolved first, so a root that is a
    symlink is fine. The path is returned as joined (not resolved): callers see the path they
    asked for.

    Raises:
        UserError: the result is outside `root`; the message names `what` and the offending parts.

    Example:
        >>> contained(Path("store/runs"), "xnli-20260101-000000-abcd")
        PosixPath('store/runs/xnli-20260101-000000-abcd')
    """
    if any("\0" in str(part) for part in parts):
        raise UserError(f"{what} {'/'.join(map(str, parts))!r} holds a NUL character")
    joined = Path(root).joinpath(*parts)
    base = Path(root).resolve()
    target = joined.resolve()
    if target != base and base not in target.parents:
        raise UserError(f"{what} {'/'.join(map(str, parts))!r} leads outside {root} (to {target})")
    return joined
