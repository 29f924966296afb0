"""The lean UDP transport: draining reads, direct and buffered sends, errors, close."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import Any

import pytest

from sciwire.rig import ExpMessage
from sciwire.rig._datagram import (
    MAX_BATCH,
    MAX_SEND_BUFFER,
    PROBE_EVERY,
    DatagramLink,
    open_datagram,
)
from tests.rig.helpers import Factory

Scaled = Callable[[float], float]


class Recorder:
    """A datagram protocol that records every call."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.received: list[tuple[bytes, Any]] = []
        self.errors: list[Exception] = []
        self.lost: list[Exception | None] = []
        self.lost_event = asyncio.Event()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[Any, int]) -> None:
        self.received.append((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)
        self.lost_event.set()


class StallingSocket:
    """A real UDP socket whose first *stalls* sends report a full send buffer."""

    def __init__(self, sock: socket.socket, stalls: int) -> None:
        self.sock = sock
        self.stalls = stalls

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    def send(self, data: bytes) -> int:
        if self.stalls:
            self.stalls -= 1
            raise BlockingIOError
        return self.sock.send(data)


async def test_burst_beyond_one_batch_is_all_echoed_in_order(
    make: Factory, raw_udp: Any, scaled: Scaled
) -> None:
    server = await make.server()
    seen: list[int] = []
    done = asyncio.Event()
    count = 3 * MAX_BATCH + 5

    def on_status(data: Any, addr: Any) -> None:
        seen.append(data[0])
        if len(seen) == count:
            done.set()

    server.assign_callback(ExpMessage.EXPSTATUS, on_status)
    peer = await raw_udp("127.0.0.1", server.port)
    sent = [json.dumps([int(ExpMessage.EXPSTATUS), i]).encode() for i in range(count)]
    for payload in sent:  # all queued in the socket before the loop wakes the server
        peer.send(payload)
    await asyncio.wait_for(done.wait(), scaled(5.0))
    assert seen == list(range(count))
    echoes = [await peer.recv(scaled(2.0)) for _ in range(count)]
    assert echoes == sent
    assert not server.dropped


class CountingSocket:
    """A real UDP socket that counts the reads that found it empty."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.empty_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    def recvfrom(self, size: int) -> tuple[bytes, Any]:
        try:
            return self.sock.recvfrom(size)
        except BlockingIOError:
            self.empty_reads += 1
            raise


async def test_one_at_a_time_skips_empty_reads_and_bursts_still_drain(scaled: Scaled) -> None:
    loop = asyncio.get_running_loop()
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.connect(server.getsockname())
    counting = CountingSocket(server)
    proto = Recorder()
    link = DatagramLink(loop, counting, proto, None)  # type: ignore[arg-type]
    arrived = asyncio.Event()
    deliver = proto.datagram_received

    def received(data: bytes, addr: Any) -> None:
        deliver(data, addr)
        arrived.set()

    proto.datagram_received = received  # type: ignore[method-assign]
    try:
        rounds = 30
        for i in range(rounds):  # round trips: one datagram per wake-up
            arrived.clear()
            peer.send(b"%d" % i)
            await asyncio.wait_for(arrived.wait(), scaled(2.0))
        # one probing (empty) read per PROBE_EVERY + 1 wake-ups, not one per wake-up
        assert counting.empty_reads < rounds // 2
        assert counting.empty_reads <= rounds // (PROBE_EVERY + 1) + 1
        count = 3 * MAX_BATCH + 5
        for i in range(count):  # a burst queued while in one-at-a-time mode
            peer.send(b"b%d" % i)
        while len(proto.received) < rounds + count:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), scaled(2.0))
        got = [data for data, _ in proto.received]
        assert got == [b"%d" % i for i in range(rounds)] + [b"b%d" % i for i in range(count)]
    finally:
        link.abort()
        await asyncio.wait_for(proto.lost_event.wait(), scaled(2.0))
        peer.close()


async def test_icmp_unreachable_is_reported_not_fatal(make: Factory, scaled: Scaled) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = await make.client(f"udp://127.0.0.1:{closed_port}")
    client.send(["status", 1])
    exc = await asyncio.wait_for(asyncio.shield(client.on_error_received), scaled(2.0))
    assert isinstance(exc, ConnectionRefusedError)
    assert client.dropped["socket_error"] >= 1
    assert client.is_connected


async def test_refused_send_is_buffered_then_flushed_in_order(scaled: Scaled) -> None:
    loop = asyncio.get_running_loop()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.connect(receiver.getsockname())
    raw.setblocking(False)
    proto = Recorder()
    link = DatagramLink(loop, StallingSocket(raw, 1), proto, raw.getpeername())  # type: ignore[arg-type]
    try:
        assert proto.transport is link
        for i in range(3):
            link.sendto(b"%d" % i)
        assert link.get_write_buffer_size() == 3
        link.close()  # waits for the buffer before connection_lost
        assert not proto.lost
        await asyncio.wait_for(proto.lost_event.wait(), scaled(2.0))
        got = [await asyncio.wait_for(loop.sock_recv(receiver, 16), scaled(2.0)) for _ in range(3)]
        assert got == [b"0", b"1", b"2"]
        assert proto.lost == [None]
        assert raw.fileno() == -1
    finally:
        receiver.close()
        raw.close()


async def test_refused_sends_are_held_up_to_a_limit(scaled: Scaled) -> None:
    """A socket that keeps refusing cannot make the send buffer grow without end."""
    loop = asyncio.get_running_loop()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.connect(receiver.getsockname())
    raw.setblocking(False)
    proto = Recorder()
    link = DatagramLink(loop, StallingSocket(raw, 10**6), proto, raw.getpeername())  # type: ignore[arg-type]
    try:
        chunk = b"x" * 60000
        count = MAX_SEND_BUFFER // len(chunk)
        for _ in range(count + 3):
            link.sendto(chunk)
        assert link.get_write_buffer_size() == count * len(chunk) <= MAX_SEND_BUFFER
        assert len(proto.errors) == 3
        assert all(isinstance(e, OSError) and "send buffer full" in str(e) for e in proto.errors)
        link.abort()
        await asyncio.wait_for(proto.lost_event.wait(), scaled(2.0))
        assert link.get_write_buffer_size() == 0
    finally:
        receiver.close()
        raw.close()


async def test_close_is_idempotent_and_later_sends_are_ignored(scaled: Scaled) -> None:
    proto = Recorder()
    link = await open_datagram(proto, local_addr=("::1", 0))
    sock = link.get_extra_info("socket")
    assert sock.family == socket.AF_INET6
    assert link.get_extra_info("peername") is None
    link.close()
    link.close()
    assert link.is_closing()
    link.sendto(b"late", ("::1", 9))
    await asyncio.wait_for(proto.lost_event.wait(), scaled(2.0))
    await asyncio.sleep(0)
    assert proto.lost == [None]
    assert sock.fileno() == -1
    assert not proto.errors


async def test_client_options_local_addr_and_unknown(make: Factory, scaled: Scaled) -> None:
    server = await make.server()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()
    client = await make.client(server.server_uri, local_addr=local)
    assert client._transport.get_extra_info("sockname") == local
    await asyncio.wait_for(client.init({"subject": "x"}), scaled(2.0))
    with pytest.raises(TypeError):
        await make.client(server.server_uri, no_such_option=1)
