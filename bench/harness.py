"""The one shape every ``bench/<package>.py`` exposes, and the runner's measuring loop.

A bench module defines::

    from bench.harness import Workload

    def workloads(stack: contextlib.ExitStack) -> list[Workload]: ...

It starts whatever servers it needs (registering their shutdown on *stack*) and
returns its workloads. Each side of a workload is a callable running one round and
returning a figure in ``unit`` (higher is better unless ``lower_is_better``).
``run_all.py`` alternates the two sides round by round and takes medians.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Workload:
    """One measured task, run by sciwire and (if it exists here) by the peer.

    Attributes:
        name: what is measured, e.g. "UDP confirmed round trips".
        unit: the unit of both figures, e.g. "msg/s".
        sciwire: runs one round with sciwire, returns the figure.
        peer: runs one round with the peer library, or None when no peer runs here.
        peer_name: the peer's name for the table.
        target: the ratio sciwire must reach (sciwire / peer), for the table's last column.
        reference: a documented peer figure to compare against when no peer runs here.
        lower_is_better: figures are times or sizes rather than rates.
    """

    name: str
    unit: str
    sciwire: Callable[[], float]
    peer: Callable[[], float] | None = None
    peer_name: str = ""
    target: float | None = None
    reference: float | None = None
    lower_is_better: bool = False
    notes: str = ""


@dataclass
class Result:
    """Medians over the rounds of one workload."""

    package: str
    workload: Workload
    sciwire: float
    peer: float | None
    rounds: int
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        other = self.peer if self.peer is not None else self.workload.reference
        if not other or not self.sciwire:
            return None
        if self.workload.lower_is_better:
            return other / self.sciwire
        return self.sciwire / other

    def as_dict(self) -> dict[str, Any]:
        w = self.workload
        return {
            "package": self.package,
            "workload": w.name,
            "unit": w.unit,
            "sciwire": self.sciwire,
            "peer": self.peer,
            "peer_name": w.peer_name,
            "reference": w.reference,
            "ratio": self.ratio,
            "target": w.target,
            "lower_is_better": w.lower_is_better,
            "rounds": self.rounds,
            "samples": self.samples,
            "notes": w.notes,
        }


def measure(package: str, workload: Workload, rounds: int) -> Result:
    """Run both sides *rounds* times, alternating which goes first, and take medians."""
    ours: list[float] = []
    theirs: list[float] = []
    for i in range(rounds):
        order = [("s", workload.sciwire), ("p", workload.peer)]
        if i % 2:
            order.reverse()
        for side, fn in order:
            if fn is None:
                continue
            figure = fn()
            (ours if side == "s" else theirs).append(figure)
    return Result(
        package,
        workload,
        statistics.median(ours),
        statistics.median(theirs) if theirs else None,
        rounds,
        {"sciwire": ours, "peer": theirs},
    )


def rate(count: int, fn: Callable[[], object]) -> float:
    """Call *fn* once (it does *count* operations) and return operations per second."""
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)
