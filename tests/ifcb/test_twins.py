"""The blocking IFCBClient and the asyncio AsyncIFCBClient are one client: the same
scenarios (connect, handlers, relay_message_to_host, reconnect, use before connect and
after close) run on both against a real simulator on loopback, and what each observed
(handler calls, the host's commands, errors with their messages) must be equal."""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from sciwire.core.portal import Portal
from sciwire.errors import SciwireError
from sciwire.ifcb import AsyncIFCBClient, IFCBClient, IFCBSimulator

SERIAL = "111-111-111"
FAST = (0.05, 0.1, 0.2)
T = TypeVar("T")


class _Handlers:
    """Handler registration, which both clients take the same way."""

    client: AsyncIFCBClient | IFCBClient

    def on(self, pattern: tuple[Any, ...], callback: Callable[..., Any]) -> int:
        return self.client.on(pattern, callback)

    def on_reconnect(self, callback: Callable[[], Any]) -> None:
        self.client.on_reconnect(callback)

    def on_started(self, callback: Callable[..., Any]) -> None:
        self.client.on_started(callback)


class AsyncTwin(_Handlers):
    """AsyncIFCBClient driven from the test thread through a portal of its own."""

    def __init__(self, url: str, portal: Portal, timeout: float) -> None:
        self.client = AsyncIFCBClient(url, SERIAL, reconnect_delays=FAST)
        self.portal = portal
        self.timeout = timeout

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.portal.call(coro, self.timeout)

    def connect(self) -> None:
        self._run(self.client.connect())

    def wait_started(self, timeout: float) -> None:
        self._run(self.client.wait_started(timeout))

    def relay_message_to_host(self, message: str) -> None:
        self._run(self.client.relay_message_to_host(message))

    def disconnect(self) -> None:
        self._run(self.client.disconnect())

    @property
    def connected(self) -> bool:
        return self.client.connected


class BlockingTwin(_Handlers):
    """IFCBClient as a user calls it."""

    def __init__(self, url: str, timeout: float) -> None:
        self.client = IFCBClient(url, SERIAL, timeout=timeout, reconnect_delays=FAST)

    def connect(self) -> None:
        self.client.connect()

    def wait_started(self, timeout: float) -> None:
        self.client.wait_started(timeout)

    def relay_message_to_host(self, message: str) -> None:
        self.client.relay_message_to_host(message)

    def disconnect(self) -> None:
        self.client.disconnect()

    @property
    def connected(self) -> bool:
        return self.client.client.connected


Twin = AsyncTwin | BlockingTwin


@pytest.fixture
def sims() -> Iterator[Callable[[], tuple[Portal, IFCBSimulator]]]:
    """Simulators, each on a portal of its own, stopped even when the test fails."""
    made: list[tuple[Portal, IFCBSimulator]] = []

    def make() -> tuple[Portal, IFCBSimulator]:
        portal = Portal("twin-sim")
        portal.start()
        sim = IFCBSimulator(SERIAL, rate=0, triggers=3, heartbeat_interval=0)
        made.append((portal, sim))
        portal.call(sim.start(), 10)
        return portal, sim

    yield make
    for portal, sim in made:
        try:
            portal.call(sim.stop(), 10)
        finally:
            portal.stop()


@pytest.fixture
def twins(
    sims: Callable[[], tuple[Portal, IFCBSimulator]], scaled: Callable[[float], float]
) -> Iterator[Callable[[str], tuple[Twin, Portal, IFCBSimulator]]]:
    """A twin of either form on a fresh simulator; disconnected at the end."""
    made: list[Twin] = []
    portals: list[Portal] = []

    def make(kind: str) -> tuple[Twin, Portal, IFCBSimulator]:
        sim_portal, sim = sims()
        url = sim.url.replace("http", "ws")
        twin: Twin
        if kind == "async":
            portal = Portal("twin-client")
            portal.start()
            portals.append(portal)
            twin = AsyncTwin(url, portal, scaled(10))
        else:
            twin = BlockingTwin(url, scaled(10))
        made.append(twin)
        return twin, sim_portal, sim

    yield make
    for twin in made:
        with contextlib.suppress(SciwireError):
            twin.disconnect()
    for portal in portals:
        portal.stop()


