"""The blocking HTTP/1.1 GET transport of the DRMS client, on the shared pool of
:mod:`sciwire.core.http`, and what it shares with the asyncio one (``_aiotransport``):
request bytes, error mapping, the retry decision, and the one pool per endpoint that a
URL maps to (:class:`TransportSettings`).

A socket-level keep-alive client rather than http.client: for the many small sequential
CGI calls DRMS users make it costs a fraction of http.client's CPU per request, which is
what makes sequential rs_summary calls several times faster than drms (see
bench/drms.py). One :class:`~sciwire.core.http.client.HttpPool` per (scheme, host,
port): GET, Content-Length, chunked or read-to-close bodies, gzip, keep-alive, TLS.

Every JSOC CGI call is an idempotent GET. Whether a failed one is sent again is decided
by one sans-I/O :class:`RetryPolicy` that both transports (and both download loops) ask,
not by the pools, whose own retries are off: a GET that failed because the connection
could not be made or was closed under us is re-sent on a fresh connection, a bounded
number of times. Timeouts are not retried: a server that does not answer in time would
only make the caller wait longer. Failures are :mod:`sciwire.errors` types (HTTP error
statuses raise :class:`~sciwire.drms.exceptions.DrmsHttpError`).
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from sciwire.core.http.client import (
    Endpoint,
    HttpPool,
    ResponseStream,
    header_block,
    host_header,
)
from sciwire.core.http.client import RetryPolicy as RetryName
from sciwire.core.http.codec import ParsedResponse
from sciwire.core.http.limits import response_body_cap
from sciwire.drms._protocol import USER_AGENT
from sciwire.drms.exceptions import DrmsHttpError
from sciwire.errors import ConnectError, ConnectionClosed, RemoteProtocolError, Timeout

__all__ = [
    "MAX_ANSWER",
    "BlockingTransport",
    "Body",
    "Response",
    "RetryPolicy",
    "TransportSettings",
    "checked_body",
    "drms_error",
    "get_request",
    "host_line",
    "split_url",
    "with_headers",
]

logger = logging.getLogger(__name__)

_P = TypeVar("_P")

#: A response body being read (Content-Length, chunked, or until the peer closes).
Body = ResponseStream

_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json, */*"}
_HEADERS_GZ = {**_HEADERS, "Accept-Encoding": "gzip"}
_FIXED = header_block(_HEADERS_GZ)

#: the largest CGI answer read into memory (an rs_list of a million records with a few
#: keywords is some hundred MB, so 1 GiB rather than the pools' 256 MiB); downloads stream
#: to files and have no such bound. SCIWIRE_MAX_RESPONSE_BODY (bytes) sets it, as it sets
#: the pools' cap (see docs/limits.md).
MAX_ANSWER = response_body_cap(1 << 30)


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


class RetryPolicy:
    """Whether a failed GET is sent again: asked by both transports, never doing I/O.

    Args:
        retries: how many times a GET may be re-sent after a connection error.
    """

    __slots__ = ("retries",)

    def __init__(self, retries: int) -> None:
        self.retries = max(0, int(retries))

    def again(self, exc: BaseException, attempt: int) -> bool:
        """True when the GET whose attempt number *attempt* (from 1) failed with *exc*
        is to be re-sent: only after a connection error, never after a timeout, an
        invalid answer or an HTTP error status (the same answer would come again).
        A retry is logged as a warning (``-v`` on the command line shows it)."""
        if attempt <= self.retries and isinstance(exc, (ConnectError, ConnectionClosed)):
            logger.warning("%s; sending again (retry %d of %d)", exc, attempt, self.retries)
            return True
        return False


def with_headers(base: Mapping[str, str], given: Mapping[str, str] | None) -> dict[str, str]:
    """*base* with *given* headers added; a given one replaces a base one of the same
    name in any case (urllib's Request spells ``User-agent``), so none is sent twice."""
    if not given:
        return dict(base)
    names = {name.lower() for name in given}
    return {**{k: v for k, v in base.items() if k.lower() not in names}, **given}


def get_request(host: bytes, target: str, fixed: bytes) -> bytes:
    """The bytes of a GET for *target* to *host* (the Host value and CRLF) with *fixed*
    header lines: the same bytes from both transports."""
    if "\r" in target or "\n" in target or " " in target:
        raise ValueError(f"invalid request target {target!r}")
    return b"".join((b"GET ", target.encode("latin-1"), b" HTTP/1.1\r\nHost: ", host, fixed))


def host_line(endpoint: Endpoint) -> bytes:
    """The Host header value for *endpoint* with its CRLF (for :func:`get_request`)."""
    return host_header(endpoint).encode("latin-1") + b"\r\n"


def split_url(url: str) -> tuple[tuple[str, str, int], str]:
    """((scheme, host, port), target) of an http(s) *url*; ValueError for anything else."""
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Not an http(s) URL: {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return (scheme, parts.hostname, port), target


def drms_error(kind: type[Exception], message: str, url: str, data: Any) -> Exception:
    """The pools' error factory: sciwire errors whose messages name the JSOC URL."""
    if kind is RemoteProtocolError:
        return RemoteProtocolError(message, data)
    if kind is Timeout:
        return Timeout(f"JSOC did not answer in time: {url}")
    if kind is ConnectionClosed:
        return ConnectionClosed(f"connection closed while talking to {url}: {message}")
    return ConnectError(f"cannot connect for {url}: {message}")


_CE = b"\r\ncontent-encoding:"


def gunzip(data: bytes, limit: int) -> bytes:
    """*data* (one or more gzip members) decompressed, at most *limit* bytes of it.

    Raises:
        RemoteProtocolError: not gzip, cut short, or more than *limit* bytes (a small
            answer may unpack to any size: the cap holds for what it unpacks to).
    """
    out: list[bytes] = []
    size = 0
    try:
        while True:
            member = zlib.decompressobj(16 + zlib.MAX_WBITS)
            part = member.decompress(data, limit - size + 1)
            size += len(part)
            if size > limit:
                raise RemoteProtocolError(f"answer over {limit} bytes once unpacked", data[:64])
            if not member.eof:
                raise RemoteProtocolError("bad gzip body: cut short", data[:64])
            out.append(part)
            data = member.unused_data
            if not data.strip(b"\x00"):  # trailing padding, as gzip.decompress allows
                break
    except zlib.error as exc:
        raise RemoteProtocolError(f"bad gzip body: {exc}", data[:64]) from exc
    return out[0] if len(out) == 1 else b"".join(out)


def checked_body(resp: ParsedResponse, url: str, limit: int = MAX_ANSWER) -> bytes:
    """The body of *resp*, gunzipped (at most *limit* bytes) when it says so;
    DrmsHttpError for an HTTP error status."""
    body = resp.body
    if _CE in resp.raw_head.lower() and (
        resp.headers.get("content-encoding", "").lower() == "gzip"
    ):
        try:
            resp.body = body = gunzip(body, limit)
        except RemoteProtocolError as exc:
            msg = f"invalid HTTP response from {url}: {exc}"
            raise RemoteProtocolError(msg, exc.data) from exc
    if resp.status >= 400:
        raise DrmsHttpError(
            f"HTTP {resp.status} {resp.reason} for {url}",
            code=resp.status,
            data=body[:500].decode("latin1"),
        )
    return body


class TransportSettings(Generic[_P]):
    """What both transports (blocking and asyncio) are made with, and how both find the
    pool for a URL: one pool per (scheme, host, port), made by :attr:`pool_class` with
    the same settings, and the parsed base of each URL kept (at most 256 of them).

    Args:
        timeout: seconds to connect, and for each whole buffered response (for each
            read of a streamed one).
        retries: how many times a GET is re-sent after a connection error.
        max_body: the largest answer read whole (bigger: RemoteProtocolError).
    """

    #: the core pool class of the twin (HttpPool or AsyncHttpPool)
    pool_class: Callable[..., _P]
    #: the retry rule both twins' pools are given (GETs are idempotent). With retries=1
    #: a pool re-sends only a request whose kept connection closed before any byte of
    #: the answer, and skips its stale probe (core.http's Resend.probe); every other
    #: re-send is the RetryPolicy's
    pool_retry: RetryName = "idempotent"

    def __init__(
        self, timeout: float | None = 60.0, retries: int = 2, *, max_body: int = MAX_ANSWER
    ) -> None:
        self.timeout = timeout
        self.policy = RetryPolicy(retries)
        self.max_body = max_body
        self._pools: dict[tuple[str, str, int], tuple[_P, bytes]] = {}
        self._targets: dict[str, tuple[_P, bytes, str]] = {}
        # only the blocking twin is shared between threads; a miss is rare, so the
        # asyncio one pays nothing for taking it too
        self._lock = threading.Lock()

    @property
    def retries(self) -> int:
        """How many times a GET is re-sent after a connection error."""
        return self.policy.retries

    def _target(self, url: str) -> tuple[_P, bytes, str]:
        """The pool, Host line and request target for *url*.

        CGI URLs share a few bases: each base is parsed once and the query appended as is.
        """
        base, _, query = url.partition("?")
        hit = self._targets.get(base)
        if hit is None:
            key, path = split_url(base)
            with self._lock:
                got = self._pools.get(key)
                if got is None:
                    endpoint = Endpoint(*key)
                    pool = self.pool_class(
                        endpoint,
                        timeout=self.timeout,
                        retries=1,
                        retry=self.pool_retry,
                        error_factory=drms_error,
                        name="JSOC",
                        max_body=self.max_body,
                    )
                    got = self._pools[key] = (pool, host_line(endpoint))
                if len(self._targets) >= 256:
                    self._targets.clear()
                hit = self._targets[base] = (*got, path)
        pool, host, path = hit
        query = query.split("#", 1)[0]
        return pool, host, f"{path}?{query}" if query else path


class BlockingTransport(TransportSettings[HttpPool]):
    """Keep-alive connections per (scheme, host, port), safe to share between threads
    (arguments: :class:`TransportSettings`)."""

    #: the clock and the pause of the blocking side (the asyncio transport has its own)
    clock = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)
    pool_class = HttpPool

    def close(self) -> None:
        """Close every kept connection."""
        with self._lock:
            pools = list(self._pools.values())
        for pool, _ in pools:
            pool.close()

    abort = close  # what a finalizer calls; closing needs no waiting here

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Response:
        """GET *url*, read the whole (gunzipped) body; HTTP errors raise DrmsHttpError."""
        pool, host, target = self._target(url)
        fixed = _FIXED if not headers else header_block(with_headers(_HEADERS_GZ, headers))
        data = get_request(host, target, fixed)
        attempt = 1
        while True:
            try:
                resp = pool.exchange(data, target)
                break
            except (ConnectError, ConnectionClosed) as exc:
                if not self.policy.again(exc, attempt):
                    raise
                attempt += 1
        body = checked_body(resp, url, self.max_body)
        return Response(url, resp.status, resp.reason, resp.headers, body)

    def get_body(self, url: str) -> bytes:
        """GET *url* and return its whole (gunzipped) body: :meth:`get` without the
        headers, for the many small CGI calls. HTTP errors raise DrmsHttpError."""
        pool, host, target = self._target(url)
        data = get_request(host, target, _FIXED)
        attempt = 1
        while True:
            try:
                return checked_body(pool.exchange(data, target), url, self.max_body)
            except (ConnectError, ConnectionClosed) as exc:
                if not self.policy.again(exc, attempt):
                    raise
                attempt += 1

    @contextmanager
    def stream(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> Iterator[tuple[int, Mapping[str, str], Body]]:
        """GET *url* once and yield (status, headers, body reader); no gzip, for
        downloads (whose loop asks :attr:`policy` itself, to resume where it stopped)."""
        pool, _, target = self._target(url)
        with pool.stream("GET", target, with_headers(_HEADERS, headers)) as body:
            yield body.status, body.headers, body
