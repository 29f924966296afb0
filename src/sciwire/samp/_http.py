"""SAMP's HTTP/1.1 for XML-RPC on loopback, on the shared layer :mod:`sciwire.core.http`.

SAMP traffic is small POSTs of XML between local processes. The framing, the server
connection and the keep-alive pools are sciwire's one HTTP/1.1 implementation; this
module keeps SAMP's names and shapes on top of it: :class:`HttpMessage` (start line,
headers, body), :class:`HttpParser` (requests or responses; errors carry the HTTP
``.status`` a server should answer), :class:`HttpServerProtocol` (XML-RPC POSTs on one
connection), :class:`HttpClientPool` (asyncio) and :class:`BlockingHttpClient` (any
thread). Transport failures are :class:`~sciwire.errors.ConnectError` (a connection
that could not be made or broke) and :class:`~sciwire.errors.Timeout`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from sciwire.core.http.aioclient import AsyncHttpPool
from sciwire.core.http.client import Endpoint, HttpPool
from sciwire.core.http.codec import (
    ParsedRequest,
    ParsedResponse,
    RequestParser,
    RequestTooLarge,
    ResponseParser,
)
from sciwire.core.http.server import ConnectionHost, HttpConnection, Reply
from sciwire.errors import ConnectError, RemoteProtocolError, Timeout

__all__ = [
    "Accepted",
    "BlockingHttpClient",
    "HttpClientPool",
    "HttpMessage",
    "HttpParser",
    "HttpServerProtocol",
    "TrackedConnection",
    "XmlRpcHost",
    "response_bytes",
    "stop_serving",
]

logger = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024


class HttpMessage:
    """One parsed request or response.

    Attributes:
        start: (method, target, version) or (version, status, reason).
        body: the body.
    """

    __slots__ = ("_headers", "_resp", "body", "keep", "start")

    def __init__(
        self,
        start: tuple[str, str, str],
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        keep: bool | None = None,
        *,
        resp: ParsedResponse | None = None,
    ) -> None:
        self.start = start
        self.body = body
        self.keep = keep
        self._headers = headers
        self._resp = resp

    @property
    def headers(self) -> dict[str, str]:
        """Header names lower-cased (parsed on first use for responses)."""
        if self._headers is None:
            self._headers = self._resp.headers if self._resp is not None else {}
        return self._headers

    def __repr__(self) -> str:
        return f"HttpMessage({self.start!r}, body={len(self.body)} bytes)"

    @property
    def keep_alive(self) -> bool:
        """Whether the connection stays open after this message."""
        if self.keep is not None:
            return self.keep
        conn = self.headers.get("connection", "").lower()
        version = self.start[0] if self.start[0].startswith("HTTP/") else self.start[2]
        if version == "HTTP/1.0":
            return conn == "keep-alive"
        return conn != "close"

    @classmethod
    def from_request(cls, req: ParsedRequest) -> HttpMessage:
        """From the shared codec's request."""
        return cls((req.method, req.target, req.version), req.headers, req.body, req.keep_alive)

    @classmethod
    def from_response(cls, resp: ParsedResponse) -> HttpMessage:
        """From the shared codec's response (headers parsed only if asked for)."""
        version = "HTTP/1.1" if resp.raw_head.startswith(b"HTTP/1.1") else "HTTP/1.0"
        start = (version, str(resp.status), resp.reason)
        return cls(start, None, resp.body, resp.keep_alive, resp=resp)


class HttpParser:
    """Incremental HTTP/1.x parser: ``feed(data)`` returns the complete messages so far.

    Args:
        requests: parse requests (else responses).
        max_body: the largest body accepted.

    Raises (from feed):
        RemoteProtocolError: malformed framing, or a head or body over the limits;
            ``.status`` says which HTTP status a server should answer.
    """

    def __init__(self, requests: bool, max_body: int) -> None:
        self.requests = requests
        self.max_body = max_body
        self._requests = RequestParser(max_body) if requests else None
        self._response = ResponseParser(pipelined=True, max_body=max_body)
        #: set when a request asked for 100-continue and the head is complete
        self.wants_continue = False

    def feed(self, data: bytes) -> list[HttpMessage]:
        """Add *data*; return every message completed by it."""
        try:
            if self._requests is not None:
                reqs = self._requests.feed(data)
                self.wants_continue = self._requests.expect_continue and not reqs
                return [HttpMessage.from_request(r) for r in reqs]
            done: list[HttpMessage] = []
            while data:
                resp = self._response.feed(data)
                if resp is None:
                    break
                done.append(HttpMessage.from_response(resp))
                data = self._response.extra
                self._response = ResponseParser(pipelined=True, max_body=self.max_body)
            return done
        except RequestTooLarge:
            raise
        except RemoteProtocolError as exc:
            exc.status = 400  # type: ignore[attr-defined]
            raise

    def eof(self) -> HttpMessage | None:
        """The connection closed: return a response delimited by the close, if any."""
        if self._requests is not None or not self._response.started:
            return None
        try:
            return HttpMessage.from_response(self._response.feed_eof())
        except RemoteProtocolError:
            return None


