"""The blocking Fleet, from plain (non-async) code, against a bridge on another thread."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sciwire.core.portal import Portal
from sciwire.errors import PortalError
from sciwire.fleet import Bridge, CommandError, Fleet, NatsServer
from sciwire.ifcb import IFCBSimulator
from sciwire.rig import EchoProtocol, ExpMessage, RemoteRig
from tests.fleet.helpers import bridge_config, wait_connected
from tests.helpers import scale


@pytest.fixture
def site(nats_server: NatsServer) -> Iterator[tuple[NatsServer, IFCBSimulator]]:
    """A simulator, a rig and a bridge running on a background loop."""
    portal = Portal("fleet-site")
    portal.start()
    state: dict[str, Any] = {}

    async def up() -> None:
        sim = IFCBSimulator("222-222-222", rate=0, triggers=5, heartbeat_interval=0)
        await sim.start()
        rig = RemoteRig(await EchoProtocol.server("udp://127.0.0.1:0", name="cam"))
        bridge = Bridge(bridge_config([nats_server.url], [sim], [rig]))
        state.update(sim=sim, rig=rig, bridge=bridge)
        await bridge.start(timeout=scale(30))
        await wait_connected(bridge)

    async def down() -> None:
        if "bridge" in state:
            await state["bridge"].stop()
        if "sim" in state:
            await state["sim"].stop()
        if "rig" in state:
            state["rig"].close()

    try:
        portal.call(up(), scale(60))
        yield nats_server, state["sim"]
    finally:
        portal.call(down(), scale(30))
        portal.stop()


def test_blocking_fleet(site: tuple[NatsServer, IFCBSimulator]) -> None:
    server, sim = site
    fleet = Fleet(server.url)
    with pytest.raises(PortalError):  # not connected yet
        fleet.replay()
    with fleet:
        triggers: list[Any] = []
        rig_events: list[Any] = []
        fleet.on(("triggercontent",), triggers.append, instrument=sim.serial)
        hid = fleet.on(ExpMessage.any(), rig_events.append)
        fleet.replay(since="all")
        fleet.relay_message_to_host(sim.serial, "routine:runsample")
        assert fleet.rig("cam", "init", {"x": 1}) == {"cam": [{"x": 1}]}
        fleet.wait_for(lambda: len(triggers) >= 5 and len(rig_events) >= 1, scale(20))
        assert triggers[0].fields[0] == "triggercontent"
        assert rig_events[0].fields[0] is ExpMessage.EXPINIT
        fleet.unregister(hid)
        with pytest.raises(CommandError) as err:
            fleet.request("rig", "cam", "selfdestruct")
        assert err.value.code == "unknown-command"
        assert [b["bridge"] for b in fleet.bridges(0.3)] == ["test"]
        assert fleet.stream_info()["messages"] >= 6
    fleet.close()  # idempotent
