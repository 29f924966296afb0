"""The blocking HTTP/1.1 GET transport of the DRMS client, on the shared pool of
:mod:`sciwire.core.http`.

A socket-level keep-alive client rather than http.client: for the many small sequential
CGI calls DRMS users make it costs a fraction of http.client's CPU per request, which is
what makes sequential rs_summary calls several times faster than drms (see
bench/drms.py). One :class:`~sciwire.core.http.client.HttpPool` per (scheme, host,
port): GET, Content-Length, chunked or read-to-close bodies, gzip, keep-alive, TLS.

Every JSOC CGI call is an idempotent GET, so the pools use the ``"idempotent"`` retry
policy: a request that fails because the kept connection was closed under us is re-sent
on a fresh connection, a bounded number of times. Timeouts are not retried: a server
that does not answer in time would only make the caller wait longer. Failures are
:mod:`sciwire.errors` types (HTTP error statuses raise
:class:`~sciwire.drms.exceptions.DrmsHttpError`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from sciwire.core.http.client import Endpoint, HttpPool, ResponseStream, header_block
from sciwire.core.http.codec import ParsedResponse, decode_gzip
from sciwire.drms._protocol import USER_AGENT
from sciwire.drms.exceptions import DrmsHttpError
from sciwire.errors import ConnectError, ConnectionClosed, RemoteProtocolError, Timeout

__all__ = ["BlockingTransport", "Body", "Response"]

logger = logging.getLogger(__name__)

#: A response body being read (Content-Length, chunked, or until the peer closes).
Body = ResponseStream

_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json, */*"}
_HEADERS_GZ = {**_HEADERS, "Accept-Encoding": "gzip"}
_FIXED = header_block(_HEADERS_GZ)


class Response:
    """Status, headers and (for buffered requests) the decoded body of one answer."""

    __slots__ = ("body", "headers", "reason", "status", "url")

    def __init__(
        self, url: str, status: int, reason: str, headers: Mapping[str, str], body: bytes
    ) -> None:
        self.url = url
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


def _drms_error(kind: type[Exception], message: str, url: str, data: Any) -> Exception:
    if kind is RemoteProtocolError:
        return RemoteProtocolError(message, data)
    if kind is Timeout:
        return Timeout(f"JSOC did not answer in time: {url}")
    if kind is ConnectionClosed:
        return ConnectionClosed(f"connection closed while talking to {url}: {message}")
    return ConnectError(f"cannot connect for {url}: {message}")


def _checked_body(resp: ParsedResponse, url: str) -> bytes:
    """The gunzipped body of *resp*; DrmsHttpError for an HTTP error status."""
    try:
        resp.body = body = decode_gzip(resp)
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(f"invalid HTTP response from {url}: {exc}", exc.data) from exc
    if resp.status >= 400:
        raise DrmsHttpError(
            f"HTTP {resp.status} {resp.reason} for {url}",
            code=resp.status,
            data=body[:500].decode("latin1"),
        )
    return body


class BlockingTransport:
    """Keep-alive connections per (scheme, host, port), safe to share between threads.

    Args:
        timeout: seconds to connect, and for each whole buffered response (for each
            read of a streamed one).
        retries: how many times a GET is re-sent after a connection error.
    """

    def __init__(self, timeout: float | None = 60.0, retries: int = 2) -> None:
        self.timeout = timeout
        self.retries = retries
        self._pools: dict[tuple[str, str, int], HttpPool] = {}
        self._lock = threading.Lock()
        self._targets: dict[str, tuple[HttpPool, str]] = {}

    def close(self) -> None:
        """Close every kept connection."""
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()

    def _target(self, url: str) -> tuple[HttpPool, str]:
        # CGI URLs share a few bases: parse each base once, append the query as is
        base, _, query = url.partition("?")
        hit = self._targets.get(base)
        if hit is None:
            hit = self._parse(base)
            with self._lock:
                if len(self._targets) >= 256:
                    self._targets.clear()
                self._targets[base] = hit
        pool, path = hit
        query = query.split("#", 1)[0]
        return pool, f"{path}?{query}" if query else path

    def _parse(self, url: str) -> tuple[HttpPool, str]:
        parts = urlsplit(url)
        scheme = parts.scheme or "http"
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Not an http(s) URL: {url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        key = (scheme, parts.hostname, port)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = HttpPool(
                    Endpoint(*key),
                    timeout=self.timeout,
                    retries=self.retries + 1,
                    retry="idempotent",
                    error_factory=_drms_error,
                    name="JSOC",
                )
        return pool, target

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Response:
        """GET *url*, read the whole (gunzipped) body; HTTP errors raise DrmsHttpError."""
        pool, target = self._target(url)
        fixed = _FIXED if not headers else header_block({**_HEADERS_GZ, **headers})
        resp = pool.exchange(pool.get_request(target, fixed), target)
        body = _checked_body(resp, url)
        return Response(url, resp.status, resp.reason, resp.headers, body)

    def get_body(self, url: str) -> bytes:
        """GET *url* and return its whole (gunzipped) body: :meth:`get` without the
        headers, for the many small CGI calls. HTTP errors raise DrmsHttpError."""
        pool, target = self._target(url)
        resp = pool.exchange(pool.get_request(target, _FIXED), target)
        return _checked_body(resp, url)

    @contextmanager
    def stream(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> Iterator[tuple[int, Mapping[str, str], Body]]:
        """GET *url* and yield (status, headers, body reader); no gzip, for downloads."""
        pool, target = self._target(url)
        with pool.stream("GET", target, {**_HEADERS, **(headers or {})}) as body:
            yield body.status, body.headers, body
