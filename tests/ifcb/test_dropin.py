"""pyifcbclient's public surface under sciwire.ifcb: module paths, IFCBClient's members,
``protocol.fixed_length_responses`` and ``parse_response(m)``, ``python -m sciwire.ifcb``,
each against the real simulator where a connection is involved."""

from __future__ import annotations

import datetime
import inspect
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import sciwire.ifcb
from sciwire.core.portal import Portal
from sciwire.errors import ConnectionClosed
from sciwire.ifcb import IFCBSimulator, RoiImage, protocol
from sciwire.ifcb import ifcbclient as ifcbclient_module
from sciwire.ifcb.ifcbclient import ClientHubConnection, IFCBClient

SERIAL = "111-111-111"
FAST = (0.05, 0.1, 0.2)


@pytest.fixture
def sim_portal() -> Iterator[tuple[Portal, IFCBSimulator]]:
    with Portal("sim") as portal:
        simulator = IFCBSimulator(SERIAL, rate=0, triggers=3, heartbeat_interval=0.05)
        portal.call(simulator.start())
        try:
            yield portal, simulator
        finally:
            portal.call(simulator.stop())


@pytest.fixture
def make_client(
    sim_portal: tuple[Portal, IFCBSimulator],
) -> Iterator[Callable[..., IFCBClient]]:
    made: list[IFCBClient] = []

    def make(cls: type[IFCBClient] = IFCBClient, **options: Any) -> IFCBClient:
        options.setdefault("reconnect_delays", FAST)
        url = sim_portal[1].url.replace("http", "ws")
        client = cls(url, SERIAL, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.disconnect()


# -- module tree and signatures -----------------------------------------------------------


def test_module_tree_is_pyifcbclients() -> None:
    assert ifcbclient_module.IFCBClient is sciwire.ifcb.IFCBClient
    assert protocol.parse_response is sciwire.ifcb.parse_response
    assert protocol.fixed_length_responses is sciwire.ifcb.fixed_length_responses
    assert list(inspect.signature(protocol.parse_response).parameters) == ["m"]
    assert list(inspect.signature(IFCBClient).parameters)[:2] == ["server", "id"]
    import sciwire.ifcb.__main__ as main_module

    assert callable(main_module.main)


def test_reference_members_exist() -> None:
    client = IFCBClient("ws://127.0.0.1:1/ifcbHub", SERIAL)
    for name in (
        "handle_message",
        "hub_connection",
        "started",
        "on_connect",
        "do_nothing",
        "next_handler_id",
        "connect",
        "disconnect",
        "relay_message_to_host",
        "on",
        "on_started",
        "on_reconnect",
        "on_any_message",
        "unregister",
        "handlers",
        "server_url",
        "ifcb_id",
    ):
        assert hasattr(client, name), name
    assert isinstance(client.hub_connection, ClientHubConnection)
    assert client.server_url == "ws://127.0.0.1:1/ifcbHub" and client.ifcb_id == SERIAL


# -- protocol -----------------------------------------------------------------------------

_SAMPLE = {int: "7", float: "2.5", bool: "1", str: "text"}
_EXPECT = {int: 7, float: 2.5, bool: True, str: "text"}


def test_fixed_length_responses_parse_as_listed() -> None:
    forms = protocol.fixed_length_responses
    assert ("valuechanged", "pausestate", bool) in forms
    assert ("syringetrack", float) in forms
    assert ("file", "start", str, int, str) in forms
    assert ("triggerchanged", int, "saved", int, int) in forms
    assert ("valuechanged", "setzoomsize", int, int) in forms
    graph = ("graphchanged", *[float] * 4, *[int] * 3, *[float] * 4, str)
    assert graph in forms
    assert len(forms) > 110 and len(set(forms)) == len(forms)
    # free text as the whole tail is variable-length, as in pyifcbclient's table
    assert ("reportevent", str) not in forms
    assert ("valuechanged", "currentgpsposition", str) not in forms
    assert ("valuechanged", "setdatafolder", str) in forms
    for form in forms:
        fields = [f if isinstance(f, str) else _SAMPLE[f] for f in form]
        expected: list[Any] = [f if isinstance(f, str) else _EXPECT[f] for f in form]
        if form[0] == "graphchanged":
            fields[-1] = "2024-05-06|07-08"
            expected[-1] = datetime.datetime(2024, 5, 6, 7, 8)
        if form[0] == "triggerimage":
            fields[-1] = "AAAA"
            expected[-1] = b"\x00\x00\x00"
        parsed = protocol.parse_response(":".join(fields))
        assert parsed == expected, form
        assert getattr(parsed, "known", True), form


def test_parse_response_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="syringetrack"):
        protocol.parse_response(m="syringetrack:fast")


