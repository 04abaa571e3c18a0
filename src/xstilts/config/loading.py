"""Load an ExperimentConfig from YAML plus `key=value` overrides, strictly.

Errors name the file and the dotted key, and suggest near matches for typos.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from xstilts.config.schema import ExperimentConfig
from xstilts.errors import UserError, did_you_mean


def known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key the schema accepts, e.g. `target.train.learning_rate`."""
    keys = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        keys.append(key)
        for arg in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                keys.extend(known_keys(arg, prefix=f"{key}."))
    return keys


# YAML is read safely: plain mappings, lists and scalars only, never Python objects. The bounds
# keep a hostile or broken file from exhausting the stack or memory: configs nest a few levels,
# and aliases ("billion laughs") may not expand a small file into a huge document.
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 100_000


class _SafeBoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses tags it cannot build safely, deep nesting and alias bombs."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> yaml.Node:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"values nested deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:  # an int over Python's digit limit, a date like 2020-13-45
            raise yaml.constructor.ConstructorError(
                None, None, f"{shorten(node.value)} is not a valid {_tag_name(node.tag)} ({shorten(str(exc))})", node.start_mark
            ) from None

    def construct_unknown(self, node: yaml.Node) -> Any:
        raise yaml.constructor.ConstructorError(
            None, None, f"tag {_tag_name(node.tag)} is not allowed (YAML is read safely: no Python objects)", node.start_mark
        )


_SafeBoundedLoader.add_constructor(None, _SafeBoundedLoader.construct_unknown)


def _tag_name(tag: str) -> str:
    """`tag:yaml.org,2002:python/name:os.system` -> `!!python/name:os.system` (as written in the file)."""
    return tag.replace("tag:yaml.org,2002:", "!!", 1)


