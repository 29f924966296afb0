"""Size limits: max_message_size and max_record_size on the simulator (server) and on our
client, over real loopback sockets; each over-limit connection is closed and logged once
with the peer's address and the limit's name, and legitimate clients go on being served."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import aiohttp.web
import pytest

from sciwire.errors import ConnectionClosed, RemoteProtocolError, Timeout
from sciwire.ifcb import (
    MAX_MESSAGE_SIZE,
    MAX_RECORD_SIZE,
    AsyncIFCBClient,
    HubClient,
    IFCBSimulator,
    MessageTooLarge,
    NegotiateError,
    RecordTooLarge,
)
from sciwire.ifcb._signalr import PING_RECORD, RS, RecordBuffer, SignalRConnection
from sciwire.ifcb._transport import MAX_NEGOTIATE_BODY

SERIAL = "111-111-111"
FAST = (0.05, 0.1, 0.2)
SMALL = 64 * 1024


# -- the record buffer (sans-I/O) -----------------------------------------------------------


def test_defaults_match_aiohttps_message_cap() -> None:
    assert MAX_MESSAGE_SIZE == 4 * 1024 * 1024
    assert MAX_RECORD_SIZE == 4 * 1024 * 1024
    sim = IFCBSimulator()
    assert sim.max_message_size == MAX_MESSAGE_SIZE
    assert sim.max_record_size == MAX_RECORD_SIZE
    client = AsyncIFCBClient("ws://127.0.0.1:1/ifcbHub", SERIAL)
    assert client.max_message_size == MAX_MESSAGE_SIZE
    assert client.max_record_size == MAX_RECORD_SIZE
    assert RecordBuffer().limit == MAX_RECORD_SIZE


@pytest.mark.parametrize("kind", [str, bytes])
def test_record_buffer_caps_an_unfinished_record(kind: Callable[[str], Any]) -> None:
    def data(text: str) -> Any:
        return text if kind is str else text.encode()

    buf = RecordBuffer(limit=10)
    assert buf.feed(data("a" * 10)) == []  # at the limit: fine
    assert buf.feed(data(RS + "b" * 4 + RS)) == ["a" * 10, "bbbb"]
    buf.feed(data("c" * 6))
    with pytest.raises(RecordTooLarge, match="max_record_size"):
        buf.feed(data("c" * 5))  # 11 across two frames
    assert buf.pending == 0  # the memory is released at once


@pytest.mark.parametrize("kind", [str, bytes])
def test_record_buffer_caps_a_finished_record_too(kind: Callable[[str], Any]) -> None:
    buf = RecordBuffer(limit=10)
    text = "ok" + RS + "d" * 11 + RS
    with pytest.raises(RecordTooLarge):
        buf.feed(text if kind is str else text.encode())


def test_frame_over_the_cap_is_checked_record_by_record() -> None:
    conn = SignalRConnection("client", 0.0, max_record_size=40)
    conn.receive_frame("{}" + RS, 0.0)  # handshake accepted
    small = '{"type":6}' + RS
    assert len(conn.receive_frame(small * 3, 0.0)) == 3  # over no record's cap: in place
    assert len(conn.receive_frame(small * 5, 0.0)) == 5  # a long frame: the checked path
    long = '{"type":1,"target":"' + "t" * 40 + '","arguments":[]}' + RS
    [error] = conn.receive_frame(long, 0.0)
    assert isinstance(error, RecordTooLarge)


def test_record_buffer_zero_means_no_limit() -> None:
    buf = RecordBuffer(limit=0)
    buf.feed("x" * 100_000)
    assert buf.pending == 100_000


def test_connection_passes_its_record_cap() -> None:
    conn = SignalRConnection("server", 0.0, max_record_size=8)
    [error] = conn.receive_frame('{"protocol":', 0.0)
    assert isinstance(error, RecordTooLarge)


# -- the simulator under attack -------------------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[IFCBSimulator]:
    simulator = IFCBSimulator(
        SERIAL, rate=0, heartbeat_interval=0, max_message_size=SMALL, max_record_size=SMALL
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def raw_ws(sim: IFCBSimulator) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A bare WebSocket to the hub that has done the SignalR handshake (the attacker)."""
    async with aiohttp.ClientSession() as session:
        url = sim.url.replace("http", "ws")
        async with session.ws_connect(url, max_msg_size=0) as ws:
            await ws.send_str('{"protocol":"json","version":1}' + RS)
            reply = await ws.receive(timeout=10)
            assert reply.data == "{}" + RS
            yield ws


