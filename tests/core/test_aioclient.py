"""AsyncHttpPool's per-call machinery on real loopback sockets: the pool's one timer
(calls with different timeouts), the in-flight slots (queueing, cancellation), the idle
stack (reuse, ``Connection: close``, pipelining) and cancellation mid-call."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from collections.abc import AsyncIterator, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.core.http import AsyncHttpPool, Endpoint, HttpServer, ParsedRequest
from sciwire.core.http.aioclient import _Conn
from sciwire.core.http.codec import ResponseParser, encode_response
from sciwire.core.http.server import Reply
from sciwire.errors import RemoteProtocolError, Timeout
from tests.helpers import examples


class Gated(HttpServer):
    """Echoes the body; "/slow" answers once *gate* is set."""

    def __init__(self) -> None:
        super().__init__(
            host="127.0.0.1", port=0, ssl_context=None, max_body=1 << 20, shutdown_timeout=2.0
        )
        self.concurrent = True
        self.gate = asyncio.Event()
        self.waiting = 0

    def respond(self, req: ParsedRequest, remote: str | None) -> Reply:
        if req.target == "/slow":
            return self._slow(req)
        return encode_response(200, req.body, "text/plain", keep_alive=req.keep_alive)

    async def _slow(self, req: ParsedRequest) -> bytes:
        self.waiting += 1
        await self.gate.wait()
        return encode_response(200, b"slow", "text/plain", keep_alive=req.keep_alive)


@pytest.fixture
async def server() -> AsyncIterator[Gated]:
    srv = Gated()
    await srv.start()
    yield srv
    srv.gate.set()
    await srv.stop()


@pytest.fixture
async def make_pool(server: Gated) -> AsyncIterator[Callable[..., AsyncHttpPool]]:
    made: list[AsyncHttpPool] = []

    def make(**kw: object) -> AsyncHttpPool:
        kw.setdefault("timeout", 30.0)
        made.append(AsyncHttpPool(Endpoint("http", "127.0.0.1", server.port), **kw))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for pool in made:
        await pool.close()


async def _until(check: Callable[[], bool], limit: float) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), limit)


async def test_a_shorter_timeout_expires_while_a_longer_call_waits(
    server: Gated, make_pool: Callable[..., AsyncHttpPool], scaled: Callable[[float], float]
) -> None:
    pool = make_pool(timeout=None)
    slow = pool.request_prefix("POST", "/slow", {}) + b"0\r\n\r\n"
    # the pool's timer is armed for the long call first, then must move earlier
    long_call = asyncio.ensure_future(pool.exchange(slow, "/slow", timeout=scaled(60)))
    await _until(lambda: server.waiting == 1, scaled(5))
    with pytest.raises(Timeout, match="did not reply within timeout"):
        await asyncio.wait_for(pool.exchange(slow, "/slow", timeout=0.05), scaled(10))
    # a second short one, armed after the first expiry re-armed the timer for the long call
    with pytest.raises(Timeout):
        await asyncio.wait_for(pool.exchange(slow, "/slow", timeout=0.05), scaled(10))
    assert not long_call.done()
    server.gate.set()
    assert (await asyncio.wait_for(long_call, scaled(5))).body == b"slow"
    # the connection of the long call is kept; those of the expired calls were dropped
    assert len(pool._conns) == 1 and pool._idle == pool._conns


async def test_the_timer_moves_on_to_a_later_deadline(
    server: Gated, make_pool: Callable[..., AsyncHttpPool], scaled: Callable[[float], float]
) -> None:
    pool = make_pool(timeout=None)
    slow = pool.request_prefix("POST", "/slow", {}) + b"0\r\n\r\n"
    calls = [asyncio.ensure_future(pool.exchange(slow, "/slow", timeout=t)) for t in (0.05, 0.2)]
    done = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), scaled(10))
    assert all(isinstance(r, Timeout) for r in done)
    assert pool._timer is None and pool._conns == []  # nothing left in flight


async def test_no_timeout_means_no_timer(
    server: Gated, make_pool: Callable[..., AsyncHttpPool], scaled: Callable[[float], float]
) -> None:
    pool = make_pool(timeout=None)
    assert (await pool.call("POST", "/e", b"x", {})).body == b"x"
    assert pool._timer is None


async def test_slots_queue_in_order_and_survive_cancellation(
    make_pool: Callable[..., AsyncHttpPool],
) -> None:
    pool = make_pool(limit=1)
    pool._busy = 1  # a call in flight holds the only slot
    first = asyncio.ensure_future(pool._wait_slot())
    second = asyncio.ensure_future(pool._wait_slot())
    third = asyncio.ensure_future(pool._wait_slot())
    await asyncio.sleep(0)
    assert len(pool._queue) == 3
    third.cancel()  # cancelled while waiting: leaves the queue
    await asyncio.gather(third, return_exceptions=True)
    assert len(pool._queue) == 2
    pool._release()  # the call in flight ends: its slot goes to the first waiter...
    first.cancel()  # ...which is cancelled before it runs: it passes the slot on
    await asyncio.gather(first, return_exceptions=True)
    assert first.cancelled()
    await asyncio.wait_for(second, 5)
    assert pool._busy == 1 and not pool._queue
    pool._release()
    assert pool._busy == 0


async def test_many_calls_through_few_slots(
    make_pool: Callable[..., AsyncHttpPool], scaled: Callable[[float], float]
) -> None:
    pool = make_pool(limit=2)
    got = await asyncio.wait_for(
        asyncio.gather(*(pool.call("POST", "/e", str(i).encode(), {}) for i in range(60))),
        scaled(20),
    )
    assert [r.body for r in got] == [str(i).encode() for i in range(60)]
    assert pool._busy == 0 and not pool._queue
    assert 1 <= len(pool._conns) <= 2 and sorted(map(id, pool._idle)) == sorted(
        map(id, pool._conns)
    )


async def test_a_closing_response_is_not_kept_idle(
    make_pool: Callable[..., AsyncHttpPool],
) -> None:
    pool = make_pool()
    assert (await pool.call("POST", "/e", b"a", {"Connection": "close"})).body == b"a"
    assert pool._conns == [] and pool._idle == []
    assert (await pool.call("POST", "/e", b"b", {})).body == b"b"
    assert (await pool.call("POST", "/e", b"c", {})).body == b"c"
    assert len(pool._conns) == 1 and pool._idle == pool._conns  # reused


async def test_pipelined_connections_are_idle_once_each(
    make_pool: Callable[..., AsyncHttpPool], scaled: Callable[[float], float]
) -> None:
    pool = make_pool(limit=3, pipeline=4)
    for _ in range(3):
        got = await asyncio.wait_for(
            asyncio.gather(*(pool.call("POST", "/e", str(i).encode(), {}) for i in range(40))),
            scaled(20),
        )
        assert [r.body for r in got] == [str(i).encode() for i in range(40)]
    assert len(pool._idle) == len(set(map(id, pool._idle))) == len(pool._conns) <= 3
    assert all(c.idle and not c.pending for c in pool._idle)


async def test_cancelled_call_drops_its_connection_and_frees_its_slot(
    server: Gated, make_pool: Callable[..., AsyncHttpPool], scaled: Callable[[float], float]
) -> None:
    pool = make_pool(limit=1)
    call = asyncio.ensure_future(pool.call("POST", "/slow", b"", {}))
    await _until(lambda: server.waiting == 1, scaled(5))
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    assert call.cancelled()
    assert pool._busy == 0 and pool._conns == [] and pool._idle == []
    assert (await asyncio.wait_for(pool.call("POST", "/e", b"z", {}), scaled(5))).body == b"z"


async def test_call_cancelled_after_its_response_arrived_keeps_the_connection(
    server: Gated, make_pool: Callable[..., AsyncHttpPool], scaled: Callable[[float], float]
) -> None:
    # The response completes the call's future and the connection goes back to the idle
    # stack; the call is cancelled before it resumes. The connection is in step: it must
    # stay, since another call may already have taken it.
    pool = make_pool(limit=1)
    assert (await pool.call("POST", "/e", b"warm", {})).body == b"warm"
    (conn,) = pool._conns
    call = asyncio.ensure_future(pool.call("POST", "/e", b"a", {}))
    received = conn.data_received

    def then_cancel(data: bytes) -> None:
        received(data)
        call.cancel()  # the response is in; the call has not resumed yet

    conn.data_received = then_cancel  # type: ignore[method-assign]
    await asyncio.gather(call, return_exceptions=True)
    conn.data_received = received  # type: ignore[method-assign]
    assert not conn.closed and pool._conns == [conn] and pool._idle == [conn]
    assert (await asyncio.wait_for(pool.call("POST", "/e", b"b", {}), scaled(5))).body == b"b"
    assert pool._conns == [conn] and len(server.connections) == 1


async def test_call_cancelled_just_before_its_response_leaves_the_next_call_alone(
    scaled: Callable[[float], float],
) -> None:
    # In one loop iteration: call X is woken, call W is cancelled (its waiter with it),
    # then W's whole response is read, so the connection goes idle and X takes it. When
    # W resumes, the connection is in step and serves X: it must not be dropped.
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    heads: list[bytes] = []
    seen, ended = asyncio.Event(), asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while True:
                heads.append(await reader.readuntil(b"\r\n\r\n"))
                seen.set()
                if len(heads) > 1:  # W's answer is injected below; X's comes from here
                    writer.write(answer)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        ended.set()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    pool = AsyncHttpPool(Endpoint("http", "127.0.0.1", srv.sockets[0].getsockname()[1]), timeout=30)
    try:
        w = asyncio.ensure_future(pool.exchange(b"GET /w HTTP/1.1\r\nHost: x\r\n\r\n", "/w"))
        await asyncio.wait_for(seen.wait(), scaled(5))
        (conn,) = pool._conns
        go = asyncio.get_running_loop().create_future()

        async def x() -> bytes:
            await go
            return (await pool.exchange(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n", "/x")).body

        xt = asyncio.ensure_future(x())
        await asyncio.sleep(0)  # x now waits on go

        def one_iteration() -> None:
            go.set_result(None)
            w.cancel()
            conn.data_received(answer)  # W's response, read before W resumes

        asyncio.get_running_loop().call_soon(one_iteration)
        await asyncio.gather(w, return_exceptions=True)
        assert await asyncio.wait_for(xt, scaled(5)) == b"ok"
        assert not conn.closed and pool._conns == [conn] and len(heads) == 2
    finally:
        await pool.close()
        await asyncio.wait_for(ended.wait(), scaled(5))  # the server saw the close
        srv.close()
        await srv.wait_closed()


async def test_idle_connection_closed_by_the_server_is_forgotten(
    server: Gated, make_pool: Callable[..., AsyncHttpPool], scaled: Callable[[float], float]
) -> None:
    pool = make_pool()
    assert (await pool.call("POST", "/e", b"a", {})).body == b"a"
    (conn,) = pool._conns
    for sconn in list(server.connections):
        assert sconn.transport is not None
        sconn.transport.close()
    await _until(lambda: conn.closed, scaled(5))
    await _until(lambda: not pool._conns, scaled(5))
    assert pool._idle == []


# -- _Conn.data_received (fast path for a whole response) vs the general parser ---------

_RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\ny",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",  # over max_body
    b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 1\r\n\r\nz",
    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    b"HTP/1.1 200 OK\r\n\r\n",
]


class _FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted


def _general(stream: bytes, heads: list[bool]) -> list[object]:
    """What each request gets from the general parser, fed byte by byte."""
    out: list[object] = []
    data = stream
    for head in heads:
        parser = ResponseParser(head=head, pipelined=True, max_body=8)
        resp = None
        try:
            for i in range(len(data)):
                resp = parser.feed(data[i : i + 1])
                if resp is not None:
                    data = parser.extra + data[i + 1 :]
                    break
        except RemoteProtocolError:
            out.append(RemoteProtocolError)
            break
        if resp is None:
            break
        out.append((resp.status, resp.reason, resp.body, resp.keep_alive, resp.headers))
    return out


async def _received(stream: bytes, heads: list[bool], cuts: list[int]) -> list[object]:
    """What each request gets from _Conn.data_received, fed in the pieces *cuts* make."""
    pool = AsyncHttpPool(Endpoint("http", "127.0.0.1", 1), timeout=None, max_body=8)
    conn = _Conn(pool)
    conn.transport = _FakeTransport()
    loop = asyncio.get_running_loop()
    waiters = [loop.create_future() for _ in heads]
    for waiter, head in zip(waiters, heads, strict=True):
        conn.pending.append((waiter, head, math.inf))
    bounds = [0, *sorted(set(cuts)), len(stream)]
    for a, b in itertools.pairwise(bounds):
        if b > a and not conn.transport.is_closing():
            conn.data_received(stream[a:b])
    out: list[object] = []
    for waiter in waiters:
        if waiter.done():
            waiter.exception()  # retrieved, so none is logged as never retrieved
    for waiter in waiters:
        if not waiter.done():
            break
        exc = waiter.exception()
        if exc is not None:
            if isinstance(exc, RemoteProtocolError):
                out.append(RemoteProtocolError)
            break
        resp = waiter.result()
        out.append((resp.status, resp.reason, resp.body, resp.keep_alive, resp.headers))
    return out


@settings(max_examples=examples(150), deadline=None)
@given(
    picks=st.lists(st.integers(0, len(_RESPONSES) - 1), min_size=1, max_size=3),
    heads=st.lists(st.booleans(), min_size=3, max_size=3),
    cuts=st.lists(st.integers(0, 400), max_size=4),
)
async def test_whole_response_fast_path_agrees_with_the_general_parser(
    picks: list[int], heads: list[bool], cuts: list[int]
) -> None:
    stream = b"".join(_RESPONSES[i] for i in picks)
    kinds = heads[: len(picks)]
    cuts = [c for c in cuts if c < len(stream)]
    assert await _received(stream, kinds, cuts) == _general(stream, kinds)
