"""How consumers acknowledge: one acknowledgement per batch under AckPolicy.ALL (never
past an event held back for order), one per event for a durable created with explicit
acknowledgements. Against a real nats-server on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from sciwire.errors import Timeout
from sciwire.fleet import AsyncFleet, NatsServer
from sciwire.fleet._delivery import AckPoint, reply_fields
from sciwire.fleet._schema import encode_event, ifcb_event
from tests.fleet.helpers import bridge_config
from tests.helpers import scale


def test_reply_fields_read_both_forms() -> None:
    assert reply_fields("$JS.ACK.SCIWIRE.c1.2.10.7.1700000000000000000.3") == (2, 10, 7, 3)
    assert reply_fields("$JS.ACK.ship.HASH.SCIWIRE.c1.1.11.8.1700000000000000000.0.x") == (
        1,
        11,
        8,
        0,
    )


def test_ack_point_batches_and_never_moves_back() -> None:
    point = AckPoint(batch=3)
    assert not point.due(idle=True) and point.take() is None  # nothing owed
    point.advance("r1", 1)
    assert not point.due(idle=False) and point.due(idle=True)
    point.advance("r2", 2)
    point.advance("r3", 3)
    assert point.due(idle=False)  # a full batch is due even under load
    assert point.take() == "r3" and point.take() is None
    point.advance("r5", 5)
    point.advance("r4-again", 4)  # a redelivery of an older event (stream sequence 4)
    assert point.take() == "r5"


async def _store(fleet: AsyncFleet, serial: str, seq: int) -> None:
    _, body, blobs = ifcb_event(serial, seq, 0.0, "valuechanged:pausestate:1")
    data, headers = encode_event(body, blobs)
    assert fleet.js is not None
    await fleet.js.publish(f"sciwire.ifcb.{serial}.valuechanged", data, headers=headers)


async def _wait_acked(fleet: AsyncFleet, stream_seq: int) -> Any:
    """Wait until the server's ack floor reaches *stream_seq*; the consumer's info."""
    assert fleet.js is not None and fleet.consumer is not None
    deadline = asyncio.get_running_loop().time() + scale(10)
    while True:
        info = await fleet.js.consumer_info("SCIWIRE", fleet.consumer)
        if info.ack_floor.stream_seq >= stream_seq and info.num_ack_pending == 0:
            return info
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not acknowledged up to {stream_seq}: {info}")
        await asyncio.sleep(0.05)


async def test_ack_all_consumer_gets_past_max_ack_pending_and_acks_everything(
    nats_server: NatsServer, make_bridge: Any, make_fleet: Any
) -> None:
    await make_bridge(bridge_config([nats_server.url], [], []))  # creates the stream
    fleet = await make_fleet(nats_server.url, max_ack_pending=64)  # batches of 16
    got: list[int] = []
    fleet.on((None,), lambda ev: got.append(ev.seq))
    await fleet.start("all")
    for seq in range(1, 1001):  # far more than max_ack_pending: only acks let them through
        await _store(fleet, "a", seq)
    await fleet.wait_for(lambda: len(got) == 1000, scale(30))
    assert got == list(range(1, 1001))
    info = await _wait_acked(fleet, 1000)
    assert info.config.ack_policy == AckPolicy.ALL and info.num_redelivered == 0


async def test_ack_all_consumer_does_not_acknowledge_past_a_held_event(
    nats_server: NatsServer, make_bridge: Any, make_fleet: Any
) -> None:
    await make_bridge(bridge_config([nats_server.url], [], []))
    fleet = await make_fleet(nats_server.url, reorder_wait=60)
    got: list[tuple[str, int]] = []
    fleet.on((None,), lambda ev: got.append((ev.instrument, ev.seq)))
    await fleet.start("all")
    await _store(fleet, "a", 1)
    await _store(fleet, "a", 3)  # stream seq 2, held until event 2 comes
    await _store(fleet, "b", 1)  # stream seq 3: handled, but acknowledging it would cover 2
    await fleet.wait_for(lambda: ("b", 1) in got, scale(10))
    assert got == [("a", 1), ("b", 1)]
    assert fleet.nc is not None and fleet.js is not None and fleet.consumer is not None
    await fleet.nc.flush()  # whatever the consumer acknowledged has reached the server
    info = await fleet.js.consumer_info("SCIWIRE", fleet.consumer)
    assert info.ack_floor.stream_seq <= 1
    await _store(fleet, "a", 2)
    await fleet.wait_for(lambda: len(got) == 4, scale(10))
    assert got == [("a", 1), ("b", 1), ("a", 2), ("a", 3)]
    await _wait_acked(fleet, 4)


async def test_durable_with_explicit_acks_is_acknowledged_event_by_event(
    nats_server: NatsServer, make_bridge: Any, make_fleet: Any
) -> None:
    """A durable consumer created with explicit acknowledgements (as sciwire did before
    batching) keeps them: every event is acknowledged, none redelivered."""
    await make_bridge(bridge_config([nats_server.url], [], []))
    fleet = await make_fleet(nats_server.url, ack_wait=2)
    assert fleet.js is not None
    await fleet.js.add_consumer(
        "SCIWIRE",
        ConsumerConfig(
            durable_name="old",
            deliver_subject="old-sciwire-deliver",  # a push consumer, as start() makes
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=2,
            max_ack_pending=64,
            filter_subject="sciwire.ifcb.*.*",
        ),
    )
    got: list[int] = []
    fleet.on((None,), lambda ev: got.append(ev.seq))
    await fleet.start("all", durable="old")
    for seq in range(1, 201):
        await _store(fleet, "a", seq)
    await fleet.wait_for(lambda: len(got) == 200, scale(30))
    info = await _wait_acked(fleet, 200)
    assert info.config.ack_policy == AckPolicy.EXPLICIT
    assert got == list(range(1, 201)) and fleet.duplicates == 0


async def test_wait_for_checks_its_predicate_after_each_event() -> None:
    fleet = AsyncFleet()  # wait_for needs no connection: events call _notify
    await fleet.wait_for(lambda: True, 0.01)  # already true: no wait
    with pytest.raises(Timeout):
        await fleet.wait_for(lambda: False, 0.01)
    flag: list[int] = []
    waiting = asyncio.ensure_future(fleet.wait_for(lambda: bool(flag), scale(10)))
    await asyncio.sleep(0)
    fleet._notify()  # what each event does
    assert not waiting.done()
    flag.append(1)
    fleet._notify()
    await waiting

    def broken() -> bool:
        raise KeyError("predicate")

    failing = asyncio.ensure_future(fleet.wait_for(lambda: bool(flag) and broken(), scale(10)))
    flag.clear()
    await asyncio.sleep(0)
    flag.append(1)
    fleet._notify()
    with pytest.raises(KeyError):
        await failing
    assert not fleet._watchers


async def test_a_hole_does_not_stall_other_instruments_at_max_ack_pending(
    nats_server: NatsServer, make_bridge: Any, make_fleet: Any
) -> None:
    """Held events keep the acknowledgement back; before the server's max_ack_pending
    would stop every delivery, the consumer gives the hole up (counted) and goes on."""
    await make_bridge(bridge_config([nats_server.url], [], []))
    fleet = await make_fleet(nats_server.url, reorder_wait=60, max_ack_pending=16)
    got: list[tuple[str, int]] = []
    fleet.on((None,), lambda ev: got.append((ev.instrument, ev.seq)))
    await fleet.start("all")
    await _store(fleet, "a", 1)
    await _store(fleet, "a", 3)  # held: event 2 never comes
    for seq in range(1, 41):
        await _store(fleet, "b", seq)
    await fleet.wait_for(lambda: ("b", 40) in got, scale(10))
    assert fleet.gaps == 1 and got.index(("a", 3)) < got.index(("b", 40))
    assert [seq for who, seq in got if who == "b"] == list(range(1, 41))
    await _wait_acked(fleet, 42)
