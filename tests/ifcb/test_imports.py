"""No import cycle inside sciwire.ifcb (pure ast: imports under TYPE_CHECKING, inside
functions and relative ones all count), and the sans-I/O modules import no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import sciwire.ifcb

PACKAGE = "sciwire.ifcb"
ROOT = Path(sciwire.ifcb.__file__).parent
SANS_IO = {"_messages", "_signalr", "_negotiate", "_codec", "protocol"}
IO_MODULES = {"asyncio", "aiohttp", "socket", "threading", "selectors", "time"}


def _module_name(path: Path) -> str:
    stem = path.stem
    return PACKAGE if stem == "__init__" else f"{PACKAGE}.{stem}"


def _imports(path: Path) -> set[str]:
    """Every module *path* imports, anywhere in it, as absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    base = PACKAGE.split(".")  # (a module's relative imports start from its package)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base[: len(base) - node.level + 1]
                module = ".".join([*parent, node.module] if node.module else parent)
            else:
                module = node.module or ""
            found.add(module)
            # `from sciwire.ifcb import _x` imports the module _x
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.glob("*.py")}
    return {name: _imports(path) & modules.keys() - {name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_inside_the_package() -> None:
    graph = _graph()
    # the package __init__ imports everything; a submodule importing it back would cycle
    assert PACKAGE in graph and len(graph) > 10
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_check_sees_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_sans_io_modules_import_no_io() -> None:
    for stem in SANS_IO:
        top = {name.split(".")[0] for name in _imports(ROOT / f"{stem}.py")}
        assert not top & IO_MODULES, (stem, top & IO_MODULES)
