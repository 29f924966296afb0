"""The test tiers hold: ``make check`` runs the unit tier without the peers installed.

The unit tier is ``-m "not interop and not slow and not adversarial"`` with tests/interop
ignored (see the Makefile). For that to run in a venv with only the dev extra, no test module
outside tests/interop may import a peer when it is collected, and helpers come from
``helpers.py`` modules rather than from a ``conftest.py``.
"""

from __future__ import annotations

import ast
import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
ROOT = TESTS.parent
#: the originals and the other peers, installed by the test extra only
PEERS = {"iblutil", "cryosparc", "drms", "astropy", "pyvo", "signalrcore"}


@functools.cache
def _parsed() -> tuple[tuple[Path, ast.Module], ...]:
    # parsed once for the tests below (every file of tests/ each)
    return tuple(
        (path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for path in sorted(TESTS.rglob("*.py"))
    )


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    yield from _parsed()


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return ["." * node.level + (node.module or "")]
    return []


def _top_level(tree: ast.Module) -> Iterator[ast.AST]:
    """Statements run at import: the module body, and the bodies of its if/try blocks."""
    work: list[ast.stmt] = list(tree.body)
    while work:
        node = work.pop()
        yield node
        if isinstance(node, ast.If | ast.Try):
            work.extend(node.body + node.orelse)
            if isinstance(node, ast.Try):
                work.extend(node.finalbody)
                for handler in node.handlers:
                    work.extend(handler.body)


def _conftests(node: ast.AST) -> list[str]:
    """The conftest modules *node* imports, however it spells them (``import a.conftest``,
    ``from a.conftest import x``, ``from a import conftest``, ``from . import conftest``)."""
    names = _imported(node)
    if isinstance(node, ast.ImportFrom):
        base = names[0]
        names += [base + ("" if base.endswith(".") else ".") + a.name for a in node.names]
    return [name for name in names if name.rsplit(".", 1)[-1] == "conftest"]


def test_the_conftest_guard_sees_every_spelling() -> None:
    """So that the guard below can fail."""
    spellings = [
        "import tests.conftest",
        "from .conftest import a",
        "from . import conftest",
        "from tests.fleet import conftest as c",
        "from tests.fleet import helpers",
        "from tests.fleet.conftest_data import x",
    ]
    found = [bool(_conftests(ast.parse(text).body[0])) for text in spellings]
    assert found == [True, True, True, True, False, False]


def test_no_test_imports_from_a_conftest() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{node.lineno} imports {name}"
        for path, tree in _modules()
        for node in ast.walk(tree)
        for name in _conftests(node)
    ]
    assert bad == [], "move these helpers to a helpers.py module:\n" + "\n".join(bad)


def test_the_peer_guard_sees_imports_run_at_collection() -> None:
    """So that the guard below can fail: module-level imports, also under if/try/except/
    else/finally, count; imports inside a function do not."""
    source = """
import drms
if True:
    from astropy import units
try:
    import iblutil.io
except ImportError:
    import pyvo
else:
    import signalrcore
finally:
    from cryosparc import tools
def later():
    import drms.client
"""
    found = sorted(name for node in _top_level(ast.parse(source)) for name in _imported(node))
    assert found == ["astropy", "cryosparc", "drms", "iblutil.io", "pyvo", "signalrcore"]


def test_unit_tier_modules_import_no_peer_when_collected() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{node.lineno} imports {name}"
        for path, tree in _modules()
        if "interop" not in path.relative_to(TESTS).parts
        for node in _top_level(tree)
        for name in _imported(node)
        if name.split(".")[0] in PEERS
    ]
    assert bad == [], (
        "import the peer inside the tests that use it and mark them interop:\n" + "\n".join(bad)
    )


@pytest.mark.slow
def test_tiers_are_marked_by_path_and_explicit_marks_still_count() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "not interop and not slow and not adversarial",
            "tests/adversarial",
            "tests/rig/test_dropin.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert done.returncode == 0, done.stdout + done.stderr
    assert ids, done.stdout
    assert not any(i.startswith("tests/adversarial/") for i in ids)  # marked by path
    assert not any("test_modules_have_iblutils_public_names" in i for i in ids)  # explicit
    assert any("test_name_is_visible_on_the_class" in i for i in ids)  # a unit test stays


PYTEST_COLLECT = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]


def _collect(seed: str) -> subprocess.Popen[str]:
    """``pytest --collect-only`` of the whole suite in a subprocess, with its own hash seed."""
    return subprocess.Popen(
        [*PYTEST_COLLECT, "-p", "no:randomly", "-p", "no:xdist", "tests"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": seed},
    )


@pytest.mark.slow
def test_two_collections_of_the_suite_are_the_same() -> None:
    """xdist workers each collect the suite and refuse to run when their lists differ;
    CI runs without xdist, so this catches it there: a test id (or order) that depends on
    something chosen at import, such as a free port, a clock or a set's hash order."""
    procs = [_collect("1"), _collect("2")]  # both at once: two cores
    runs = [proc.communicate(timeout=300) for proc in procs]
    ids = []
    for proc, (out, err) in zip(procs, runs, strict=True):
        assert proc.returncode == 0, out[-2000:] + err[-2000:]
        ids.append([line for line in out.splitlines() if "::" in line])
    assert len(ids[0]) > 1000, ids[0][-5:]
    first, second = ids
    differ = [(a, b) for a, b in zip(first, second, strict=False) if a != b]
    assert (differ, len(first)) == ([], len(second)), "ids chosen at import:\n" + "\n".join(
        f"{a}  !=  {b}" for a, b in differ[:20]
    )
