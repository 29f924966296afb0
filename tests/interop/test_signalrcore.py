"""The real signalrcore HubConnection (the reference client's transport) against our simulator.

signalrcore is a client only, so the other direction (our client against a signalrcore
server) does not exist; our client is tested against our own hub in tests/ifcb.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from signalrcore.hub_connection_builder import HubConnectionBuilder

from sciwire.core.portal import Portal
from sciwire.ifcb import IFCBClient, IFCBSimulator, parse_message
from sciwire.ifcb._hub import HubConnection

pytestmark = pytest.mark.interop

SERIAL = "111-111-111"


@pytest.fixture
def sim() -> Iterator[tuple[IFCBSimulator, Portal, list[int | None]]]:
    versions: list[int | None] = []

    class Recording(IFCBSimulator):
        def on_connected(self, conn: HubConnection) -> None:
            versions.append(conn.proto.protocol_version)

    with Portal("sim") as portal:
        simulator = Recording(SERIAL, rate=0, triggers=3, heartbeat_interval=0.2)
        portal.call(simulator.start())
        yield simulator, portal, versions
        portal.call(simulator.stop())


@pytest.fixture
def connections() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for hub in made:
        hub.stop()


def test_signalrcore_negotiates_handshakes_and_receives_typed_messages(
    sim: tuple[IFCBSimulator, Portal, list[int | None]],
    connections: list[Any],
    scaled: Callable[[float], float],
) -> None:
    simulator, _portal, versions = sim
    hub = HubConnectionBuilder().with_url(simulator.url.replace("http", "ws")).build()
    connections.append(hub)
    relayed: list[list[Any]] = []
    got_version = threading.Event()
    started: list[Any] = []
    completions: list[Any] = []
    heartbeat = threading.Event()

    def on_relayed(args: list[Any]) -> None:
        relayed.append(args)
        if args[3].startswith("valuechanged:hostversion"):
            got_version.set()

    def on_started(args: list[Any]) -> None:
        started.append(args)
        hub.send("relayMessageToHost", [SERIAL, "refresh"])

    hub.on("messageRelayed", on_relayed)
    hub.on("startedAsClient", on_started)
    hub.on("heartbeat", lambda args: heartbeat.set())
    hub.on_open(lambda: hub.send("startAsClient", [SERIAL], on_invocation=completions.append))
    hub.start()
    assert got_version.wait(scaled(10))
    assert heartbeat.wait(scaled(5))
    assert started == [[SERIAL]]
    assert versions and versions[0] in (0, 1)  # signalrcore 1.0.x hand-shakes with version 0
    assert completions and completions[0].invocation_id  # Completion matched by signalrcore
    [(sender, source, seqno, msg)] = [a for a in relayed if "hostversion" in a[3]]
    assert (sender, source, type(seqno)) == (SERIAL, "host", int)
    assert parse_message(msg) == ["valuechanged", "hostversion", "sciwire-sim 1.0"]
    pause = [parse_message(a[3]) for a in relayed if "pausestate" in a[3]]
    assert pause == [["valuechanged", "pausestate", False]]


def test_signalrcore_sees_a_routine_with_roi_images(
    sim: tuple[IFCBSimulator, Portal, list[int | None]],
    connections: list[Any],
    scaled: Callable[[float], float],
) -> None:
    simulator, _portal, _ = sim
    hub = HubConnectionBuilder().with_url(simulator.url.replace("http", "ws")).build()
    connections.append(hub)
    images: list[bytes] = []
    stopped = threading.Event()

    def on_relayed(args: list[Any]) -> None:
        fields = parse_message(args[3])
        if fields[0] == "triggercontent":
            images.extend(bytes(img) for _, _, img in fields[2])
        elif fields == ["valuechanged", "acquisition", "stopped"]:
            stopped.set()

    hub.on("messageRelayed", on_relayed)
    hub.on(
        "startedAsClient", lambda a: hub.send("relayMessageToHost", [SERIAL, "routine:runsample"])
    )
    hub.on_open(lambda: hub.send("startAsClient", [SERIAL]))
    hub.start()
    assert stopped.wait(scaled(10))
    assert len(images) >= 3 and all(img.startswith(b"\x89PNG") for img in images)
    assert "routine:runsample" in simulator.commands


# -- pyifcbclient's own IFCBClient (signalrcore underneath) next to ours ---------------------

#: a checkout of pyifcbclient (not a registry package): PYIFCBCLIENT, as `make compat` takes it
PYIFCBCLIENT = os.environ.get("PYIFCBCLIENT", "/work/originals/pyifcbclient")


@pytest.fixture
def original_ifcbclient() -> Iterator[Any]:
    if not os.path.isdir(os.path.join(PYIFCBCLIENT, "ifcbclient")):
        pytest.skip(f"no pyifcbclient checkout at {PYIFCBCLIENT} (set PYIFCBCLIENT)")
    sys.path.insert(0, PYIFCBCLIENT)
    try:
        yield importlib.import_module("ifcbclient")
    finally:
        sys.path.remove(PYIFCBCLIENT)
        for name in [n for n in sys.modules if n == "ifcbclient" or n.startswith("ifcbclient.")]:
            del sys.modules[name]


def test_pyifcbclient_and_sciwire_see_the_same_routine(
    sim: tuple[IFCBSimulator, Portal, list[int | None]],
    original_ifcbclient: Any,
    scaled: Callable[[float], float],
) -> None:
    simulator, _portal, _ = sim
    url = simulator.url.replace("http", "ws")
    seen: dict[str, list[tuple[Any, ...]]] = {"original": [], "sciwire": []}
    done = {"original": threading.Event(), "sciwire": threading.Event()}
    originals = original_ifcbclient.IFCBClient(url, SERIAL)
    ours = IFCBClient(url, SERIAL)
    try:
        for name, client in (("original", originals), ("sciwire", ours)):
            log = seen[name]
            # no boolean fields here: the original parses "0" as True (docs/differences.md)
            client.on(("triggerchanged", None, "processed"), lambda *f, log=log: log.append(f))
            client.on(("triggercontent",), lambda *f, log=log: log.append(f))
            client.on(("valuechanged", "acquisition", "stopped"), lambda *f, e=done[name]: e.set())
        registered = threading.Event()
        originals.on_started(lambda *_: registered.set())
        ours.connect()
        ours.wait_started(scaled(10))
        originals.connect()  # returns at once: wait until the hub has registered it
        assert registered.wait(scaled(10))
        ours.relay_message_to_host("routine:runsample")
        assert done["sciwire"].wait(scaled(10)) and done["original"].wait(scaled(10))
        assert len(seen["sciwire"]) == 6  # 3 triggers, each processed + content
        assert seen["sciwire"] == seen["original"]
    finally:
        ours.disconnect()
        originals.hub_connection.stop()
