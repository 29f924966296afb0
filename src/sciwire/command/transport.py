"""A lean, thread-safe, keep-alive HTTP/1.1 transport for the blocking client.

The hot path (:meth:`Transport.call`, every JSON-RPC call) is the shared blocking pool
of :mod:`sciwire.core.http.client` (raw sockets and the sans-I/O codec): the request goes out in one
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
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any

from sciwire.command.errors import (
    CommandConnectError,
    CommandConnectionClosed,
    CommandError,
    CommandTimeout,
)
from sciwire.core.http.client import POOL_SIZE, Endpoint, HttpPool, is_stale
from sciwire.errors import ConnectError, ConnectionClosed, Timeout

__all__ = ["Endpoint", "Transport", "env_retries", "env_retry_seconds"]

logger = logging.getLogger(__name__)


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


def command_error(kind: type[Exception], message: str, url: str, data: Any) -> Exception:
    """The core pool's failures under cryosparc-tools' exception names."""
    if kind is ConnectError:
        return CommandConnectError(message, url=url)
    if kind is Timeout:
        return CommandTimeout(message, url=url)
    if kind is ConnectionClosed:
        return CommandConnectionClosed(message, url=url)
    return CommandError(message, url=url, data=data)


def _stale(conn: http.client.HTTPConnection) -> bool:
    """True when an idle pooled connection was closed by the server (or is unusable)."""
    return is_stale(conn.sock)


class Transport(HttpPool):
    """Blocking keep-alive HTTP for one endpoint, safe to share between threads.

    The hot path (:meth:`call`, :meth:`exchange`) is the shared
    :class:`~sciwire.core.http.client.HttpPool`; :meth:`open` adds a streaming
    :mod:`http.client` path for ``make_request``.

    Args:
        endpoint: where to connect.
        timeout: socket timeout in seconds (connect and each read).
        retries: attempts per request (>= 1) when the request surely was not sent.
        retry_seconds: pause between such attempts (none after the last one).
        ssl_context: TLS settings for ``https`` (default: the system's defaults).
    """

    log = logger

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float | None,
        retries: int,
        retry_seconds: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(
            endpoint,
            timeout=timeout,
            retries=retries,
            retry_seconds=retry_seconds,
            ssl_context=ssl_context,
            retry="unsent",
            pool_size=POOL_SIZE,
            error_factory=command_error,
            name="command server",
        )
        self._idle: list[http.client.HTTPConnection] = []

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
        for conn in idle:
            conn.close()
        super().close()

    # -- requests -----------------------------------------------------------------

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
