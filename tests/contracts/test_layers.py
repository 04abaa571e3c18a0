"""Imports point one way: config -> tasks/data -> formats/models -> evaluation -> training ->
experiments -> analysis -> cli. Shared helpers (errors, atomic writes, path containment, result rows, metric
functions) live below every layer, so any module may use them."""

import ast
from pathlib import Path

import pytest

import xstilts

PACKAGE = Path(xstilts.__file__).parent
# Lower rank = lower layer. A module may import from its own rank or any lower one.
RANK = {
    "errors": 0, "atomic": 0, "results": 0, "metrics": 0, "paths": 0,
    "config": 1,
    "tasks": 2,
    "data": 3, "synthetic": 3,
    "formats": 4,
    "models": 5,
    "evaluation": 6,
    "training": 7,
    "experiments": 8,
    "analysis": 9,
    "cli": 10,
}


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "xstilts" and len(parts) > 1 else None


def imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module if node.module != "xstilts" else f"xstilts.{node.names[0].name}")
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_top_level_piece_has_a_layer():
    pieces = {p.stem if p.parent == PACKAGE else p.relative_to(PACKAGE).parts[0] for p in MODULES}
    assert pieces - {"__main__"} <= set(RANK), sorted(pieces - set(RANK))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    own = path.stem if path.parent == PACKAGE else path.relative_to(PACKAGE).parts[0]
    if own not in RANK:
        return
    upward = [name for name in imports(path) if layer(name) in RANK and RANK[layer(name)] > RANK[own]]
    assert not upward, f"{own} imports from higher layers: {upward}"
