"""A bridge process killed and restarted mid-run: no duplicates, numbering resumes."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from sciwire.fleet import AsyncFleet, NatsServer
from sciwire.ifcb import IFCBSimulator
from tests.fleet.helpers import bridge_config, config_toml
from tests.helpers import scale


async def health(fleet: AsyncFleet, name: str) -> dict[str, Any] | None:
    for report in await fleet.bridges(0.2):
        if report["bridge"] == name:
            return report
    return None


async def wait_bridge(fleet: AsyncFleet, predicate: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + scale(timeout)
    while True:
        report = await health(fleet, "killme")
        if report is not None and predicate(report):
            return report
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"bridge never got there: {report}")


@pytest.mark.slow
async def test_bridge_killed_mid_run_restarts_without_duplicates(
    nats_server: NatsServer, sims: list[IFCBSimulator], make_fleet: Any, cli: Any, tmp_path: Path
) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text(config_toml(bridge_config([nats_server.url], sims, [], name="killme")))
    fleet = await make_fleet(nats_server.url)
    first = cli("bridge", str(path))
    await wait_bridge(fleet, lambda r: r["connected"] == 3)
    blasts = [asyncio.ensure_future(sim.blast(3000)) for sim in sims]
    await wait_bridge(fleet, lambda r: r["stored"] > 1000)
    first.proc.kill()  # mid-run, as a crash would: no flush, no goodbye
    first.proc.wait(10)
    await asyncio.gather(*blasts, return_exceptions=True)
    stored_before = (await fleet.stream_info())["messages"]
    second = cli("bridge", str(path))
    await wait_bridge(fleet, lambda r: r["connected"] == 3)
    for sim in sims:
        await sim.blast(500)
        sim.push(f"sentinel:{sim.serial}")  # the last message of the run
    reader = await make_fleet(nats_server.url)
    events: list[Any] = []
    reader.on((None,), lambda ev: events.append(ev.body))
    await reader.replay("all")
    await reader.wait_for(
        lambda: sum(ev["text"].startswith("sentinel:") for ev in events) == 3, scale(30)
    )
    report = await wait_bridge(fleet, lambda r: r["pending"] == 0)
    second.signal()  # SIGTERM: the bridge stops and exits
    info = await fleet.stream_info()
    assert info["messages"] > stored_before + 3 * 500
    # the whole stream read back: every instrument numbered 1..n once, in order
    assert len(events) == info["messages"]
    seqs: dict[str, list[int]] = defaultdict(list)
    hub: dict[str, list[int]] = defaultdict(list)
    for ev in events:
        seqs[ev["instrument"]].append(ev["seq"])
        hub[ev["instrument"]].append(ev["hub_seq"])
    for name in seqs:
        assert seqs[name] == list(range(1, len(seqs[name]) + 1)), name
        # no instrument message stored twice, none out of order
        assert all(a < b for a, b in itertools.pairwise(hub[name])), name
    assert report["duplicates"] == 0
