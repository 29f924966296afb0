"""The asyncio HTTP/1.1 server shared by sciwire packages: one event loop, no thread per
request, TCP_NODELAY, each response written in a single send.

Built directly on :class:`asyncio.Protocol` and the sans-I/O
:class:`~sciwire.core.http.codec.RequestParser`: a request whose handler answers at
once (a plain function) is answered inside ``data_received`` without creating a task;
only awaitable answers get one. Pipelined requests are answered in order. This cut
the server cost per JSON-RPC call to well under half of aiohttp's on this machine
(bench/command.py), which is what bounds every client figure. SAMP's hub and callback
servers use :class:`HttpConnection` in its concurrent mode (see :class:`ConnectionHost`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import socket
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, cast
from urllib.parse import parse_qsl, urlsplit

from sciwire.core.http._transport import mark_closed
from sciwire.core.http.codec import (
    ParsedRequest,
    RequestParser,
    RequestTooLarge,
    encode_response,
)
from sciwire.core.http.limits import MAX_HEAD, ServerLimits, limit_hit
from sciwire.core.portal import Portal
from sciwire.core.streams import ReadIntoProtocol
from sciwire.errors import RemoteProtocolError

__all__ = [
    "ConnectionHost",
    "Headers",
    "HttpConnection",
    "HttpServer",
    "Reply",
    "RouteRequest",
    "RouteResponse",
    "mark_closed",
]

logger = logging.getLogger(__name__)

#: What a handler returns: response bytes now, or an awaitable of them.
Reply = bytes | Awaitable[bytes]

_MAX_QUEUED = 64  # pipelined requests buffered per connection before reading pauses


def _refused(exc: RemoteProtocolError) -> ParsedRequest:
    """A stand-in queued after the requests that came before a parse error, so that
    their answers leave first and the error answer (which closes) last."""
    status = getattr(exc, "status", 400)
    return ParsedRequest("", str(exc), {"status": str(status)}, b"", False)


class Headers(dict[str, str]):
    """Request headers: names are matched case-insensitively."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        """The header's value, or *default*."""
        return super().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


@dataclass
class RouteRequest:
    """A request as plain route handlers see it (the aiohttp-like subset they need).

    Attributes:
        method: the HTTP method.
        path: the path, without the query.
        query: the query parameters (last value wins).
        headers: the headers (case-insensitive names).
        body: the request body.
        remote: the peer address, if known.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes = b""
    remote: str | None = None

    async def read(self) -> bytes:
        """The body."""
        return self.body

    async def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode("utf-8", "replace")

    async def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` if it is not)."""
        return json.loads(self.body)

    @classmethod
    def from_parsed(cls, req: ParsedRequest, remote: str | None) -> RouteRequest:
        """Split the target into path and query."""
        parts = urlsplit(req.target)
        return cls(
            req.method,
            parts.path,
            dict(parse_qsl(parts.query, keep_blank_values=True)),
            Headers(req.headers),
            req.body,
            remote,
        )


@dataclass
class RouteResponse:
    """What a plain route handler may return for full control of the reply.

    (A handler may also return bytes, str, or any JSON-serialisable value.)
    """

    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)


class ConnectionHost(Protocol):
    """What an :class:`HttpConnection` needs from its server (an :class:`HttpServer`,
    or a package's own object with these members)."""

    max_body: int
    errors: int
    connections: set[HttpConnection]
    tasks: set[asyncio.Future[bytes]]
    #: handle pipelined requests at once (answers still leave in order) instead of
    #: one after the other; a connection closed by its client cancels its tasks.
    concurrent: bool
    #: true once the server stops: a connection made from then on is closed at once
    stopping: bool

    def respond(self, req: ParsedRequest, remote: str | None) -> Reply:
        """Answer one request: response bytes, or an awaitable of them."""

    def error_response(self, status: int, message: str) -> bytes:
        """The reply (closing the connection) to a request that could not be parsed."""

    def loop_time(self) -> float:
        """The serving loop's clock."""


class LimitedHost(ConnectionHost, Protocol):
    """A host that also keeps :class:`~sciwire.core.http.limits.ServerLimits` (an
    :class:`HttpServer`): its connections count their bodies against its budget."""

    limits: ServerLimits
    #: bytes of request bodies still arriving, over all connections
    inflight: int


