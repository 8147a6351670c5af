"""The architecture holds: no import cycle between Córtex's packages and top-level modules.

A subpackage (api, backends, routing, stream…) counts as one unit, a top-level
module as another; an import from one unit into another is an edge. A cycle
means some call goes back up a layer.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import cortex

ROOT = Path(cortex.__file__).parent


def unit_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[0] if len(parts) > 1 else f"cortex.{parts[0]}"


def resolve(names: list[str]) -> Path | None:
    """The file an import inside the package lands in (the longest existing prefix)."""
    for end in range(len(names), 0, -1):
        base = ROOT.joinpath(*names[:end])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.exists():
                return candidate
    return None


def imported(path: Path) -> Iterator[Path]:
    package = list(path.relative_to(ROOT).parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            module = base + (node.module.split(".") if node.module else [])
            for alias in node.names:
                target = resolve([*module, alias.name])
                if target is not None:
                    yield target


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        source = unit_of(path)
        for target in imported(path):
            if unit_of(target) != source:
                graph.setdefault(source, set()).add(unit_of(target))
    return graph


def cycle_from(graph: dict[str, set[str]], start: str) -> list[str] | None:
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, trail = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                return [*trail, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*trail, nxt]))
    return None


def test_the_import_graph_is_seen() -> None:
    graph = import_graph()
    assert "stream" in graph["api"]
    assert "dialects" in graph["backends"]
    assert "stream" in graph["dialects"]


def test_no_unit_imports_one_that_imports_it_back() -> None:
    graph = import_graph()
    cycles = [c for unit in sorted(graph) if (c := cycle_from(graph, unit)) is not None]
    assert not cycles, " | ".join(" → ".join(c) for c in cycles)
