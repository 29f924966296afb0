"""Per-subject permissions with NATS users: the documented example, on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sciwire.errors import ConnectError
from sciwire.fleet import AsyncFleet, CommandError, NatsServer, PermissionDenied
from sciwire.rig import ExpMessage, ExpStatus
from tests.fleet.helpers import bridge_config
from tests.helpers import scale

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "fleet-auth.conf"


@pytest.fixture
def secured() -> Iterator[NatsServer]:
    server = NatsServer("secured", extra=EXAMPLE.read_text()).start()
    yield server
    server.close()


async def test_users_get_only_their_subjects(
    secured: NatsServer, sims: list, rigs: list, make_bridge: Any, make_fleet: Any
) -> None:
    config = bridge_config(
        [secured.url], sims[:2], rigs[:1], nats={"user": "bridge", "password": "bridge-secret"}
    )
    bridge = await make_bridge(config)
    watcher: AsyncFleet = await make_fleet(secured.url, ("watcher", "watcher-secret"))
    operator: AsyncFleet = await make_fleet(secured.url, ("operator", "operator-secret"))
    seen: list[Any] = []
    watcher.on((None,), seen.append)
    watcher.on(ExpMessage.any(), seen.append)
    await watcher.replay("all", durable="secure-watcher")
    # the operator may run a routine on the first IFCB and ask the rig's status
    await operator.relay_message_to_host(sims[0].serial, "routine:beads")
    assert await operator.rig("cam", "status", ExpStatus.CONNECTED) == {"cam": [0]}
    await watcher.wait_for(
        lambda: (
            any(ev.kind == "rig" for ev in seen) and any(ev.name == "triggercontent" for ev in seen)
        ),
        scale(20),
    )
    # ...and nothing else
    with pytest.raises(PermissionDenied, match=r"sciwire\.cmd\.ifcb\.111-111-001\.relay"):
        await operator.relay_message_to_host(sims[1].serial, "routine:beads")
    with pytest.raises(PermissionDenied):
        await operator.rig("cam", "start", "2026-01-01_1_m")
    # a watcher reads, it does not command
    with pytest.raises(PermissionDenied):
        await watcher.relay_message_to_host(sims[0].serial, "routine:beads")
    assert [r["bridge"] for r in await watcher.bridges(0.3)] == ["test"]
    assert bridge.health()["stored"] >= len(seen) > 0
    assert isinstance(PermissionDenied("x"), CommandError)


async def test_wrong_password_is_a_connect_error(secured: NatsServer) -> None:
    fleet = AsyncFleet(secured.url, ("watcher", "wrong"), timeout=scale(5))
    with pytest.raises(ConnectError, match=r"(?i)authoriz"):
        await fleet.connect()
    await fleet.close()
