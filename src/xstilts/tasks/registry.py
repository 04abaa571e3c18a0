"""The task registry: every built-in spec shipped in `tasks/specs/`, plus the user's spec files.

A spec file holds a list under `tasks:`. An entry may start with `include: NAME` to take
another task's fields and override some (variants without copies). A broken spec is an
error naming its file, never a task that silently vanishes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from xstilts.config.loading import describe_document, one_line, read_yaml, shorten
from xstilts.errors import UserError, did_you_mean
from xstilts.tasks.spec import TaskSpec


class TaskRegistry:
    """Name -> TaskSpec, with near-match suggestions for unknown names."""

    def __init__(self, specs: Iterable[TaskSpec]):
        self._specs: dict[str, TaskSpec] = {}
        for spec in specs:
            self._specs[spec.name] = spec

    def get(self, name: str) -> TaskSpec:
        if name not in self._specs:
            raise UserError(f"unknown task {name!r}{did_you_mean(name, self._specs)}")
        return self._specs[name]

    def names(self) -> list[str]:
        return sorted(self._specs)

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(self._specs[name] for name in self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._specs


def builtin_spec_files() -> list[Path]:
    """The spec files shipped inside the package, in a stable order."""
    root = resources.files("xstilts.tasks") / "specs"
    return sorted(Path(str(p)) for p in root.iterdir() if str(p).endswith(".yaml"))


def _read_entries(path: Path) -> list[dict[str, Any]]:
    document = read_yaml(path, "task spec file")
    if not isinstance(document, dict) or not isinstance(document.get("tasks"), list):
        if isinstance(document, dict):
            got = f"'tasks:' holding {describe_document(document['tasks'])}" if "tasks" in document else "no 'tasks:' key"
        else:
            got = describe_document(document)
        raise UserError(f"{path}: a task spec file must contain a list under 'tasks:' (got {got})")
    entries = []
    for index, entry in enumerate(document["tasks"]):
        if not isinstance(entry, dict):
            raise UserError(f"{path}: tasks[{index}] must be a mapping of keys (got {shorten(entry)})")
        name = entry.get("name")
        if not isinstance(name, str):
            raise UserError(f"{path}: tasks[{index}] needs a 'name' (got {shorten(name)})")
        include = entry.get("include")
        if include is not None and not isinstance(include, str):
            raise UserError(f"{path}: task {name!r}, key 'include': a task name (got {shorten(include)})")
        entries.append(dict(entry, _file=str(path)))
    return entries


def _resolve(entry: dict[str, Any], raw: dict[str, dict[str, Any]], seen: tuple[str, ...]) -> dict:
    """Merge an entry over the task it includes (recursively), dropping bookkeeping keys."""
    fields = {k: v for k, v in entry.items() if k not in ("include", "_file")}
    base_name = entry.get("include")
    if base_name is None:
        return fields
    if base_name in seen:
        raise UserError(f"{entry['_file']}: include cycle {' -> '.join(seen + (base_name,))}")
    if base_name not in raw:
        raise UserError(
            f"{entry['_file']}: task {entry.get('name')!r} includes unknown task "
            f"{base_name!r}{did_you_mean(base_name, raw)}"
        )
    base = _resolve(raw[base_name], raw, seen + (base_name,))
    return {**base, **fields}


def load_registry(extra_files: Iterable[Path | str] = ()) -> TaskRegistry:
    """Load the built-in specs and the user's spec files (later files override earlier names)."""
    raw: dict[str, dict[str, Any]] = {}
    for path in [*builtin_spec_files(), *(Path(p) for p in extra_files)]:
        for entry in _read_entries(path):
            raw[entry["name"]] = entry
    specs = []
    for name, entry in raw.items():
        fields = _resolve(entry, raw, (name,))
        try:
            spec = TaskSpec.model_validate(fields)
            spec._source = entry["_file"]  # named by evaluation-time errors (subsets)
            specs.append(spec)
        except ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join(str(part) for part in error["loc"]) or "(task)"
            raise UserError(f"{entry['_file']}: task {name!r}, key {key!r}: {one_line(error['msg']).removeprefix('Value error, ')}") from None
    return TaskRegistry(specs)
