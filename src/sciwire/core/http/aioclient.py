"""The shared asyncio HTTP/1.1 client pool: keep-alive connections on
:class:`asyncio.Protocol` and the sans-I/O codec of :mod:`sciwire.core.http.codec`.

By default one request is in flight per connection (so a failed connection never
leaves other calls in doubt), up to ``limit`` connections; ``pipeline`` > 1 allows
HTTP/1.1 pipelining. Only a connection that could not be made is tried again
(``retries``); ``retry="idempotent"`` also re-sends once when a kept-alive connection
turns out closed before any response byte. A server that closes an idle pooled
connection is noticed (``connection_lost`` or a readable socket) and the connection is
not reused. Errors come from the same ``error_factory`` as the blocking pool.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import ssl
from collections.abc import Mapping

from sciwire.core.http.client import (
    DEFAULT,
    Endpoint,
    ErrorFactory,
    PoolSettings,
    RetryPolicy,
    StaleProbe,
    default_error,
)
from sciwire.core.http.codec import ParsedResponse, ResponseParser, encode_request
from sciwire.core.http.server import mark_closed
from sciwire.errors import ConnectError, ConnectionClosed, RemoteProtocolError, Timeout

__all__ = ["AsyncHttpPool"]

logger = logging.getLogger(__name__)


class _Closed(Exception):
    """The connection closed before a complete response."""

    def __init__(self, message: str, early: bool = False) -> None:
        super().__init__(message)
        #: no byte of the response had arrived
        self.early = early
        #: the connection had carried an earlier request
        self.reused = False


class _Conn(asyncio.Protocol):
    """One connection: requests in flight answered in order (FIFO of parsers)."""

    def __init__(self, max_body: int | None = None, batch: bool = False) -> None:
        self.max_body = max_body
        #: gather the requests of one loop iteration into one write (pipelining)
        self.batch = batch
        self.transport: asyncio.Transport | None = None
        self.pending: collections.deque[tuple[ResponseParser, asyncio.Future[ParsedResponse]]] = (
            collections.deque()
        )
        self.outbuf: list[bytes] = []
        self.closed = False
        self._probe: StaleProbe | None = None
        self._fd = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: bytes, waiter: asyncio.Future[ParsedResponse], head: bool) -> None:
        """Queue a request; requests queued in one loop iteration go out in one write."""
        assert self.transport is not None
        self.pending.append(
            (ResponseParser(head=head, pipelined=True, max_body=self.max_body), waiter)
        )
        if not self.batch:
            self.transport.write(data)
            return
        if not self.outbuf:
            asyncio.get_running_loop().call_soon(self._flush)
        self.outbuf.append(data)

    def _flush(self) -> None:
        data, self.outbuf = self.outbuf, []
        if data and self.transport is not None and not self.closed:
            self.transport.write(data[0] if len(data) == 1 else b"".join(data))

    def _fail_all(self, message: str) -> None:
        pending, self.pending = self.pending, collections.deque()
        for parser, waiter in pending:
            if not waiter.done():
                waiter.set_exception(_Closed(message, early=not parser.started))

    def data_received(self, data: bytes) -> None:
        while data:
            if not self.pending:
                # Bytes nobody asked for: the connection is out of step; drop it.
                self.abort()
                return
            parser, waiter = self.pending[0]
            try:
                resp = parser.feed(data)
            except RemoteProtocolError as exc:
                self.abort()
                self.pending.popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
                self._fail_all("connection dropped after an invalid response")
                return
            if resp is None:
                return
            self.pending.popleft()
            if not waiter.done():
                waiter.set_result(resp)
            data = parser.extra

    def eof_received(self) -> bool | None:
        if self.pending:
            parser, waiter = self.pending[0]
            try:
                resp = parser.feed_eof()
            except RemoteProtocolError as exc:
                error: BaseException = (
                    exc if parser.started else _Closed("closed without a reply", early=True)
                )
                self.pending.popleft()
                if not waiter.done():
                    waiter.set_exception(error)
            else:
                self.pending.popleft()
                if not waiter.done():
                    waiter.set_result(resp)
        self.closed = True
        self._fail_all("connection closed")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail_all(f"connection lost: {exc}" if exc else "connection closed")
        mark_closed(self.transport)

    def stale(self) -> bool:
        """True when the idle connection is readable: the server closed it (EOF) or sent
        stray bytes, whether or not the loop has processed that yet."""
        if self._probe is None:
            sock = self.transport.get_extra_info("socket") if self.transport is not None else None
            if sock is None:
                return True
            self._fd = sock.fileno()
            self._probe = StaleProbe()
        return self._probe(self._fd)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _expire(waiter: asyncio.Future[ParsedResponse]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class AsyncHttpPool(PoolSettings):
    """Keep-alive HTTP/1.1 for one endpoint, shared by the tasks of one event loop.

    Args:
        endpoint: where to connect.
        timeout: seconds allowed to connect, and for each whole response.
        retries: attempts per request (>= 1) when the connection cannot be made.
        retry_seconds: pause between such attempts.
        ssl_context: TLS settings for ``https`` (default: the system's defaults).
        limit: the most connections open at once (None: no limit, for a client
            whose own callbacks may need a connection while its calls wait).
        pipeline: the most requests in flight on one connection (HTTP/1.1 pipelining).
            1 (the default) never pipelines. Above 1, calls first spread over up to
            *limit* connections, then queue on them; requests made in the same loop
            iteration go out in one write. If a pipelined connection fails, every call
            in flight on it fails (none is re-sent).
        retry: ``"unsent"`` or ``"idempotent"`` (see the module docstring).
        error_factory: makes the exceptions raised.
        name: what the server is called in messages.
        max_body: the largest response body accepted (None: no limit).
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
        max_body: int | None = None,
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
        self._connecting = 0
        self._slots: asyncio.Semaphore | None = None
        self._unlimited = contextlib.nullcontext()

    async def _connect(self, url: str, timeout: float | None) -> _Conn:
        loop = asyncio.get_running_loop()
        ep = self.endpoint
        attempt = 0
        while True:
            attempt += 1
            ctx: ssl.SSLContext | None = None
            if ep.scheme == "https":
                ctx = self.ssl_context or ssl.create_default_context()
            try:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: _Conn(self.max_body, self.pipeline > 1),
                        ep.host,
                        ep.port,
                        ssl=ctx,
                        server_hostname=ep.host if ctx is not None else None,
                    ),
                    timeout,
                )
                return conn
            except (TimeoutError, asyncio.TimeoutError) as exc:
                raise self.error(
                    Timeout,
                    f"Timeout Error connecting (attempt {attempt} of {self.retries})",
                    url,
                    None,
                ) from exc
            except (OSError, ssl.SSLError) as exc:
                if isinstance(exc, ssl.SSLError) or attempt >= self.retries:
                    reason = getattr(exc, "strerror", None) or str(exc)
                    raise self.error(
                        ConnectError,
                        f"URL Error {reason} (attempt {attempt} of {self.retries})",
                        url,
                        None,
                    ) from exc
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
        if self._slots is None and self.limit is not None:
            self._slots = asyncio.Semaphore(self.limit * self.pipeline)
        url = self.endpoint.origin + path
        async with self._slots or self._unlimited:
            try:
                return await self._exchange(data, url, head, limit)
            except _Closed as exc:
                if not (exc.early and exc.reused and self.retry != "unsent"):
                    raise self._closed_error(exc, url) from exc
            try:  # a kept-alive connection the server had closed: re-send once
                return await self._exchange(data, url, head, limit)
            except _Closed as exc:
                raise self._closed_error(exc, url) from exc

    def _closed_error(self, exc: _Closed, url: str) -> Exception:
        return self.error(
            ConnectionClosed,
            f"{exc} before a complete response; request not re-sent: it may have been processed",
            url,
            None,
        )

    async def _exchange(
        self, data: bytes, url: str, head: bool, timeout: float | None
    ) -> ParsedResponse:
        conn = self._pick()
        reused = conn is not None
        if conn is None:
            self._connecting += 1
            try:
                conn = await self._connect(url, timeout)
            finally:
                self._connecting -= 1
            self._conns.append(conn)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[ParsedResponse] = loop.create_future()
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, _expire, waiter)
        try:
            conn.send(data, waiter, head=head)
            resp = await waiter
        except TimeoutError as exc:
            self._drop(conn)
            raise self.error(
                Timeout,
                f"{self.name} did not reply within timeout of {timeout} seconds "
                "(request not re-sent: it may have been processed)",
                url,
                None,
            ) from exc
        except RemoteProtocolError as exc:
            self._drop(conn)
            raise self.error(
                RemoteProtocolError, f"invalid HTTP response: {exc}", url, exc.data
            ) from exc
        except _Closed as exc:
            self._drop(conn)
            exc.reused = reused
            raise
        except BaseException:
            self._drop(conn)  # cancelled mid-call: the connection is out of step
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if not resp.keep_alive:
            self._drop(conn)
        elif self.max_idle is not None and len(self._conns) > self.max_idle and not conn.pending:
            self._drop(conn, gently=True)
        return resp

    def _pick(self) -> _Conn | None:
        """The connection for the next request, or None to open a new one."""
        best: _Conn | None = None
        for conn in list(self._conns):
            if conn.closed:
                self._drop(conn)
                continue
            load = len(conn.pending)
            if load == 0:
                if conn.stale():
                    self._drop(conn)
                    continue
                return conn
            if best is None or load < len(best.pending):
                best = conn
        if self.pipeline == 1 or best is None:
            return None
        if self.limit is None or len(self._conns) + self._connecting < self.limit:
            return None  # spread over connections before pipelining deeper
        return best

    def _drop(self, conn: _Conn, gently: bool = False) -> None:
        if gently and conn.transport is not None:
            conn.closed = True
            conn.transport.close()
        else:
            conn.abort()
        with contextlib.suppress(ValueError):
            self._conns.remove(conn)

    def abort_all(self) -> None:
        """Drop every connection now (for finalizers: no awaiting)."""
        conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                conn.abort()

    async def close(self) -> None:
        """Close every connection (idempotent)."""
        conns, self._conns = self._conns, []
        for conn in conns:
            if conn.transport is not None:
                conn.closed = True
                conn.transport.close()
        if conns:
            await asyncio.sleep(0)  # let the transports finish closing