_REASONS = {200: "OK", 400: "Bad Request", 405: "Method Not Allowed", 413: "Payload Too Large"}


def response_bytes(status: int, body: bytes, keep_alive: bool = True) -> bytes:
    """An HTTP/1.1 response with an XML body."""
    reason = _REASONS.get(status, "Error")
    conn = "" if keep_alive else "Connection: close\r\n"
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml\r\n"
        f"Content-Length: {len(body)}\r\n{conn}\r\n"
    ).encode("ascii") + body


#: Turns a request body into a response body, now or later.
Handle = Callable[[bytes], "bytes | Awaitable[bytes]"]


class XmlRpcHost:
    """Answers XML-RPC POSTs for the shared server connection
    (:class:`~sciwire.core.http.server.HttpConnection`).

    Pipelined requests are handled at once and answered in order; a request whose
    caller hangs up is cancelled.

    Args:
        handle: ``handle(body)`` returns the response body, or an awaitable of it.
        max_body: the largest request body accepted (413 beyond).
        on_bad: called for each malformed or non-POST request.
        connections: the live connections (for closing at stop).
        refusal: the body of the 405 answer to a method other than POST.
        is_stopping: tells whether the owning server is stopping, so that a connection
            accepted just before the stop closes itself (None: never; the hub closes
            its listener and connections itself).
    """

    concurrent = True

    def __init__(
        self,
        handle: Handle,
        max_body: int,
        on_bad: Callable[[], None],
        connections: set[Any] | None = None,
        refusal: bytes = b"XML-RPC takes POST",
        is_stopping: Callable[[], bool] | None = None,
    ) -> None:
        self._handle = handle
        self._is_stopping = is_stopping
        self._stopped = False
        self.max_body = max_body
        self._on_bad = on_bad
        self.connections: set[HttpConnection] = cast(
            "set[HttpConnection]", set() if connections is None else connections
        )
        self.tasks: set[asyncio.Future[bytes]] = set()
        self.errors = 0
        self._refusal = refusal

    @property
    def stopping(self) -> bool:
        """Whether the owning server is stopping (new connections close at once)."""
        return self._stopped or (self._is_stopping is not None and self._is_stopping())

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self._stopped = value

    def respond(self, req: ParsedRequest, remote: str | None) -> Reply:
        """Answer one request (see :class:`~sciwire.core.http.server.ConnectionHost`)."""
        keep = req.keep_alive
        if req.method != "POST":
            self._on_bad()
            return response_bytes(405, self._refusal, keep)
        result = self._handle(req.body)
        if isinstance(result, bytes):
            return response_bytes(200, result, keep)
        return _later(result, keep)

    def error_response(self, status: int, message: str) -> bytes:
        """The closing answer to a request that could not be parsed."""
        self._on_bad()
        return response_bytes(status, message.encode("utf-8", "replace"), False)

    def loop_time(self) -> float:
        """A monotonic clock."""
        return time.monotonic()


async def _later(result: Awaitable[bytes], keep: bool) -> bytes:
    return response_bytes(200, await result, keep)


