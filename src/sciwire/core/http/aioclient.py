"""The shared asyncio HTTP/1.1 client pool: keep-alive connections on
:class:`asyncio.Protocol` and the sans-I/O codec of :mod:`sciwire.core.http.codec`.

By default one request is in flight per connection (so a failed connection never
leaves other calls in doubt), up to ``limit`` connections; ``pipeline`` > 1 allows
HTTP/1.1 pipelining. ``retry`` and ``retries`` mean what they mean in the blocking
:class:`~sciwire.core.http.client.HttpPool`: both pools ask one
:class:`~sciwire.core.http._policy.Resend` whether to connect or send again
(``retries``: the most attempts per request, connection attempts and re-sends together;
``"unsent"`` never re-sends a written request, ``"stale"`` re-sends once when a
kept-alive connection closes before any response byte, ``"idempotent"`` also after any
dropped connection while attempts remain). A server that closes an idle pooled
connection is noticed (``connection_lost`` or a readable socket) and the connection is
not reused. Errors come from the same ``error_factory`` as the blocking pool.

Per call the pool does no scan and makes no timer: idle connections wait on a stack,
free slots are a counter (callers queue only at the limit), and one timer per pool,
kept at or before the earliest deadline of the calls in flight, expires late calls.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import math
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import cast

from sciwire.core.http._endpoint import Endpoint
from sciwire.core.http._errors import (
    DEFAULT,
    ErrorFactory,
    connect_failure,
    default_error,
    response_timeout,
)
from sciwire.core.http._policy import Resend, RetryPolicy, StaleProbe
from sciwire.core.http._settings import PoolSettings
from sciwire.core.http._transport import mark_closed
from sciwire.core.http.codec import (
    ParsedResponse,
    ResponseParser,
    ResponseTooLarge,
    encode_request,
)
from sciwire.core.http.proxy import tunnel_reply, tunnel_request
from sciwire.core.streams import ReadIntoProtocol
from sciwire.errors import ConnectError, ConnectionClosed, RemoteProtocolError, Timeout

__all__ = ["AsyncHttpPool"]

logger = logging.getLogger(__name__)


class _Closed(Exception):
    """The connection closed before a complete response."""

    def __init__(self, message: str, early: bool = False) -> None:
        super().__init__(message)
        #: no byte of the response had arrived
        self.early = early


#: a request in flight: who waits for the response, HEAD or not, its deadline
_Entry = tuple["asyncio.Future[ParsedResponse]", bool, float]


class _Conn(ReadIntoProtocol):
    """One connection: requests in flight answered in order (FIFO of entries); reads
    land in a reused buffer (see :mod:`sciwire.core.streams`)."""

    def __init__(self, pool: AsyncHttpPool) -> None:
        self.pool = pool
        self.max_body = pool.max_body
        #: gather the requests of one loop iteration into one write (pipelining)
        self.batch = pool.pipeline > 1
        self.transport: asyncio.Transport | None = None
        #: the loop the connection runs on, and its clock (set once made)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clock: Callable[[], float] = time.monotonic
        self.new_future: Callable[[], asyncio.Future[ParsedResponse]] = asyncio.Future
        self.pending: collections.deque[_Entry] = collections.deque()
        #: the parser of the response to pending[0], once a part of it arrived
        self.parser: ResponseParser | None = None
        self.outbuf: list[bytes] = []
        self.closed = False
        #: on the pool's idle stack
        self.idle = False
        self._probe: StaleProbe | None = None
        self._fd = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (no isinstance check: uvloop's transports are not asyncio.Transport)
        self.transport = cast(asyncio.Transport, transport)
        self.loop = loop = asyncio.get_running_loop()
        # the stock loop's time() is time.monotonic() and its create_future() makes an
        # asyncio.Future: call those directly, one frame less each per call
        if type(loop).time is not asyncio.BaseEventLoop.time:
            self.clock = loop.time
        if type(loop).create_future is asyncio.BaseEventLoop.create_future:
            self.new_future = functools.partial(asyncio.Future, loop=loop)
        else:
            self.new_future = loop.create_future
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: bytes, entry: _Entry) -> None:
        """Queue a request; when pipelining, requests queued in one loop iteration go
        out in one write."""
        assert self.transport is not None
        self.pending.append(entry)
        if not self.batch:
            self.transport.write(data)
            return
        if not self.outbuf:
            assert self.loop is not None
            self.loop.call_soon(self._flush)
        self.outbuf.append(data)

    def _flush(self) -> None:
        data, self.outbuf = self.outbuf, []
        if data and self.transport is not None and not self.closed:
            self.transport.write(data[0] if len(data) == 1 else b"".join(data))

    def _fail_all(self, message: str) -> None:
        pending, self.pending = self.pending, collections.deque()
        early = self.parser is None  # nothing of the first response arrived
        self.parser = None
        for waiter, _, _ in pending:
            if not waiter.done():
                waiter.set_exception(_Closed(message, early=early))
            early = True

    def data_received(self, data: bytes) -> None:
        pending = self.pending
        keep = True
        while data:
            if not pending:
                # Bytes nobody asked for: the connection is out of step; drop it.
                self.abort()
                return
            parser = self.parser
            if parser is None:
                parser = ResponseParser(pending[0][1], True, self.max_body)
            try:
                resp = parser.feed(data)
            except RemoteProtocolError as exc:
                self.abort()
                waiter = pending.popleft()[0]
                self.parser = None
                if not waiter.done():
                    waiter.set_exception(exc)
                self._fail_all("connection dropped after an invalid response")
                return
            if resp is None:
                self.parser = parser
                return
            self.parser = None
            waiter = pending.popleft()[0]
            keep = resp.keep_alive
            if not waiter.done():
                waiter.set_result(resp)
            data = parser.extra
        if keep and not pending and not self.idle and not self.closed:
            # free for the next call at once, before its last caller resumes
            self.idle = True
            self.pool._idle.append(self)

    def eof_received(self) -> bool | None:
        if self.pending:
            waiter, head, _ = self.pending[0]
            parser = self.parser
            started = parser is not None
            if parser is None:
                parser = ResponseParser(head=head, pipelined=True, max_body=self.max_body)
            try:
                resp = parser.feed_eof()
            except RemoteProtocolError as exc:
                # a response cut short is a dropped connection, as the blocking pool
                # reports it; only a read-to-close body over max_body is invalid
                error: BaseException = (
                    _Closed("closed without a reply", early=True)
                    if not started
                    else exc
                    if isinstance(exc, ResponseTooLarge)
                    else _Closed("connection closed")
                )
                self.pending.popleft()
                if not waiter.done():
                    waiter.set_exception(error)
            else:
                self.pending.popleft()
                if not waiter.done():
                    waiter.set_result(resp)
            self.parser = None
        self.closed = True
        self._fail_all("connection closed")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail_all(f"connection lost: {exc}" if exc else "connection closed")
        mark_closed(self.transport)
        self.pool._forget(self)

    def stale(self) -> bool:
        """True when the idle connection is readable: the server closed it (EOF) or sent
        stray bytes, whether or not the loop has processed that yet."""
        if self._probe is None:
            sock = self.transport.get_extra_info("socket") if self.transport else None
            if sock is None:
                return True
            self._fd = sock.fileno()
            self._probe = StaleProbe()  # one poll object registered once
        return self._probe(self._fd)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class AsyncHttpPool(PoolSettings):
    """Keep-alive HTTP/1.1 for one endpoint, shared by the tasks of one event loop.

    Args:
        endpoint: where to connect.
        timeout: seconds allowed to connect, and for each whole response.
        retries: the most attempts per request (>= 1): connection attempts and
            re-sends together (see the module docstring).
        retry_seconds: pause between connection attempts.
        ssl_context: TLS settings for ``https`` (default: the system's defaults).
        limit: the most connections open at once (None: no limit, for a client
            whose own callbacks may need a connection while its calls wait).
        pipeline: the most requests in flight on one connection (HTTP/1.1 pipelining).
            1 (the default) never pipelines. Above 1, calls first spread over up to
            *limit* connections, then queue on them; requests made in the same loop
            iteration go out in one write. If a pipelined connection fails, every call
            in flight on it fails (re-sent only as the retry policy allows).
        retry: ``"unsent"``, ``"stale"`` or ``"idempotent"`` (see the module docstring).
        error_factory: makes the exceptions raised.
        name: what the server is called in messages.
        max_body: the largest response body accepted (None: no limit; default
            :data:`~sciwire.core.http.limits.MAX_RESPONSE_BODY`, 256 MiB).
        max_idle: connections kept open once idle (None: every one).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float | None,
        retries: int = 1,
        retry_seconds: float = 0.0,
        ssl_context: ssl.SSLContext | None = None,
        limit: int | None = 64,
        pipeline: int = 1,
        retry: RetryPolicy = "unsent",
        error_factory: ErrorFactory = default_error,
        name: str = "server",
        max_body: int | None = DEFAULT,
        max_idle: int | None = None,
    ) -> None:
        super().__init__(
            endpoint,
            timeout,
            retries,
            retry_seconds,
            ssl_context,
            retry,
            error_factory,
            name,
            max_body,
        )
        self.max_idle = max_idle
        self.limit = None if limit is None else max(1, limit)
        self.pipeline = max(1, pipeline)
        self._conns: list[_Conn] = []
        #: connections with nothing in flight, the most recently freed last
        self._idle: list[_Conn] = []
        self._connecting = 0
        #: calls waiting for a connection being made (pipelining at the limit)
        self._made: list[asyncio.Future[None]] = []
        #: calls allowed in flight at once (None: no limit), calls in flight, and
        #: the calls waiting for one of them to end (oldest first)
        self._cap = None if self.limit is None else self.limit * self.pipeline
        self._busy = 0
        self._queue: collections.deque[asyncio.Future[None]] = collections.deque()
        #: the pool's one timer, due at or before every deadline in flight
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    async def _connect(self, url: str, timeout: float | None, attempt: int) -> tuple[_Conn, int]:
        """A new connection, tried again as the retry policy allows: (connection, the
        attempts made so far for this request, this one included)."""
        loop = asyncio.get_running_loop()
        ep = self.endpoint
        while True:
            attempt += 1
            ctx: ssl.SSLContext | None = None
            if ep.scheme == "https":
                ctx = self.ssl_context or ssl.create_default_context()
            try:
                if self.proxy is not None:
                    return await asyncio.wait_for(self._via_proxy(loop, ctx), timeout), attempt
                _, conn = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: _Conn(self),
                        ep.host,
                        ep.port,
                        ssl=ctx,
                        server_hostname=ep.host if ctx is not None else None,
                    ),
                    timeout,
                )
                return conn, attempt
            except (TimeoutError, asyncio.TimeoutError, OSError, ssl.SSLError) as exc:
                # asyncio.TimeoutError is not the built-in one before Python 3.11
                timed_out = isinstance(exc, (TimeoutError, asyncio.TimeoutError))
                tls = isinstance(exc, ssl.SSLError)
                if not self.resend.after_connect_failure(attempt, timed_out, tls):
                    kind, message = connect_failure(exc, timed_out, attempt, self.retries)
                    raise self.error(kind, message, url, None) from exc
                logger.warning(
                    "%s %s unreachable (%s), attempt %d of %d; retrying in %g s",
                    self.name,
                    url,
                    exc,
                    attempt,
                    self.retries,
                    self.retry_seconds,
                )
                await asyncio.sleep(self.retry_seconds)

    async def _via_proxy(
        self, loop: asyncio.AbstractEventLoop, ctx: ssl.SSLContext | None
    ) -> _Conn:
        """A connection through the proxy: to it directly for plain HTTP (requests in
        absolute form), through a CONNECT tunnel with TLS inside for HTTPS."""
        ep, proxy = self.endpoint, self.proxy
        assert proxy is not None
        if ctx is None:
            _, conn = await loop.create_connection(lambda: _Conn(self), proxy.host, proxy.port)
            return conn
        infos = await loop.getaddrinfo(proxy.host, proxy.port, type=socket.SOCK_STREAM)
        family, kind, proto, _, addr = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, addr)
            await loop.sock_sendall(sock, tunnel_request(ep.host, ep.port, proxy))
            reply = b""
            while not tunnel_reply(reply):
                chunk = await loop.sock_recv(sock, 4096)
                if not chunk:
                    raise ConnectError("proxy closed the connection before opening the tunnel")
                reply += chunk
            _, conn = await loop.create_connection(
                lambda: _Conn(self), sock=sock, ssl=ctx, server_hostname=ep.host
            )
        except BaseException:
            sock.close()
            raise
        return conn

    async def call(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> ParsedResponse:
        """One whole exchange on a pooled connection.

        Raises:
            ConnectError: no connection after every attempt.
            Timeout: no complete response within the timeout (not re-sent).
            ConnectionClosed: the connection failed after the request was sent.
            RemoteProtocolError: the response was not valid HTTP.

        (or what ``error_factory`` makes of them).
        """
        data = encode_request(method, path, self._host_header, headers, body)
        return await self.exchange(data, path, head=method == "HEAD")

    async def exchange(
        self, data: bytes, path: str, head: bool = False, timeout: float | None = DEFAULT
    ) -> ParsedResponse:
        """Send a fully encoded request (see :meth:`call`) and read its response.

        *timeout* (seconds to connect and for the whole response) overrides the pool's.
        """
        limit = self.timeout if timeout is DEFAULT else timeout
        if self._origin:
            data = self.for_proxy(data)
        cap = self._cap
        if cap is not None:
            if self._busy < cap and not self._queue:
                self._busy += 1
            else:
                await self._wait_slot()
        try:
            attempt = 0
            while True:
                conn = self._pick()
                reused = conn is not None
                if conn is not None:
                    attempt += 1
                else:
                    if self._full():
                        await self._opening()  # then queue on a connection made
                        continue
                    self._connecting += 1
                    try:
                        conn, attempt = await self._connect(
                            self.endpoint.origin + path, limit, attempt
                        )
                    finally:
                        self._connecting -= 1
                        made, self._made = self._made, []
                        for fut in made:
                            if not fut.done():
                                fut.set_result(None)
                    self._conns.append(conn)
                loop = conn.loop
                assert loop is not None
                waiter = conn.new_future()
                if limit is None:
                    deadline = math.inf
                else:
                    deadline = conn.clock() + limit
                    if deadline < self._timer_at or loop is not self._timer_loop:
                        self._arm(loop, deadline)
                try:
                    if conn.batch:
                        conn.send(data, (waiter, head, deadline))
                    else:
                        assert conn.transport is not None
                        conn.pending.append((waiter, head, deadline))
                        conn.transport.write(data)
                    resp = await waiter
                except _Closed as exc:
                    self._drop(conn)
                    if Resend.again(self.resend.allows(reused, attempt), exc.early):
                        logger.debug("re-sending to %s after %s", self.endpoint.origin, exc)
                        continue
                    raise self._closed_error(exc, path) from exc
                except TimeoutError as exc:
                    self._drop(conn)
                    raise self.error(
                        Timeout,
                        response_timeout(self.name, limit),
                        self.endpoint.origin + path,
                        None,
                    ) from exc
                except RemoteProtocolError as exc:
                    self._drop(conn)
                    raise self.invalid(exc, self.endpoint.origin + path, logger) from exc
                except BaseException:
                    # the entry leaves conn.pending exactly when its whole response was
                    # read, whatever became of the waiter meanwhile
                    answered = not conn.closed and all(e[0] is not waiter for e in conn.pending)
                    if not answered:
                        # cancelled before the response came: the connection is out of step
                        self._drop(conn)
                    # else the whole response was read and the connection is idle (maybe
                    # taken by another call already): it stays
                    raise
                if not resp.keep_alive:
                    self._drop(conn)
                elif (
                    self.max_idle is not None
                    and len(self._conns) > self.max_idle
                    and not conn.pending
                ):
                    self._drop(conn, gently=True)
                return resp
        finally:
            if cap is not None:
                if self._queue:
                    self._release()
                else:
                    self._busy -= 1

    def _closed_error(self, exc: _Closed, path: str) -> Exception:
        return self.error(
            ConnectionClosed,
            f"{exc} before a complete response; request not re-sent: it may have been processed",
            self.endpoint.origin + path,
            None,
        )

    # -- slots: at most ``limit * pipeline`` calls in flight --------------------------

    async def _wait_slot(self) -> None:
        """Wait (first come, first served) until a call in flight hands over its slot."""
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(slot)
        try:
            await slot
        except BaseException:
            if slot.done() and not slot.cancelled():
                self._release()  # handed a slot, then cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._queue.remove(slot)
            raise

    def _release(self) -> None:
        """End a call's hold on its slot: hand it to the oldest waiting call, if any."""
        queue = self._queue
        while queue:
            slot = queue.popleft()
            if not slot.done():
                slot.set_result(None)
                return
        self._busy -= 1

    # -- timeouts: one timer per pool -------------------------------------------------

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer_loop = loop
        self._timer = loop.call_at(when, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Expire the calls whose deadline came; re-arm for the earliest one left."""
        due = max(self._timer_at, loop.time())
        self._timer = None
        self._timer_at = math.inf
        following = math.inf
        for conn in tuple(self._conns):
            for waiter, _, deadline in tuple(conn.pending):
                if waiter.done():
                    continue
                if deadline <= due:
                    waiter.set_exception(TimeoutError())
                elif deadline < following:
                    following = deadline
        if following < math.inf:
            self._arm(loop, following)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = math.inf

    # -- connections ------------------------------------------------------------------

    def _pick(self) -> _Conn | None:
        """The connection for the next request, or None to open a new one."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            conn.idle = False
            if conn.closed or conn.pending or (self.resend.probe and conn.stale()):
                self._drop(conn)
                continue
            return conn
        if self.pipeline == 1:
            return None
        if self.limit is None or len(self._conns) + self._connecting < self.limit:
            return None  # spread over connections before pipelining deeper
        best: _Conn | None = None
        least = 0
        for conn in self._conns:
            if not conn.closed:
                load = len(conn.pending)
                if best is None or load < least:
                    best, least = conn, load
        return best

    def _full(self) -> bool:
        """Pipelining, at the connection limit, and no connection made yet to queue on."""
        return (
            self.pipeline > 1
            and self.limit is not None
            and self._connecting > 0
            and len(self._conns) + self._connecting >= self.limit
        )

    async def _opening(self) -> None:
        """Wait until a connection being made is made (or fails)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._made.append(fut)
        await fut

    def _forget(self, conn: _Conn) -> None:
        with contextlib.suppress(ValueError):
            self._conns.remove(conn)
        if conn.idle:
            conn.idle = False
            with contextlib.suppress(ValueError):
                self._idle.remove(conn)

    def _drop(self, conn: _Conn, gently: bool = False) -> None:
        if gently and conn.transport is not None:
            _shut(conn)
        else:
            conn.abort()
        self._forget(conn)

    def abort_all(self) -> None:
        """Drop every connection now (for finalizers: no awaiting)."""
        conns, self._conns = self._conns, []
        self._idle.clear()
        with contextlib.suppress(RuntimeError):
            self._cancel_timer()
        for conn in conns:
            conn.idle = False
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                conn.abort()

    async def close(self) -> None:
        """Close every connection (idempotent)."""
        conns, self._conns = self._conns, []
        self._idle.clear()
        self._cancel_timer()
        for conn in conns:
            conn.idle = False
            if conn.transport is not None:
                _shut(conn)
        if conns:
            await asyncio.sleep(0)  # let the transports finish closing


def _shut(conn: _Conn) -> None:
    """Close *conn* with a FIN, or a reset when a request is still being written.

    A gentle close waits for the write buffer to drain first: to a peer that no longer
    reads that is forever, with the socket open and the calls in flight never failed.
    """
    transport = conn.transport
    assert transport is not None
    conn.closed = True
    if transport.get_write_buffer_size():
        transport.abort()
    else:
        transport.close()
