"""Run every ``bench/<package>.py`` and print one table (or JSON with ``--json``).

    python bench/run_all.py [--only PACKAGE ...] [--rounds N] [--json] [--loop KIND]

Bench modules are imported as ``bench.<package>`` so that their names never shadow
the peer libraries they measure against (``bench/drms.py`` imports the real ``drms``).
Each package runs in a fresh interpreter of its own, so that no package's figures
depend on what the packages before it left in the process (threads, heap, imports).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Run as a script, Python puts bench/ first on sys.path; take it off and put the repo root on.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from bench.harness import measure  # noqa: E402

PACKAGES = ["command", "drms", "samp", "ifcb", "rig"]
#: packages benched a second time on uvloop (rows "<package> (uvloop)"), when installed
UVLOOP_PACKAGES = ["command", "drms", "rig"]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table(results: list[dict[str, Any]]) -> str:
    head = ("package", "workload", "unit", "sciwire", "peer", "ratio", "target")
    rows = []
    for r in results:
        peer = _fmt(r["peer"])
        if r["peer"] is None and r["reference"] is not None:
            peer = f"{_fmt(r['reference'])} (ref)"
        if r["peer_name"] and r["peer"] is not None:
            peer = f"{peer} ({r['peer_name']})"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        target = "-" if r["target"] is None else f">={r['target']:g}x"
        figure = _fmt(r["sciwire"])
        rows.append((r["package"], r["workload"], r["unit"], figure, peer, ratio, target))
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
        for row in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _in_child(package: str, rounds: int, loop: str = "asyncio") -> list[dict[str, Any]]:
    """Run one package's bench in a fresh interpreter; its results."""
    argv = [sys.executable, __file__, "--only", package, "--rounds", str(rounds), "--json"]
    argv += ["--loop", loop]
    # the servers a bench starts through the `sciwire` command follow SCIWIRE_LOOP (and
    # would take uvloop when it is installed): they run on the row's loop too
    env = {**os.environ, "SCIWIRE_LOOP": loop}
    out = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True, env=env).stdout
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def _against_asyncio(
    rows: list[dict[str, Any]], results: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """uvloop rows with sciwire's asyncio figure of the same workload as their peer."""
    for row in rows:
        package = row["package"].removesuffix(" (uvloop)")
        for base in results:
            if base["package"] == package and base["workload"] == row["workload"]:
                row["peer"], row["peer_name"] = base["sciwire"], "sciwire on asyncio"
                if row["sciwire"] and base["sciwire"]:
                    mine, theirs = row["sciwire"], base["sciwire"]
                    row["ratio"] = theirs / mine if row["lower_is_better"] else mine / theirs
                row["target"] = None
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", choices=PACKAGES, help="run these packages")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per workload (median)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop", "both"],
        default="both",
        help="event loop (both: every package on asyncio, then the uvloop rows, where "
        "only sciwire runs and is compared with its own asyncio figure)",
    )
    args = parser.parse_args(argv)
    if args.loop == "uvloop":
        from sciwire.core.loops import choose_loop

        choose_loop("uvloop")

    packages = args.only or PACKAGES
    results: list[dict[str, Any]] = []
    for package in packages:
        if not (HERE / f"{package}.py").exists():
            print(f"{package}: no benchmark yet", file=sys.stderr)
            continue
        if len(packages) > 1 or args.loop == "both":
            results += _in_child(package, args.rounds)
            continue
        module = importlib.import_module(f"bench.{package}")
        label = f"{package} (uvloop)" if args.loop == "uvloop" else package
        with contextlib.ExitStack() as stack:
            for workload in module.workloads(stack):
                if args.loop == "uvloop":  # sciwire alone: the peers are not ours to move
                    workload = dataclasses.replace(workload, peer=None, peer_name="")
                print(f"{label}: {workload.name}...", file=sys.stderr)
                results.append(measure(label, workload, args.rounds).as_dict())
    if args.loop == "both" and importlib.util.find_spec("uvloop") is not None:
        for package in packages:
            if package in UVLOOP_PACKAGES and (HERE / f"{package}.py").exists():
                results += _against_asyncio(_in_child(package, args.rounds, "uvloop"), results)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
