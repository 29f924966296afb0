"""``sciwire demo``: each package's server side and client on loopback, one row each.

A package takes part by shipping ``sciwire.<package>.demo`` with a function
``run() -> DemoRow`` that starts its server on 127.0.0.1 (port 0), drives its client
against it, checks what came back, and stops everything it started.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass

import click

__all__ = ["DemoRow", "run_demo"]


@dataclass
class DemoRow:
    """What one package's demo did.

    Attributes:
        package: the package name.
        ran: what ran (servers and clients, transports).
        checked: what was verified.
        ok: whether every check held.
        seconds: wall time, filled in by the runner.
    """

    package: str
    ran: str
    checked: str
    ok: bool = True
    seconds: float = 0.0


def _has_demo(package: str) -> bool:
    try:
        return importlib.util.find_spec(f"sciwire.{package}.demo") is not None
    except ModuleNotFoundError:
        return False


def run_row(package: str) -> DemoRow:
    """Run one package's demo, turning any exception into a failed row."""
    start = time.perf_counter()
    try:
        module = importlib.import_module(f"sciwire.{package}.demo")
        row: DemoRow = module.run()
    except Exception as exc:
        logging.getLogger(__name__).debug("demo %s failed", package, exc_info=True)
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        row = DemoRow(package, "demo raised", detail, ok=False)
    row.seconds = time.perf_counter() - start
    return row


def _table(rows: list[DemoRow]) -> str:
    head = ("package", "result", "time", "what ran", "what was checked")
    cells = [
        (r.package, "ok" if r.ok else "FAILED", f"{r.seconds:.2f} s", r.ran, r.checked)
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
        for row in [head, *cells]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_demo(packages: Iterable[str]) -> int:
    """Run the demo rows of *packages*, print the table, return the exit code."""
    rows: list[DemoRow] = []
    missing: list[str] = []
    for package in packages:
        if not _has_demo(package):
            missing.append(package)
            continue
        click.echo(f"running {package}...", err=True)
        rows.append(run_row(package))
    if rows:
        click.echo(_table(rows))
    for package in missing:
        click.echo(f"{package}: not landed yet, no demo row")
    failed = [r.package for r in rows if not r.ok]
    if failed:
        click.echo(f"FAILED: {', '.join(failed)}", err=True)
        return 1
    return 0