class HttpConnection(ReadIntoProtocol):
    """One server-side connection: parses requests, answers them in order (reads land
    in a reused buffer: see :mod:`sciwire.core.streams`).

    Args:
        server: the host answering requests (see :class:`ConnectionHost`).
    """

    def __init__(self, server: ConnectionHost) -> None:
        self.server = server
        limits: ServerLimits | None = getattr(server, "limits", None)
        #: the host, when it keeps limits and a body budget (None: a SAMP host)
        self.limited = cast(LimitedHost, server) if limits is not None else None
        self.parser = RequestParser(server.max_body, limits.max_head if limits else MAX_HEAD)
        #: bytes this connection counts against the host's in-flight body budget
        self.held = 0
        #: the host's loop time when a sweep first saw the current request incomplete
        self.since: float | None = None
        self.transport: asyncio.Transport | None = None
        self.queue: collections.deque[ParsedRequest] = collections.deque()
        self.task: asyncio.Future[bytes] | None = None
        self.task_keep_alive = True
        self.remote: str | None = None
        self.closing = False
        self.paused = False
        self.continued = False
        #: the host's loop time when this connection was last seen active; a request
        #: only sets :attr:`active`, and the idle sweep turns that into a time
        self.last_active = 0.0
        self.active = False
        # concurrent mode: answers (ready bytes or pending futures) in request order
        self.out: collections.deque[tuple[asyncio.Future[bytes] | bytes, bool]] = (
            collections.deque()
        )
        self.pending: set[asyncio.Future[bytes]] = set()

    def busy(self) -> bool:
        """True while a request is being answered or waits its turn."""
        return self.task is not None or bool(self.queue) or bool(self.pending)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (no isinstance check: uvloop's transports are not asyncio.Transport)
        self.transport = transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if isinstance(peer, tuple) else None
        self.last_active = self.server.loop_time()
        if self.server.stopping:
            # accepted in the same loop turn as stop(): after its sweep, so close it here
            self.closing = True
            transport.abort()
            return
        host = self.limited
        if host is not None and len(host.connections) >= host.limits.max_connections:
            limit_hit(logger, "max_connections", self.remote, f"{len(host.connections)} open")
            if not _evict(host.connections):
                self.closing = True
                transport.write(host.error_response(503, "too many connections"))
                transport.close()
                return
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.connections.discard(self)
        if self.held and self.limited is not None:
            self.limited.inflight -= self.held
            self.held = 0
        self.queue.clear()
        self.out.clear()
        for task in list(self.pending):  # a caller that hung up waits for nothing
            task.cancel()
        mark_closed(self.transport)

    def pause_writing(self) -> None:
        # The client is not reading its responses: stop reading its requests.
        if self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self.paused and len(self.queue) < _MAX_QUEUED:
            self.paused = False
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.active = True
        parser = self.parser
        try:
            requests = parser.feed(data)
        except RequestTooLarge as exc:
            limit = "max_head" if exc.status == 431 else "max_body"
            limit_hit(logger, limit, self.remote, str(exc))
            self._fail(exc.status, str(exc))
            return
        except RemoteProtocolError as exc:
            self._fail(400, str(exc))
            return
        host = self.limited
        if host is not None:
            held = parser.held()
            if held != self.held:  # a request still arriving: count it in the budget
                host.inflight += held - self.held
                self.held = held
                if held and host.inflight > host.limits.max_inflight_body:
                    limit_hit(logger, "max_inflight_body", self.remote, f"{host.inflight} bytes")
                    self._fail(503, "server busy: too many request bytes in flight")
                    return
        if requests:
            self.since = None
            if parser.error is not None:  # answered after the requests before it
                requests.append(_refused(parser.error))
            self.continued = False
            if len(requests) == 1 and not self.queue and self.task is None and not self.out:
                # the common case: one request, nothing before it still unanswered
                req = requests[0]
                try:
                    reply = self.server.respond(req, self.remote)
                except Exception:  # a bug in respond(): answer 500, keep serving
                    reply = self._failed(req)
                if isinstance(reply, bytes):
                    self._write(reply, req.keep_alive)
                elif self.server.concurrent:
                    self._later(reply, req)
                    self._flush()
                else:
                    self._start(reply, req)
                if self.paused:
                    self._resume()
                return
            self.queue.extend(requests)
            if self.server.concurrent:
                self._pump_concurrent()
            else:
                self._pump()
        elif self.parser.expect_continue and not self.continued and self.transport is not None:
            self.continued = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if len(self.queue) >= _MAX_QUEUED and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def _fail(self, status: int, message: str) -> None:
        self.server.errors += 1
        logger.debug("bad request from %s: %s", self.remote, message)
        reply = self.server.error_response(status, message)
        if self.server.concurrent and self.out:
            self.queue.clear()
            self.out.append((reply, False))
            self._flush()
        else:
            self._write(reply, keep_alive=False)

    def _write(self, data: bytes, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        if not keep_alive:
            self.closing = True
            transport.close()

    def _answer(self, req: ParsedRequest) -> Reply:
        if not req.method:  # the stand-in for a parse error (see _refused)
            self.server.errors += 1
            logger.debug("bad request from %s: %s", self.remote, req.target)
            return self.server.error_response(int(req.headers["status"]), req.target)
        try:
            return self.server.respond(req, self.remote)
        except Exception:  # a bug in respond(): answer 500, keep serving
            return self._failed(req)

    @staticmethod
    def _failed(req: ParsedRequest) -> bytes:
        logger.exception("HTTP handler failed")
        req.keep_alive = False
        return encode_response(500, b'{"error": "internal"}', keep_alive=False)

    def _pump(self) -> None:
        # Replies ready at once are gathered and written together: pipelined requests
        # cost one send for the batch.
        ready: list[bytes] = []
        keep_alive = True
        while self.queue and self.task is None and not self.closing and keep_alive:
            req = self.queue.popleft()
            reply = self._answer(req)
            if isinstance(reply, bytes):
                ready.append(reply)
                keep_alive = req.keep_alive
                continue
            if ready:
                self._write(b"".join(ready), True)
                ready = []
            self._start(reply, req)
        if ready:
            self._write(ready[0] if len(ready) == 1 else b"".join(ready), keep_alive)
        self._resume()

    def _start(self, reply: Awaitable[bytes], req: ParsedRequest) -> None:
        task = self.task = asyncio.ensure_future(reply)
        self.task_keep_alive = req.keep_alive
        self.server.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _resume(self) -> None:
        if self.paused and len(self.queue) < _MAX_QUEUED and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def _task_done(self, task: asyncio.Future[bytes]) -> None:
        self.server.tasks.discard(task)
        self.task = None
        self.active = True
        if task.cancelled():
            if self.transport is not None:
                self.transport.abort()
            return
        exc = task.exception()
        if exc is not None:
            logger.error("HTTP handler task failed", exc_info=exc)
            self._write(encode_response(500, b'{"error": "internal"}', keep_alive=False), False)
            return
        self._write(task.result(), self.task_keep_alive)
        self._pump()

    # -- concurrent mode: every pipelined request handled at once, answered in order ----

    def _pump_concurrent(self) -> None:
        if len(self.queue) == 1 and not self.out:  # the common case: one request, no backlog
            req = self.queue.popleft()
            reply = self._answer(req)
            if isinstance(reply, bytes):
                self._write(reply, req.keep_alive)
                self._resume()
                return
            self._later(reply, req)
            self._flush()
            self._resume()
            return
        while self.queue and not self.closing:
            req = self.queue.popleft()
            reply = self._answer(req)
            if isinstance(reply, bytes):
                self.out.append((reply, req.keep_alive))
            else:
                self._later(reply, req)
            if not req.keep_alive:
                self.queue.clear()
                break
        self._flush()
        self._resume()

    def _later(self, reply: Awaitable[bytes], req: ParsedRequest) -> None:
        task = asyncio.ensure_future(reply)
        self.pending.add(task)
        self.server.tasks.add(task)
        task.add_done_callback(self._concurrent_done)
        self.out.append((task, req.keep_alive))

    def _concurrent_done(self, task: asyncio.Future[bytes]) -> None:
        self.pending.discard(task)
        self.server.tasks.discard(task)
        self.active = True
        self._flush()

    def _flush(self) -> None:
        ready: list[bytes] = []
        keep = True
        while self.out and keep:
            item, keep = self.out[0]
            if isinstance(item, bytes):
                data = item
            elif item.done():
                if item.cancelled() or item.exception() is not None:
                    if not item.cancelled():
                        logger.error("HTTP handler task failed", exc_info=item.exception())
                    data = encode_response(500, b'{"error": "internal"}', keep_alive=False)
                    keep = False
                else:
                    data = item.result()
            else:
                break  # an earlier answer is still being computed
            self.out.popleft()
            ready.append(data)
        if ready:
            self._write(ready[0] if len(ready) == 1 else b"".join(ready), keep)


def _evict(connections: set[HttpConnection]) -> bool:
    """Make room at the connection cap: close the connection that has held a request
    head or body unfinished the longest, else an idle kept-alive one; False when every
    connection is busy answering (only then is a new one refused)."""
    victim: HttpConnection | None = None
    idle: HttpConnection | None = None
    for conn in connections:
        if conn.closing or conn.busy():
            continue
        if conn.parser.held() or conn.parser.in_body():
            if victim is None or (conn.since or 0.0) < (victim.since or 0.0):
                victim = conn
        elif idle is None or conn.last_active < idle.last_active:
            idle = conn
    victim = victim or idle
    if victim is None:
        return False
    victim.closing = True
    connections.discard(victim)
    if victim.transport is not None:
        victim.transport.abort()
    return True


class HttpServer:
    """An HTTP/1.1 server: life cycle, connections, idle timeout, graceful stop.

    Subclasses implement :meth:`respond` (the base of
    :class:`~sciwire.command.CommandServer` and of the SAMP hub's XML-RPC endpoint).
    """

    #: see :class:`ConnectionHost`
    concurrent = False

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        max_body: int,
        shutdown_timeout: float,
        keepalive_timeout: float = 75.0,
        name: str = "http",
        limits: ServerLimits | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.max_body = max_body
        self.shutdown_timeout = shutdown_timeout
        self.keepalive_timeout = keepalive_timeout
        self.name = name
        #: head and body deadlines, connection cap, in-flight body budget
        self.limits = limits or ServerLimits()
        #: bytes of request bodies (and heads) still arriving, over all connections
        self.inflight = 0
        #: requests answered with an error (counted; logged at debug level)
        self.errors = 0
        self.connections: set[HttpConnection] = set()
        #: set by stop(): connections made from then on are closed at once
        self.stopping = False
        self.tasks: set[asyncio.Future[bytes]] = set()
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._portal: Portal | None = None

    def respond(self, req: ParsedRequest, remote: str | None) -> Reply:
        """Answer one request: response bytes, or an awaitable of them."""
        raise NotImplementedError

    def error_response(self, status: int, message: str) -> bytes:
        """The reply (closing the connection) to a request that could not be parsed."""
        body = json.dumps(
            {"error": {"code": status, "name": "BadRequest", "message": message}}
        ).encode()
        return encode_response(status, body, keep_alive=False)

    def loop_time(self) -> float:
        """The serving loop's clock."""
        return self._loop.time() if self._loop is not None else 0.0

    async def start(self) -> None:
        """Bind and start serving (port 0 binds a free port, readable from ``port``)."""
        if self._server is not None:
            return
        self.stopping = False
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(1024)
            sock.setblocking(False)
            self._server = await loop.create_server(
                lambda: HttpConnection(self), sock=sock, ssl=self.ssl_context
            )
        except BaseException:
            sock.close()
            raise
        self._loop = loop
        self.port = sock.getsockname()[1]
        self._sweeper = loop.create_task(self._sweep())
        logger.debug("%s listening on %s:%d", self.name, self.host, self.port)

    async def _sweep(self) -> None:
        """Close keep-alive connections idle for longer than ``keepalive_timeout``, and
        connections whose request head (body) is not whole within ``head_timeout``
        (``body_timeout``).

        A request only sets ``conn.active`` (no clock read per request); the sweep that
        sees it restarts that connection's idle time, so a connection is closed after
        idling at least ``keepalive_timeout`` and at most two sweep intervals more. A
        request still arriving is timed from the first sweep that sees it unfinished
        (``conn.since``, cleared when requests complete): it gets its deadline and at
        most one sweep interval more."""
        limits = self.limits
        interval = max(0.1, min(self.keepalive_timeout / 4, limits.head_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            now = self.loop_time()
            for conn in list(self.connections):
                parser = conn.parser
                if (parser.held() or parser.in_body()) and not conn.paused:
                    if conn.since is None:
                        conn.since = now
                        continue
                    body = parser.in_body()
                    allowed = limits.body_timeout if body else limits.head_timeout
                    if now - conn.since > allowed:
                        name = "body_timeout" if body else "head_timeout"
                        limit_hit(logger, name, conn.remote, f"{allowed:g} s")
                        conn._fail(408, f"request not received in time ({name})")
                    continue
                conn.since = None
                if conn.active:  # seen since the last sweep: idle from now at most
                    conn.active = False
                    conn.last_active = now
                elif not conn.busy() and now - conn.last_active > self.keepalive_timeout:
                    conn.closing = True
                    if conn.transport is not None:
                        conn.transport.close()

    async def stop(self) -> None:
        """Stop accepting, let calls in progress finish (up to ``shutdown_timeout``),
        then close every connection. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping = True
        server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for conn in list(self.connections):
            if not conn.busy() and conn.transport is not None:
                conn.closing = True
                conn.transport.close()
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=self.shutdown_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        self.connections.clear()
        # let the transports' close callbacks run before the loop may be stopped
        await asyncio.sleep(0)

    async def __aenter__(self) -> Any:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def start_background(self) -> Any:
        """Start serving on a background event-loop thread (for blocking code)."""
        if self._portal is None:
            self._portal = Portal(f"sciwire-{self.name}")
            self._portal.start()
        try:
            self._portal.call(self.start())
        except BaseException:
            portal, self._portal = self._portal, None
            portal.stop()
            raise
        return self

    def stop_background(self) -> None:
        """Stop a server started with :meth:`start_background` (idempotent)."""
        portal, self._portal = self._portal, None
        if portal is not None:
            try:
                portal.call(self.stop())
            finally:
                portal.stop()

    def __enter__(self) -> Any:
        return self.start_background()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_background()
