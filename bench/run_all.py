"""Run every ``bench/<package>.py`` and print one table (or JSON with ``--json``).

    python bench/run_all.py [--only PACKAGE ...] [--rounds N] [--json]

Bench modules are imported as ``bench.<package>`` so that their names never shadow
the peer libraries they measure against (``bench/drms.py`` imports the real ``drms``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run as a script, Python puts bench/ first on sys.path; take it off and put the repo root on.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from bench.harness import Result, measure  # noqa: E402

PACKAGES = ["command", "drms", "samp", "ifcb", "rig"]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table(results: list[Result]) -> str:
    head = ("package", "workload", "unit", "sciwire", "peer", "ratio", "target")
    rows = []
    for r in results:
        w = r.workload
        peer = _fmt(r.peer)
        if r.peer is None and w.reference is not None:
            peer = f"{_fmt(w.reference)} (ref)"
        if w.peer_name and r.peer is not None:
            peer = f"{peer} ({w.peer_name})"
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        target = "-" if w.target is None else f">={w.target:g}x"
        rows.append((r.package, w.name, w.unit, _fmt(r.sciwire), peer, ratio, target))
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
        for row in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", choices=PACKAGES, help="run these packages")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per workload (median)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    results: list[Result] = []
    for package in args.only or PACKAGES:
        if not (HERE / f"{package}.py").exists():
            print(f"{package}: no benchmark yet", file=sys.stderr)
            continue
        module = importlib.import_module(f"bench.{package}")
        with contextlib.ExitStack() as stack:
            for workload in module.workloads(stack):
                print(f"{package}: {workload.name}...", file=sys.stderr)
                results.append(measure(package, workload, args.rounds))
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