# -- handlers without a connection ----------------------------------------------------------


def test_handle_message_dispatches_and_drops_malformed(caplog: pytest.LogCaptureFixture) -> None:
    client = IFCBClient("ws://127.0.0.1:1/ifcbHub", SERIAL)
    got: list[tuple[Any, ...]] = []
    client.on(("valuechanged", "pausestate"), lambda *f: got.append(f))
    client.handle_message(["host", "host", 1, "valuechanged:pausestate:0"])
    client.handle_message(["host", "host", 2, "valuechanged:pausestate:oops"])
    assert got == [("valuechanged", "pausestate", False)]
    assert client.client.malformed == 1
    assert "pausestate:oops" in caplog.text


def test_next_handler_id_is_what_on_returns() -> None:
    client = IFCBClient("ws://127.0.0.1:1/ifcbHub", SERIAL)
    first = client.next_handler_id
    assert client.on(("a",), print) == first
    assert client.next_handler_id == first + 1
    assert client.on(("b",), print) == first + 1
    client.unregister(first)
    assert client.next_handler_id == first + 2
    with pytest.raises(KeyError):
        client.unregister(first)


def test_hub_connection_refuses_sends_before_connect() -> None:
    client = IFCBClient("ws://127.0.0.1:1/ifcbHub", SERIAL)
    with pytest.raises(ConnectionClosed):
        client.relay_message_to_host("refresh")
    with pytest.raises(ConnectionClosed):
        client.on_connect()
    client.do_nothing(["beat"])  # ignores anything
    client.disconnect()  # not connected: nothing to do


# -- against the simulator ------------------------------------------------------------------


