"""What every reader shares: opening (gzip too), numbered lines, and label checking.

Every reader returns a list of plain dict examples in the schema of its task format and
raises UserError naming the file and line for anything malformed. Labels are checked
against the task's label list while reading, once, so nothing downstream sees an unknown
label.

Example schemas by format:
- pair / single classification: `id, text_a, [text_b], label` (label: one of spec.labels)
- multiple choice: `id, context, question, choices: list[str], label: int` (index of the answer)
- span QA: `id, context, question, answers: [{text, answer_start}], is_impossible: bool`
- tagging: `id, tokens: list[str], labels: list[str]`

An example of an unlabelled test file (XTREME withholds its test labels) carries `label: None`
(classification) or `labels: None` (tagging): it is predicted on and exported, never trained
on or scored (see `is_labelled` and `data.loading.load_examples`).
"""

from __future__ import annotations

import glob
import gzip
import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from xstilts.errors import UserError, did_you_mean
from xstilts.tasks.spec import TaskSpec

Example = dict[str, Any]


@contextmanager
def open_text(path: Path) -> Iterator[TextIO]:
    """Open a text file as UTF-8 (a leading byte-order mark is skipped), transparently decompressing `.gz`.

    Raises:
        UserError: the file is missing, or (while it is read) holds bytes that are not UTF-8:
            one line naming the file and the line of the first such byte.
    """
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a file")
    compressed = path.suffix == ".gz"
    # utf-8-sig: a byte-order mark (as Windows editors save UTF-8) is dropped, not read as text.
    try:
        opened = gzip.open(path, "rt", encoding="utf-8-sig", newline="") if compressed else path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise UserError(f"{path}: cannot open ({error.strerror or error})") from None
    with opened as handle:
        try:
            yield handle
        except UnicodeDecodeError as error:
            line = first_undecodable_line(path)
            if line is None and compressed:  # the compressed stream broke before the bad line
                raise UserError(f"{path}: not a valid gzip file of UTF-8 text ({error.reason})") from None
            if line is None:  # raised by something else read inside the block
                raise
            raise UserError(f"{path}:{line}: not valid UTF-8 ({error.reason}); save the file as UTF-8") from None
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            if not compressed:
                raise
            raise UserError(f"{path}: not a valid gzip file ({error or type(error).__name__})") from None


def first_undecodable_line(path: Path) -> int | None:
    """The number (from 1) of the first line of `path` that is not valid UTF-8, or None (also
    when a `.gz` file's compressed stream breaks before such a line)."""
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    return number
        except (OSError, EOFError, zlib.error):
            return None
    return None


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, line without its newline), CRLF tolerated."""
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            yield number, line.rstrip("\r\n")


def check_label(label: Any, spec: TaskSpec, where: str) -> str:
    """Map a raw label (name or index as the hub stores it) to one of the spec's labels."""
    if isinstance(label, bool):
        label = int(label)
    if isinstance(label, int):
        if 0 <= label < len(spec.labels):
            return spec.labels[label]
        raise UserError(f"{where}: label index {label} out of range for task {spec.name!r} ({len(spec.labels)} labels)")
    text = str(label).strip()
    if text not in spec.labels:
        raise UserError(
            f"{where}: unknown label {text!r} for task {spec.name!r}{did_you_mean(text, spec.labels)}; "
            f"expected one of {spec.labels}"
        )
    return text


def check_new_id(seen: dict[str, str], example_id: str, where: str) -> None:
    """Refuse an id already seen in this file, where ids are keys (scoring, exports, subsets).

    Args:
        seen: id -> where it first appeared (`file:line`), filled in as the file is read.
    """
    if example_id in seen:
        first = seen[example_id].rsplit(":", 1)[-1].strip()
        raise UserError(f"{where}: duplicate id {example_id!r} (first at {'line ' + first if first.isdigit() else first})")
    seen[example_id] = where


def is_labelled(example: Example) -> bool:
    """False for an example of an unlabelled file (its `label` or `labels` is None)."""
    return all(example.get(field, True) is not None for field in ("label", "labels"))


def resolve_pattern(path: Path) -> Path:
    """The one file a path with `*`/`?` glob characters matches (a plain path is returned as is).

    UD file names carry the treebank name (`en_ewt-ud-dev.conllu`), so a spec may write
    `{language}_*-ud-{split}.conllu*` instead of one spec per treebank.

    Raises:
        UserError: when the pattern matches no file or more than one.
    """
    text = str(path)
    if path.exists() or not glob.has_magic(text):
        return path
    matches = sorted(glob.glob(text))
    if len(matches) != 1:
        found = ", ".join(matches) if matches else "nothing"
        raise UserError(f"{path}: the pattern must match exactly one file, found {found}")
    return Path(matches[0])


def jsonl_rows(path: Path, required: tuple[str, ...] = ()) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`file:line`, object) for every non-blank line of a jsonl file, each holding `required`."""
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected a JSON object")
        missing = [key for key in required if key not in row]
        if missing:
            raise UserError(f"{where}: missing field(s) {', '.join(missing)}")
        yield where, row
