"""The hub's Standard Profile HTTP server: XML-RPC POSTs on plain asyncio.

Every hub method but ``callAndWait`` completes without waiting, so it is answered
straight from ``data_received`` with no task; ``callAndWait`` runs as a task. Responses
leave in request order on each keep-alive connection (HTTP/1.1 pipelining rules).
Framing and limits come from :class:`sciwire.samp.http.HttpParser`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Union

from sciwire.errors import RemoteProtocolError
from sciwire.samp.http import HttpParser, response_bytes

__all__ = ["Handler", "StdConnection"]

logger = logging.getLogger(__name__)

#: Turns a request body into a response body, now or later.
Handler = Callable[[bytes], Union[bytes, Awaitable[bytes]]]  # noqa: UP007


class StdConnection(asyncio.Protocol):
    """One client connection to the Standard Profile endpoint.

    Args:
        handle: the hub's request handler.
        max_body: the largest request body accepted (413 beyond).
        connections: the server's set of live connections (for closing at stop).
        on_bad: called for each malformed request (counted by the hub).
    """

    def __init__(
        self,
        handle: Handler,
        max_body: int,
        connections: set[StdConnection],
        on_bad: Callable[[], None],
    ) -> None:
        self._handle = handle
        self._parser = HttpParser(True, max_body)
        self._connections = connections
        self._on_bad = on_bad
        self._transport: asyncio.Transport | None = None
        self._out: deque[tuple[asyncio.Future[bytes] | bytes, bool]] = deque()
        self._tasks: set[asyncio.Task[bytes]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._transport = None
        self._out.clear()
        for task in list(self._tasks):  # a caller that hung up waits for nothing
            task.cancel()

    def close(self) -> None:
        """Close the connection and cancel what it still runs."""
        for task in list(self._tasks):
            task.cancel()
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        try:
            messages = self._parser.feed(data)
        except RemoteProtocolError as exc:
            self._on_bad()
            status = getattr(exc, "status", 400)
            self._queue(response_bytes(status, str(exc).encode("utf-8", "replace"), False), False)
            return
        if self._parser.wants_continue and not messages:
            self._parser.wants_continue = False
            transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        for msg in messages:
            keep = msg.keep_alive
            if msg.start[0] != "POST":
                self._on_bad()
                self._queue(response_bytes(405, b"SAMP hub: POST XML-RPC", keep), keep)
            else:
                result = self._handle(msg.body)
                if isinstance(result, bytes):
                    self._queue(response_bytes(200, result, keep), keep)
                else:
                    self._queue(self._later(result, keep), keep)
            if not keep:
                return

    def _later(self, result: Awaitable[bytes], keep: bool) -> asyncio.Future[bytes]:
        async def run() -> bytes:
            return response_bytes(200, await result, keep)

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[bytes]) -> None:
        self._tasks.discard(task)
        self._flush()

    def _queue(self, item: asyncio.Future[bytes] | bytes, keep: bool) -> None:
        self._out.append((item, keep))
        self._flush()

    def _flush(self) -> None:
        transport = self._transport
        while self._out and transport is not None:
            item, keep = self._out[0]
            if isinstance(item, bytes):
                data = item
            elif item.done():
                if item.cancelled() or item.exception() is not None:
                    transport.close()
                    return
                data = item.result()
            else:
                return  # an earlier response is still being computed
            self._out.popleft()
            transport.write(data)
            if not keep:
                transport.close()
                return
