"""Layering of ``src/sciwire``, read from the source with :mod:`ast` (nothing is imported).

Every import counts: module level, under ``if TYPE_CHECKING:``, inside functions,
relative ones, and ``importlib.import_module("...")`` with a constant name. A cycle
is a cycle even when one side is lazy: it means two modules each need the other,
and the seam between them is missing (issue #13: "no module imports its own
importer, lazily or not").

Edges follow what a statement names: ``from pkg import sub`` imports the module
``pkg.sub`` when there is one, else ``pkg``; the parent packages Python loads on
the way are not edges (every module has them, so they would make every re-exporting
``__init__`` a cycle). Names computed at run time (``import_module(f"sciwire.{p}.cli")``,
the plugin lookups of ``sciwire.cli`` and ``sciwire.demo``) cannot be read statically
and are not edges.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "sciwire"

#: Packages that still have an import cycle today and are being reshaped (issue #13):
#: none left (samp's went through seams: ``_common.BindingCore``, ``_web.WebHubHost``).
#: drms has none (its client's ``from sciwire.drms import protocol`` names the
#: submodule). The list can only shrink: a listed package without a cycle fails too.
CYCLES_ALLOWED: frozenset[str] = frozenset()

#: The protocol packages, which the shared core must never import.
PROTOCOL_PACKAGES = ("command", "drms", "samp", "ifcb", "rig", "fleet")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / ROOT).rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of dotted *name* that is one of our modules, or None."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name *module* imports, wherever the import statement sits."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # a package's own __init__ is level 1's anchor; a module's is its parent
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                # `from pkg import sub` imports the submodule when there is one
                yield f"{base}.{alias.name}" if alias.name != "*" else base
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


def _edges_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    for name in _imported_names(module, path):
        if name != ROOT and not name.startswith(ROOT + "."):
            continue
        target = _resolve(name, modules)
        if target is not None and target != module:
            found.add(target)
    return found


@cache
def _graph() -> dict[str, frozenset[str]]:
    modules = _modules()
    return {m: frozenset(_edges_of(m, p, modules)) for m, p in modules.items()}


def _strongly_connected(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; returns the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def _one_cycle(component: Iterable[str], graph: dict[str, frozenset[str]]) -> list[str]:
    """A concrete cycle through the component's first module, for the failure message."""
    members = set(component)
    start = min(members)
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:  # breadth first: the shortest way back to start
        node = queue.pop(0)
        for child in sorted(graph[node] & members):
            if child == start:
                return [*paths[node], start]
            if child not in paths:
                paths[child] = [*paths[node], child]
                queue.append(child)
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def _package(module: str) -> str:
    """The sub-package a module belongs to (``sciwire.rig._client`` -> ``rig``); a
    top-level module (``sciwire.cli``) is its own."""
    parts = module.split(".")
    if len(parts) > 1 and (SRC / ROOT / parts[1] / "__init__.py").is_file():
        return parts[1]
    return module


def _cycles_by_package() -> dict[str, list[list[str]]]:
    graph = _graph()
    out: dict[str, list[list[str]]] = {}
    for component in _strongly_connected(graph):
        key = " + ".join(sorted({_package(m) for m in component}))
        out.setdefault(key, []).append(_one_cycle(component, graph))
    return out


def test_the_graph_is_read() -> None:
    """The parser sees the imports it must see (so that the checks below can fail)."""
    graph = _graph()
    assert "sciwire.rig._client" in graph
    # module level, relative-free
    assert "sciwire.rig._protocol" in graph["sciwire.rig._communicator"]
    # a package importing its submodules by `from pkg import sub`
    assert {"sciwire.rig.app", "sciwire.rig.base"} <= graph["sciwire.rig"]


