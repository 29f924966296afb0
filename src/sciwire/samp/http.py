"""A lean HTTP/1.1 for XML-RPC on loopback: an incremental parser, a server protocol and a
keep-alive client pool, all on plain asyncio.

SAMP traffic is small POSTs of XML between local processes; a general HTTP stack costs
more per message than the XML itself. This module does just what XML-RPC peers need:
``Content-Length`` and chunked bodies, keep-alive, ``Expect: 100-continue``, size limits,
and a clear error for anything else.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sciwire.errors import ConnectError, RemoteProtocolError, Timeout

__all__ = [
    "BlockingHttpClient",
    "HttpClientPool",
    "HttpMessage",
    "HttpParser",
    "HttpServerProtocol",
]

logger = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024


@dataclass
class HttpMessage:
    """One parsed request or response."""

    start: tuple[str, str, str]  # (method, target, version) or (version, status, reason)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def keep_alive(self) -> bool:
        """Whether the connection stays open after this message."""
        conn = self.headers.get("connection", "").lower()
        version = self.start[0] if self.start[0].startswith("HTTP/") else self.start[2]
        if version == "HTTP/1.0":
            return conn == "keep-alive"
        return conn != "close"


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
        self._buf = bytearray()
        self._msg: HttpMessage | None = None
        self._need: int | None = None  # body bytes still wanted (Content-Length)
        self._chunks: bytearray | None = None  # chunked body so far
        self._until_close = False
        #: set when a request asked for 100-continue and the head is complete
        self.wants_continue = False

    def _fail(self, text: str, status: int = 400) -> RemoteProtocolError:
        err = RemoteProtocolError(text, bytes(self._buf[:200]))
        err.status = status  # type: ignore[attr-defined]
        return err

    def feed(self, data: bytes) -> list[HttpMessage]:
        """Add *data*; return every message completed by it."""
        self._buf += data
        done: list[HttpMessage] = []
        while True:
            if self._msg is None and not self._parse_head():
                return done
            msg = self._msg
            assert msg is not None
            if self._chunks is not None:
                if not self._parse_chunks():
                    return done
                msg.body = bytes(self._chunks)
                self._chunks = None
            elif self._until_close:
                return done  # finished by eof()
            else:
                need = self._need or 0
                if len(self._buf) < need:
                    return done
                msg.body = bytes(self._buf[:need])
                del self._buf[:need]
            self._msg, self._need = None, None
            done.append(msg)

    def eof(self) -> HttpMessage | None:
        """The connection closed: return a response delimited by the close, if any."""
        if self._msg is not None and self._until_close:
            self._msg.body = bytes(self._buf)
            msg, self._msg = self._msg, None
            return msg
        return None

    def _parse_head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise self._fail("HTTP head too large", 431)
            return False
        head = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[: end + 4]
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2:
            raise self._fail("malformed HTTP start line")
        if len(parts) == 2:
            parts.append("")
        start = (parts[0], parts[1], parts[2])
        if self.requests and not start[2].startswith("HTTP/1."):
            raise self._fail("not an HTTP/1.x request", 505)
        if not self.requests and not start[0].startswith("HTTP/1."):
            raise self._fail("not an HTTP/1.x response")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise self._fail("malformed HTTP header line")
            headers[name.strip().lower()] = value.strip()
        msg = HttpMessage(start, headers)
        self._msg = msg
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunks = bytearray()
        elif "content-length" in headers:
            try:
                need = int(headers["content-length"])
            except ValueError:
                raise self._fail("bad Content-Length") from None
            if need < 0:
                raise self._fail("bad Content-Length")
            if need > self.max_body:
                raise self._fail(f"body of {need} bytes over the {self.max_body} limit", 413)
            self._need = need
        elif self.requests or start[1] in ("204", "304") or start[1].startswith("1"):
            self._need = 0
        else:
            self._until_close = True
        self.wants_continue = headers.get("expect", "").lower() == "100-continue"
        return True

    def _parse_chunks(self) -> bool:
        chunks = self._chunks
        assert chunks is not None
        while True:
            line_end = self._buf.find(b"\r\n")
            if line_end < 0:
                return False
            size_text = bytes(self._buf[:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise self._fail("bad chunk size") from None
            if size == 0:
                trailer_end = self._buf.find(b"\r\n\r\n", line_end)
                if trailer_end == line_end:  # no trailers: "0\r\n\r\n"
                    del self._buf[: line_end + 4]
                    return True
                if trailer_end < 0:
                    return False
                del self._buf[: trailer_end + 4]
                return True
            if len(chunks) + size > self.max_body:
                raise self._fail("chunked body over the limit", 413)
            if len(self._buf) < line_end + 2 + size + 2:
                return False
            chunks += self._buf[line_end + 2 : line_end + 2 + size]
            del self._buf[: line_end + 2 + size + 2]


_REASONS = {200: "OK", 400: "Bad Request", 405: "Method Not Allowed", 413: "Payload Too Large"}


def response_bytes(status: int, body: bytes, keep_alive: bool = True) -> bytes:
    """An HTTP/1.1 response with an XML body."""
    reason = _REASONS.get(status, "Error")
    conn = "" if keep_alive else "Connection: close\r\n"
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml\r\n"
        f"Content-Length: {len(body)}\r\n{conn}\r\n"
    ).encode("ascii") + body


Handle = Callable[[bytes], bytes]


class HttpServerProtocol(asyncio.Protocol):
    """Serves POSTs on one connection: ``handle(body) -> response body`` (synchronous)."""

    def __init__(
        self,
        handle: Handle,
        max_body: int,
        on_bad: Callable[[], None],
        connections: set[asyncio.Transport] | None = None,
    ) -> None:
        self._handle = handle
        self._parser = HttpParser(True, max_body)
        self._on_bad = on_bad
        self._transport: asyncio.Transport | None = None
        self._connections = connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if self._connections is not None:
            self._connections.add(transport)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        try:
            messages = self._parser.feed(data)
        except RemoteProtocolError as exc:
            self._on_bad()
            status = getattr(exc, "status", 400)
            transport.write(response_bytes(status, str(exc).encode("utf-8", "replace"), False))
            transport.close()
            return
        if self._parser.wants_continue and not messages:
            self._parser.wants_continue = False
            transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        for msg in messages:
            if msg.start[0] != "POST":
                self._on_bad()
                transport.write(response_bytes(405, b"XML-RPC takes POST", msg.keep_alive))
            else:
                transport.write(response_bytes(200, self._handle(msg.body), msg.keep_alive))
            if not msg.keep_alive:
                transport.close()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if self._connections is not None and self._transport is not None:
            self._connections.discard(self._transport)
        self._transport = None


class _ClientConnection(asyncio.Protocol):
    def __init__(self, max_body: int) -> None:
        self.parser = HttpParser(False, max_body)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[HttpMessage] | None = None
        self.closed = False
        self.got_bytes = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        waiter = self.waiter
        try:
            messages = self.parser.feed(data)
        except RemoteProtocolError as exc:
            self._finish(exc)
            return
        if messages and waiter is not None and not waiter.done():
            waiter.set_result(messages[0])

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        msg = self.parser.eof()
        if msg is not None and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(msg)
            return
        self._finish(ConnectionResetError("connection closed before the response"))

    def _finish(self, exc: BaseException) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HttpClientPool:
    """Keep-alive POSTs to one host:port.

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
    """

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        max_idle: int = 20,
        max_body: int = 64 << 20,
        max_connections: int | str | None = "max_idle",
    ) -> None:
        self.host = host
        self.port = port
        self.path = path or "/"
        self.max_idle = max_idle
        self.max_body = max_body
        limit = max_idle if max_connections == "max_idle" else max_connections
        self._slots = asyncio.Semaphore(int(limit)) if isinstance(limit, int) else None
        self._idle: list[_ClientConnection] = []
        self._busy: set[_ClientConnection] = set()
        self._closed = False
        host_header = f"[{host}]" if ":" in host else host
        self._head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {host_header}:{port}\r\n"
            "Content-Type: text/xml\r\nContent-Length: "
        ).encode("ascii")

    async def _connect(self) -> _ClientConnection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                lambda: _ClientConnection(self.max_body), self.host, self.port
            )
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return conn

    async def post(self, body: bytes, timeout: float | None = None) -> HttpMessage:
        """POST *body*; return the response.

        Raises:
            ConnectError: could not connect, or the connection broke.
            Timeout: no response within *timeout* seconds.
            RemoteProtocolError: the response was not valid HTTP.
        """
        if self._closed:
            raise ConnectError("the HTTP client is closed")
        slots = self._slots
        if slots is None:
            return await self._post(body, timeout)
        async with slots:
            return await self._post(body, timeout)

    async def _post(self, body: bytes, timeout: float | None) -> HttpMessage:
        request = self._head + str(len(body)).encode("ascii") + b"\r\n\r\n" + body
        loop = asyncio.get_running_loop()
        for attempt in (0, 1):
            reused = False
            conn: _ClientConnection | None = None
            while self._idle:
                candidate = self._idle.pop()
                if not candidate.closed:
                    conn, reused = candidate, True
                    break
            if conn is None:
                conn = await self._connect()
            self._busy.add(conn)
            waiter: asyncio.Future[HttpMessage] = loop.create_future()
            conn.waiter = waiter
            conn.got_bytes = False
            timer = None
            if timeout is not None:
                timer = loop.call_later(timeout, _expire, conn, waiter, timeout)
            try:
                assert conn.transport is not None
                conn.transport.write(request)
                msg = await waiter
            except Timeout:
                self._busy.discard(conn)
                conn.close()
                raise
            except (ConnectionError, OSError) as exc:
                self._busy.discard(conn)
                conn.close()
                if reused and attempt == 0 and not conn.got_bytes:
                    continue  # a kept-alive connection the server had closed: retry once
                raise ConnectError(f"connection to {self.host}:{self.port} failed: {exc}") from exc
            except BaseException:
                self._busy.discard(conn)
                conn.close()
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            self._busy.discard(conn)
            conn.waiter = None
            if msg.keep_alive and not conn.closed and len(self._idle) < self.max_idle:
                self._idle.append(conn)
            else:
                conn.close()
            return msg
        raise ConnectError(f"connection to {self.host}:{self.port} failed")  # pragma: no cover

    async def close(self) -> None:
        """Close every connection."""
        self._closed = True
        for conn in [*self._idle, *self._busy]:
            conn.close()
        self._idle.clear()
        self._busy.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks


def _expire(conn: _ClientConnection, waiter: asyncio.Future[HttpMessage], after: float) -> None:
    if not waiter.done():
        waiter.set_exception(Timeout(f"no HTTP response within {after} s"))
    conn.close()


class BlockingHttpClient:
    """Keep-alive POSTs to one host:port from any thread, on plain sockets.

    Used by the blocking SAMP API so that a call made from the user's thread goes
    straight to the socket instead of hopping to the event-loop thread and back.

    Args:
        host: the server's host.
        port: the server's port.
        path: the request target.
        max_idle: idle connections kept for reuse.
        max_body: the largest response body accepted.
    """

    def __init__(
        self, host: str, port: int, path: str, max_idle: int = 20, max_body: int = 64 << 20
    ) -> None:
        self.host = host
        self.port = port
        self.max_idle = max_idle
        self.max_body = max_body
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        host_header = f"[{host}]" if ":" in host else host
        self._head = (
            f"POST {path or '/'} HTTP/1.1\r\nHost: {host_header}:{port}\r\n"
            "Content-Type: text/xml\r\nContent-Length: "
        ).encode("ascii")

    def _take(self) -> socket.socket | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.max_idle:
                self._idle.append(sock)
                return
        sock.close()

    def post(self, body: bytes, timeout: float | None = None) -> HttpMessage:
        """POST *body* and return the response (same errors as :class:`HttpClientPool`)."""
        if self._closed:
            raise ConnectError("the HTTP client is closed")
        request = self._head + str(len(body)).encode("ascii") + b"\r\n\r\n" + body
        for attempt in (0, 1):
            sock = self._take()
            reused = sock is not None
            if sock is None:
                try:
                    sock = socket.create_connection((self.host, self.port), timeout=10)
                except OSError as exc:
                    raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            parser = HttpParser(False, self.max_body)
            got = False
            try:
                sock.settimeout(timeout)
                sock.sendall(request)
                while True:
                    data = sock.recv(65536)
                    if not data:
                        msg = parser.eof()
                        if msg is None:
                            raise ConnectionResetError("connection closed before the response")
                        sock.close()
                        return msg
                    got = True
                    messages = parser.feed(data)
                    if messages:
                        msg = messages[0]
                        if msg.keep_alive:
                            self._give(sock)
                        else:
                            sock.close()
                        return msg
            except TimeoutError as exc:
                sock.close()
                raise Timeout(
                    f"no HTTP response from {self.host}:{self.port} in {timeout} s"
                ) from exc
            except RemoteProtocolError:
                sock.close()
                raise
            except OSError as exc:
                sock.close()
                if reused and attempt == 0 and not got:
                    continue  # a kept-alive connection the server had closed: retry once
                raise ConnectError(f"connection to {self.host}:{self.port} failed: {exc}") from exc
        raise ConnectError(f"connection to {self.host}:{self.port} failed")  # pragma: no cover

    def close(self) -> None:
        """Close the idle connections; later posts fail."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()