def _error(call: Callable[[], Any]) -> tuple[type[BaseException], str] | None:
    try:
        call()
    except SciwireError as exc:
        return type(exc), str(exc)
    return None


async def _drop(sim: IFCBSimulator) -> int:
    return sim.drop_connections()


def _until(fields: queue.Queue[tuple[Any, ...]], value: bool, wait: float) -> tuple[Any, ...]:
    """The first handler call with *value* (the greeting's refresh reports the state
    first)."""
    while True:
        got = fields.get(timeout=wait)
        if got[-1] is value:
            return got


def _scenario(twin: Twin, sim_portal: Portal, sim: IFCBSimulator, wait: float) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    aux: queue.Queue[tuple[Any, ...]] = queue.Queue()
    reconnected: queue.Queue[str] = queue.Queue()
    started: queue.Queue[Any] = queue.Queue()
    twin.on(("valuechanged", "switchauxpower1"), lambda *fields: aux.put(fields))
    twin.on_reconnect(lambda: reconnected.put("reconnect"))
    twin.on_started(started.put)
    # use before connect
    seen["relay before connect"] = _error(lambda: twin.relay_message_to_host("refresh"))
    seen["wait before connect"] = _error(lambda: twin.wait_started(wait))
    # connect: registered, greeted the host
    twin.connect()
    twin.wait_started(wait)
    seen["started"] = started.get(timeout=wait)
    seen["connected"] = twin.connected
    # a command to the host; its answer reaches the handler with typed fields
    twin.relay_message_to_host("daq:switchauxpower1:1")
    seen["handler"] = _until(aux, True, wait)
    # reconnect: the hub drops us; the client comes back, registers, handlers stay
    assert sim_portal.call(_drop(sim), wait) == 1
    seen["reconnect"] = reconnected.get(timeout=wait)
    twin.wait_started(wait)
    seen["started again"] = started.get(timeout=wait)
    twin.relay_message_to_host("daq:switchauxpower1:0")
    seen["handler again"] = _until(aux, False, wait)
    # close, then use
    twin.disconnect()
    seen["connected after close"] = twin.connected
    seen["relay after close"] = _error(lambda: twin.relay_message_to_host("refresh"))
    seen["wait after close"] = _error(lambda: twin.wait_started(wait))
    seen["close again"] = _error(twin.disconnect)
    # what the host heard (the simulator's record), in order, up to the goodbye (sent
    # before the socket closed)
    deadline = time.monotonic() + wait
    while "Client disconnected." not in sim.commands:
        assert time.monotonic() < deadline, sim.commands
        time.sleep(0.01)
    seen["host heard"] = list(sim.commands)
    return seen


def test_both_forms_behave_alike(
    twins: Callable[[str], tuple[Twin, Portal, IFCBSimulator]],
    scaled: Callable[[float], float],
) -> None:
    results = {}
    for kind in ("async", "blocking"):
        twin, sim_portal, sim = twins(kind)
        results[kind] = _scenario(twin, sim_portal, sim, scaled(10))
    assert results["async"] == results["blocking"]
    got = results["blocking"]
    # and what they agree on is what the reference client does
    assert got["relay before connect"][1] == "not connected"
    assert got["relay after close"] == got["relay before connect"]
    assert got["wait after close"] == got["relay before connect"]
    assert got["handler"] == ("valuechanged", "switchauxpower1", True)
    assert got["handler again"] == ("valuechanged", "switchauxpower1", False)
    assert got["connected"] and not got["connected after close"]
    assert got["close again"] is None
    assert got["host heard"][:2] == ["Client connected.", "refresh"]
    assert got["host heard"].count("refresh") == 2  # greeted again after the reconnect
    assert got["host heard"][-1] == "Client disconnected."