class Accepted:
    """Every connection a server accepted, from the moment asyncio builds its protocol
    until its ``connection_lost``, so that a stopping server can close them all.

    asyncio accepts a socket in one loop turn, builds its protocol and transport in a
    later turn and calls ``connection_made`` later still: a stop that closes only the
    connections already made returns with the younger ones open, and they leak when
    the loop closes (issue #13: a hub delivery racing a disconnect).
    """

    def __init__(self) -> None:
        self.live: set[TrackedConnection] = set()
        #: set by :meth:`close_all`: a connection made later (a TLS handshake that
        #: ends after the stop) closes at once
        self.stopped = False
        self._drained: asyncio.Future[None] | None = None

    def opened(self, conn: TrackedConnection) -> None:
        """*conn* was accepted (its protocol exists; it may not be made yet)."""
        self.live.add(conn)

    def closed(self, conn: TrackedConnection) -> None:
        """*conn* lost its connection (its socket is closed)."""
        self.live.discard(conn)
        if not self.live and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def close_all(self, grace: float) -> None:
        """Close every connection and return once each one's socket is closed.

        Call it once the server accepts no more. Answers already written get *grace*
        seconds to leave (a graceful close); what is left then is aborted.
        """
        self.stopped = True
        for conn in list(self.live):
            conn.close()
        await self._wait(grace)
        for conn in list(self.live):
            conn.abort()
        # an abort reaches connection_lost on the next turn; the bound is only a guard
        await self._wait(1.0)

    async def _wait(self, limit: float) -> None:
        if not self.live:
            return
        self._drained = drained = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(drained), limit)
        except asyncio.TimeoutError:
            logger.debug("%d connections still open after %s s", len(self.live), limit)
        finally:
            self._drained = None


async def stop_serving(server: asyncio.Server, accepted: Accepted, grace: float) -> None:
    """Stop *server* and return once every connection it accepted is closed.

    Args:
        server: the listening server (its protocols report to *accepted*).
        accepted: the server's connections.
        grace: seconds the answers already written get to leave (see
            :meth:`Accepted.close_all`).
    """
    # Stop accepting before closing: asyncio builds an accepted socket's transport a
    # turn after the accept and cannot attach it to a server already closed (an
    # assertion it swallows; the socket leaks: issue #13). The turn below lets the
    # accepts already made build theirs first.
    loop = asyncio.get_running_loop()
    for sock in server.sockets:
        loop.remove_reader(sock.fileno())
    await asyncio.sleep(0)
    server.close()
    await accepted.close_all(grace)
    await server.wait_closed()


