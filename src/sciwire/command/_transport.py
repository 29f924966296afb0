"""A lean, thread-safe, keep-alive HTTP/1.1 transport for the blocking client.

Every request goes through the shared blocking pool of :mod:`sciwire.core.http.client`
(raw sockets and the sans-I/O codec): the request goes out in one ``sendall`` on a
pooled keep-alive connection. The hot path (:meth:`Transport.exchange`, every JSON-RPC
call) parses the response as it arrives; :meth:`Transport.open` (for ``make_request``,
which yields a streaming response) reads it with :mod:`http.client` on the same
connection. The pool keeps a small LIFO stack of idle connections; an idle connection
that the server has closed meanwhile (it is readable: EOF or stray bytes) is dropped
before use, which covers a server restart.

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
import re
import socket
import ssl
from collections.abc import Mapping
from typing import Any

from sciwire.command._errors import (
    CommandConnectError,
    CommandConnectionClosed,
    CommandError,
    CommandTimeout,
)
from sciwire.core.http.client import POOL_SIZE, Endpoint, HttpPool
from sciwire.core.http.codec import encode_request
from sciwire.errors import ConnectError, ConnectionClosed, Timeout

__all__ = ["Endpoint", "Transport", "env_retries", "env_retry_seconds", "pool_options"]

logger = logging.getLogger(__name__)

# what http.client refuses in a request target (control characters and space)
_BAD_TARGET = re.compile("[\x00-\x20\x7f]")


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


def pool_options(
    timeout: float | None, retries: int, retry_seconds: float, ssl_context: ssl.SSLContext | None
) -> dict[str, Any]:
    """The settings both transports give the core pools (retry rule, errors, name)."""
    return {
        "timeout": timeout,
        "retries": retries,
        "retry_seconds": retry_seconds,
        "ssl_context": ssl_context,
        "retry": "unsent",
        "error_factory": command_error,
        "name": "command server",
    }


def command_error(kind: type[Exception], message: str, url: str, data: Any) -> Exception:
    """The core pool's failures under cryosparc-tools' exception names."""
    if kind is ConnectError:
        return CommandConnectError(message, url=url)
    if kind is Timeout:
        return CommandTimeout(message, url=url)
    if kind is ConnectionClosed:
        return CommandConnectionClosed(message, url=url)
    return CommandError(message, url=url, data=data)


class Transport(HttpPool):
    """Blocking keep-alive HTTP for one endpoint, safe to share between threads.

    The hot path (:meth:`call`, :meth:`exchange`) is the shared
    :class:`~sciwire.core.http.client.HttpPool`; :meth:`open` adds a streaming
    :mod:`http.client` response reader on the same pooled connections, for
    ``make_request``.

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
            pool_size=POOL_SIZE,
            **pool_options(timeout, retries, retry_seconds, ssl_context),
        )

    def release(self, sock: socket.socket) -> None:
        """Give a connection whose response was read whole back to the pool."""
        self._release_raw(sock)

    # -- requests -----------------------------------------------------------------

    def open(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[socket.socket, http.client.HTTPResponse]:
        """Send one request and return its connection and (unread) response.

        The request goes out on the pool's connections under its retry rule; the
        response is read with :mod:`http.client`. The caller reads the response, then
        calls :meth:`release` (whole body read, keep-alive) or closes both.

        Raises:
            CommandConnectError: no connection after every attempt.
            CommandTimeout: the server did not answer within the timeout.
            CommandConnectionClosed: the connection failed after the request was sent.
        """
        if _BAD_TARGET.search(path):
            raise http.client.InvalidURL(f"URL can't contain control characters. {path!r}")
        url = self.endpoint.origin + path
        data = encode_request(method, path, self._host_header, headers, body)
        sock, _reused, _attempt = self._send(data, url, 0)
        if sock.gettimeout() != self.timeout:
            sock.settimeout(self.timeout)  # the pool's, for each read of http.client
        resp = http.client.HTTPResponse(sock, method=method)
        try:
            resp.begin()
        except TimeoutError as exc:
            resp.close()
            sock.close()
            raise CommandTimeout(
                f"command did not reply within timeout of {self.timeout} seconds "
                "(request not re-sent: it may have been processed)",
                url=url,
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            resp.close()
            sock.close()
            raise CommandConnectionClosed(
                f"connection closed before a response ({type(exc).__name__}: {exc}); "
                "request not re-sent: it may have been processed",
                url=url,
            ) from exc
        return sock, resp

    def read_all(self, sock: socket.socket, resp: http.client.HTTPResponse, url: str) -> bytes:
        """Read a response body whole, release or close the connection, map errors."""
        try:
            data = resp.read()
        except TimeoutError as exc:
            resp.close()
            sock.close()
            raise CommandTimeout(
                f"response body not received within timeout of {self.timeout} seconds", url=url
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            resp.close()
            sock.close()
            raise CommandConnectionClosed(
                f"connection closed while reading the response ({type(exc).__name__}: {exc})",
                url=url,
            ) from exc
        if resp.will_close:
            sock.close()
        else:
            self.release(sock)
        return data
