"""A lean blocking HTTP/1.1 transport: keep-alive, gzip, timeouts, safe retries.

Every JSOC CGI call is an idempotent GET, so a request that fails because the kept
connection was closed under us (or could not be opened) is retried on a fresh
connection, a bounded number of times. Timeouts are not retried: a server that does
not answer in time would only make the caller wait longer. Low-level errors are
mapped to :mod:`sciwire.errors` types here, at the I/O boundary.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import socket
import threading
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO
from urllib.parse import urlsplit

from sciwire.drms.exceptions import DrmsHttpError
from sciwire.drms.protocol import USER_AGENT
from sciwire.errors import ConnectError, ConnectionClosed, RemoteProtocolError, Timeout

__all__ = ["BlockingTransport", "Response"]

logger = logging.getLogger(__name__)

# Failures that mean "the connection went away", safe to retry for a GET.
_RETRYABLE = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    ConnectionRefusedError,
)


class Response:
    """Status, headers and (for buffered requests) the decoded body of one answer."""

    __slots__ = ("body", "headers", "status", "url")

    def __init__(self, url: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body


class BlockingTransport:
    """One keep-alive connection per (scheme, host, port), guarded by a lock.

    Args:
        timeout: seconds for connecting and for each socket read.
        retries: how many times a GET is retried after a connection error.
    """

    def __init__(self, timeout: float | None = 60.0, retries: int = 2) -> None:
        self.timeout = timeout
        self.retries = retries
        self._conns: dict[tuple[str, str, int], http.client.HTTPConnection] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close every kept connection."""
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            conn.close()

    def _conn(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        key = (scheme, host, port)
        conn = self._conns.get(key)
        if conn is None:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = cls(host, port, timeout=self.timeout)
            self._conns[key] = conn
        return conn

    def _drop(self, key: tuple[str, str, int]) -> None:
        conn = self._conns.pop(key, None)
        if conn is not None:
            conn.close()

    @contextmanager
    def stream(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> Iterator[tuple[int, Mapping[str, str], IO[bytes]]]:
        """GET *url* and yield (status, headers, readable body); no gzip, for downloads."""
        with self._lock:
            key, resp = self._open(url, headers, accept_gzip=False)
            try:
                yield resp.status, _headers(resp), resp
                resp.read()  # drain so the connection can be kept
            except (OSError, http.client.HTTPException) as exc:
                self._drop(key)
                raise _map_error(exc, url) from exc
            except BaseException:
                self._drop(key)
                raise
            if resp.will_close:
                self._drop(key)

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Response:
        """GET *url*, read the whole (gunzipped) body; HTTP errors raise DrmsHttpError."""
        with self._lock:
            for attempt in range(self.retries + 1):
                key, resp = self._open(url, headers, accept_gzip=True)
                try:
                    body = resp.read()
                except (*_RETRYABLE, http.client.IncompleteRead) as exc:
                    self._drop(key)
                    if attempt < self.retries:
                        logger.debug("retrying %s after %r", url, exc)
                        continue
                    raise _map_error(exc, url) from exc
                except (OSError, http.client.HTTPException) as exc:
                    self._drop(key)
                    raise _map_error(exc, url) from exc
                if resp.will_close:
                    self._drop(key)
                break
        hdrs = _headers(resp)
        if hdrs.get("content-encoding", "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error) as exc:
                raise RemoteProtocolError("bad gzip body", body[:64]) from exc
        if resp.status >= 400:
            raise DrmsHttpError(
                f"HTTP {resp.status} {resp.reason} for {url}",
                code=resp.status,
                data=body[:500].decode("latin1"),
            )
        return Response(url, resp.status, hdrs, body)

    def _open(
        self, url: str, headers: Mapping[str, str] | None, *, accept_gzip: bool
    ) -> tuple[tuple[str, str, int], http.client.HTTPResponse]:
        parts = urlsplit(url)
        scheme = parts.scheme or "http"
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Not an http(s) URL: {url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, parts.hostname, port)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        hdrs = {"User-Agent": USER_AGENT, "Accept": "application/json, */*"}
        if accept_gzip:
            hdrs["Accept-Encoding"] = "gzip"
        if headers:
            hdrs.update(headers)
        for attempt in range(self.retries + 1):
            conn = self._conn(*key)
            try:
                conn.request("GET", target, headers=hdrs)
                return key, conn.getresponse()
            except _RETRYABLE as exc:
                self._drop(key)
                if attempt < self.retries:
                    logger.debug("retrying %s after %r", url, exc)
                    continue
                raise _map_error(exc, url) from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop(key)
                raise _map_error(exc, url) from exc
        raise AssertionError("unreachable")  # pragma: no cover


def _headers(resp: http.client.HTTPResponse) -> dict[str, str]:
    return {k.lower(): v for k, v in resp.getheaders()}


def _map_error(exc: BaseException, url: str) -> Exception:
    if isinstance(exc, socket.timeout | TimeoutError):
        return Timeout(f"JSOC did not answer in time: {url}")
    if isinstance(exc, ConnectionRefusedError | socket.gaierror):
        return ConnectError(f"cannot connect for {url}: {exc}")
    if isinstance(exc, http.client.RemoteDisconnected | http.client.IncompleteRead):
        return ConnectionClosed(f"connection closed while reading {url}: {exc!r}")
    if isinstance(exc, http.client.HTTPException):
        return RemoteProtocolError(f"bad HTTP answer for {url}", repr(exc))
    if isinstance(exc, OSError):
        return ConnectError(f"connection failed for {url}: {exc}")
    return ConnectError(f"request failed for {url}: {exc!r}")