def shorten(value: Any, limit: int = 60) -> str:
    """repr(value) on one line, cut to about `limit` characters, for error messages."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else f"{text[:limit]}..."


def describe_document(value: Any) -> str:
    """What a YAML document holds instead of the expected mapping: 'an empty file', 'a list' ..."""
    if value is None:
        return "an empty document"
    return {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def one_line(text: str) -> str:
    """A message with its line breaks (from user text inside it) folded into spaces."""
    return " ".join(str(text).split())


def _check_expansion(root: yaml.Node | None) -> None:
    """Refuse a node graph whose aliases refer to themselves, nest values deeper than
    MAX_YAML_DEPTH (a chain of anchors) or expand past MAX_YAML_VALUES."""
    measured: dict[int, tuple[int, int]] = {}  # id -> (values, levels) of the expanded subtree
    open_nodes: set[int] = set()

    def measure(node: yaml.Node) -> tuple[int, int]:
        if isinstance(node, yaml.ScalarNode):
            return 1, 1
        if id(node) in measured:
            return measured[id(node)]
        if id(node) in open_nodes:
            raise yaml.composer.ComposerError(None, None, "an alias refers to the value that contains it", node.start_mark)
        open_nodes.add(id(node))
        children = [item for pair in node.value for item in pair] if isinstance(node, yaml.MappingNode) else node.value
        sizes = [measure(child) for child in children]
        values, levels = 1 + sum(size for size, _ in sizes), 1 + max((level for _, level in sizes), default=0)
        if values > MAX_YAML_VALUES:
            raise yaml.composer.ComposerError(None, None, f"aliases expand to more than {MAX_YAML_VALUES} values", node.start_mark)
        if levels > MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"aliases nest values deeper than {MAX_YAML_DEPTH} levels", node.start_mark)
        open_nodes.discard(id(node))
        measured[id(node)] = values, levels
        return values, levels

    if root is not None:
        measure(root)


def _yaml_error_line(exc: yaml.YAMLError, text: str) -> tuple[str, str]:
    """(`:LINE` or '', the problem on one line) of a YAML error."""
    if isinstance(exc, yaml.reader.ReaderError):  # a control character: it has a position, not a mark
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        return f":{text.count(chr(10), 0, exc.position) + 1}", f"character U+{code:04X} is not allowed"
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or "syntax error"
    return (f":{mark.line + 1}" if mark else ""), " ".join(str(problem).split())


def parse_yaml(text: str) -> Any:
    """Parse YAML text safely and within MAX_YAML_DEPTH and MAX_YAML_VALUES (yaml.YAMLError otherwise)."""
    return yaml.load(text, Loader=_SafeBoundedLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: Path, kind: str) -> Any:
    """Parse a YAML file; a missing or unreadable file, bytes that are not UTF-8, a syntax
    error or a refused construct is one line naming `path:line`.

    A UTF-8 byte order mark at the start is allowed (editors on Windows write one).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: {kind} not found") from None
    except OSError as exc:  # a folder, no permission
        raise UserError(f"{path}: cannot read {kind} ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}:{line}: {kind} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        where, problem = _yaml_error_line(exc, text)
        raise UserError(f"{path}{where}: invalid YAML in {kind} ({problem})") from None


def unshare(value: Any) -> Any:
    """Copy nested dicts/lists without shared nodes. YAML aliases (`train: *defaults`) load
    as one shared object (and deepcopy keeps the sharing), so an override of one section
    would silently change the other."""
    if isinstance(value, dict):
        return {key: unshare(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unshare(item) for item in value]
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=1e-5` -> (["a", "b"], value parsed as YAML, so lists and numbers work)."""
    if "=" not in text:
        raise UserError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"override {text!r} has an empty key")
    try:
        value = parse_yaml(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_override(document: dict, path: list[str], value: Any) -> None:
    node = document
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserError(f"override key {'.'.join(path)!r}: {part!r} is not a section")
        node = child
    node[path[-1]] = value


def describe_validation_error(exc: ValidationError, source: str, model: type[BaseModel]) -> str:
    """One line for the first schema error: where, which key, what is wrong, near matches."""
    errors = exc.errors()
    # A misspelt key also makes the key it stands for missing: name the misspelling first.
    error = next((error for error in errors if error["type"] == "extra_forbidden"), errors[0])
    key = ".".join(str(part) for part in error["loc"] if not isinstance(part, int)) or "(root)"
    if error["type"] == "extra_forbidden":
        return f"{source}: unknown key {key!r}{did_you_mean(key, known_keys(model))}"
    if error["type"] == "missing":
        return f"{source}: missing required key {key!r}"
    if error["type"] == "value_error":  # a validator's own message names what is wrong
        where = "" if key == "(root)" else f" key {key!r}:"
        return f"{source}:{where} {one_line(str(error['msg']).removeprefix('Value error, '))}"
    return f"{source}: key {key!r}: {one_line(error['msg'])} (got {shorten(error.get('input'))})"


def load_config(
    path: Path | str | None,
    overrides: list[str] = (),
    base: dict | None = None,
    schema: type[BaseModel] = ExperimentConfig,
) -> BaseModel:
    """Read a YAML config (or start from `base`), apply `key=value` overrides, validate against `schema`.

    Example:
        >>> cfg = load_config("configs/xnli.yaml", ["target.train.learning_rate=1e-5"])
    """
    document: dict = unshare(base or {})
    source = "<overrides>"
    if path is not None:
        path = Path(path)
        source = str(path)
        loaded = read_yaml(path, "config file")
        if not isinstance(loaded, dict):
            raise UserError(f"{path}: a config file must be a mapping of keys, not {describe_document(loaded)}")
        document.update(unshare(loaded))
    for text in overrides:
        key_path, value = parse_override(text)
        apply_override(document, key_path, value)
    try:
        return schema.model_validate(document)
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc, source, schema)) from None


def dump_config(config: BaseModel) -> str:
    """The fully resolved config as YAML (every default spelled out)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
