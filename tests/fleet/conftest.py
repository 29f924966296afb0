"""Fixtures for the fleet tests: real nats-server processes, IFCB simulators, remote
rigs and bridges on loopback, every one closed by its fixture's finalizer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from sciwire.fleet import (
    AsyncFleet,
    Bridge,
    BridgeConfig,
    NatsServer,
)
from sciwire.ifcb import IFCBSimulator
from sciwire.rig import EchoProtocol, RemoteRig
from tests.clirun import Running, running
from tests.fleet.helpers import wait_connected
from tests.helpers import scale


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    server = NatsServer("test").start()
    yield server
    server.close()


@pytest.fixture
async def sims() -> AsyncIterator[list[IFCBSimulator]]:
    started = []
    for i in range(3):
        sim = IFCBSimulator(f"111-111-{i:03d}", rate=0, triggers=10, heartbeat_interval=0, seed=i)
        await sim.start()
        started.append(sim)
    yield started
    for sim in started:
        await sim.stop()


@pytest.fixture
async def rigs() -> AsyncIterator[list[RemoteRig]]:
    started = [
        RemoteRig(await EchoProtocol.server("udp://127.0.0.1:0", name=name))
        for name in ("cam", "ephys")
    ]
    yield started
    for rig in started:
        rig.close()


@pytest.fixture
async def make_bridge() -> AsyncIterator[Callable[..., Any]]:
    bridges: list[Bridge] = []

    async def make(config: BridgeConfig, wait: bool = True) -> Bridge:
        bridge = Bridge(config)
        bridges.append(bridge)
        await bridge.start(timeout=scale(30))
        if wait:
            await wait_connected(bridge)
        return bridge

    yield make
    for bridge in bridges:
        await bridge.stop()


@pytest.fixture
async def make_fleet() -> AsyncIterator[Callable[..., Any]]:
    fleets: list[AsyncFleet] = []

    async def make(*args: Any, **kwargs: Any) -> AsyncFleet:
        fleet = AsyncFleet(*args, **kwargs)
        fleets.append(fleet)
        await fleet.connect()
        return fleet

    yield make
    for fleet in fleets:
        await fleet.close()


@pytest.fixture
def cli() -> Iterator[Callable[..., Running]]:
    """Start `sciwire fleet ARGS` subprocesses; each is killed at the end if still running."""
    with contextlib.ExitStack() as stack:
        yield lambda *args: stack.enter_context(running("fleet", *args))
