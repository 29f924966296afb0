"""A lean, thread-safe, keep-alive HTTP/1.1 transport for the blocking client.

The hot path (:meth:`Transport.call`, every JSON-RPC call) uses raw sockets and the
sans-I/O codec of :mod:`sciwire.command.http11`: the request goes out in one
``sendall`` and the response is parsed as it arrives. :meth:`Transport.open` (for
``make_request``, which yields a streaming response) uses :mod:`http.client`. Both
keep small LIFO pools of idle connections; an idle connection that the server has
closed meanwhile (it is readable: EOF or stray bytes) is dropped before use, which
covers a server restart.

Retry rule: a request is re-sent only when it surely was not received - the connection
could not be made (refused, unreachable, name not found), or the request could not be
written whole (a server cannot act on a request whose body it never fully received).
Once the request is written, any failure (timeout, reset, close) is raised, never
retried: a non-idempotent call (``enqueue_job``) must not run twice.
"""

from __future__ import annotations

import http.client
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sciwire.command.errors import (
    CommandConnectError,
    CommandConnectionClosed,
    CommandError,
    CommandTimeout,
)
from sciwire.command.http11 import ParsedResponse, ResponseParser, encode_request
from sciwire.errors import RemoteProtocolError

__all__ = ["Endpoint", "Transport", "env_retries", "env_retry_seconds"]

logger = logging.getLogger(__name__)

#: Connections kept idle per client; more threads than this still work (extra
#: connections are opened and closed around their call).
POOL_SIZE = 16


def env_retries() -> int:
    """Attempts per request from ``CRYOSPARC_COMMAND_RETRIES`` (default 3, at least 1)."""
    try:
        return max(1, int(os.environ.get("CRYOSPARC_COMMAND_RETRIES", "3")))
    except ValueError:
        logger.warning("CRYOSPARC_COMMAND_RETRIES is not an integer; using 3")
        return 3


def env_retry_seconds() -> float:
    """Pause between attempts from ``CRYOSPARC_COMMAND_RETRY_SECONDS`` (default 30)."""
    try:
        return max(0.0, float(os.environ.get("CRYOSPARC_COMMAND_RETRY_SECONDS", "30")))
    except ValueError:
        logger.warning("CRYOSPARC_COMMAND_RETRY_SECONDS is not a number; using 30")
        return 30.0


@dataclass(frozen=True)
class Endpoint:
    """Where a client talks to: scheme, host, port and path prefix."""

    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, host: str, port: int, url: str) -> Endpoint:
        """From the client's ``host`` (optionally ``https://host``), ``port`` and ``url``."""
        scheme = "http"
        for candidate in ("https://", "http://"):
            if host.lower().startswith(candidate):
                scheme = candidate[:-3]
                host = host[len(candidate) :]
                break
        host = host.rstrip("/")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(scheme, host, int(port), url.rstrip("/"))

    @property
    def origin(self) -> str:
        """``scheme://host:port`` (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``scheme://host:port/prefix``: what the original client calls ``_url``."""
        return self.origin + self.prefix


def parser_started(parser: ResponseParser) -> bool:
    """True once any response byte was received."""
    return parser.started


