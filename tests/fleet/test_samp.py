"""The bridge as a snooping SAMP client: what the hub broadcasts reaches fleet consumers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sciwire.fleet import SampSpec
from sciwire.samp import AsyncSAMPHub, AsyncSAMPIntegratedClient
from tests.fleet.helpers import bridge_config
from tests.helpers import scale


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[AsyncSAMPHub]:
    h = AsyncSAMPHub(lockfile=tmp_path / "lock", web_profile=False)
    await h.start()
    yield h
    await h.stop()


async def test_samp_broadcasts_reach_consumers(
    nats_server: Any, hub: AsyncSAMPHub, make_bridge: Any, make_fleet: Any
) -> None:
    config = bridge_config([nats_server.url], [], [])
    config.samp = SampSpec(name="desk", lockfile=str(hub.lockfile))
    bridge = await make_bridge(config)
    fleet = await make_fleet(nats_server.url)
    tables: list[Any] = []
    everything: list[Any] = []
    fleet.on("table.*", tables.append)
    fleet.on("*", everything.append)
    await fleet.replay("all")
    sender = AsyncSAMPIntegratedClient(name="sender")
    await sender.connect(hub_params=hub.params)
    try:
        await sender.enotify_all("table.load.votable", url="file:///tmp/t.vot", rows=3)
        await sender.enotify_all("coord.pointAt.sky", ra=10.5, dec=-1)
        # a call is published too, and answered by the bridge, so the caller is not left waiting
        bridge_id = bridge.samp_client.get_public_id()
        reply = await sender.ecall_and_wait(bridge_id, "table.highlight.row", "10", row="7")
        wanted = {"table.load.votable", "coord.pointAt.sky", "table.highlight.row"}
        await fleet.wait_for(lambda: wanted <= {ev.name for ev in everything}, scale(20))
    finally:
        await sender.disconnect()
    assert [ev.name for ev in tables][:1] == ["table.load.votable"]
    first = tables[0]
    assert first.kind == "samp" and first.instrument == "desk"
    # the hub's own samp.hub.event.* notifications are events too, numbered with the rest
    assert [ev.seq for ev in everything] == list(range(1, len(everything) + 1))
    assert first.subject == "sciwire.samp.table.load.votable"
    assert first.data == {"url": "file:///tmp/t.vot", "rows": 3}  # values travel as sent
    assert "coord.pointAt.sky" in [ev.name for ev in everything]
    assert bridge.health()["instruments"][0]["connected"]
    assert reply["samp.status"] == "samp.ok"
    call = next(ev for ev in everything if ev.name == "table.highlight.row")
    assert call.body["call"] is True and call.data == {"row": "7"}
