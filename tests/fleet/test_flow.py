"""Instruments -> bridge -> JetStream -> consumers, on loopback with a real nats-server."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import defaultdict
from typing import Any

import pytest

from sciwire.fleet import AsyncFleet, Bridge, CommandError, NatsServer
from sciwire.fleet._publisher import Outgoing
from sciwire.fleet._schema import encode_event, ifcb_event
from sciwire.ifcb import DaqValues, IFCBSimulator, RoiImage
from sciwire.rig import ExpMessage, ExpStatus, RemoteRig
from tests.fleet.helpers import bridge_config, until, wait_connected
from tests.helpers import scale

BLAST = 400


async def drive(fleet: AsyncFleet, sims: list[IFCBSimulator], rigs: list[RemoteRig]) -> None:
    """A little of everything: blasts, a routine relayed through NATS (and waited for),
    rig steps."""
    finished: set[str] = set()

    def routine_done(event: Any) -> None:
        if event.fields[1:] == ["routine runsample finished"]:
            finished.add(event.instrument)

    async with AsyncFleet(fleet.options["servers"]) as probe:
        probe.on(("reportevent",), routine_done)
        await probe.start("new")
        for sim in sims:
            await sim.blast(BLAST)
            await fleet.relay_message_to_host(sim.serial, "routine:runsample")
        for rig in rigs:
            name, exp = rig.com.name, "2026-01-01_1_m"
            assert await fleet.rig(name, "init", {"exp_ref": exp}) == {name: [{"exp_ref": exp}]}
            await fleet.rig(name, "start", exp)
            assert await fleet.rig(name, "status", ExpStatus.RUNNING) == {
                name: [int(ExpStatus.RUNNING)]
            }
            await fleet.rig(name, "stop")
        await probe.wait_for(lambda: len(finished) == len(sims), scale(30))


ROUND = itertools.count(1)


async def settle(bridge: Bridge, sims: list[IFCBSimulator], fleet: AsyncFleet) -> int:
    """Wait until every routine finished and the bridge stored everything it was sent.

    Each simulator sends a sentinel message last; once a consumer has seen all of
    them, everything before them (per instrument, in order) is in the stream.
    """
    tag = f"sentinel:{next(ROUND)}"
    for sim in sims:
        sim.push(tag)
    seen: set[str] = set()
    async with AsyncFleet(fleet.options["servers"]) as probe:
        probe.on(
            ("sentinel",), lambda ev: seen.add(ev.instrument) if ev.body["text"] == tag else None
        )
        await probe.replay("all")
        await probe.wait_for(lambda: len(seen) == len(sims), scale(30))
    assert bridge.publisher is not None
    assert await bridge.publisher.flush(scale(20))
    info = await fleet.stream_info()
    assert info["messages"] == bridge.health()["stored"]
    return int(info["messages"])


def check_order(events: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Per instrument: sequence numbers 1..n in arrival order, hub numbers rising."""
    seqs: dict[str, list[int]] = defaultdict(list)
    hub: dict[str, list[int]] = defaultdict(list)
    for ev in events:
        seqs[ev["instrument"]].append(ev["seq"])
        if ev["kind"] == "ifcb":
            hub[ev["instrument"]].append(ev["hub_seq"])
    for name, got in seqs.items():
        assert got == list(range(1, len(got) + 1)), f"{name}: not once and in order"
    for name, got in hub.items():
        assert all(a < b for a, b in itertools.pairwise(got)), f"{name}: hub messages repeated"
    return seqs


@pytest.mark.slow
async def test_three_ifcbs_two_rigs_reach_three_consumer_processes(
    nats_server: NatsServer, sims: list, rigs: list, make_bridge: Any, make_fleet: Any, cli: Any
) -> None:
    watchers = [
        cli("watch", "all", "--since", "all", "--json", "--server", nats_server.url)
        for _ in range(3)
    ]
    bridge = await make_bridge(bridge_config([nats_server.url], sims, rigs))
    fleet = await make_fleet(nats_server.url)
    await drive(fleet, sims, rigs)
    total = await settle(bridge, sims, fleet)
    assert total > 3 * BLAST + 2 * 4
    per_instrument = {i["name"]: i["stored"] for i in bridge.health()["instruments"]}
    assert set(per_instrument) == {s.serial for s in sims} | {"cam", "ephys"}
    for watcher in watchers:
        await asyncio.to_thread(watcher.wait_lines, lambda lines: len(lines) >= total, timeout=60)
    for watcher in watchers:
        events = [json.loads(line) for line in watcher.out]
        assert len(events) == total
        seqs = check_order(events)
        assert {name: len(s) for name, s in seqs.items()} == per_instrument
        kinds = {(ev["kind"], ev["name"]) for ev in events}
        assert ("ifcb", "triggercontent") in kinds and ("rig", "expstatus") in kinds
    assert bridge.health()["dropped"] == bridge.health()["malformed"] == 0