def _stale(conn: http.client.HTTPConnection | socket.socket) -> bool:
    """True when an idle pooled connection was closed by the server (or is unusable)."""
    sock = conn.sock if isinstance(conn, http.client.HTTPConnection) else conn
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class Transport:
    """Blocking keep-alive HTTP for one endpoint, safe to share between threads.

    Args:
        endpoint: where to connect.
        timeout: socket timeout in seconds (connect and each read).
        retries: attempts per request (>= 1) when the request surely was not sent.
        retry_seconds: pause between such attempts (none after the last one).
        ssl_context: TLS settings for ``https`` (default: the system's defaults).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float | None,
        retries: int,
        retry_seconds: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = max(1, int(retries))
        self.retry_seconds = retry_seconds
        self.ssl_context = ssl_context
        self._idle: list[http.client.HTTPConnection] = []
        self._idle_raw: list[socket.socket] = []
        host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        default = 443 if endpoint.scheme == "https" else 80
        self._host_header = host if endpoint.port == default else f"{host}:{endpoint.port}"
        self._lock = threading.Lock()
        self._closed = False

    # -- connections --------------------------------------------------------------

    def _new(self) -> http.client.HTTPConnection:
        ep = self.endpoint
        conn: http.client.HTTPConnection
        if ep.scheme == "https":
            ctx = self.ssl_context or ssl.create_default_context()
            conn = http.client.HTTPSConnection(ep.host, ep.port, timeout=self.timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(ep.host, ep.port, timeout=self.timeout)
        conn.connect()
        sock = conn.sock
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _take(self) -> http.client.HTTPConnection | None:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not _stale(conn):
                    return conn
                conn.close()
        return None

    def release(self, conn: http.client.HTTPConnection) -> None:
        """Give a connection whose response was read whole back to the pool."""
        with self._lock:
            if not self._closed and len(self._idle) < POOL_SIZE:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every idle connection; later requests open new ones."""
        with self._lock:
            idle, self._idle = self._idle, []
            raw, self._idle_raw = self._idle_raw, []
        for conn in idle:
            conn.close()
        for sock in raw:
            sock.close()

    # -- the hot path: raw sockets and the sans-I/O codec -------------------------------

    def _new_raw(self) -> socket.socket:
        ep = self.endpoint
        sock = socket.create_connection((ep.host, ep.port), timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ep.scheme == "https":
                ctx = self.ssl_context or ssl.create_default_context()
                sock = ctx.wrap_socket(sock, server_hostname=ep.host)
        except BaseException:
            sock.close()
            raise
        return sock

    def _take_raw(self) -> socket.socket | None:
        with self._lock:
            while self._idle_raw:
                sock = self._idle_raw.pop()
                if not _stale(sock):
                    return sock
                sock.close()
        return None

    def _release_raw(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._closed and len(self._idle_raw) < POOL_SIZE:
                self._idle_raw.append(sock)
                return
        sock.close()

    def call(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> ParsedResponse:
        """One whole exchange on a pooled keep-alive socket, body read in full.

        Same retry rule and error mapping as :meth:`open`.
        """
        data = encode_request(method, path, self._host_header, headers, body)
        return self.exchange(data, path, head=method == "HEAD")

    def request_prefix(self, method: str, path: str, headers: Mapping[str, str]) -> bytes:
        """The head of a request up to ``Content-Length: `` (for :meth:`exchange`)."""
        head = encode_request(method, path, self._host_header, headers, b"")
        return head[: -len(b"0\r\n\r\n")]

    def exchange(self, data: bytes, path: str, head: bool = False) -> ParsedResponse:
        """Send a fully encoded request (see :meth:`call`) and read its response."""
        url = self.endpoint.origin + path
        attempt = 0
        while True:
            attempt += 1
            sock = self._take_raw()
            reused = sock is not None
            try:
                if sock is None:
                    sock = self._new_raw()
                sock.sendall(data)
            except OSError as exc:
                if sock is not None:
                    sock.close()
                if reused:
                    attempt -= 1
                    logger.debug("pooled connection failed on write (%s); reconnecting", exc)
                    continue
                error = self._connect_failed(exc, url, attempt)
                if (
                    attempt >= self.retries
                    or isinstance(error, CommandTimeout)
                    or isinstance(exc, ssl.SSLError)
                ):
                    raise error from exc
                logger.warning(
                    "command server %s unreachable (%s), attempt %d of %d; retrying in %g s",
                    url,
                    exc,
                    attempt,
                    self.retries,
                    self.retry_seconds,
                )
                if self.retry_seconds:
                    time.sleep(self.retry_seconds)
                continue
            return self._receive(sock, url, head=head)

    def _receive(self, sock: socket.socket, url: str, head: bool) -> ParsedResponse:
        parser = ResponseParser(head=head)
        # The timeout bounds the whole response, not each read: a server trickling
        # bytes cannot hold a call forever.
        timeout = self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        shortened = False
        try:
            while True:
                chunk = sock.recv(262144)
                resp = parser.feed(chunk) if chunk else parser.feed_eof()
                if resp is not None:
                    break
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    sock.settimeout(left)
                    shortened = True
        except TimeoutError as exc:
            sock.close()
            raise CommandTimeout(
                f"command did not reply within timeout of {self.timeout} seconds "
                "(request not re-sent: it may have been processed)",
                url=url,
            ) from exc
        except RemoteProtocolError as exc:
            sock.close()
            if not chunk and not parser_started(parser):
                raise CommandConnectionClosed(
                    "server closed the connection without replying "
                    "(request not re-sent: it may have been processed)",
                    url=url,
                ) from exc
            raise CommandError(f"invalid HTTP response: {exc}", url=url, data=exc.data) from exc
        except OSError as exc:
            sock.close()
            raise CommandConnectionClosed(
                f"connection failed before a complete response ({type(exc).__name__}: {exc}); "
                "request not re-sent: it may have been processed",
                url=url,
            ) from exc
        if shortened:
            sock.settimeout(timeout)
        if resp.keep_alive:
            self._release_raw(sock)
        else:
            sock.close()
        return resp

    # -- requests -----------------------------------------------------------------

    def _connect_failed(self, exc: Exception, url: str, attempt: int) -> CommandError:
        if isinstance(exc, TimeoutError | socket.timeout):
            return CommandTimeout(
                f"Timeout Error connecting (attempt {attempt} of {self.retries})", url=url
            )
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return CommandConnectError(
            f"URL Error {reason} (attempt {attempt} of {self.retries})", url=url
        )

    def open(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send one request and return its connection and (unread) response.

        The caller reads the response, then calls :meth:`release` (whole body read,
        keep-alive) or closes the connection.

        Raises:
            CommandConnectError: no connection after every attempt.
            CommandTimeout: the server did not answer within the timeout.
            CommandConnectionClosed: the connection failed after the request was sent.
        """
        url = self.endpoint.origin + path
        attempt = 0
        while True:
            attempt += 1
            conn = self._take()
            reused = conn is not None
            try:
                if conn is None:
                    conn = self._new()
                conn.request(method, path, body, dict(headers))
            except (OSError, http.client.HTTPException) as exc:
                if conn is not None:
                    conn.close()
                if reused:
                    # A pooled connection failed to write: the request was not received;
                    # try again at once on a fresh connection (not counted as an attempt).
                    attempt -= 1
                    logger.debug("pooled connection failed on write (%s); reconnecting", exc)
                    continue
                error = self._connect_failed(exc, url, attempt)
                if (
                    attempt >= self.retries
                    or isinstance(error, CommandTimeout)
                    or isinstance(exc, ssl.SSLError)
                ):
                    raise error from exc
                logger.warning(
                    "command server %s unreachable (%s), attempt %d of %d; retrying in %g s",
                    url,
                    exc,
                    attempt,
                    self.retries,
                    self.retry_seconds,
                )
                if self.retry_seconds:
                    time.sleep(self.retry_seconds)
                continue
            try:
                return conn, conn.getresponse()
            except TimeoutError as exc:
                conn.close()
                raise CommandTimeout(
                    f"command did not reply within timeout of {self.timeout} seconds "
                    "(request not re-sent: it may have been processed)",
                    url=url,
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise CommandConnectionClosed(
                    f"connection closed before a response ({type(exc).__name__}: {exc}); "
                    "request not re-sent: it may have been processed",
                    url=url,
                ) from exc

    def read_all(
        self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, url: str
    ) -> bytes:
        """Read a response body whole, release or close the connection, map errors."""
        try:
            data = resp.read()
        except TimeoutError as exc:
            conn.close()
            raise CommandTimeout(
                f"response body not received within timeout of {self.timeout} seconds", url=url
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise CommandConnectionClosed(
                f"connection closed while reading the response ({type(exc).__name__}: {exc})",
                url=url,
            ) from exc
        if resp.will_close:
            conn.close()
        else:
            self.release(conn)
        return data
