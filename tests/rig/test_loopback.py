"""Our client against our server over real loopback sockets: UDP, TCP, IPv6."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest

from sciwire.errors import ConnectionClosed, RemoteProtocolError, Timeout
from sciwire.rig import (
    EchoMismatchError,
    EchoProtocol,
    EchoTimeoutError,
    ExpMessage,
    ExpStatus,
    MessageTooLargeError,
    encode,
)
from sciwire.rig._framing import StreamSplitter
from tests.rig.helpers import Factory

Scaled = Callable[[float], float]


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


TRANSPORTS = [
    ("udp", "127.0.0.1"),
    ("tcp", "127.0.0.1"),
    ("ws", "127.0.0.1"),
    ("udp", "[::1]"),
    ("tcp", "[::1]"),
]
assert has_ipv6(), "IPv6 loopback is needed for the [::1] tests"


@pytest.mark.parametrize(("scheme", "host"), TRANSPORTS)
async def test_round_trip_both_directions(
    make: Factory, scaled: Scaled, scheme: str, host: str
) -> None:
    server, client = await make.pair(scheme, host)
    assert server.role == "server" and client.role == "client"
    assert server.is_connected and client.is_connected
    assert client.server_uri == server.server_uri
    got = asyncio.ensure_future(server.on_event("expinit"))
    await client.init({"exp_ref": "2024-01-01_1_mouse", "ü": 1})
    data, addr = await asyncio.wait_for(got, scaled(2))
    assert data == [{"exp_ref": "2024-01-01_1_mouse", "ü": 1}]
    assert not client.awaiting_response()
    # the server answers the client at the address it came from
    back = asyncio.ensure_future(client.on_event(ExpMessage.EXPSTATUS))
    await server.status(ExpStatus.RUNNING, addr=addr)
    assert await asyncio.wait_for(back, scaled(2)) == ([20], (client.hostname, client.port))


async def test_every_message_shape_arrives(make: Factory, scaled: Scaled) -> None:
    server, client = await make.pair()
    seen: list[tuple[ExpMessage, list[Any]]] = []
    server.assign_callback(ExpMessage.any(), lambda d, a, e: seen.append((e, d)))
    await client.info(ExpStatus.CONNECTED, {"main_sync": True})
    await client.init({"a": 1})
    await client.start({"date": "2024-01-01", "sequence": 2, "subject": "m"}, {"x": 1})
    await client.status("running")
    await client.stop()
    await client.stop(immediately=True)
    await client.cleanup()
    await client.alyx(
        type("A", (), {"base_url": "u", "user": "me", "_token": "t", "is_logged_in": True})()
    )
    assert seen == [
        (ExpMessage.EXPINFO, [0, {"main_sync": True}]),
        (ExpMessage.EXPINIT, [{"a": 1}]),
        (ExpMessage.EXPSTART, ["2024-01-01_2_m", {"x": 1}]),
        (ExpMessage.EXPSTATUS, [20]),
        (ExpMessage.EXPEND, [None]),
        (ExpMessage.EXPINTERRUPT, [None]),
        (ExpMessage.EXPCLEANUP, [None]),
        (ExpMessage.ALYX, ["u", {"me": "t"}]),
    ]


async def test_alyx_request_returns_peer_token(make: Factory, scaled: Scaled) -> None:
    server, client = await make.pair()

    async def share(data: list[Any], addr: Any) -> None:
        if data == [None, {}]:
            await server.confirmed_send([128, "https://alyx", {"u": "t"}], addr)

    server.assign_callback("ALYX", share)
    token = await asyncio.wait_for(client.alyx(), scaled(2))
    assert token == ["https://alyx", {"u": "t"}]


async def test_callbacks_compound_futures_and_clearing(make: Factory, scaled: Scaled) -> None:
    server, client = await make.pair()
    plain: list[Any] = []
    compound: list[Any] = []

    def on_plain(data: list[Any], addr: Any) -> None:
        plain.append(data)

    def on_compound(data: list[Any], addr: Any, event: ExpMessage) -> None:
        compound.append(event)

    server.assign_callback("EXPEND", on_plain)
    server.assign_callback(ExpMessage.EXPEND | ExpMessage.EXPINTERRUPT, on_compound)
    fut = asyncio.get_running_loop().create_future()
    server.assign_callback(ExpMessage.EXPEND, fut)
    await client.stop(1)
    await client.stop(2, immediately=True)
    done = asyncio.ensure_future(server.on_event("EXPCLEANUP"))
    await client.cleanup()
    await asyncio.wait_for(done, scaled(2))
    assert plain == [[1]]
    assert compound == [ExpMessage.EXPEND, ExpMessage.EXPINTERRUPT]
    assert fut.result()[0] == [1]
    # a compound registration counts once per bit; clearing one bit keeps the other
    assert server.clear_callbacks("EXPEND", on_compound) == 1
    assert server.clear_callbacks(ExpMessage.any()) == 2  # on_plain + on_compound(INTERRUPT)
    assert server.clear_callbacks(ExpMessage.any()) == 0
    with pytest.raises(TypeError):
        server.assign_callback("EXPEND", "not callable")  # type: ignore[arg-type]


async def test_async_callback_runs_and_its_error_is_reported(make: Factory, scaled: Scaled) -> None:
    server, client = await make.pair()
    ran = asyncio.Event()

    async def good(data: list[Any], addr: Any) -> None:
        ran.set()

    async def bad(data: list[Any], addr: Any) -> None:
        raise KeyError("async boom")

    server.assign_callback("EXPINIT", good)
    server.assign_callback("EXPINIT", bad)
    report = asyncio.ensure_future(client.on_event(0))
    await client.init()
    data, _ = await asyncio.wait_for(report, scaled(2))
    assert ran.is_set()
    assert data == ["KeyError: 'async boom'", 1]


async def test_raising_callback_reports_code_zero_and_others_run(
    make: Factory, scaled: Scaled
) -> None:
    server, client = await make.pair()
    after: list[Any] = []

    def boom(data: list[Any], addr: Any) -> None:
        raise ValueError("bad data")

    server.assign_callback("EXPSTART", boom)
    server.assign_callback("EXPSTART", lambda d, a: after.append(d))
    report = asyncio.ensure_future(client.on_event(0))
    await client.start("2024-01-01_1_m")
    data, _addr = await asyncio.wait_for(report, scaled(2))
    assert data == ["ValueError: bad data", 2]
    assert after == [["2024-01-01_1_m", None]]
    assert server.callback_errors == 1
    # the report was not echoed back to the server: the link still works both ways
    await client.init()


async def test_services_concurrent_and_sequential(make: Factory, scaled: Scaled) -> None:
    from sciwire.rig import Services

    order: list[str] = []
    clients = []
    for name in ("cam", "ephys", "sync"):
        rig = await make.rig(name=name)
        rig.com.assign_callback(ExpMessage.any(), lambda d, a, e, n=name: order.append(n))
        clients.append(await make.client(rig.com.server_uri, name=name))
    services = Services(clients, timeout=scaled(2))
    assert services.is_connected and list(services) == ["cam", "ephys", "sync"]
    info = await services.info(ExpStatus.CONNECTED, {"exp": 1})
    assert info == {n: [0, {"name": n, "main_sync": False}] for n in ("cam", "ephys", "sync")}
    assert await services.init({"a": 1}) == {key: [{"a": 1}] for key in services}
    assert await services.start("2024-01-01_1_m") == {
        key: ["2024-01-01_1_m", None] for key in services
    }
    assert await services.status(ExpStatus.RUNNING) == {key: [20] for key in services}
    order.clear()
    assert await services.stop(concurrent=False) == {key: [None] for key in services}
    assert order == ["sync", "ephys", "cam"]
    order.clear()
    assert await services.cleanup(concurrent=False) == {key: [None] for key in services}
    assert order == ["sync", "ephys", "cam"]
    order.clear()
    assert await services.init(concurrent=False) == {key: [None] for key in services}
    assert order == ["cam", "ephys", "sync"]
    interrupted = await services.stop(immediately=True)
    assert interrupted == {key: [None] for key in services}
    alyx = type("A", (), {"base_url": "u", "user": "me", "_token": "t", "is_logged_in": True})()
    await services.alyx(alyx)
    assert all(not c._handlers() for c in clients)  # nothing left registered


async def test_services_timeout_names_silent_rigs_and_cleans_up(
    make: Factory, scaled: Scaled
) -> None:
    from sciwire.rig import Services, ServicesTimeoutError

    live = await make.rig(name="live")
    silent = await make.server(name="silent")  # echoes but never replies
    clients = [
        await make.client(live.com.server_uri, name="live"),
        await make.client(silent.server_uri, name="silent"),
    ]
    services = Services(clients, timeout=scaled(1.0))  # the live rig must make it
    with pytest.raises(ServicesTimeoutError) as info:
        await services.init()
    assert info.value.failed == {"silent"}
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, Timeout)
    assert "silent" in str(info.value)
    assert all(not c._handlers() for c in clients)
    with pytest.raises(TimeoutError):
        await services.start("x", concurrent=False)
    assert await Services(clients[:1], timeout=scaled(2)).init() == {"live": [None]}


async def test_services_callbacks_with_service(make: Factory, scaled: Scaled) -> None:
    from sciwire.rig import Services

    rig = await make.server()
    client = await make.client(rig.server_uri, name="r")
    services = Services([client])
    got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def cb(data: list[Any], addr: Any, service: Any) -> None:
        got.set_result((data, service))

    services.assign_callback("EXPINFO", cb, return_service=True)
    local = client._transport.get_extra_info("sockname")
    await rig.info(ExpStatus.RUNNING, {"x": 1}, addr=(local[0], local[1]))
    assert await asyncio.wait_for(got, scaled(2)) == ([20, {"x": 1}], client)
    assert services.clear_callbacks("EXPINFO", cb) == {"r": 1}
    with pytest.raises(TypeError):
        Services([object()])


async def test_echo_timeout_closes_client_not_server(
    make: Factory, raw_udp: Any, scaled: Scaled
) -> None:
    mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mute.bind(("127.0.0.1", 0))
    try:
        client = await make.client(f"udp://127.0.0.1:{mute.getsockname()[1]}")
        with pytest.raises(EchoTimeoutError) as info:
            await client.confirmed_send([1, None], timeout=scaled(0.2))
        assert isinstance(info.value, TimeoutError)
        assert not client.is_connected  # iblutil closes a client after a timeout
    finally:
        mute.close()
    # a server: a dead peer times out, the others keep working
    server = await make.server()
    with pytest.raises(TimeoutError):
        await server.confirmed_send([1, None], addr=("127.0.0.1", 9), timeout=scaled(0.2))
    assert server.is_connected
    other = await make.client(server.server_uri)
    await other.init()


async def test_mismatched_echo_raises_runtime_error(
    make: Factory, raw_udp: Any, scaled: Scaled
) -> None:
    server = await make.server()
    peer = await raw_udp(*server._peer)
    peer.send(encode([32, 0]))  # say hello so we know its address
    assert await peer.recv(scaled(2)) == b"[32, 0]"
    sending = asyncio.ensure_future(server.init({"a": 1}, addr=peer.addr))
    assert await peer.recv(scaled(2)) == b'[1, {"a": 1}]'
    peer.send(b'[1, {"a": 2}]')
    with pytest.raises(EchoMismatchError) as info:
        await sending
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, RemoteProtocolError)
    assert server.is_connected  # a server is not closed by one bad peer
    peer.send(b"[2, null]")
    assert await peer.recv(scaled(2)) == b"[2, null]"


async def test_late_echo_is_swallowed_not_bounced(
    make: Factory, raw_udp: Any, scaled: Scaled
) -> None:
    server = await make.server()
    peer = await raw_udp(*server._peer)
    with pytest.raises(TimeoutError):
        await server.confirmed_send([4, "late"], addr=peer.addr, timeout=scaled(0.1))
    late = await peer.recv(scaled(2))
    peer.send(late)  # the echo, too late
    peer.send(b"[1, null]")
    assert await peer.recv(scaled(2)) == b"[1, null]"  # the late echo was not echoed back
    assert server._echo.counts["late"] == 1


BAD_DATAGRAMS = [
    (b"", "empty"),
    (b"\xff\xfe\xfd", "utf8"),
    (b"0", "shape"),
    (b"x", "json"),
    (b"definitely not json", "json"),
    (b"[1]", "shape"),
    (b'{"a": 1}', "shape"),
    (b"[3, null]", "event"),
    (b'["nope", 1]', "event"),
    (b"[0, 1]", "shape"),
    (b"x" * 3000, "oversized"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_DATAGRAMS)
async def test_bad_datagrams_are_dropped_unechoed(
    make: Factory, raw_udp: Any, scaled: Scaled, bad: bytes, reason: str
) -> None:
    server = await make.server()
    server.max_message_size = 2048
    seen: list[Any] = []
    server.assign_callback(ExpMessage.any(), lambda d, a, e: seen.append(e))
    peer = await raw_udp(*server._peer)
    with pytest.warns(RuntimeWarning, match=rf"dropped a message \({reason}\)"):
        peer.send(bad)
        peer.send(b"[1, null]")
        assert await peer.recv(scaled(2)) == b"[1, null]"  # the first thing back: not bad
    assert server.dropped == {reason: 1}
    assert seen == [ExpMessage.EXPINIT]


async def test_error_report_is_not_echoed(make: Factory, raw_udp: Any, scaled: Scaled) -> None:
    server = await make.server()
    reports: list[Any] = []
    server.assign_callback(0, lambda d, a: reports.append(d))
    peer = await raw_udp(*server._peer)
    peer.send(b'[0, "ValueError: x", 4]')
    peer.send(b"[1, null]")
    assert await peer.recv(scaled(2)) == b"[1, null]"
    assert reports == [["ValueError: x", 4]]


async def test_misuse_errors(make: Factory) -> None:
    server, client = await make.pair()
    with pytest.raises(TypeError):
        await server.init()  # a server needs addr
    with pytest.raises(ValueError):
        await client.init(addr=("127.0.0.1", 1))
    with pytest.raises(ValueError):
        await client.confirmed_send([1, None], timeout=-1)
    with pytest.raises(MessageTooLargeError):
        await client.init("x" * 70000)
    with pytest.raises(ValueError):
        await EchoProtocol.client("http://127.0.0.1:5")
    with pytest.raises(AttributeError):
        client.role = "server"
    assert not client.awaiting_response()
    await client.init()  # still usable: misuse raised before anything was sent


@pytest.mark.parametrize("scheme", ["udp", "tcp"])
async def test_largest_udp_message_round_trips(make: Factory, scaled: Scaled, scheme: str) -> None:
    server, client = await make.pair(scheme)
    text = "x" * (65507 - len(encode([1, ""])))  # exactly the largest IPv4 UDP payload
    got = asyncio.ensure_future(server.on_event("EXPINIT"))
    await client.init(text)
    assert (await asyncio.wait_for(got, scaled(2)))[0] == [text]


async def test_concurrent_confirmed_sends_to_one_peer_queue(make: Factory) -> None:
    server, client = await make.pair()
    got: list[Any] = []
    server.assign_callback(ExpMessage.any(), lambda d, a, e: got.append(d[0]))
    await asyncio.gather(*(client.confirmed_send([1, i]) for i in range(20)))
    assert sorted(got) == list(range(20))


# -- TCP specifics ---------------------------------------------------------------------


async def read_messages(reader: asyncio.StreamReader, count: int, timeout: float) -> list[bytes]:
    splitter = StreamSplitter()
    out: list[bytes] = []
    while len(out) < count:
        chunk = await asyncio.wait_for(reader.read(65536), timeout)
        if not chunk:
            break
        out.extend(raw for raw, _ in splitter.feed(chunk))
    return out


async def test_tcp_glued_messages(make: Factory, raw_tcp: Any, scaled: Scaled) -> None:
    server = await make.server("tcp://127.0.0.1:0")
    seen: list[Any] = []
    server.assign_callback(ExpMessage.any(), lambda d, a, e: seen.append(d))
    reader, writer = await raw_tcp(*server._peer)
    batch = [encode([1, i]) for i in range(5)]
    writer.write(b"".join(batch))
    await writer.drain()
    assert await read_messages(reader, 5, scaled(2)) == batch
    assert seen == [[i] for i in range(5)]


async def test_tcp_split_messages(make: Factory, raw_tcp: Any, scaled: Scaled) -> None:
    server = await make.server("tcp://127.0.0.1:0")
    reader, writer = await raw_tcp(*server._peer)
    message = encode([2, "2024-01-01_1_m", {"text": "é" * 50}])
    for i in range(0, len(message), 7):
        writer.write(message[i : i + 7])
        await writer.drain()
    assert await read_messages(reader, 1, scaled(2)) == [message]


async def test_tcp_services_reply_glued_with_echo(make: Factory, scaled: Scaled) -> None:
    """Echo and reply often arrive in one read: this breaks iblutil, not us."""
    from sciwire.rig import Services

    rigs = [await make.rig("tcp://127.0.0.1:0", name=f"r{i}") for i in range(3)]
    clients = [await make.client(r.com.server_uri, name=f"r{i}") for i, r in enumerate(rigs)]
    services = Services(clients, timeout=scaled(2))
    for _ in range(20):
        assert await services.init() == {key: [None] for key in services}


async def test_many_tcp_clients_at_once(make: Factory, scaled: Scaled) -> None:
    server = await make.server("tcp://127.0.0.1:0")
    seen: list[Any] = []
    server.assign_callback(ExpMessage.any(), lambda d, a, e: seen.append((a, d[0])))
    clients = [await make.client(server.server_uri, name=f"c{i}") for i in range(10)]

    async def run(client: EchoProtocol, n: int) -> None:
        for i in range(20):
            await client.confirmed_send([1, n * 100 + i])

    await asyncio.gather(*(run(c, n) for n, c in enumerate(clients)))
    assert len(seen) == 200
    assert len(server.clients) == 10
    # the server reaches each client on its own connection
    replies = [asyncio.ensure_future(c.on_event("EXPSTATUS")) for c in clients]
    for addr in server.clients:
        await server.status(ExpStatus.STOPPED, addr=addr)
    done = await asyncio.wait_for(asyncio.gather(*replies), scaled(2))
    assert [d for d, _ in done] == [[30]] * 10


async def test_tcp_garbage_and_overflow(
    make: Factory, raw_tcp: Any, scaled: Scaled, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make.server("tcp://127.0.0.1:0", name="capped")
    server.max_buffer_size = 1000
    reader, writer = await raw_tcp(*server._peer)
    with pytest.warns(RuntimeWarning, match="dropped a message"):
        writer.write(b"garbage \xff\xfe [1] [1, 2]")
        assert await read_messages(reader, 1, scaled(2)) == [b"[1, 2]"]
    assert server.dropped == {"utf8": 1, "shape": 1}
    with caplog.at_level(logging.WARNING, logger="capped"):
        writer.write(b'[1, "' + b"x" * 2000)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), scaled(2)) == b""  # closed on overflow
    assert server.dropped["overflow"] == 1
    lines = [r.getMessage() for r in caplog.records if "closing connection" in r.getMessage()]
    assert len(lines) == 1 and "127.0.0.1" in lines[0] and "max_buffer_size" in lines[0], lines
    client = await make.client(server.server_uri)
    await client.init()  # other connections still served


async def test_tcp_connection_lost_fails_the_wait(make: Factory, scaled: Scaled) -> None:
    server = await make.server("tcp://127.0.0.1:0")
    client = await make.client(server.server_uri)
    await client.init()
    addr = server.clients[0]

    sending = asyncio.ensure_future(client.confirmed_send([1, None], timeout=scaled(5)))
    server._links[addr].transport.close()  # type: ignore[union-attr]
    with pytest.raises((ConnectionClosed, TimeoutError)):
        await sending
    await asyncio.wait_for(client.on_connection_lost, scaled(2))
    with pytest.raises(ConnectionClosed):
        client.send([1, None])


async def test_udp_client_close_resolves_futures(make: Factory) -> None:
    _server, client = await make.pair()
    waiting = asyncio.ensure_future(client.on_event("EXPEND"))
    await asyncio.sleep(0)
    client.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert client.on_connection_lost.done()
    assert not client.is_connected


async def test_udp_client_ignores_other_hosts(make: Factory) -> None:
    _server, client = await make.pair()
    seen: list[Any] = []
    client.assign_callback(ExpMessage.any(), lambda d, a, e: seen.append(d))
    client.datagram_received(b"[1, null]", ("10.9.9.9", client.port))
    assert client.dropped == {"foreign": 1}
    assert seen == []


async def test_services_alyx_request_is_bounded(make: Factory, scaled: Scaled) -> None:
    from sciwire.rig import Services, ServicesTimeoutError

    rig = await make.rig(name="quiet")  # echoes ALYX but never shares a token
    client = await make.client(rig.com.server_uri, name="quiet")
    with pytest.raises(ServicesTimeoutError) as info:
        await Services([client], timeout=scaled(0.2)).alyx(None)
    assert info.value.failed == {"quiet"}
    assert not client._handlers()


async def test_remote_rig_counts_a_reply_whose_echo_never_comes(
    make: Factory,
    raw_udp: Callable[[str, int], Any],
    scaled: Callable[[float], float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = await make.rig(name="lonely")
    rig.com.default_echo_timeout = 0.05
    failures: asyncio.Queue[BaseException] = asyncio.Queue()
    report = rig._failed

    def spy(addr: Any, exc: BaseException) -> None:
        report(addr, exc)
        failures.put_nowait(exc)

    rig._failed = spy  # type: ignore[method-assign]
    peer = await raw_udp(rig.com.hostname, rig.com.port)
    message = b'[1, {"x": 1}]'
    with caplog.at_level(logging.WARNING, logger="sciwire.rig._server"):
        peer.send(message)
        assert await peer.recv(scaled(2)) == message  # the echo
        reply = await peer.recv(scaled(2))  # the rig's reply, which we never echo
        assert json.loads(reply)[0] == 1
        assert isinstance(await asyncio.wait_for(failures.get(), scaled(5)), TimeoutError)
    assert rig.reply_errors == 1
    assert "reply to" in caplog.text and "lonely" in caplog.text
    # a wrong echo is a failure too, reported once (a new message: the first one's
    # bytes are now the reply's late echo, which the rig would swallow)
    message = b'[1, {"x": 2}]'
    peer.send(message)
    assert await peer.recv(scaled(2)) == message
    await peer.recv(scaled(2))
    peer.send(b'[1, "not the reply"]')
    assert isinstance(await asyncio.wait_for(failures.get(), scaled(5)), RuntimeError)
    assert rig.reply_errors == 2 and failures.empty()


async def test_remote_rig_keeps_the_latest_messages_and_bounds_its_reply_queue(
    make: Factory, scaled: Scaled
) -> None:
    from sciwire.rig import RemoteRig

    class Small(RemoteRig):
        max_received = 2
        max_queued = 0

    server = await make.server(name="small")
    # registered before the rig's own: makes the rig's reply wait behind an echo
    # awaited from that peer (iblutil's _last_sent: an echo awaited with no deadline)
    held: list[asyncio.Future[Any]] = []

    def hold(data: Any, addr: Any) -> None:
        if data == ["hold"]:
            held.append(asyncio.get_running_loop().create_future())
            server._last_sent[addr] = (b"never", held[-1])

    server.assign_callback("EXPCLEANUP", hold)
    rig = Small(server)
    make.closers.append(rig.close)
    client = await make.client(server.server_uri, name="c")
    loop = asyncio.get_running_loop()
    for step in range(3):
        reply: asyncio.Future[Any] = loop.create_future()
        client.assign_callback("EXPINIT", reply)  # before sending: the reply is quick
        await client.init({"step": step})
        await asyncio.wait_for(reply, scaled(2))
    assert [d for _, d, _ in rig.received] == [[{"step": 1}], [{"step": 2}]]
    await client.cleanup("hold")  # hold() then the rig: a reply it may not queue
    assert rig.reply_errors == 1 and not rig._tasks
    for fut in held:
        fut.cancel()