async def test_typed_payloads_and_patterns(
    nats_server: NatsServer, sims: list, rigs: list, make_bridge: Any, make_fleet: Any
) -> None:
    bridge = await make_bridge(bridge_config([nats_server.url], sims[:1], rigs[:1]))
    fleet = await make_fleet(nats_server.url)
    triggers: list[Any] = []
    pauses: list[Any] = []
    rig_events: list[Any] = []
    fleet.on(("triggercontent",), triggers.append, instrument=sims[0].serial)
    fleet.on(("valuechanged", "pausestate"), pauses.append)
    fleet.on(ExpMessage.EXPINFO | ExpMessage.EXPINIT, rig_events.append)
    assert sorted(fleet.subjects()) == ["sciwire.ifcb.>", "sciwire.rig.*.*"]
    await fleet.start("all")
    await fleet.relay_message_to_host(sims[0].serial, "routine:runsample")
    await fleet.rig("cam", "info", ExpStatus.CONNECTED)
    await fleet.rig("cam", "init", {"a": 1})
    await fleet.rig("cam", "status", ExpStatus.CONNECTED)  # not matched by the pattern
    await fleet.wait_for(lambda: len(triggers) >= 10 and len(rig_events) >= 2, scale(20))
    _, daq, rois = triggers[0].fields
    assert isinstance(daq, DaqValues) and "PeakA" in daq
    assert rois and all(
        isinstance(img, RoiImage) and img.data.startswith(b"\x89PNG") for _, _, img in rois
    )
    assert pauses and all(ev.fields[2] in (True, False) for ev in pauses)
    assert [ev.fields[0] for ev in rig_events[:2]] == [ExpMessage.EXPINFO, ExpMessage.EXPINIT]
    assert rig_events[0].fields[1][1]["name"] == "cam" and rig_events[1].data == [{"a": 1}]
    assert bridge.health()["connected"] == 2


async def test_consumer_down_for_part_of_the_run_replays_what_it_missed(
    nats_server: NatsServer, sims: list, rigs: list, make_bridge: Any, make_fleet: Any
) -> None:
    bridge = await make_bridge(bridge_config([nats_server.url], sims, rigs))
    admin = await make_fleet(nats_server.url)
    seen: list[Any] = []

    async def consumer() -> AsyncFleet:
        fleet = AsyncFleet(nats_server.url, ack_wait=2)
        await fleet.connect()
        fleet.on((None,), seen.append)
        fleet.on(ExpMessage.any(), seen.append)
        await fleet.replay("all", durable="watcher-1")
        return fleet

    first = await consumer()
    try:
        await drive(admin, sims[:1], rigs[:1])
        part1 = await settle(bridge, sims, admin)
        await first.wait_for(lambda: len(seen) >= part1, scale(30))
    finally:
        await first.close()  # the consumer is down from here
    await drive(admin, sims, rigs)
    total = await settle(bridge, sims, admin)
    assert total > part1
    second = await consumer()
    try:
        await second.wait_for(lambda: len(seen) >= total, scale(30))
    finally:
        await second.close()
    events = [ev.body for ev in seen]
    assert len(events) == total  # nothing missed, nothing twice
    check_order(events)


async def test_bridge_reconnects_to_instruments_and_to_nats(
    nats_server: NatsServer, sims: list, rigs: list, make_bridge: Any, make_fleet: Any
) -> None:
    bridge = await make_bridge(bridge_config([nats_server.url], sims[:1], [], ack_timeout=1.0))
    sim = sims[0]
    await sim.blast(100)
    fleet = await make_fleet(nats_server.url)
    count = await settle(bridge, sims[:1], fleet)
    await fleet.close()
    # the instrument goes away and comes back: the bridge registers again by itself
    await sim.restart()
    await asyncio.sleep(0)  # let the client see the drop
    await until(
        lambda: bridge.ifcb[sim.serial].connected and sim.clients,
        lambda: f"not registered again: {bridge.health()['instruments']}",
    )
    # NATS goes away: events are held by the bridge and stored when it returns
    await asyncio.to_thread(nats_server.stop)
    await until(lambda: not bridge.nats_connected, lambda: "still connected to NATS")
    await sim.blast(300)
    await sim.drain()
    await until(
        lambda: bridge.health()["instruments"][0]["events"] >= count + 300,
        lambda: f"events not all in: {bridge.health()['instruments']}",
    )
    assert bridge.health()["pending"] > 0 and not bridge.health()["nats_connected"]
    await asyncio.to_thread(nats_server.start)
    fleet = await make_fleet(nats_server.url)
    total = await settle(bridge, sims[:1], fleet)
    assert total >= count + 300
    seen: list[Any] = []
    fleet.on((None,), lambda ev: seen.append(ev.body))
    await fleet.replay("all")
    await fleet.wait_for(lambda: len(seen) >= total, scale(20))
    check_order(seen)
    assert bridge.health()["dropped"] == 0