def test_imports_inside_functions_and_type_checking_count(tmp_path: Path) -> None:
    """Lazy and TYPE_CHECKING imports are edges, relative ones resolve."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from sciwire.rig._client import EchoProtocol\n"
        "def f():\n    from . import _links\n    import importlib\n"
        "    importlib.import_module('sciwire.errors')\n"
        "from ..core import portal\n"
    )
    path = tmp_path / "mod.py"
    path.write_text(source)
    edges = _edges_of("sciwire.rig._fake", path, _modules())
    assert edges == {
        "sciwire.rig._client",
        "sciwire.rig._links",
        "sciwire.errors",
        "sciwire.core.portal",
    }


def test_cycle_finder_finds_cycles() -> None:
    graph = {
        "a": frozenset({"b"}),
        "b": frozenset({"c"}),
        "c": frozenset({"a"}),
        "d": frozenset({"a"}),
        "e": frozenset(),
    }
    assert _strongly_connected(graph) == [["a", "b", "c"]]
    assert _one_cycle(["a", "b", "c"], graph) == ["a", "b", "c", "a"]


def test_no_import_cycles() -> None:
    """No import cycle in src/, except in the listed packages still being reshaped."""
    cycles = _cycles_by_package()
    bad = {pkg: found for pkg, found in cycles.items() if pkg not in CYCLES_ALLOWED}
    assert not bad, "import cycles:\n" + "\n".join(
        f"  {pkg}: " + "; ".join(" -> ".join(c) for c in found) for pkg, found in bad.items()
    )


def test_cycle_allowlist_only_shrinks() -> None:
    """A package on the allowlist that has no cycle any more must leave the list."""
    cycles = _cycles_by_package()
    gone = sorted(pkg for pkg in CYCLES_ALLOWED if pkg not in cycles)
    assert not gone, f"no import cycle left in {gone}: remove them from CYCLES_ALLOWED"


def test_core_imports_no_protocol_package() -> None:
    """The shared core depends on nothing protocol-specific."""
    graph = _graph()
    banned = tuple(f"{ROOT}.{pkg}" for pkg in PROTOCOL_PACKAGES)
    offenders = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module == f"{ROOT}.core" or module.startswith(f"{ROOT}.core.")
        for target in targets
        if target in banned or target.startswith(tuple(b + "." for b in banned))
    )
    assert not offenders, "sciwire.core imports protocol packages:\n  " + "\n  ".join(offenders)


#: the three top layers of ``sciwire.core.http``: only the package's ``__init__``
#: imports them; everything below (endpoint, settings, policy, errors, codec) never does
HTTP_TOP = ("client", "aioclient", "server")


def test_http_layers_point_one_way() -> None:
    """In ``core/http``, no module imports the blocking pool, the asyncio pool or the
    server, except the package itself (issue #13: shared pieces -> codec -> pools,
    server)."""
    graph = _graph()
    pkg = f"{ROOT}.core.http"
    top = {f"{pkg}.{name}" for name in HTTP_TOP}
    assert top <= set(graph), "core/http layout changed: update HTTP_TOP"
    offenders = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.startswith(pkg + ".")
        for target in targets
        if target in top
    )
    assert not offenders, "core/http imports a top layer:\n  " + "\n  ".join(offenders)


def _calls_in(node: ast.AST, name: str, scope: tuple[str, ...]) -> Iterator[str]:
    """The scopes (``Class.function``) inside *node* that call a function named *name*."""
    for child in ast.iter_child_nodes(node):
        inner = scope
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            inner = (*scope, child.name)
        if isinstance(child, ast.Call):
            func = child.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if called == name:
                yield ".".join(scope)
        yield from _calls_in(child, name, inner)


def _callers(name: str) -> set[str]:
    """Where in ``src/`` a function named *name* is called: ``module:Class.function``."""
    return {
        f"{module}:{where}"
        for module, path in _modules().items()
        for where in _calls_in(ast.parse(path.read_text(), str(path)), name, ())
    }


def test_one_door_to_the_one_pass_response_parse() -> None:
    # Issue #13: the whole-response shortcut is taken inside the parser's one receive
    # door, never beside it by a pool.
    assert _callers("whole_response") == {"sciwire.core.http._response:ResponseParser.feed"}


def test_callers_are_found() -> None:
    assert "sciwire.core.http.client:HttpPool._receive" in _callers("ResponseParser")