async def _legitimate_client_is_served(sim: IFCBSimulator, timeout: float) -> None:
    client = AsyncIFCBClient(sim.url.replace("http", "ws"), SERIAL, reconnect=False)
    paused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    client.on(("valuechanged", "pausestate"), lambda *f: paused.done() or paused.set_result(f))
    await client.connect()
    try:
        assert await asyncio.wait_for(paused, timeout) == ("valuechanged", "pausestate", False)
    finally:
        await client.disconnect()


def _limit_logs(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if name in r.getMessage()]


async def test_server_closes_on_an_oversized_message(
    sim: IFCBSimulator,
    raw_ws: aiohttp.ClientWebSocketResponse,
    caplog: pytest.LogCaptureFixture,
    scaled: Callable[[float], float],
) -> None:
    caplog.set_level(logging.INFO, "sciwire.ifcb")
    await raw_ws.send_str("x" * (SMALL + 1))
    msg = await raw_ws.receive(timeout=scaled(10))
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1009
    logs = _limit_logs(caplog, "max_message_size")
    assert len(logs) == 1, logs
    assert "127.0.0.1:" in logs[0] and str(SMALL) in logs[0]
    await _legitimate_client_is_served(sim, scaled(10))


async def test_server_closes_on_an_endless_record(
    sim: IFCBSimulator,
    raw_ws: aiohttp.ClientWebSocketResponse,
    caplog: pytest.LogCaptureFixture,
    scaled: Callable[[float], float],
) -> None:
    caplog.set_level(logging.INFO, "sciwire.ifcb")
    chunk = "y" * (SMALL // 4)  # each frame well under the message cap
    closed = None
    for _ in range(64):  # 16 x the cap, unless the hub closes first
        if raw_ws.closed:
            break
        try:
            await raw_ws.send_str(chunk)
        except (ConnectionError, aiohttp.ClientError):
            break
    while closed is None:
        msg = await raw_ws.receive(timeout=scaled(10))
        if msg.type is aiohttp.WSMsgType.TEXT:
            assert '"type":7' in msg.data and "max_record_size" in msg.data
        else:
            closed = msg.type
    assert closed in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    logs = _limit_logs(caplog, "max_record_size")
    assert len(logs) == 1, logs
    assert "127.0.0.1:" in logs[0]
    await _legitimate_client_is_served(sim, scaled(10))


# -- our client under attack ----------------------------------------------------------------


@pytest.fixture
async def plain_sim() -> AsyncIterator[IFCBSimulator]:
    simulator = IFCBSimulator(SERIAL, rate=0, heartbeat_interval=0)
    await simulator.start()
    yield simulator
    await simulator.stop()


async def _connected_client(
    sim: IFCBSimulator, timeout: float, **options: Any
) -> tuple[AsyncIFCBClient, asyncio.Queue[tuple[Any, ...]], asyncio.Event]:
    client = AsyncIFCBClient(
        sim.url.replace("http", "ws"), SERIAL, reconnect_delays=FAST, **options
    )
    got: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    reconnected = asyncio.Event()
    client.on(("reportevent",), lambda *f: got.put_nowait(f))
    client.on_reconnect(reconnected.set)
    await client.connect()
    await client.wait_started(timeout)
    return client, got, reconnected


async def _reconnected_after_the_limit(
    client: AsyncIFCBClient,
    sim: IFCBSimulator,
    got: asyncio.Queue[tuple[Any, ...]],
    reconnected: asyncio.Event,
    caplog: pytest.LogCaptureFixture,
    limit: str,
    timeout: float,
) -> None:
    """The client, having closed on *limit*, reconnected, logged the close once naming
    the limit and the hub, and hears the hub again."""
    await asyncio.wait_for(reconnected.wait(), timeout)
    logs = _limit_logs(caplog, limit)
    assert len(logs) == 1, logs
    assert sim.url.replace("http", "ws") in logs[0]
    await client.wait_started(timeout)
    sim.push("reportevent:heard again")
    assert await asyncio.wait_for(got.get(), timeout) == ("reportevent", "heard again")


async def test_client_closes_on_an_oversized_message_and_reconnects(
    plain_sim: IFCBSimulator,
    caplog: pytest.LogCaptureFixture,
    scaled: Callable[[float], float],
) -> None:
    caplog.set_level(logging.INFO, "sciwire.ifcb")
    client, got, reconnected = await _connected_client(
        plain_sim, scaled(10), max_message_size=SMALL
    )
    try:
        plain_sim.push("reportevent:" + "z" * SMALL)
        await _reconnected_after_the_limit(
            client, plain_sim, got, reconnected, caplog, "max_message_size", scaled(10)
        )
    finally:
        await client.disconnect()


async def test_client_closes_on_an_endless_record_and_reconnects(
    plain_sim: IFCBSimulator,
    caplog: pytest.LogCaptureFixture,
    scaled: Callable[[float], float],
) -> None:
    caplog.set_level(logging.INFO, "sciwire.ifcb")
    client, got, reconnected = await _connected_client(plain_sim, scaled(10), max_record_size=SMALL)
    try:
        [conn] = plain_sim.clients.values()
        for _ in range(8):  # frames under the message cap, never a 0x1E
            conn.send_record("w" * (SMALL // 4))
        await _reconnected_after_the_limit(
            client, plain_sim, got, reconnected, caplog, "max_record_size", scaled(10)
        )
    finally:
        await client.disconnect()


@pytest.mark.parametrize(
    ("options", "cause"),
    [({"max_message_size": SMALL}, MessageTooLarge), ({"max_record_size": SMALL}, RecordTooLarge)],
)
async def test_hub_client_ends_with_the_limits_error(
    plain_sim: IFCBSimulator,
    options: dict[str, int],
    cause: type[Exception],
    scaled: Callable[[float], float],
) -> None:
    hub = HubClient(plain_sim.url, **options)
    registered = asyncio.Event()
    hub.on("startedAsClient", lambda _: registered.set())
    await hub.start()
    try:
        assert hub.max_message_size == options.get("max_message_size", MAX_MESSAGE_SIZE)
        assert hub.max_record_size == options.get("max_record_size", MAX_RECORD_SIZE)
        await hub.send("startAsClient", [SERIAL])
        await asyncio.wait_for(registered.wait(), scaled(10))
        plain_sim.push("reportevent:" + "v" * SMALL)
        ended = await asyncio.wait_for(hub.closed, scaled(10))
        assert isinstance(ended, cause)
        assert not hub.connected
    finally:
        await hub.stop()


def test_coalesced_frames_stay_under_the_frame_target() -> None:
    from sciwire.ifcb._hub import FRAME_CHARS, _coalesce

    records = ["r" * 1000 + RS] * 3000  # ~3 MB queued at once
    frames = _coalesce(records)
    assert len(frames) >= 3
    assert all(len(frame) <= FRAME_CHARS for frame in frames)
    assert "".join(frames) == "".join(records)
    big = "b" * (FRAME_CHARS + 5) + RS
    assert _coalesce(["a" + RS, big, "c" + RS]) == ["a" + RS, big, "c" + RS]
    assert _coalesce(["x" + RS]) == ["x" + RS]


async def test_a_burst_over_the_clients_cap_arrives_in_frames_it_accepts(
    plain_sim: IFCBSimulator, scaled: Callable[[float], float]
) -> None:
    client, got, reconnected = await _connected_client(plain_sim, scaled(10))
    try:
        for i in range(6):  # ~6 MiB queued before the writer runs: one frame would be refused
            plain_sim.push(f"reportevent:{i}:" + "q" * (1024 * 1024))
        for i in range(6):
            fields = await asyncio.wait_for(got.get(), scaled(20))
            assert fields[1].startswith(f"{i}:")
        assert not reconnected.is_set()
    finally:
        await client.disconnect()


# -- slow consumers -------------------------------------------------------------------------


async def test_server_drops_a_client_with_more_than_max_queued_records_waiting(
    caplog: pytest.LogCaptureFixture, scaled: Callable[[float], float]
) -> None:
    caplog.set_level(logging.INFO, "sciwire.ifcb")
    # above the ~100 state messages a refresh sends at once
    simulator = IFCBSimulator(SERIAL, rate=0, heartbeat_interval=0, max_queued=300)
    await simulator.start()
    try:
        client, _, _ = await _connected_client(simulator, scaled(10), reconnect=False)
        try:
            hub = client.require_connection()
            for i in range(400):  # in one turn of the loop: nothing is written meanwhile
                simulator.push(f"reportevent:{i}")
            assert isinstance(
                await asyncio.wait_for(asyncio.shield(hub.closed), scaled(10)), Exception
            )
        finally:
            await client.disconnect()
        logs = _limit_logs(caplog, "max_queued")
        assert len(logs) == 1 and "127.0.0.1:" in logs[0], logs
        await _legitimate_client_is_served(simulator, scaled(10))
    finally:
        await simulator.stop()


def _masked_text(payload: bytes) -> bytes:
    # a masked text frame (clients must mask, RFC 6455 5.3) with an all-zero key
    return struct.pack("!BBQ", 0x81, 0x80 | 127, len(payload)) + b"\0\0\0\0" + payload


async def test_blast_drops_a_client_that_pings_but_stops_reading(
    caplog: pytest.LogCaptureFixture, scaled: Callable[[float], float]
) -> None:
    caplog.set_level(logging.INFO, "sciwire.ifcb")
    simulator = IFCBSimulator(SERIAL, rate=0, heartbeat_interval=0, client_timeout=scaled(2))
    registered = asyncio.Event()
    start_as_client = simulator.methods["startAsClient"]

    def register(conn: Any, serial: Any) -> None:
        start_as_client(conn, serial)
        registered.set()

    simulator.method("startAsClient", register)
    await simulator.start()
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window fills fast
    sock.setblocking(False)
    stop = asyncio.Event()
    pinger: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", simulator.port)), 10)
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(
            sock,
            (
                f"GET /ifcbHub HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode(),
        )
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            head += await asyncio.wait_for(loop.sock_recv(sock, 1), scaled(10))
        assert head.startswith(b"HTTP/1.1 101"), head
        start = '{"type":1,"target":"startAsClient","arguments":["' + SERIAL + '"]}' + RS
        handshake = '{"protocol":"json","version":1}' + RS
        await loop.sock_sendall(sock, _masked_text(handshake.encode() + start.encode()))

        async def ping() -> None:  # alive as far as the keep-alive timer can tell
            while not stop.is_set():
                await loop.sock_sendall(sock, _masked_text(b'{"type":6}\x1e'))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)

        pinger = asyncio.create_task(ping())
        await asyncio.wait_for(registered.wait(), scaled(10))
        # (never read again from here on)
        # 12 MB in batches of 256: the writer takes the first and blocks on the full
        # socket, the second waits in the queue, and the blast waits for it to drain
        big = "reportevent:" + "z" * 20_000
        sent = await asyncio.wait_for(simulator.blast(600, [big]), scaled(30))
        assert sent == 600
        logs = _limit_logs(caplog, "took nothing")
        assert len(logs) == 1 and "127.0.0.1:" in logs[0], logs
    finally:
        stop.set()
        if pinger is not None:
            with contextlib.suppress(Exception):
                await pinger
        sock.close()
        await simulator.stop()


async def test_client_gives_up_on_a_hub_that_takes_nothing(
    scaled: Callable[[float], float],
) -> None:
    """A hub that hand-shakes, then keeps pinging but never reads: the server timeout
    never fires (the hub is heard from), so only a deadline on writes ends a send that
    waits for room in a full socket."""
    release = asyncio.Event()

    async def hub(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(
                hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
            )
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            writer.write(b"\x81\x03{}\x1e")  # the handshake reply; then pings only
            while not release.is_set():
                writer.write(b"\x81\x0b" + PING_RECORD.encode())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(release.wait(), 0.1)
        finally:
            writer.close()

    server = await asyncio.start_server(hub, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HubClient(
        f"ws://127.0.0.1:{port}/hub",
        skip_negotiation=True,
        keep_alive_interval=scaled(0.2),
        server_timeout=scaled(1),
    )
    try:
        await client.start()
        payload = "p" * 1_000_000

        async def flood() -> BaseException:
            while True:  # until the socket is full and the deadline passes
                try:
                    await client.send("upload", [payload])
                except (Timeout, ConnectionClosed) as exc:
                    return exc

        error = await asyncio.wait_for(flood(), scaled(20))
        assert isinstance(error, Timeout | ConnectionClosed)
        cause = await asyncio.wait_for(asyncio.shield(client.closed), scaled(5))
        assert isinstance(cause, Timeout) and "took nothing" in str(cause)
    finally:
        release.set()
        await client.stop()
        server.close()
        await server.wait_closed()


# -- negotiate answers ----------------------------------------------------------------------


@pytest.fixture
async def negotiate_answering() -> AsyncIterator[Callable[[int, bytes], str]]:
    """A hub URL whose negotiate answers the status and body the test sets (chunked)."""
    answer: list[tuple[int, bytes]] = []

    async def negotiate(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        status, body = answer[0]
        resp = aiohttp.web.StreamResponse(status=status)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(body), 16 * 1024):
            await resp.write(body[i : i + 16 * 1024])
        await resp.write_eof()
        return resp

    app = aiohttp.web.Application()
    app.router.add_post("/hub/negotiate", negotiate)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", 0).start()

    def url(status: int, body: bytes) -> str:
        answer[:] = [(status, body)]
        return f"http://127.0.0.1:{runner.addresses[0][1]}/hub"

    try:
        yield url
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("status", [200, 500])
async def test_an_endless_negotiate_answer_is_refused(
    negotiate_answering: Callable[[int, bytes], str],
    scaled: Callable[[float], float],
    status: int,
) -> None:
    body = b'{"connectionId": "' + b"x" * (MAX_NEGOTIATE_BODY + 1) + b'"}'
    hub = HubClient(negotiate_answering(status, body), handshake_timeout=scaled(10))
    with pytest.raises(RemoteProtocolError, match=f"over {MAX_NEGOTIATE_BODY} bytes"):
        await hub.start()


async def test_a_negotiate_error_keeps_its_body(
    negotiate_answering: Callable[[int, bytes], str], scaled: Callable[[float], float]
) -> None:
    hub = HubClient(negotiate_answering(503, b"hub is \xc3\xa9teint"), handshake_timeout=scaled(10))
    with pytest.raises(NegotiateError, match="HTTP 503") as caught:
        await hub.start()
    assert caught.value.code == 503 and caught.value.data == "hub is éteint"