async def test_same_message_id_is_stored_once(
    nats_server: NatsServer, make_bridge: Any, make_fleet: Any
) -> None:
    bridge = await make_bridge(bridge_config([nats_server.url], [], []))
    _, body, blobs = ifcb_event("111", 1, 0.0, "valuechanged:pausestate:1")
    data, headers = encode_event(body, blobs)
    assert bridge.publisher is not None
    for _ in range(3):  # what a re-send after a lost acknowledgement does
        bridge.publisher.put(
            Outgoing("sciwire.ifcb.111.valuechanged", data, headers, 0.0, ("ifcb", "111"))
        )
    assert await bridge.publisher.flush(scale(10))
    fleet = await make_fleet(nats_server.url)
    assert (await fleet.stream_info())["messages"] == 1
    assert bridge.publisher.duplicates >= 1  # the last copy asked, and was told


async def test_malformed_events_are_counted_and_dropped(
    nats_server: NatsServer, sims: list, make_bridge: Any, make_fleet: Any, caplog: Any
) -> None:
    bridge = await make_bridge(bridge_config([nats_server.url], sims[:1], []))
    fleet = await make_fleet(nats_server.url)
    got: list[Any] = []
    fleet.on((None,), got.append)
    await fleet.start("new")
    assert fleet.nc is not None and fleet.js is not None
    await fleet.js.publish("sciwire.ifcb.x.valuechanged", b"garbage", headers={"X": "1"})
    await fleet.js.publish("sciwire.ifcb.x.valuechanged", b"{}")
    # and one the instrument sent malformed: the bridge drops it, counted
    sims[0].push("triggerrois:2:1:1:AAAA")
    sims[0].push("valuechanged:pausestate:1")
    with caplog.at_level(logging.WARNING):
        await fleet.wait_for(lambda: fleet.malformed == 2 and len(got) == 1, scale(20))
    assert got[0].fields == ["valuechanged", "pausestate", True]
    assert "dropping malformed event" in caplog.text
    health = bridge.health()
    assert health["malformed"] == 1 and health["instruments"][0]["malformed"] == 1


async def test_command_errors_are_clear(
    nats_server: NatsServer, sims: list, rigs: list, make_bridge: Any, make_fleet: Any
) -> None:
    config = bridge_config([nats_server.url], sims[:1], rigs[:1])
    config.ifcb[0].commands = ["routine:"]
    config.rigs[0].commands = ["status"]
    await make_bridge(config)
    fleet = await make_fleet(nats_server.url)
    serial = sims[0].serial
    await fleet.relay_message_to_host(serial, "routine:beads")
    with pytest.raises(CommandError, match="not allowed") as err:
        await fleet.relay_message_to_host(serial, "interactive:stop")
    assert err.value.code == "not-allowed"
    with pytest.raises(CommandError) as err:
        await fleet.relay_message_to_host("999-999-999", "routine:beads")
    assert err.value.code == "no-responders"
    with pytest.raises(CommandError) as err:
        await fleet.rig("cam", "start", "x")
    assert err.value.code == "not-allowed"
    with pytest.raises(CommandError) as err:
        await fleet.request("rig", "cam", "selfdestruct")
    assert err.value.code == "unknown-command"
    with pytest.raises(CommandError) as err:
        await fleet.request("ifcb", serial, "relay", {"message": 3})
    assert err.value.code == "bad-request"
    with pytest.raises(CommandError) as err:
        await fleet.rig("cam", "status", "not-a-status")
    assert err.value.code == "bad-request"
    # a remote rig answers EXPSTATUS with its own status
    assert await fleet.rig("cam", "status", "running") == {"cam": [int(ExpStatus.CONNECTED)]}


