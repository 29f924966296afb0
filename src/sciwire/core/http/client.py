"""A blocking, thread-safe, keep-alive HTTP/1.1 connection pool on plain sockets.

Each request goes out in one ``sendall`` and its response is parsed as it arrives by
the sans-I/O :class:`~sciwire.core.http.codec.ResponseParser`. Idle connections wait
in a small LIFO pool; one that the server closed meanwhile (it is readable: EOF or
stray bytes) is dropped before use, which covers a server restart. TLS is optional
(``https``), gzip decoding optional, and the timeout bounds the whole response, not
each read.

The usual exchange - a kept connection, the whole response in one read - runs inline
in :meth:`HttpPool.exchange` and ``_receive`` with the one-pass response parse; any
other case takes the general path, with the same results. Waits use Python's socket
timeouts (a ``poll`` before each ``recv``), which stay bounded when signals interrupt
them; the kernel's ``SO_RCVTIMEO`` would restart in full after every signal. A
request that fits the socket's buffer is written with one ``write`` and no ``poll``
first (see :func:`_write`).

Retry policy (chosen by the caller): ``retry`` and ``retries`` mean the same in this
pool and in :class:`~sciwire.core.http.aioclient.AsyncHttpPool`; both ask one
:class:`~sciwire.core.http._policy.Resend` (its module docstring has the rules).
``retries`` is the most attempts per request, connection attempts and re-sends
together; ``"unsent"`` never re-sends a request once written, ``"stale"`` re-sends once
when a kept-alive connection closes before any response byte, ``"idempotent"`` also
re-sends after any dropped connection while attempts remain. Here, a pooled connection
that fails while the request is written is replaced at once (the request was not
received; not counted as an attempt).

Timeouts are never retried. Errors are :mod:`sciwire.errors` types
(:class:`~sciwire.errors.ConnectError`, :class:`~sciwire.errors.Timeout`,
:class:`~sciwire.errors.ConnectionClosed`, :class:`~sciwire.errors.RemoteProtocolError`),
made by an ``error_factory`` that a package may replace to raise its own subclasses.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from sciwire.core.http._endpoint import Endpoint, header_block, host_header
from sciwire.core.http._errors import (
    DEFAULT,
    ErrorFactory,
    connect_failure,
    default_error,
    response_timeout,
)
from sciwire.core.http._foreign import foreign_socket, is_real
from sciwire.core.http._policy import Resend, RetryPolicy, StaleProbe, is_stale
from sciwire.core.http._settings import PoolSettings
from sciwire.core.http.codec import (
    ParsedResponse,
    ResponseParser,
    decode_gzip,
    encode_request,
)
from sciwire.core.http.proxy import Proxy, tunnel_reply, tunnel_request
from sciwire.errors import ConnectError, ConnectionClosed, RemoteProtocolError, Timeout

__all__ = [
    "Endpoint",
    "ErrorFactory",
    "HttpPool",
    "ResponseStream",
    "RetryPolicy",
    "StaleProbe",
    "default_error",
    "header_block",
    "host_header",
    "is_stale",
]

logger = logging.getLogger(__name__)

#: Connections kept idle per pool by default; more threads than this still work
#: (extra connections are opened and closed around their call).
POOL_SIZE = 16

#: Bytes asked of each recv(): below malloc's mmap threshold, so a read does not cost an
#: mmap/munmap pair (which also serialises threads on the process's memory map).
RECV_SIZE = 65536


def _write(sock: socket.socket, data: bytes) -> None:
    """``sock.sendall(data)``; on a plain socket under a timeout (a non-blocking
    descriptor) the first try is one ``write(2)``, without the ``poll`` Python's
    ``send`` makes first: an idle keep-alive connection's buffer takes a request whole.
    Whatever is left goes through ``sendall`` (bounded by the timeout)."""
    if type(sock) is socket.socket and sock.gettimeout():
        try:
            sent = os.write(sock.fileno(), data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    sock.sendall(data)


def _open_tunnel(sock: socket.socket, ep: Endpoint, proxy: Proxy) -> None:
    """Ask the proxy on *sock* for a tunnel to *ep* (within the socket's timeout)."""
    sock.sendall(tunnel_request(ep.host, ep.port, proxy))
    reply = b""
    while not tunnel_reply(reply):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectError("proxy closed the connection before opening the tunnel")
        reply += chunk


class _Retry(Exception):
    """The request may be re-sent under the retry policy."""


class HttpPool(PoolSettings):
    """Blocking keep-alive HTTP/1.1 to one endpoint, safe to share between threads.

    Args:
        endpoint: where to connect.
        timeout: seconds to connect, and for each whole response (None: no limit).
        retries: the most attempts per request (>= 1): connection attempts and
            re-sends together.
        retry_seconds: pause between attempts after a failed connect.
        ssl_context: TLS settings for ``https`` (default: the system's defaults).
        retry: ``"unsent"``, ``"stale"`` or ``"idempotent"`` (see the module docstring).
        pool_size: idle connections kept.
        error_factory: makes the exceptions raised (see :data:`ErrorFactory`).
        name: what the server is called in log messages.
        max_body: the largest response body accepted (None: no limit; default
            :data:`~sciwire.core.http.limits.MAX_RESPONSE_BODY`, 256 MiB).
    """

    #: where retry warnings go (a package may point it at its own logger)
    log = logger

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float | None,
        retries: int = 1,
        retry_seconds: float = 0.0,
        ssl_context: ssl.SSLContext | None = None,
        retry: RetryPolicy = "unsent",
        pool_size: int = POOL_SIZE,
        error_factory: ErrorFactory = default_error,
        name: str = "server",
        max_body: int | None = DEFAULT,
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
        self.pool_size = pool_size
        self._idle_raw: list[socket.socket] = []
        self._host_bytes = self._host_header.encode("latin-1") + b"\r\n"
        self._stale = StaleProbe()
        self._lock = threading.Lock()
        self._closed = False

    # -- connections -----------------------------------------------------------------

    def _new_raw(self) -> socket.socket:
        ep = self.endpoint
        proxy = self.proxy
        where = (ep.host, ep.port) if proxy is None else (proxy.host, proxy.port)
        sock = socket.create_connection(where, timeout=self.timeout)
        if not is_real(sock):  # a test double (httpretty): checked once per connection
            return foreign_socket(sock, self.timeout, ep, self.ssl_context)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if proxy is not None and ep.scheme == "https":
                _open_tunnel(sock, ep, proxy)
            if ep.scheme == "https":
                ctx = self.ssl_context or ssl.create_default_context()
                sock = ctx.wrap_socket(sock, server_hostname=ep.host)
        except BaseException:
            sock.close()
            raise
        return sock

    def _take_raw(self) -> socket.socket | None:
        probe = self.resend.probe  # the one rule of both pools (see _policy)
        with self._lock:
            while self._idle_raw:
                sock = self._idle_raw.pop()
                if not probe or not self._stale(sock):
                    return sock
                sock.close()
        return None

    def _release_raw(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._closed and len(self._idle_raw) < self.pool_size:
                self._idle_raw.append(sock)
                return
        sock.close()

    def close(self) -> None:
        """Close every idle connection; later requests open new ones."""
        with self._lock:
            raw, self._idle_raw = self._idle_raw, []
        for sock in raw:
            sock.close()

    def shutdown(self) -> None:
        """Close every idle connection and keep no more (connections in use close
        when their call ends)."""
        with self._lock:
            self._closed = True
            raw, self._idle_raw = self._idle_raw, []
        for sock in raw:
            sock.close()

    # -- requests --------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str],
        *,
        gzip: bool = False,
    ) -> ParsedResponse:
        """One whole exchange on a pooled keep-alive socket, body read in full.

        Args:
            method: the HTTP method.
            path: the request target.
            body: the request body (None for none).
            headers: extra request headers (Host and Content-Length are added).
            gzip: ask for a gzip body and decode it (``resp.body`` is then plain).
        """
        if gzip:
            headers = {**headers, "Accept-Encoding": "gzip"}
        data = encode_request(method, path, self._host_header, headers, body)
        resp = self.exchange(data, path, head=method == "HEAD")
        if gzip:
            try:
                resp.body = decode_gzip(resp)
            except RemoteProtocolError as exc:
                raise self.error(
                    RemoteProtocolError, str(exc), self.endpoint.origin + path, exc.data
                ) from exc
        return resp

    def get_request(self, target: str, fixed: bytes) -> bytes:
        """A GET request for *target* with *fixed* header lines (each ending CRLF, made
        once by the caller, e.g. with :func:`header_block`): the cheap way to encode
        many requests that differ only by their target."""
        if "\r" in target or "\n" in target or " " in target:
            raise ValueError(f"invalid request target {target!r}")
        return b"".join(
            (b"GET ", target.encode("latin-1"), b" HTTP/1.1\r\nHost: ", self._host_bytes, fixed)
        )

    def _connect_failed(self, exc: Exception, url: str, attempt: int) -> Exception:
        kind, message = connect_failure(exc, isinstance(exc, TimeoutError), attempt, self.retries)
        return self.error(kind, message, url, None)

    def _send(self, data: bytes, url: str, attempt: int) -> tuple[socket.socket, bool, int]:
        """Write *data* on a pooled or new connection: (socket, reused, attempt)."""
        if self._origin:
            data = self.for_proxy(data)
        while True:
            attempt += 1
            sock = self._take_raw()
            reused = sock is not None
            try:
                if sock is None:
                    sock = self._new_raw()
                _write(sock, data)
                return sock, reused, attempt
            except OSError as exc:
                if sock is not None:
                    sock.close()
                if reused:
                    # A pooled connection failed to write: the request was not received;
                    # try again at once on a fresh connection (not counted as an attempt).
                    attempt -= 1
                    self.log.debug("pooled connection failed on write (%s); reconnecting", exc)
                    continue
                error = self._connect_failed(exc, url, attempt)
                if not self.resend.after_connect_failure(
                    attempt, isinstance(exc, TimeoutError), isinstance(exc, ssl.SSLError)
                ):
                    raise error from exc
                self.log.warning(
                    "%s %s unreachable (%s), attempt %d of %d; retrying in %g s",
                    self.name,
                    url,
                    exc,
                    attempt,
                    self.retries,
                    self.retry_seconds,
                )
                if self.retry_seconds:
                    time.sleep(self.retry_seconds)

    def exchange(
        self, data: bytes, path: str, head: bool = False, timeout: float | None = DEFAULT
    ) -> ParsedResponse:
        """Send a fully encoded request (see :meth:`call`) and read its response.

        Args:
            data: the whole request.
            path: its target (for messages).
            head: it is a HEAD request.
            timeout: seconds for the whole response, if not the pool's.
        """
        limit = self.timeout if timeout is DEFAULT else timeout
        attempt = 0
        # The usual case, inline: a kept connection takes the whole request at once.
        # Anything else (no idle connection, a stale one, a failed write) goes the
        # general way through _send, which behaves exactly as if this were not here.
        sock = None
        if self._idle_raw:
            with self._lock:
                if self._idle_raw:
                    sock = self._idle_raw.pop()
            if sock is not None and self.resend.probe and self._stale(sock):
                sock.close()
                sock = None
            if sock is not None:
                try:
                    _write(sock, self.for_proxy(data) if self._origin else data)
                except OSError as exc:
                    sock.close()
                    sock = None
                    self.log.debug("pooled connection failed on write (%s); reconnecting", exc)
        if sock is not None:
            try:
                return self._receive(sock, path, head, limit, self.resend.allows(True, 1))
            except _Retry as exc:
                self.log.debug("re-sending to %s after %s", self.endpoint.origin + path, exc)
                attempt = 1
        url = self.endpoint.origin + path
        while True:
            sock, reused, attempt = self._send(data, url, attempt)
            try:
                return self._receive(sock, path, head, limit, self.resend.allows(reused, attempt))
            except _Retry as exc:
                self.log.debug("re-sending to %s after %s", url, exc)

    @contextmanager
    def stream(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> Iterator[ResponseStream]:
        """Send a request and yield its response with the body still to read.

        The timeout applies to each read (a download may take long). Leaving the block
        drains the rest of the body so that the connection can be kept.
        """
        data = encode_request(method, path, self._host_header, headers, body)
        url = self.endpoint.origin + path
        attempt = 0
        while True:
            sock, reused, attempt = self._send(data, url, attempt)
            parser = ResponseParser(head=method == "HEAD", stream=True)
            again = self.resend.allows(reused, attempt)
            try:
                while parser.head is None:
                    _feed_from(sock, parser)
            except (OSError, RemoteProtocolError) as exc:
                sock.close()
                if isinstance(exc, TimeoutError):
                    raise self._map(exc, url, parser) from exc  # never re-sent
                closed = isinstance(exc, OSError) or not parser.started
                if closed and Resend.again(again, not parser.started):
                    self.log.debug("re-sending to %s after %r", url, exc)
                    continue
                raise self._map(exc, url, parser) from exc
            break
        reader = ResponseStream(self, sock, parser, url)
        try:
            yield reader
            reader.drain()
        except BaseException:
            sock.close()
            raise
        if parser.response is not None and parser.response.keep_alive:
            self._release_raw(sock)
        else:
            sock.close()

    def _map(self, exc: BaseException, url: str, parser: ResponseParser) -> Exception:
        """A read failure as the pool's exception."""
        if isinstance(exc, TimeoutError):
            return self.error(
                Timeout, f"{self.name} did not answer within {self.timeout} seconds", url, None
            )
        if isinstance(exc, RemoteProtocolError) and parser.started and not parser.eof:
            return self.invalid(exc, url, logger)
        return self.error(
            ConnectionClosed, f"connection closed before a complete response: {exc}", url, None
        )

    def _receive(
        self, sock: socket.socket, path: str, head: bool, timeout: float | None, again: str
    ) -> ParsedResponse:
        """Read the response to a request just written on *sock* (*path*: for messages),
        then keep or close the connection. *again* is what the retry policy allows."""
        if sock.gettimeout() != timeout:
            sock.settimeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        parser = ResponseParser(head, False, self.max_body)
        shortened = False
        chunk = b""
        try:
            chunk = sock.recv(RECV_SIZE)
            while True:
                got = parser.feed(chunk) if chunk else parser.feed_eof()
                if got is not None:
                    resp = got
                    break
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    sock.settimeout(left)
                    shortened = True
                chunk = sock.recv(RECV_SIZE)
        except TimeoutError as exc:
            sock.close()
            raise self.error(
                Timeout,
                response_timeout(self.name, timeout),
                self.endpoint.origin + path,
                None,
            ) from exc
        except RemoteProtocolError as exc:
            sock.close()
            early = not parser.started
            if not chunk and Resend.again(again, early):
                raise _Retry("connection closed") from exc
            url = self.endpoint.origin + path
            if not chunk:
                raise self.error(
                    ConnectionClosed,
                    "server closed the connection without replying "
                    "(request not re-sent: it may have been processed)"
                    if early
                    else "connection closed before a complete response",
                    url,
                    None,
                ) from exc
            raise self.invalid(exc, url, logger) from exc
        except OSError as exc:
            sock.close()
            if Resend.again(again, not parser.started):
                raise _Retry(f"{type(exc).__name__}: {exc}") from exc
            raise self.error(
                ConnectionClosed,
                f"connection failed before a complete response ({type(exc).__name__}: {exc}); "
                "request not re-sent: it may have been processed",
                self.endpoint.origin + path,
                None,
            ) from exc
        if shortened:
            sock.settimeout(timeout)  # the next call starts from the whole timeout again
        if resp.keep_alive:
            self._release_raw(sock)
        else:
            sock.close()
        return resp


def _feed_from(sock: socket.socket, parser: ResponseParser) -> None:
    """Read once from *sock* into *parser*; an empty read is the end of the stream."""
    chunk = sock.recv(RECV_SIZE)
    if chunk:
        parser.feed(chunk)
    else:
        parser.eof = True
        parser.feed_eof()


class ResponseStream:
    """A response whose body is read as it arrives (from :meth:`HttpPool.stream`).

    Attributes:
        status: the status code.
        reason: the reason phrase.
        headers: header names lower-cased.
    """

    def __init__(
        self, pool: HttpPool, sock: socket.socket, parser: ResponseParser, url: str
    ) -> None:
        head = parser.head
        assert head is not None
        self.status = head.status
        self.reason = head.reason
        self.headers = head.headers
        self._pool = pool
        self._sock = sock
        self._parser = parser
        self._url = url
        self._pending = parser.take()

    @property
    def done(self) -> bool:
        """True once the whole body was read."""
        return not self._pending and self._parser.response is not None

    def read(self, n: int = RECV_SIZE) -> bytes:
        """Up to *n* bytes of the body; b"" at its end.

        Raises:
            Timeout: no byte within the pool's timeout.
            ConnectionClosed: the connection ended before the body did.
            RemoteProtocolError: the body's framing is invalid.
        """
        parser = self._parser
        while not self._pending and parser.response is None:
            try:
                _feed_from(self._sock, parser)
            except (OSError, RemoteProtocolError) as exc:
                raise self._pool._map(exc, self._url, parser) from exc
            self._pending = parser.take()
        out = self._pending[:n]
        self._pending = self._pending[n:]
        return out

    def read_all(self) -> bytes:
        """The rest of the body."""
        parts = []
        while chunk := self.read():
            parts.append(chunk)
        return b"".join(parts)

    def drain(self) -> None:
        """Read and drop the rest of the body."""
        while self.read():
            pass
