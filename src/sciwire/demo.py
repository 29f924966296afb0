"""``sciwire demo``: each package's server side and client on loopback, one row each.

A package takes part by shipping ``sciwire.<package>.demo`` with a function
``run() -> DemoRow`` that starts its server on 127.0.0.1 (port 0), drives its client
against it, checks what came back, and stops everything it started.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import textwrap
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


#: Width the demo's output fits (a terminal's default is 80-100 columns).
WIDTH = 100

#: One command per package to try after the demo.
TRY_NEXT: dict[str, str] = {
    "command": "sciwire command serve --fast; sciwire command call get_running_version",
    "drms": "sciwire drms emulate -p 8080; sciwire drms series -s http://127.0.0.1:8080/",
    "samp": "sciwire samp hub; sciwire samp snoop; sciwire samp send samp.app.ping",
    "ifcb": "sciwire ifcb sim; sciwire ifcb monitor ws://127.0.0.1:8092/ifcbHub 111-111-111",
    "rig": "sciwire rig serve udp://127.0.0.1:11001 --reply; sciwire rig send THAT-URI EXPINIT",
}


def _table(rows: list[DemoRow]) -> str:
    # package, result and time in columns; what ran and what was checked wrapped beside
    # them, so every line fits WIDTH columns whatever a package reports
    head = ("package", "result", "time")
    cells = [(r.package, "ok" if r.ok else "FAILED", f"{r.seconds:.2f} s") for r in rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]

    def left(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + "  "

    indent = len(left(head))
    text_width = max(30, WIDTH - indent)
    lines = [left(head) + "what ran; what was checked"]
    lines.append("  ".join("-" * w for w in widths) + "  " + "-" * min(text_width, 26))
    for row, cell in zip(rows, cells, strict=True):
        wrapped = textwrap.wrap(f"ran {row.ran}", text_width, subsequent_indent="  ")
        wrapped += textwrap.wrap(f"checked {row.checked}", text_width, subsequent_indent="  ")
        for i, part in enumerate(wrapped or [""]):
            lines.append(((left(cell) if i == 0 else " " * indent) + part).rstrip())
    return "\n".join(lines)


def _try_next(packages: Iterable[str]) -> list[str]:
    lines = ["try next:"]
    for package in packages:
        hint = TRY_NEXT.get(package)
        if hint:
            lines.append(f"  {package:<8}{hint}")
    return lines


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
    if rows:
        click.echo(f"{len(rows) - len(failed)}/{len(rows)} ok")
        for line in _try_next(r.package for r in rows if r.ok):
            click.echo(line)
    if failed:
        click.echo(f"FAILED: {', '.join(failed)}", err=True)
        return 1
    return 0