async def test_instruments_partitioned_over_two_streams(
    nats_server: NatsServer, sims: list, make_bridge: Any, make_fleet: Any
) -> None:
    from sciwire.fleet import ConfigError

    for i, sim in enumerate(sims[:2]):
        config = bridge_config([nats_server.url], [sim], [], name=f"site{i}")
        config.stream.name = f"SITE{i}"
        config.stream.subjects = [f"sciwire.ifcb.{sim.serial}.>"]
        await make_bridge(config)
    # a bridge whose stream would not capture its instrument refuses to start
    config = bridge_config([nats_server.url], sims[2:], [], name="site2")
    config.stream.name, config.stream.subjects = "SITE2", ["sciwire.ifcb.elsewhere.>"]
    with pytest.raises(ConfigError, match="does not capture"):
        await make_bridge(config, wait=False)
    for i, sim in enumerate(sims[:2]):
        await fleet_relay(make_fleet, nats_server.url, sim.serial)
        reader = await make_fleet(nats_server.url, stream=f"SITE{i}")
        seen: list[Any] = []
        reader.on(("triggercontent",), seen.append)
        await reader.replay("all")
        await reader.wait_for(lambda seen=seen: len(seen) >= 10, scale(20))
        assert {ev.instrument for ev in seen} == {sim.serial}


async def fleet_relay(make_fleet: Any, url: str, serial: str) -> None:
    fleet = await make_fleet(url)
    await fleet.relay_message_to_host(serial, "routine:runsample")


async def test_bridge_reconnects_to_a_tcp_rig(
    nats_server: NatsServer, make_bridge: Any, make_fleet: Any
) -> None:
    from sciwire.rig import EchoProtocol

    first = RemoteRig(await EchoProtocol.server("tcp://127.0.0.1:0", name="ephys"))
    uri = first.com.server_uri
    try:
        config = bridge_config([nats_server.url], [], [first])
        bridge = await make_bridge(config)
        fleet = await make_fleet(nats_server.url)
        assert await fleet.rig("ephys", "init", {"n": 1}) == {"ephys": [{"n": 1}]}
        first.close()
        await until(  # the bridge sees the rig go
            lambda: not bridge.health()["connected"], lambda: bridge.health()["instruments"]
        )
        with pytest.raises(CommandError) as err:
            await fleet.rig("ephys", "init", {"n": 2})
        assert err.value.code == "not-connected"
        second = RemoteRig(await EchoProtocol.server(uri, name="ephys"))
        try:
            await wait_connected(bridge)
            assert await fleet.rig("ephys", "init", {"n": 3}) == {"ephys": [{"n": 3}]}
        finally:
            second.close()
    finally:
        first.close()


async def test_consumer_puts_each_instrument_back_in_order(
    nats_server: NatsServer, make_bridge: Any, make_fleet: Any
) -> None:
    """Events stored out of order (as across a cluster failover) reach handlers in order;
    a hole that never fills is given up after reorder_wait, counted."""
    await make_bridge(bridge_config([nats_server.url], [], []))  # creates the stream
    fleet = await make_fleet(nats_server.url, reorder_wait=0.3)
    assert fleet.js is not None
    got: list[tuple[str, int]] = []
    fleet.on((None,), lambda ev: got.append((ev.instrument, ev.seq)))
    await fleet.start("all")

    async def store(serial: str, seq: int) -> None:
        _, body, blobs = ifcb_event(serial, seq, 0.0, "valuechanged:pausestate:1")
        data, headers = encode_event(body, blobs)
        assert fleet.js is not None
        await fleet.js.publish(f"sciwire.ifcb.{serial}.valuechanged", data, headers=headers)

    for seq in (1, 3, 4, 2, 5):
        await store("a", seq)
    await fleet.wait_for(lambda: len(got) == 5, scale(10))
    assert got == [("a", 1), ("a", 2), ("a", 3), ("a", 4), ("a", 5)]
    # seq 6 never comes: 7 is held, then let through once the wait is over
    await store("a", 7)
    await asyncio.sleep(0.4)  # past reorder_wait (a lower bound: later only frees it sooner)
    await store("b", 1)  # any later message lets the consumer notice
    await fleet.wait_for(lambda: len(got) == 7, scale(10))
    assert got[5:] == [("a", 7), ("b", 1)] and fleet.gaps == 1


async def test_health_is_published_on_its_subject(
    nats_server: NatsServer, sims: list, make_bridge: Any, make_fleet: Any
) -> None:
    await make_bridge(bridge_config([nats_server.url], sims[:1], [], name="healthy"))
    fleet = await make_fleet(nats_server.url)
    assert fleet.nc is not None
    reports: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def got(msg: Any) -> None:
        await reports.put(json.loads(msg.data))

    await fleet.nc.subscribe("sciwire.health.healthy", cb=got)
    report = await asyncio.wait_for(reports.get(), scale(10))
    assert report["bridge"] == "healthy" and report["nats_connected"]
    assert report["connected"] == report["configured"] == 1
    for key in ("lag", "pending", "dropped", "stored", "malformed", "instruments"):
        assert key in report
