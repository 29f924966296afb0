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

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
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


# -- serial round trips: batches and placement --------------------------------------------
#
# A serial round trip between this process and a server process is as fast as the two
# processes' CPU work plus two wake-ups. On this VM a wake-up on another vCPU goes
# through the hypervisor (~50 us), one on the same vCPU does not, and which of the two
# the kernel picks changes from run to run with the load others put on the machine. So
# serial workloads are measured the same way for both libraries:
#
# * in BATCHES batches of BATCH_SECONDS each, keeping the best: load bursts from other
#   processes only ever slow a batch down (as ``timeit`` keeps the minimum), and both
#   sides are exposed for the same time whatever their speed;
# * left to the scheduler (how users run them: the row that carries the target), and
#   also pinned both ways, both processes on one vCPU and each on its own, to show the
#   spread placement alone causes.

BATCHES = 5
BATCH_SECONDS = 0.05

#: (vCPU of this process, vCPU of the server processes); None: left to the scheduler
Placement = tuple[int, int] | None


def placements() -> dict[str, Placement]:
    """The placements this machine allows: "free" always, "same vCPU" and "other vCPU"
    where affinity can be set (and the second where there are two vCPUs)."""
    out: dict[str, Placement] = {"free": None}
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        out["same vCPU"] = (cpus[0], cpus[0])
        if len(cpus) > 1:
            out["other vCPU"] = (cpus[0], cpus[1])
    return out


@contextlib.contextmanager
def placed(placement: Placement, pids: tuple[int, ...]) -> Iterator[None]:
    """Run this process on one vCPU and the server processes *pids* on another (or the
    same) for the duration of the block; nothing changes for ``None``."""
    if placement is None:
        yield
        return
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {placement[0]})
    for pid in pids:
        os.sched_setaffinity(pid, {placement[1]})
    try:
        yield
    finally:
        os.sched_setaffinity(0, mine)
        for pid in pids:
            with contextlib.suppress(OSError):  # the server may be gone
                os.sched_setaffinity(pid, mine)


def best_rate(
    chunk: Callable[[], object],
    size: int,
    placement: Placement = None,
    pids: tuple[int, ...] = (),
) -> Callable[[], float]:
    """One round: BATCHES batches of whole *chunk* calls (each doing *size*
    operations) lasting at least BATCH_SECONDS, placed; the best batch's ops/s."""

    def one_round() -> float:
        best = 0.0
        with placed(placement, pids):
            for _ in range(BATCHES):
                done = 0
                start = time.perf_counter()
                while True:
                    chunk()
                    done += size
                    elapsed = time.perf_counter() - start
                    if elapsed >= BATCH_SECONDS:
                        break
                best = max(best, done / elapsed)
        return best

    return one_round
