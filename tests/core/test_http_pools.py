"""The shared HTTP/1.1 pools and server (sciwire.core.http) on real loopback sockets:
retry policies, gzip, streaming, timeouts, pipelining and the concurrent server mode."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import resource
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest

from sciwire.core.http import AsyncHttpPool, Endpoint, HttpPool, HttpServer, ParsedRequest
from sciwire.core.http.client import StaleProbe, is_stale
from sciwire.core.http.codec import encode_response
from sciwire.core.http.server import Reply
from sciwire.errors import ConnectError, ConnectionClosed, RemoteProtocolError, Timeout


def ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Scripted:
    """A raw server answering each request with the next scripted action: bytes to send
    (b"!..." sends the rest, then closes), "close" (drop the connection unanswered),
    "reset" (reset it unanswered) or "hang" (never answer)."""

    def __init__(self, actions: list[bytes | str]) -> None:
        self.actions = actions
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.socks: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self.socks.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(buf) < length:
                    buf += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + buf[:length])
                buf = buf[length:]
                action = self.actions.pop(0) if self.actions else "hang"
                if action == "close":
                    return
                if action == "reset":
                    # linger 0: the close sends RST, the client sees a reset, not EOF
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if action == "hang":
                    self.stopping.wait(30)
                    return
                assert isinstance(action, bytes)
                if action.startswith(b"!"):
                    conn.sendall(action[1:])
                    return
                conn.sendall(action)

    def close(self) -> None:
        self.stopping.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        for sock in self.socks:
            sock.close()
        self.thread.join(5)


@pytest.fixture
def scripted() -> Iterator[Callable[[list[bytes | str]], Scripted]]:
    servers: list[Scripted] = []

    def make(actions: list[bytes | str]) -> Scripted:
        servers.append(Scripted(actions))
        return servers[-1]

    yield make
    for srv in servers:
        srv.close()


@pytest.fixture
def pools() -> Iterator[Callable[..., HttpPool]]:
    made: list[HttpPool] = []

    def make(port: int, **kw: object) -> HttpPool:
        kw.setdefault("timeout", 5.0)
        made.append(HttpPool(Endpoint("http", "127.0.0.1", port), **kw))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for pool in made:
        pool.shutdown()


Scripter = Callable[[list[bytes | str]], Scripted]


def test_keep_alive_gzip_and_headers(scripted: Scripter, pools: Callable[..., HttpPool]) -> None:
    srv = scripted([ok(gzip.compress(b"hello"), "Content-Encoding: gzip"), ok(b"two")])
    pool = pools(srv.port)
    resp = pool.call("GET", "/a?b=1", None, {"X-Y": "z"}, gzip=True)
    assert resp.status == 200 and resp.body == b"hello"
    assert pool.call("POST", "/p", b"data", {}).body == b"two"
    assert srv.connections == 1
    first, second = srv.requests
    assert first.startswith(b"GET /a?b=1 HTTP/1.1\r\n") and b"Accept-Encoding: gzip" in first
    assert f"Host: 127.0.0.1:{srv.port}".encode() in first and b"X-Y: z" in first
    assert second.endswith(b"Content-Length: 4\r\n\r\ndata")


def test_bad_gzip_is_a_protocol_error(scripted: Scripter, pools: Callable[..., HttpPool]) -> None:
    srv = scripted([ok(b"not gzip", "Content-Encoding: gzip")])
    with pytest.raises(RemoteProtocolError):
        pools(srv.port).call("GET", "/", None, {}, gzip=True)


def test_unsent_policy_never_resends_a_received_request(
    scripted: Scripter, pools: Callable[..., HttpPool]
) -> None:
    srv = scripted([ok(b"one"), "close", ok(b"unused")])
    pool = pools(srv.port, retries=3)
    assert pool.call("POST", "/", b"1", {}).body == b"one"
    with pytest.raises(ConnectionClosed):
        pool.call("POST", "/", b"2", {})
    assert len(srv.requests) == 2


def test_stale_policy_resends_once_on_a_dropped_kept_connection(
    scripted: Scripter, pools: Callable[..., HttpPool]
) -> None:
    srv = scripted([ok(b"one"), "close", ok(b"two"), "close", "close"])
    pool = pools(srv.port, retries=3, retry="stale")
    assert pool.call("POST", "/", b"1", {}).body == b"one"
    assert pool.call("POST", "/", b"2", {}).body == b"two"  # re-sent on a new connection
    assert srv.connections == 2
    with pytest.raises(ConnectionClosed):  # the kept one drops, then the fresh one: no more
        pool.call("POST", "/", b"3", {})


def test_idempotent_policy_retries_up_to_the_limit(
    scripted: Scripter, pools: Callable[..., HttpPool]
) -> None:
    srv = scripted(["close", b"!HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", ok(b"ok")])
    pool = pools(srv.port, retries=3, retry="idempotent")
    assert pool.call("GET", "/", None, {}).body == b"ok"
    assert len(srv.requests) == 3
    srv.actions[:] = ["close", "close", "close", ok(b"never")]
    with pytest.raises(ConnectionClosed):
        pool.call("GET", "/", None, {})
    assert len(srv.requests) == 6


def test_timeout_bounds_the_whole_response_and_is_not_retried(
    scripted: Scripter, pools: Callable[..., HttpPool], scaled: Callable[[float], float]
) -> None:
    srv = scripted(["hang"])
    pool = pools(srv.port, retries=3, retry="idempotent", timeout=scaled(0.3))
    with pytest.raises(Timeout):
        pool.call("GET", "/", None, {})
    assert len(srv.requests) == 1


def test_refused_is_a_connect_error(pools: Callable[..., HttpPool]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectError):
        pools(port, retries=2).call("GET", "/", None, {})


def test_error_factory_names_the_exceptions(
    scripted: Scripter, pools: Callable[..., HttpPool]
) -> None:
    class Mine(ConnectionClosed):
        pass

    def factory(kind: type[Exception], message: str, url: str, data: object) -> Exception:
        return Mine(f"{url}: {message}") if kind is ConnectionClosed else kind(message)

    srv = scripted(["close"])
    with pytest.raises(Mine, match=f"127.0.0.1:{srv.port}/x"):
        pools(srv.port, error_factory=factory).call("GET", "/x", None, {})


def test_stream_reads_in_pieces_and_drains(
    scripted: Scripter, pools: Callable[..., HttpPool]
) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n"
    )
    srv = scripted([chunked, ok(b"0123456789"), ok(b"after")])
    pool = pools(srv.port)
    with pool.stream("GET", "/", {}) as body:
        assert body.status == 200
        assert body.read_all() == b"hello!"
    with pool.stream("GET", "/", {"Range": "bytes=0-"}) as body:
        assert body.headers["content-length"] == "10" and body.read(4) == b"0123"
    assert pool.call("GET", "/", None, {}).body == b"after"  # drained, so reused
    assert srv.connections == 1


def test_stream_truncated_body_is_connection_closed(
    scripted: Scripter, pools: Callable[..., HttpPool]
) -> None:
    srv = scripted([b"!HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"])
    pool = pools(srv.port)
    with pytest.raises(ConnectionClosed), pool.stream("GET", "/", {}) as body:
        body.read_all()


def test_stream_timeout_is_not_resent_even_when_idempotent(
    scripted: Scripter, pools: Callable[..., HttpPool], scaled: Callable[[float], float]
) -> None:
    # "idempotent" re-sends after a closed connection, never after a timeout: the
    # server may still be working on the first request.
    srv = scripted(["hang", ok(b"late")])
    pool = pools(srv.port, timeout=scaled(0.3), retries=3, retry="idempotent")
    with pytest.raises(Timeout), pool.stream("GET", "/", {}):
        pass
    assert len(srv.requests) == 1 and srv.connections == 1


# -- asyncio pool and server ------------------------------------------------------------


class Echo(HttpServer):
    """Echoes the body; "/slow" answers after *gate* is set; ``concurrent`` per test."""

    def __init__(self, concurrent: bool) -> None:
        super().__init__(
            host="127.0.0.1", port=0, ssl_context=None, max_body=1 << 20, shutdown_timeout=2.0
        )
        self.concurrent = concurrent
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.handled: list[str] = []

    def respond(self, req: ParsedRequest, remote: str | None) -> Reply:
        self.handled.append(req.target)
        if req.target == "/slow":
            return self._slow(req)
        return encode_response(200, req.body, "text/plain", keep_alive=req.keep_alive)

    async def _slow(self, req: ParsedRequest) -> bytes:
        self.entered.set()
        await self.gate.wait()
        return encode_response(200, b"slow", "text/plain", keep_alive=req.keep_alive)


async def started(concurrent: bool) -> Echo:
    srv = Echo(concurrent)
    await srv.start()
    return srv


async def read_responses(reader: asyncio.StreamReader, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        out.append(await reader.readexactly(length))
    return out


@pytest.mark.parametrize("concurrent", [False, True])
async def test_server_pipelining_order_and_modes(
    concurrent: bool, scaled: Callable[[float], float]
) -> None:
    srv = await started(concurrent)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    try:
        writer.write(
            b"POST /slow HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
            b"POST /fast HTTP/1.1\r\nContent-Length: 4\r\n\r\nfast"
        )
        await asyncio.wait_for(srv.entered.wait(), scaled(5))
        # a round trip on another connection: the pipelined bytes were processed by then
        r2, w2 = await asyncio.open_connection("127.0.0.1", srv.port)
        w2.write(b"POST /probe HTTP/1.1\r\nContent-Length: 1\r\n\r\np")
        assert await asyncio.wait_for(read_responses(r2, 1), scaled(5)) == [b"p"]
        w2.close()
        # concurrent mode handles the second request while the first still waits;
        # sequential mode handles it only after the first was answered
        want = ["/slow", "/fast", "/probe"] if concurrent else ["/slow", "/probe"]
        assert srv.handled == want
        srv.gate.set()
        answers = await asyncio.wait_for(read_responses(reader, 2), scaled(5))
        assert answers == [b"slow", b"fast"]  # in request order either way
    finally:
        writer.close()
        await srv.stop()


async def test_connection_made_after_stop_is_closed_at_once(
    scaled: Callable[[float], float],
) -> None:
    """A connection accepted in the same loop turn as stop() (made after its sweep) is not
    left open for the client to time out on."""
    from sciwire.core.http.server import HttpConnection

    srv = await started(False)
    await srv.stop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await loop.connect_accepted_socket(lambda: HttpConnection(srv), ours)
        data = await asyncio.wait_for(loop.sock_recv(theirs, 100), scaled(5))
        assert data == b""  # closed without an answer
        assert transport.is_closing()
        assert srv.connections == set()
    finally:
        theirs.close()


async def test_concurrent_mode_cancels_the_work_of_a_caller_that_hung_up(
    scaled: Callable[[float], float],
) -> None:
    srv = await started(True)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"POST /slow HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        await asyncio.wait_for(srv.entered.wait(), scaled(5))
        (task,) = srv.tasks
        writer.close()
        await asyncio.wait_for(asyncio.wait({task}), scaled(5))
        assert task.cancelled()
    finally:
        await srv.stop()


async def test_async_pool_pipelines_times_out_and_limits_idle(
    scaled: Callable[[float], float],
) -> None:
    srv = await started(False)
    pool = AsyncHttpPool(
        Endpoint("http", "127.0.0.1", srv.port), timeout=scaled(5), limit=2, pipeline=4, max_idle=1
    )
    try:
        calls: list[Awaitable[object]] = [
            pool.call("POST", "/e", str(i).encode(), {}) for i in range(8)
        ]
        got = await asyncio.gather(*calls)
        assert [r.body for r in got] == [str(i).encode() for i in range(8)]  # type: ignore[attr-defined]
        assert len(pool._conns) <= 1  # idle ones beyond max_idle were closed
        with pytest.raises(Timeout):
            await pool.exchange(
                pool.request_prefix("POST", "/slow", {}) + b"0\r\n\r\n", "/slow", timeout=0.1
            )
    finally:
        await pool.close()
        srv.gate.set()
        await srv.stop()


async def test_async_pool_stale_retry_and_refused() -> None:
    srv = await started(False)
    pool = AsyncHttpPool(Endpoint("http", "127.0.0.1", srv.port), timeout=5.0, retry="stale")
    try:
        assert (await pool.call("POST", "/e", b"a", {})).body == b"a"
        # the server drops every connection (as after an idle timeout); the kept one is
        # found closed and the call goes out on a fresh one
        for conn in list(srv.connections):
            assert conn.transport is not None
            conn.transport.close()
        assert (await pool.call("POST", "/e", b"b", {})).body == b"b"
    finally:
        await pool.close()
        await srv.stop()
    with pytest.raises(ConnectError):
        await AsyncHttpPool(Endpoint("http", "127.0.0.1", srv.port), timeout=5.0).call(
            "GET", "/", None, {}
        )


def test_staleness_probe_works_above_select_s_descriptor_limit() -> None:
    # select() cannot watch fds above 1023: every kept connection then looked stale
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 1500
    if soft <= target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, target + 100), hard))
    a, b = socket.socketpair()
    try:
        high = os.dup2(a.fileno(), target)
        try:
            probe = StaleProbe()
            assert not is_stale(high) and not probe(high)  # open, nothing to read
            assert not probe(high)  # the probe's registered poller, reused
            b.sendall(b"x")
            assert is_stale(high) and probe(high)  # stray bytes
        finally:
            os.close(high)
    finally:
        a.close()
        b.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
