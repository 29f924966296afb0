"""The clients' lean HTTP/1.1: parser (pure), callback server and client pools (loopback)."""

from __future__ import annotations

import asyncio
import socket
import xmlrpc.client
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.errors import ConnectError, RemoteProtocolError, Timeout
from sciwire.samp import SAMPHubConnectError, SAMPHubError, SAMPProxyError
from sciwire.samp._acaller import RpcCaller
from sciwire.samp._caller import BlockingRpcCaller
from sciwire.samp._http import BlockingHttpClient, HttpClientPool, HttpParser, response_bytes
from sciwire.samp._rpc import CallbackServer, SAMPHubProtocolError, stringify
from tests.helpers import examples

BODY = xmlrpc.client.dumps(("k", "s", {"samp.mtype": "a.b", "samp.params": {}}), "m").encode()


def request(body: bytes, extra: str = "") -> bytes:
    head = f"POST /xmlrpc HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def chunked(body: bytes, size: int) -> bytes:
    out = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    for i in range(0, len(body), size):
        piece = body[i : i + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n\r\n"


# -- parser --------------------------------------------------------------------------------


def test_parser_byte_at_a_time_and_pipelined() -> None:
    parser = HttpParser(True, 1 << 20)
    data = request(BODY) + request(b"second")
    got = []
    for i in range(len(data)):
        got += parser.feed(data[i : i + 1])
    assert [m.body for m in got] == [BODY, b"second"]
    assert got[0].start == ("POST", "/xmlrpc", "HTTP/1.1") and got[0].keep_alive


@given(body=st.binary(max_size=3000), size=st.integers(1, 700), cut=st.integers(1, 97))
@settings(max_examples=examples(150), deadline=None)
def test_parser_chunked_bodies_any_split(body: bytes, size: int, cut: int) -> None:
    parser = HttpParser(True, 1 << 20)
    data = chunked(body, size) if body else chunked(b"", 1)
    got = []
    for i in range(0, len(data), cut):
        got += parser.feed(data[i : i + cut])
    assert [m.body for m in got] == [body]


@given(data=st.binary(max_size=400))
@settings(max_examples=examples(300), deadline=None)
def test_parser_garbage_raises_protocol_error_or_waits(data: bytes) -> None:
    parser = HttpParser(True, 1000)
    try:
        parser.feed(data)
    except RemoteProtocolError as exc:
        assert getattr(exc, "status", 400) in (400, 413, 431, 505)


def test_parser_limits_and_errors() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        HttpParser(True, 10).feed(request(b"x" * 11))
    assert info.value.status == 413  # type: ignore[attr-defined]
    with pytest.raises(RemoteProtocolError) as info:
        HttpParser(True, 10).feed(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 20000)
    assert info.value.status == 431  # type: ignore[attr-defined]
    for bad in (
        b"POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"NONSENSE\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ):
        with pytest.raises(RemoteProtocolError):
            HttpParser(True, 100).feed(bad)
    with pytest.raises(RemoteProtocolError):
        HttpParser(True, 100).feed(b"POST / SPDY/3\r\n\r\n")


def test_parser_responses() -> None:
    parser = HttpParser(False, 1 << 20)
    (msg,) = parser.feed(response_bytes(200, b"<x/>"))
    assert msg.start[:2] == ("HTTP/1.1", "200") and msg.body == b"<x/>"
    close_delimited = HttpParser(False, 100)
    assert close_delimited.feed(b"HTTP/1.0 200 OK\r\n\r\nabc") == []
    end = close_delimited.eof()
    assert end is not None and end.body == b"abc" and not end.keep_alive


def test_stringify() -> None:
    assert stringify({"a": 1, "b": [True, 2.5, ("x",)], 3: "s"}) == {
        "a": "1",
        "b": ["1", "2.5", ["x"]],
        "3": "s",
    }


# -- callback server ---------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[CallbackServer]:
    seen: list[Any] = []

    def dispatch(method: str, params: tuple[Any, ...]) -> Any:
        if method == "boom":
            raise ValueError("boom")
        if method == "fault":
            raise xmlrpc.client.Fault(7, "seven")
        seen.append((method, params))
        return params[0] if params else ""

    srv = CallbackServer(dispatch)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def exchange(port: int, data: bytes, close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    if close:
        writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    return answer


async def test_server_answers_chunked_continue_and_pipelined(server: CallbackServer) -> None:
    call = xmlrpc.client.dumps(("hello",), "echo").encode()
    answer = await exchange(server.port, chunked(call, 7) + request(call, "Connection: close\r\n"))
    assert answer.count(b"HTTP/1.1 200 OK") == 2 and answer.count(b"hello") == 2
    data = request(call, "Expect: 100-continue\r\nConnection: close\r\n")
    head, body = data[: -len(call)], call
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(head)
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    answer = await asyncio.wait_for(reader.read(), 5)
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"hello" in answer
    writer.close()
    await writer.wait_closed()


async def test_server_faults_and_errors(server: CallbackServer) -> None:
    for method, code in (("boom", 1), ("fault", 7)):
        body = xmlrpc.client.dumps((), method).encode()
        answer = await exchange(server.port, request(body, "Connection: close\r\n"))
        with pytest.raises(xmlrpc.client.Fault) as info:
            xmlrpc.client.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert info.value.faultCode == code
    answer = await exchange(server.port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 405")
    answer = await exchange(server.port, b"POST / HTTP/1.1\r\nContent-Length: zz\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    assert server.bad_requests == 2


async def test_async_pool_reuses_and_survives_server_close(server: CallbackServer) -> None:
    caller = RpcCaller(server.url, pool_size=2)
    try:
        assert await caller.call("echo", "one") == "one"
        assert await caller.call("echo", "two") == "two"
        with pytest.raises(SAMPProxyError) as info:
            await caller.call("fault")
        assert info.value.faultCode == 7
        results = await asyncio.gather(*(caller.call("echo", str(i)) for i in range(20)))
        assert results == [str(i) for i in range(20)]
    finally:
        await caller.close()
    with pytest.raises(ConnectError):
        await caller._http.post(b"x")


async def test_async_pool_timeout_and_refused() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers
        writer.close()

    quiet = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = quiet.sockets[0].getsockname()[1]
    pool = HttpClientPool("127.0.0.1", port, "/")
    try:
        with pytest.raises(Timeout):
            await pool.post(b"x", timeout=0.2)
    finally:
        await pool.close()
        quiet.close()
        await quiet.wait_closed()
    caller = RpcCaller(f"http://127.0.0.1:{port}/")
    with pytest.raises(SAMPHubConnectError):
        await caller.call("x")
    await caller.close()


async def test_bad_http_answers_map_to_samp_errors() -> None:
    answers = {
        b"a": b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n",
        b"b": b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n",
        b"c": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
        b"d": b"ICY 200 OK\r\n\r\n",
    }

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readuntil(b"</methodName>")
        key = data[-len(b"</methodName>") - 1 : -len(b"</methodName>")]
        writer.write(answers[key])
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/"
    caller = RpcCaller(url)
    try:
        with pytest.raises(SAMPHubError, match="500"):
            await caller.call("a")
        with pytest.raises(SAMPHubError, match="Unauthorized"):
            await caller.call("b")
        with pytest.raises(SAMPHubProtocolError):
            await caller.call("c")
        with pytest.raises(SAMPHubProtocolError):
            await caller.call("d")
    finally:
        await caller.close()
        srv.close()
        await srv.wait_closed()
    with pytest.raises(SAMPHubError, match="only http"):
        RpcCaller("ftp://127.0.0.1:1/")


async def test_blocking_client_against_the_callback_server(server: CallbackServer) -> None:
    caller = BlockingRpcCaller(server.url)

    def work() -> list[Any]:
        out = [caller.call("echo", "a"), caller.call("echo", "b")]
        try:
            caller.call("fault")
        except SAMPProxyError as exc:
            out.append(exc.faultCode)
        return out

    try:
        assert await asyncio.to_thread(work) == ["a", "b", 7]
    finally:
        caller.close()
    with pytest.raises(ConnectError, match="closed"):
        caller._http.post(b"x")  # closed


def test_blocking_client_timeout_and_refused() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = BlockingHttpClient("127.0.0.1", port, "/")
        with pytest.raises(Timeout):
            client.post(b"x", timeout=0.2)
        client.close()
    with pytest.raises(SAMPHubConnectError):
        BlockingRpcCaller(f"http://127.0.0.1:{port}/").call("x")
