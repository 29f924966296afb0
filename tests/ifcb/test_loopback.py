"""Our IFCB client against our simulator over real loopback sockets."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from sciwire.errors import ConnectError, ConnectionClosed
from sciwire.ifcb import (
    AsyncIFCBClient,
    HandshakeError,
    HubClient,
    HubInvocationError,
    IFCBClient,
    IFCBSimulator,
    RoiImage,
    UnknownMessage,
)

SERIAL = "111-111-111"
FAST = (0.05, 0.1, 0.2)


#: set whenever a client receives a message or the simulated host a command
PROGRESS: list[asyncio.Event] = []


def _poke(*_: Any) -> None:
    for event in PROGRESS:
        event.set()


@pytest.fixture
async def sim() -> AsyncIterator[IFCBSimulator]:
    PROGRESS[:] = [asyncio.Event()]
    simulator = IFCBSimulator(SERIAL, rate=0, triggers=6, heartbeat_interval=0.2)
    command = simulator.host_command

    def host_command(text: str) -> None:
        command(text)
        _poke()

    simulator.host_command = host_command  # type: ignore[method-assign]
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def make_client(sim: IFCBSimulator) -> AsyncIterator[Callable[..., AsyncIFCBClient]]:
    clients: list[AsyncIFCBClient] = []

    def make(**options: Any) -> AsyncIFCBClient:
        options.setdefault("reconnect_delays", FAST)
        client = AsyncIFCBClient(sim.url.replace("http", "ws"), SERIAL, **options)
        client.on_any_message(_poke)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.disconnect()


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    """Wait until *predicate* holds, re-checking each time a message or command arrives."""
    progress = PROGRESS[0]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        progress.clear()
        await asyncio.wait_for(progress.wait(), max(0.0, deadline - loop.time()))


async def test_connect_registers_and_refreshes(
    sim: IFCBSimulator,
    make_client: Callable[..., AsyncIFCBClient],
    scaled: Callable[[float], float],
) -> None:
    client = make_client()
    got: dict[str, Any] = {}
    started: list[Any] = []
    version = asyncio.Event()
    client.on_started(started.append)
    client.on(("valuechanged", "hostversion"), lambda *f: (got.update(v=f), version.set()))
    client.on(("valuechanged", "pausestate"), lambda *f: got.update(p=f))
    await client.connect()
    await asyncio.wait_for(version.wait(), scaled(5))
    assert started == [[SERIAL]]
    assert sim.commands[:2] == ["Client connected.", "refresh"]
    assert got["v"] == ("valuechanged", "hostversion", "sciwire-sim 1.0")
    assert got["p"] == ("valuechanged", "pausestate", False)  # a real boolean
    await client.disconnect()
    await until(lambda: "Client disconnected." in sim.commands, scaled(5))
    assert not client.connected


async def test_patterns_wildcards_unregister_and_any_message(
    sim: IFCBSimulator,
    make_client: Callable[..., AsyncIFCBClient],
    scaled: Callable[[float], float],
) -> None:
    client = make_client()
    calls: dict[str, list[tuple[Any, ...]]] = {"all": [], "wild": [], "long": [], "gone": []}
    raw: list[list[Any]] = []
    client.on(("syringetrack",), lambda *f: calls["all"].append(f))
    client.on((None, None, "started"), lambda *f: calls["wild"].append(f))
    client.on(("syringetrack", 1.0, "extra"), lambda *f: calls["long"].append(f))
    gone = client.on(("syringetrack",), lambda *f: calls["gone"].append(f))
    client.on_any_message(raw.append)
    await client.connect()
    await client.wait_started(scaled(5))
    # the greeting's refresh answers with the state; after it, nothing else arrives unasked
    await until(lambda: "refresh" in sim.commands, scaled(5))
    sim.push("syringetrack:1.0")
    sim.push("valuechanged:acquisition:started")
    await until(lambda: len(calls["wild"]) == 1 and len(calls["all"]) == 1, scaled(5))
    client.unregister(gone)
    with pytest.raises(KeyError):
        client.unregister(gone)
    sim.push("syringetrack:2.5")
    await until(lambda: len(calls["all"]) == 2, scaled(5))
    assert calls["all"] == [("syringetrack", 1.0), ("syringetrack", 2.5)]
    assert calls["wild"] == [("valuechanged", "acquisition", "started")]
    assert calls["long"] == []  # a pattern longer than the message does not match
    assert calls["gone"] == [("syringetrack", 1.0)]
    assert raw[-1][:2] == [SERIAL, "host"] and raw[-1][3] == "syringetrack:2.5"
    assert isinstance(raw[-1][2], int)


async def test_routine_runs_a_plausible_sequence(
    sim: IFCBSimulator,
    make_client: Callable[..., AsyncIFCBClient],
    scaled: Callable[[float], float],
) -> None:
    client = make_client()
    seen: list[str] = []
    rois: list[tuple[int, int, RoiImage]] = []
    daq_peaks: list[float] = []
    files: dict[str, list[Any]] = {}
    stopped = asyncio.Event()
    client.on((None,), lambda *f: seen.append(f[0] if f[0] != "valuechanged" else f"vc:{f[1]}"))
    client.on(
        ("triggercontent",), lambda _, daq, r: (rois.extend(r), daq_peaks.append(daq["PeakA"]))
    )
    client.on(("file",), lambda _, kind, *rest: files.setdefault(kind, []).append(rest))
    client.on(("valuechanged", "acquisition", "stopped"), lambda *f: stopped.set())
    await client.connect()
    await client.wait_started(scaled(5))
    await client.relay_message_to_host("routine:runsample")
    await asyncio.wait_for(stopped.wait(), scaled(10))
    assert seen.count("triggercontent") == 6 and seen.count("syringetrack") == 6
    assert seen.count("triggerchanged") == 7 and "graphchanged" in seen
    assert all(isinstance(p, float) for p in daq_peaks)
    assert rois and all(
        isinstance(t, int) and isinstance(left, int) and img.data.startswith(b"\x89PNG\r\n\x1a\n")
        for t, left, img in rois
    )
    assert {"start", "chunk", "end", "list"} <= set(files)
    assert client.malformed == 0


async def test_daq_and_interactive_commands_change_state(
    sim: IFCBSimulator,
    make_client: Callable[..., AsyncIFCBClient],
    scaled: Callable[[float], float],
) -> None:
    client = make_client()
    got: list[tuple[Any, ...]] = []
    done = asyncio.Event()
    client.on(("valuechanged", "switchauxpower1"), lambda *f: got.append(f))
    client.on(("valuechanged", "interactive"), lambda *f: got.append(f))
    client.on(("valuechanged", "interactive", "stopped"), lambda *f: done.set())
    await client.connect()
    await client.wait_started(scaled(5))
    await until(lambda: len(got) == 1, scaled(5))  # from the refresh
    got.clear()
    await client.relay_message_to_host("daq:switchauxpower1:1")
    await client.relay_message_to_host('interactive:load:{"steps":[{"cmd":"wait:5"}]}')
    await client.relay_message_to_host("interactive:start")
    await asyncio.wait_for(done.wait(), scaled(5))
    assert got == [
        ("valuechanged", "switchauxpower1", True),
        ("valuechanged", "interactive", "load", {"steps": [{"cmd": "wait:5"}]}),
        ("valuechanged", "interactive", "started"),
        ("valuechanged", "interactive", "stopped"),
    ]
    assert sim.state["switchauxpower1"] is True


async def test_handler_exception_is_logged_and_the_stream_goes_on(
    sim: IFCBSimulator,
    make_client: Callable[..., AsyncIFCBClient],
    scaled: Callable[[float], float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client()
    good: list[float] = []

    def bad(*fields: Any) -> None:
        raise RuntimeError("handler bug")

    client.on(("syringetrack",), bad)
    client.on(("syringetrack",), lambda _, v: good.append(v))
    await client.connect()
    await client.wait_started(scaled(5))
    with caplog.at_level(logging.ERROR):
        for i in range(3):
            sim.push(f"syringetrack:{i}.5")
        await until(lambda: len(good) == 3, scaled(5))
    assert good == [0.5, 1.5, 2.5]
    assert client.handlers.errors == 3
    assert "handler bug" in caplog.text


async def test_malformed_dropped_and_unknown_delivered(
    sim: IFCBSimulator,
    make_client: Callable[..., AsyncIFCBClient],
    scaled: Callable[[float], float],
) -> None:
    client = make_client()
    got: list[Any] = []
    client.on((None,), lambda *f: got.append(f))
    await client.connect()
    await client.wait_started(scaled(5))
    await until(lambda: len(got) > 50, scaled(5))  # the refresh
    got.clear()
    sim.push("syringetrack:not-a-number")
    sim.push("newfeature:1:2")
    sim.push("syringetrack:1")
    await until(lambda: len(got) == 2, scaled(5))
    assert got == [("newfeature", "1", "2"), ("syringetrack", 1.0)]
    assert client.malformed == 1


async def test_reconnect_after_restart_reregisters_and_handlers_fire(
    sim: IFCBSimulator,
    make_client: Callable[..., AsyncIFCBClient],
    scaled: Callable[[float], float],
) -> None:
    client = make_client()
    got: list[float] = []
    reconnected = asyncio.Event()
    client.on(("syringetrack",), lambda _, v: got.append(v))
    client.on_reconnect(reconnected.set)
    await client.connect()
    await client.wait_started(scaled(5))
    await until(lambda: sim.commands.count("refresh") == 1, scaled(5))  # the greeting's
    await sim.restart()
    await asyncio.wait_for(reconnected.wait(), scaled(10))
    await client.wait_started(scaled(5))
    await until(lambda: sim.commands.count("refresh") == 2, scaled(5))
    assert SERIAL in {c.items.get("serial") for c in sim.clients.values()}
    sim.push("syringetrack:4.25")
    await until(lambda: got == [4.25], scaled(5))
    assert client.reconnects == 1


async def test_dropped_socket_reconnects(
    sim: IFCBSimulator,
    make_client: Callable[..., AsyncIFCBClient],
    scaled: Callable[[float], float],
) -> None:
    client = make_client()
    reconnected = asyncio.Event()
    client.on_reconnect(reconnected.set)
    await client.connect()
    await client.wait_started(scaled(5))
    assert sim.drop_connections() == 1
    await asyncio.wait_for(reconnected.wait(), scaled(10))
    await client.wait_started(scaled(5))
    assert len(sim.clients) == 1


async def test_half_open_connection_detected_by_server_timeout(
    sim: IFCBSimulator,
    make_client: Callable[..., AsyncIFCBClient],
    scaled: Callable[[float], float],
) -> None:
    sim.heartbeat_interval = 0  # only pings could keep the client's timer happy
    client = make_client(keep_alive_interval=0.2, server_timeout=scaled(1.0))
    reconnected = asyncio.Event()
    client.on_reconnect(reconnected.set)
    await client.connect()
    await client.wait_started(scaled(5))
    assert sim.freeze_connections() == 1  # the socket stays up but goes silent
    await asyncio.wait_for(reconnected.wait(), scaled(10))
    assert client.reconnects == 1
    got = asyncio.Event()
    client.on(("client", "reset"), lambda *f: got.set())
    await client.wait_started(scaled(5))
    sim.push("client:reset", [c for c in sim.clients.values() if not c.frozen])
    await asyncio.wait_for(got.wait(), scaled(5))


async def test_hub_disconnect_says_goodbye_and_stops(
    sim: IFCBSimulator,
    make_client: Callable[..., AsyncIFCBClient],
    scaled: Callable[[float], float],
) -> None:
    client = make_client()
    await client.connect()
    await client.wait_started(scaled(5))
    hub = client._hub
    assert hub is not None
    for conn in sim.clients.values():
        conn.send("disconnect")
    await asyncio.wait_for(asyncio.shield(hub.closed), scaled(5))
    await until(lambda: "Client disconnected." in sim.commands, scaled(5))
    assert not client.connected
    assert "Client disconnected." in sim.commands
    assert client.reconnects == 0
    with pytest.raises(ConnectionClosed):
        await client.relay_message_to_host("refresh")


async def test_hub_client_invoke_completion_and_errors(
    sim: IFCBSimulator, scaled: Callable[[float], float]
) -> None:
    hub = HubClient(sim.url)
    await hub.start()
    try:
        assert await hub.invoke("startAsClient", [SERIAL], timeout=scaled(5)) is None
        with pytest.raises(HubInvocationError, match="Unknown hub method"):
            await hub.invoke("noSuchMethod", [], timeout=scaled(5))
        with pytest.raises(HubInvocationError):
            await hub.invoke("startAsClient", [42], timeout=scaled(5))
    finally:
        await hub.stop()
    assert await hub.closed is None
    with pytest.raises(ConnectionClosed):
        await hub.send("x", [])


async def test_connect_errors(sim: IFCBSimulator, scaled: Callable[[float], float]) -> None:
    client = AsyncIFCBClient("ws://127.0.0.1:1/ifcbHub", SERIAL, handshake_timeout=scaled(5))
    with pytest.raises(ConnectError):
        await client.connect()
    async with aiohttp.ClientSession() as session:
        ws_url = sim.url.replace("http", "ws")
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(ws_url + "?id=unknown")
        assert info.value.status == 404
        async with session.post(sim.url + "/negotiate?negotiateVersion=1") as resp:
            token = (await resp.json())["connectionToken"]
        ws = await session.ws_connect(f"{ws_url}?id={token}")
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(f"{ws_url}?id={token}")
        assert info.value.status == 409
        await ws.send_str('{"protocol":"messagepack","version":1}\x1e')
        reply = await ws.receive(timeout=scaled(5))
        assert "error" in reply.data
        await ws.close()


async def test_handshake_refused_raises(
    sim: IFCBSimulator, scaled: Callable[[float], float]
) -> None:
    hub = HubClient(sim.url, handshake_timeout=scaled(5))
    real = hub._open

    async def open_with_bad_version() -> None:
        from sciwire.ifcb import _signalr as signalr

        original = signalr.SignalRConnection.handshake_request

        def bad(
            self: signalr.SignalRConnection, now: float, protocol: str = "json", version: int = 1
        ) -> str:
            return original(self, now, protocol, 7)

        signalr.SignalRConnection.handshake_request = bad  # type: ignore[method-assign]
        try:
            await real()
        finally:
            signalr.SignalRConnection.handshake_request = original  # type: ignore[method-assign]

    hub._open = open_with_bad_version  # type: ignore[method-assign]
    with pytest.raises(HandshakeError, match="version 7"):
        await hub.start()


def test_blocking_client_api(scaled: Callable[[float], float]) -> None:
    from sciwire.core.portal import Portal

    with Portal("sim") as portal:
        simulator = IFCBSimulator(SERIAL, rate=0, triggers=3)
        portal.call(simulator.start())
        try:
            client = IFCBClient(simulator.url.replace("http", "ws"), SERIAL, reconnect_delays=FAST)
            stopped = threading.Event()
            triggers: list[int] = []
            unknown: list[Any] = []
            client.on(("triggerchanged", None, "processed"), lambda _, n, *r: triggers.append(n))
            client.on(("acquisition",), unknown.append)
            client.on(("valuechanged", "acquisition", "stopped"), lambda *f: stopped.set())
            client.connect()
            try:
                client.wait_started(scaled(5))
                client.relay_message_to_host("routine:runsample")
                assert stopped.wait(scaled(10))
            finally:
                client.disconnect()
            client.disconnect()  # idempotent
            assert triggers == [1, 2, 3]
            assert unknown == []
            with pytest.raises(ConnectionClosed):
                client.relay_message_to_host("refresh")
        finally:
            portal.call(simulator.stop())


def test_unknown_message_type_is_list() -> None:
    assert issubclass(UnknownMessage, list)