class TrackedConnection(HttpConnection):
    """A server connection that its server can close at any stage of its accept.

    Args:
        host: the host answering requests (see
            :class:`~sciwire.core.http.server.ConnectionHost`).
        accepted: told of this connection from construction to ``connection_lost``.
        early: tell *accepted* at construction (plain TCP: ``connection_made``
            always follows) rather than at ``connection_made`` (TLS: a failed
            handshake never makes the protocol, nor loses it).
    """

    def __init__(
        self, host: ConnectionHost, accepted: Accepted | None = None, early: bool = True
    ) -> None:
        super().__init__(host)
        self._accepted = accepted
        self._unwanted = False  # closed before connection_made
        if accepted is not None and early:
            accepted.opened(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._accepted is not None:
            self._accepted.opened(self)
            self._unwanted = self._unwanted or self._accepted.stopped
        if self._unwanted:
            self.transport = cast(asyncio.Transport, transport)
            self.closing = True
            transport.abort()  # type: ignore[attr-defined]
            return
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            if self._accepted is not None:
                self._accepted.closed(self)

    def close(self) -> None:
        """Close the connection (after the answers already written) and cancel what
        it still runs; before ``connection_made``, the connection closes when made."""
        for task in list(self.pending):
            task.cancel()
        if self.transport is not None:
            self.transport.close()
        else:
            self._unwanted = True

    def abort(self) -> None:
        """Close the connection now, dropping unsent answers."""
        self.close()
        if self.transport is not None:
            self.transport.abort()


class HttpServerProtocol(TrackedConnection):
    """Serves XML-RPC POSTs on one connection: ``handle(body) -> response body``.

    Args:
        handle: the request handler (its result may also be awaitable).
        max_body: the largest request body accepted (413 beyond).
        on_bad: called for each malformed request.
        connections: the server's set of live connections.
        is_stopping: whether the server is stopping (see :class:`XmlRpcHost`).
        accepted, early: see :class:`TrackedConnection`.
        refusal: the body of the 405 answer to a method other than POST.
    """

    def __init__(
        self,
        handle: Handle,
        max_body: int,
        on_bad: Callable[[], None],
        connections: set[Any] | None = None,
        is_stopping: Callable[[], bool] | None = None,
        accepted: Accepted | None = None,
        early: bool = True,
        refusal: bytes = b"XML-RPC takes POST",
    ) -> None:
        host = XmlRpcHost(handle, max_body, on_bad, connections, refusal, is_stopping)
        super().__init__(host, accepted, early)


def _samp_error(kind: type[Exception], message: str, url: str, data: Any) -> Exception:
    """Failures as SAMP's callers expect them: a broken connection is a ConnectError."""
    if kind is RemoteProtocolError:
        return RemoteProtocolError(message, data)
    if kind is Timeout:
        return Timeout(f"no HTTP response from {url}: {message}")
    return ConnectError(f"connection to {url} failed: {message}")


_XML = {"Content-Type": "text/xml"}


class HttpClientPool:
    """Keep-alive POSTs to one host:port (the shared asyncio pool).

    Args:
        host: the server's host.
        port: the server's port.
        path: the request target.
        max_idle: idle connections kept for reuse.
        max_body: the largest response body accepted.
        max_connections: the most requests in flight at once (later ones wait for a
            free connection, which keeps a burst on a few reused connections); the
            default is *max_idle*; None for no limit (a client whose own callbacks may
            need a connection while its calls wait must not be limited).
        ssl_context: speak TLS (``https``) with these settings.
    """

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        max_idle: int = 20,
        max_body: int = 64 << 20,
        max_connections: int | str | None = "max_idle",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.path = path or "/"
        self.max_idle = max_idle
        self.max_body = max_body
        limit = max_idle if max_connections == "max_idle" else max_connections
        self._pool = AsyncHttpPool(
            Endpoint("https" if ssl_context is not None else "http", host, port),
            timeout=None,
            ssl_context=ssl_context,
            limit=int(limit) if isinstance(limit, int) else None,
            retry="stale",
            error_factory=_samp_error,
            max_body=max_body,
            max_idle=max_idle,
        )
        self._head = self._pool.request_prefix("POST", self.path, _XML)
        self._closed = False

    async def post(self, body: bytes, timeout: float | None = None) -> HttpMessage:
        """POST *body*; return the response.

        Raises:
            ConnectError: could not connect, or the connection broke.
            Timeout: no response within *timeout* seconds.
            RemoteProtocolError: the response was not valid HTTP.
        """
        if self._closed:
            raise ConnectError("the HTTP client is closed")
        request = self._head + str(len(body)).encode("ascii") + b"\r\n\r\n" + body
        resp = await self._pool.exchange(request, self.path, timeout=timeout)
        return HttpMessage.from_response(resp)

    async def close(self) -> None:
        """Close every connection."""
        self._closed = True
        self._pool.abort_all()
        await asyncio.sleep(0)  # let the transports run their close callbacks


class BlockingHttpClient:
    """Keep-alive POSTs to one host:port from any thread, on plain sockets (the shared
    blocking pool).

    Used by the blocking SAMP API so that a call made from the user's thread goes
    straight to the socket instead of hopping to the event-loop thread and back.

    Args:
        host: the server's host.
        port: the server's port.
        path: the request target.
        max_idle: idle connections kept for reuse.
        max_body: the largest response body accepted.
        ssl_context: speak TLS (``https``) with these settings.
        max_connections: None, the only choice: posts are never limited (each one
            waits on its caller's thread); the argument matches
            :class:`HttpClientPool`'s, so that one caller's code serves both.
    """

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        max_idle: int = 20,
        max_body: int = 64 << 20,
        ssl_context: ssl.SSLContext | None = None,
        *,
        max_connections: None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.max_idle = max_idle
        self.max_body = max_body
        self.path = path or "/"
        self._pool = HttpPool(
            Endpoint("https" if ssl_context is not None else "http", host, port),
            ssl_context=ssl_context,
            timeout=10.0,  # to connect; each post gives its own response timeout
            retry="stale",
            pool_size=max_idle,
            error_factory=_samp_error,
            max_body=max_body,
        )
        self._head = self._pool.request_prefix("POST", self.path, _XML)
        self._closed = False

    def post(self, body: bytes, timeout: float | None = None) -> HttpMessage:
        """POST *body* and return the response (same errors as :class:`HttpClientPool`)."""
        if self._closed:
            raise ConnectError("the HTTP client is closed")
        request = self._head + str(len(body)).encode("ascii") + b"\r\n\r\n" + body
        resp = self._pool.exchange(request, self.path, timeout=timeout)
        return HttpMessage.from_response(resp)

    def close(self) -> None:
        """Close the idle connections; later posts fail."""
        self._closed = True
        self._pool.shutdown()
