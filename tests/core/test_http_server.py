"""The shared asyncio HTTP server's one-request fast path (answered straight from
``data_received``) against the queued path: awaitable answers, a failing handler, and
requests arriving while an earlier answer is still pending."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from sciwire.core.http.codec import ParsedRequest
from sciwire.core.http.server import Reply
from tests.core.test_http_pools import Echo


class Server(Echo):
    """The pools' echo server; "/boom" raises in respond(), "/slow" waits for *gate*."""

    def respond(self, req: ParsedRequest, remote: str | None) -> Reply:
        if req.target == "/boom":
            self.handled.append(req.target)
            raise RuntimeError("bug")
        return super().respond(req, remote)


async def _read(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head, await reader.readexactly(length)


@pytest.mark.parametrize("concurrent", [False, True])
async def test_one_request_at_a_time_with_a_pending_answer(
    concurrent: bool, scaled: Callable[[float], float]
) -> None:
    srv = Server(concurrent)
    await srv.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    try:
        writer.write(b"POST /a HTTP/1.1\r\nContent-Length: 1\r\n\r\na")
        assert (await asyncio.wait_for(_read(reader), scaled(5)))[1] == b"a"
        writer.write(b"GET /slow HTTP/1.1\r\n\r\n")  # alone in its segment: the fast path
        await asyncio.wait_for(srv.entered.wait(), scaled(5))
        writer.write(b"POST /b HTTP/1.1\r\nContent-Length: 1\r\n\r\nb")
        # a round trip on another connection: the second request was read by then
        r2, w2 = await asyncio.open_connection("127.0.0.1", srv.port)
        w2.write(b"POST /probe HTTP/1.1\r\nContent-Length: 1\r\n\r\np")
        assert (await asyncio.wait_for(_read(r2), scaled(5)))[1] == b"p"
        w2.close()
        want = ["/a", "/slow", "/b", "/probe"] if concurrent else ["/a", "/slow", "/probe"]
        assert srv.handled == want
        srv.gate.set()
        bodies = [(await asyncio.wait_for(_read(reader), scaled(5)))[1] for _ in range(2)]
        assert bodies == [b"slow", b"b"]  # in request order either way
    finally:
        writer.close()
        await srv.stop()


@pytest.mark.parametrize("concurrent", [False, True])
async def test_failing_handler_answers_500_and_closes(
    concurrent: bool, scaled: Callable[[float], float], caplog: pytest.LogCaptureFixture
) -> None:
    srv = Server(concurrent)
    await srv.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    try:
        with caplog.at_level(logging.ERROR, "sciwire.core.http.server"):
            writer.write(b"GET /boom HTTP/1.1\r\n\r\n")
            head, body = await asyncio.wait_for(_read(reader), scaled(5))
        assert head.startswith(b"HTTP/1.1 500 ") and b"Connection: close" in head
        assert body == b'{"error": "internal"}'
        assert await asyncio.wait_for(reader.read(), scaled(5)) == b""
        assert "HTTP handler failed" in caplog.text
    finally:
        writer.close()
        await srv.stop()


async def test_connection_close_request_on_the_fast_path(
    scaled: Callable[[float], float],
) -> None:
    srv = Server(False)
    await srv.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    try:
        writer.write(b"POST /c HTTP/1.1\r\nConnection: close\r\nContent-Length: 1\r\n\r\nc")
        head, body = await asyncio.wait_for(_read(reader), scaled(5))
        assert body == b"c" and b"Connection: close" in head
        assert await asyncio.wait_for(reader.read(), scaled(5)) == b""
    finally:
        writer.close()
        await srv.stop()


async def test_async_tests_run_on_both_loops(request: pytest.FixtureRequest) -> None:
    # the conftest's loop factories reach the loop this module's tests run on
    name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    assert name == ("uvloop" if "uvloop" in request.node.name else "asyncio")


def test_plain_tests_run_servers_on_both_loops(loop_kind: str) -> None:
    seen: list[str] = []

    async def probe() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__.split(".")[0])

    asyncio.run(probe())
    assert seen == [loop_kind]
