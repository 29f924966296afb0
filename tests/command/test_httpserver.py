"""The lean HTTP/1.1 server under CommandServer: request codec, and raw-socket behaviour
(pipelining, chunked bodies, 100-continue, limits, keep-alive, routes, to_thread)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.command import CommandServer
from sciwire.command._server import RouteRequest, RouteResponse
from sciwire.core.http.codec import ParsedResponse, ResponseParser, encode_request
from tests.helpers import examples

# -- the server over raw sockets ----------------------------------------------------------


class Thing:
    def __init__(self) -> None:
        self.order: list[int] = []

    async def slow_then(self, n: int) -> int:
        await asyncio.sleep(0)
        self.order.append(n)
        return n

    def fast(self, n: int) -> int:
        self.order.append(n)
        return n

    def unserialisable(self) -> object:
        return object()


def _routes(srv: CommandServer) -> None:
    srv.route("GET", "/text", lambda req: "plain text")
    srv.route("GET", "/json", lambda req: {"q": req.query, "h": req.headers.get("X-TEST")})
    srv.route("GET", "/resp", lambda req: RouteResponse(b"teapot", status=418, content_type="x/y"))
    srv.route("GET", "/fail", lambda req: 1 / 0)

    async def async_fail(req: RouteRequest) -> bytes:
        raise KeyError("nope")

    srv.route("POST", "/afail", async_fail)


@pytest.fixture
def raw_server() -> Iterator[tuple[CommandServer, Thing]]:
    thing = Thing()
    srv = CommandServer(thing, port=0, shutdown_timeout=1.0, max_body=4096, keepalive_timeout=0.5)
    _routes(srv)
    srv.start_background()
    yield srv, thing
    srv.stop_background()


def _rpc(method: str, params: list[object], rid: int) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": rid}).encode()
    return encode_request("POST", "/api", "h", {}, body)


def _read_responses(sock: socket.socket, count: int) -> list[ParsedResponse]:
    out: list[ParsedResponse] = []
    buf = b""
    while len(out) < count:
        parser = ResponseParser()
        resp = None
        if buf:
            resp, buf = _feed_some(parser, buf)
        while resp is None:
            chunk = sock.recv(65536)
            assert chunk, "server closed early"
            resp, buf = _feed_some(parser, chunk)
        out.append(resp)
    return out


def _feed_some(parser: ResponseParser, data: bytes) -> tuple[ParsedResponse | None, bytes]:
    # feed up to the end of one response; return the rest for the next parser
    for i in range(1, len(data) + 1):
        resp = parser.feed(data[i - 1 : i])
        if resp is not None:
            return resp, data[i:]
    return None, b""


@pytest.fixture
def connect(
    raw_server: tuple[CommandServer, Thing], scaled: Callable[[float], float]
) -> Iterator[Callable[[], socket.socket]]:
    socks: list[socket.socket] = []

    def make() -> socket.socket:
        s = socket.create_connection(("127.0.0.1", raw_server[0].port), timeout=scaled(10))
        socks.append(s)
        return s

    yield make
    for s in socks:
        s.close()


def test_pipelined_calls_answer_in_order(
    raw_server: tuple[CommandServer, Thing], connect: Callable[[], socket.socket]
) -> None:
    sock = connect()
    sock.sendall(_rpc("slow_then", [1], 1) + _rpc("fast", [2], 2) + _rpc("slow_then", [3], 3))
    replies = _read_responses(sock, 3)
    assert [json.loads(r.body)["result"] for r in replies] == [1, 2, 3]
    assert raw_server[1].order == [1, 2, 3]


def test_chunked_body_expect_continue_and_head(connect: Callable[[], socket.socket]) -> None:
    sock = connect()
    body = json.dumps({"method": "fast", "params": [7], "id": 1}).encode()
    sock.sendall(
        b"POST /api HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    sock.sendall(b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    (resp,) = _read_responses(sock, 1)
    assert json.loads(resp.body)["result"] == 7
    sock.sendall(b"HEAD /text HTTP/1.1\r\nHost: h\r\n\r\n")
    parser = ResponseParser(head=True)
    got = None
    while got is None:
        got = parser.feed(sock.recv(1000))
    assert got.status == 200 and got.headers["content-length"] == "10" and got.body == b""


def test_too_large_and_bad_requests_close_the_connection(
    raw_server: tuple[CommandServer, Thing], connect: Callable[[], socket.socket]
) -> None:
    sock = connect()
    sock.sendall(b"POST /api HTTP/1.1\r\nContent-Length: 5000\r\n\r\n")
    data = b""
    while chunk := sock.recv(1000):
        data += chunk
    assert data.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in data
    sock = connect()
    sock.sendall(b"\x16\x03\x01 not http\r\n\r\n")
    assert sock.recv(1000).startswith(b"HTTP/1.1 400 ")
    assert sock.recv(1000) == b""
    assert raw_server[0].errors >= 2


def test_connection_close_http10_and_idle_timeout(connect: Callable[[], socket.socket]) -> None:
    sock = connect()
    sock.sendall(b"GET /text HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := sock.recv(1000):
        data += chunk
    assert data.endswith(b"plain text") and b"Connection: close" in data
    idle = connect()
    idle.sendall(b"GET /text HTTP/1.1\r\nHost: h\r\n\r\n")
    assert idle.recv(1000).endswith(b"plain text")
    # keepalive_timeout=0.5: the server closes the idle connection (recv sees EOF)
    assert idle.recv(1000) == b""


def test_routes(connect: Callable[[], socket.socket]) -> None:
    sock = connect()
    for target in ("/json?a=1&b=", "/resp", "/fail", "/nothing"):
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: h\r\nX-Test: yes\r\n\r\n".encode())
    sock.sendall(b"POST /afail HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    j, r, f, n, a = _read_responses(sock, 5)
    assert json.loads(j.body) == {"q": {"a": "1", "b": ""}, "h": "yes"}
    assert (r.status, r.body, r.headers["content-type"]) == (418, b"teapot", "x/y")
    assert f.status == 500 and json.loads(f.body)["error"]["name"] == "ZeroDivisionError"
    assert n.status == 404
    assert a.status == 500 and json.loads(a.body)["error"]["name"] == "KeyError"


def test_unserialisable_result_is_an_error_reply(connect: Callable[[], socket.socket]) -> None:
    sock = connect()
    sock.sendall(_rpc("unserialisable", [], 1))
    (resp,) = _read_responses(sock, 1)
    error = json.loads(resp.body)["error"]
    assert error["code"] == -32603 and error["name"] == "TypeError"


async def test_to_thread_mode() -> None:
    import threading

    main = threading.get_ident()
    seen: list[int] = []

    def where() -> bool:
        seen.append(threading.get_ident())
        return True

    srv = CommandServer(port=0, to_thread=True, shutdown_timeout=1.0)
    srv.expose(where)
    async with srv:
        reply = await srv.handle_body(b'{"method": "where", "params": [], "id": 1}')
    assert json.loads(reply)["result"] is True
    assert seen and seen[0] != main


class _FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=80),
            st.sampled_from(
                [
                    _rpc("fast", [1], 1),
                    b"GET /text HTTP/1.1\r\n\r\n",
                    b"POST /api HTTP/1.1\r\nContent-Length: 3\r\n\r\n{x}",
                    b"\r\n",
                ]
            ),
        ),
        max_size=6,
    )
)
def test_server_connection_never_raises_on_any_bytes(chunks: list[bytes]) -> None:
    from sciwire.core.http.server import HttpConnection as _Connection

    srv = CommandServer(Thing(), port=0)
    _routes(srv)
    conn = _Connection(srv)
    transport = _FakeTransport()
    conn.connection_made(transport)
    for chunk in chunks:
        conn.data_received(chunk)  # plain procedures answer inline: no loop needed
    for data in transport.out:
        assert data.startswith(b"HTTP/1.1 ")