class Recording(IFCBClient):
    """Overrides the hub-facing members, as a pyifcbclient user's subclass may."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: queue.Queue[tuple[str, Any]] = queue.Queue()

    def handle_message(self, response: list[Any]) -> None:
        self.calls.put(("message", response))
        super().handle_message(response)

    def started(self, response: list[Any]) -> None:
        self.calls.put(("started", response))
        super().started(response)

    def do_nothing(self, response: Any) -> None:
        self.calls.put(("heartbeat", response))


def _wait_for(calls: queue.Queue[tuple[str, Any]], kind: str, timeout: float) -> Any:
    deadline = threading.Event()
    timer = threading.Timer(timeout, deadline.set)
    timer.start()
    try:
        while not deadline.is_set():
            try:
                got_kind, value = calls.get(timeout=0.05)
            except queue.Empty:
                continue
            if got_kind == kind:
                return value
        raise AssertionError(f"no {kind} within {timeout} s")
    finally:
        timer.cancel()


def test_hub_calls_reach_the_reference_members(
    make_client: Callable[..., IFCBClient],
    sim_portal: tuple[Portal, IFCBSimulator],
    scaled: Callable[[float], float],
) -> None:
    client = make_client(Recording)
    assert isinstance(client, Recording)
    paused: queue.Queue[bool] = queue.Queue()
    client.on(("valuechanged", "pausestate"), lambda _, __, value: paused.put(value))
    client.connect()
    client.wait_started(scaled(5))
    _wait_for(client.calls, "started", scaled(5))
    # started() relayed "Client connected." and "refresh": the host answered with its state
    assert paused.get(timeout=scaled(5)) is False
    response = _wait_for(client.calls, "message", scaled(5))
    assert len(response) == 4 and isinstance(response[3], str)
    _wait_for(client.calls, "heartbeat", scaled(5))
    # on_connect() registers again: the hub confirms again
    client.on_connect()
    _wait_for(client.calls, "started", scaled(5))
    # ...and started() asked for the state again
    assert paused.get(timeout=scaled(5)) is False
    portal, sim = sim_portal
    assert portal.call(_commands(sim)).count("refresh") == 2


async def _commands(sim: IFCBSimulator) -> list[str]:
    return list(sim.commands)


async def _drop(sim: IFCBSimulator) -> int:
    return sim.drop_connections()


def test_hub_connection_hooks_and_send(
    make_client: Callable[..., IFCBClient],
    sim_portal: tuple[Portal, IFCBSimulator],
    scaled: Callable[[float], float],
) -> None:
    portal, sim = sim_portal
    client = make_client()
    hub = client.hub_connection
    events: queue.Queue[str] = queue.Queue()
    relayed: queue.Queue[list[Any]] = queue.Queue()
    hub.on_open(lambda: events.put("open"))
    hub.on_close(lambda: events.put("close"))
    hub.on_reconnect(lambda: events.put("reconnect"))
    hub.on("messageRelayed", relayed.put)
    client.on_any_message(lambda response: events.put("any"))
    assert hub.start() is True
    assert hub.connected
    assert events.get(timeout=scaled(5)) == "open"
    hub.send("relayMessageToHost", [SERIAL, "daq:switchauxpower1:1"])
    while True:
        response = relayed.get(timeout=scaled(5))
        if response[3] == "valuechanged:switchauxpower1:1":
            break
    late: queue.Queue[list[Any]] = queue.Queue()
    hub.on("messageRelayed", late.put)  # registered while connected: applies at once
    hub.send("relayMessageToHost", [SERIAL, "daq:switchauxpower1:0"])
    while late.get(timeout=scaled(5))[3] != "valuechanged:switchauxpower1:0":
        pass
    assert portal.call(_drop(sim)) == 1
    seen = []
    while "reconnect" not in seen:
        seen.append(events.get(timeout=scaled(5)))
    assert seen.index("close") < seen.index("open") < seen.index("reconnect")
    hub.stop()
    hub.stop()  # idempotent
    assert not hub.connected
    with pytest.raises(ConnectionClosed):
        hub.send("relayMessageToHost", [SERIAL, "refresh"])


def test_stop_from_a_handler_does_not_deadlock(
    make_client: Callable[..., IFCBClient], scaled: Callable[[float], float]
) -> None:
    client = make_client()
    closed = threading.Event()
    client.hub_connection.on_close(closed.set)
    client.on(("valuechanged",), lambda *f: client.hub_connection.stop())
    client.connect()
    assert closed.wait(scaled(5))
    client.hub_connection.stop()  # from the test thread: finishes the loop thread


@pytest.mark.slow
def test_python_m_prints_value_changes(
    sim_portal: tuple[Portal, IFCBSimulator], scaled: Callable[[float], float]
) -> None:
    url = sim_portal[1].url.replace("http", "ws")
    lines: queue.Queue[str] = queue.Queue()
    with subprocess.Popen(
        [sys.executable, "-m", "sciwire.ifcb", url, SERIAL],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:
        reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()])
        reader.start()
        try:
            seen = []
            while not seen or not seen[-1].startswith("pausestate => "):
                seen.append(lines.get(timeout=scaled(20)))
            assert seen[-1].strip() == "pausestate => (False,)", seen
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(scaled(10))
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                reader.join(scaled(5))
    assert proc.returncode == 0, list(lines.queue)


@pytest.mark.slow
@pytest.mark.parametrize("address", ["ws://127.0.0.1:1/ifcbHub", "ftp://127.0.0.1/ifcbHub"])
def test_python_m_reports_a_failed_connection(
    address: str, scaled: Callable[[float], float]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sciwire.ifcb", address, SERIAL],
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert done.returncode == 1
    assert f"cannot connect to {address}" in done.stderr
    assert "Traceback" not in done.stderr


def test_images_are_roi_images() -> None:
    fields = protocol.parse_response("triggerrois:1:3:4:AAAA")
    assert fields == ["triggerrois", [(3, 4, b"\x00\x00\x00")]]
    assert isinstance(fields[1][0][2], RoiImage)
