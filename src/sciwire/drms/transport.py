"""A lean blocking HTTP/1.1 GET transport: keep-alive, gzip, timeouts, safe retries.

A small socket-level client rather than http.client: for the many small sequential
CGI calls DRMS users make it costs about a tenth of http.client's CPU per request
(measured ~25 us against ~200 us on the bench machine), which is what makes
sequential rs_summary calls several times faster than drms (see bench/drms.py).
It speaks just what the JSOC CGIs and file servers need: GET, Content-Length,
chunked or read-to-close bodies, gzip, keep-alive, and TLS through :mod:`ssl`.

Every JSOC CGI call is an idempotent GET, so a request that fails because the kept
connection was closed under us (or could not be opened) is retried on a fresh
connection, a bounded number of times. Timeouts are not retried: a server that does
not answer in time would only make the caller wait longer. Low-level errors are
mapped to :mod:`sciwire.errors` types here, at the I/O boundary.
"""

from __future__ import annotations

import gzip
import logging
import socket
import ssl
import threading
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlsplit

from sciwire.drms.exceptions import DrmsHttpError
from sciwire.drms.protocol import USER_AGENT
from sciwire.errors import ConnectError, ConnectionClosed, RemoteProtocolError, Timeout

__all__ = ["BlockingTransport", "Body", "Response"]

logger = logging.getLogger(__name__)

_MAX_HEAD = 64 * 1024
_RECV = 256 * 1024


class _Closed(Exception):
    """The peer closed the connection; *early* when before any byte of the answer."""

    def __init__(self, early: bool) -> None:
        super().__init__("connection closed by peer")
        self.early = early


# Failures that mean "the connection went away", safe to retry for a GET.
_RETRYABLE = (_Closed, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


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


class _Conn:
    """One socket and its receive buffer."""

    def __init__(self, scheme: str, host: str, port: int, timeout: float | None) -> None:
        self.scheme, self.host, self.port, self.timeout = scheme, host, port, timeout
        self.sock: socket.socket | None = None
        self.buf = bytearray()

    def open(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        self.sock = sock
        self.buf.clear()
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.buf.clear()

    def send(self, data: bytes) -> None:
        sock = self.sock or self.open()
        sock.sendall(data)

    def fill(self) -> bool:
        assert self.sock is not None
        chunk = self.sock.recv(_RECV)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_head(self) -> tuple[str, int, str, dict[str, str]]:
        start = 0
        while True:
            end = self.buf.find(b"\r\n\r\n", start)
            if end >= 0:
                break
            if len(self.buf) > _MAX_HEAD:
                raise RemoteProtocolError("HTTP header too long", bytes(self.buf[:200]))
            start = max(0, len(self.buf) - 3)
            if not self.fill():
                raise _Closed(early=not self.buf)
        head = bytes(self.buf[:end]).decode("latin1")
        del self.buf[: end + 4]
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise RemoteProtocolError("bad HTTP status line", lines[0])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise RemoteProtocolError("bad HTTP header line", line)
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers

    def take(self, n: int) -> bytes:
        """Up to *n* buffered-or-received bytes; b"" only at end of stream."""
        if not self.buf and not self.fill():
            return b""
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def take_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.fill():
                raise _Closed(early=False)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def take_line(self) -> bytes:
        while (i := self.buf.find(b"\r\n")) < 0:
            if len(self.buf) > _MAX_HEAD or not self.fill():
                raise _Closed(early=False)
        out = bytes(self.buf[:i])
        del self.buf[: i + 2]
        return out


class Body:
    """A response body being read: Content-Length, chunked, or until the peer closes."""

    def __init__(self, conn: _Conn, status: int, headers: Mapping[str, str]) -> None:
        self._conn = conn
        self._chunk_left = 0
        self.done = False
        self.keep = True
        te = headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        if status in (204, 304) or 100 <= status < 200:
            self.mode, self.left = "length", 0
        elif "chunked" in te:
            self.mode, self.left = "chunked", 0
        elif length is not None:
            if not length.strip().isdigit():
                raise RemoteProtocolError("bad Content-Length", length)
            self.mode, self.left = "length", int(length)
        else:
            self.mode, self.left, self.keep = "eof", 0, False
        if self.mode == "length" and self.left == 0:
            self.done = True

    def read(self, n: int = _RECV) -> bytes:
        """Up to *n* bytes of the body; b"" at its end."""
        if self.done:
            return b""
        if self.mode == "length":
            data = self._conn.take(min(n, self.left))
            if not data:
                raise _Closed(early=False)
            self.left -= len(data)
            self.done = self.left == 0
            return data
        if self.mode == "eof":
            data = self._conn.take(n)
            self.done = not data
            return data
        if self._chunk_left == 0:
            line = self._conn.take_line().split(b";")[0].strip()
            try:
                size = int(line, 16)
            except ValueError as exc:
                raise RemoteProtocolError("bad chunk size", line) from exc
            if size == 0:
                while self._conn.take_line():  # trailers, then the blank line
                    pass
                self.done = True
                return b""
            self._chunk_left = size
        data = self._conn.take(min(n, self._chunk_left))
        if not data:
            raise _Closed(early=False)
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._conn.take_exact(2)
        return data

    def read_all(self) -> bytes:
        """The rest of the body."""
        if self.mode == "length" and not self.done:
            data = self._conn.take_exact(self.left)
            self.left, self.done = 0, True
            return data
        parts = []
        while chunk := self.read():
            parts.append(chunk)
        return b"".join(parts)


class BlockingTransport:
    """One keep-alive connection per (scheme, host, port), guarded by a lock.

    Args:
        timeout: seconds for connecting and for each socket read.
        retries: how many times a GET is retried after a connection error.
    """

    def __init__(self, timeout: float | None = 60.0, retries: int = 2) -> None:
        self.timeout = timeout
        self.retries = retries
        self._conns: dict[tuple[str, str, int], _Conn] = {}
        self._lock = threading.Lock()
        self._targets: dict[str, tuple[tuple[str, str, int], str]] = {}

    def close(self) -> None:
        """Close every kept connection."""
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            conn.close()

    def _target(self, url: str) -> tuple[tuple[str, str, int], str]:
        # CGI URLs share a few bases: parse each base once, append the query as is
        base, _, query = url.partition("?")
        hit = self._targets.get(base)
        if hit is None:
            if len(self._targets) >= 256:
                self._targets.clear()
            hit = self._targets[base] = self._parse(base)
        key, path = hit
        query = query.split("#", 1)[0]
        return key, f"{path}?{query}" if query else path

    def _parse(self, url: str) -> tuple[tuple[str, str, int], str]:
        parts = urlsplit(url)
        scheme = parts.scheme or "http"
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Not an http(s) URL: {url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return (scheme, parts.hostname, port), target

    def _request(
        self, key: tuple[str, str, int], target: str, headers: Mapping[str, str] | None, gz: bool
    ) -> bytes:
        host = key[1] if ":" not in key[1] else f"[{key[1]}]"
        default = 443 if key[0] == "https" else 80
        lines = [
            f"GET {target} HTTP/1.1",
            f"Host: {host}" if key[2] == default else f"Host: {host}:{key[2]}",
            f"User-Agent: {USER_AGENT}",
            "Accept: application/json, */*",
        ]
        if gz:
            lines.append("Accept-Encoding: gzip")
        for name, value in (headers or {}).items():
            if "\r" in name + value or "\n" in name + value:
                raise ValueError("header with a line break")
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin1")

    def _exchange(
        self, url: str, headers: Mapping[str, str] | None, *, gz: bool
    ) -> tuple[_Conn, int, str, dict[str, str], Body]:
        key, target = self._target(url)
        request = self._request(key, target, headers, gz)
        for attempt in range(self.retries + 1):
            conn = self._conns.get(key)
            if conn is None:
                conn = self._conns[key] = _Conn(*key, self.timeout)
            try:
                conn.send(request)
                version, status, reason, hdrs = conn.read_head()
                body = Body(conn, status, hdrs)
            except _RETRYABLE as exc:
                conn.close()
                if attempt < self.retries:
                    logger.debug("retrying %s after %r", url, exc)
                    continue
                raise _map_error(exc, url) from exc
            except (OSError, RemoteProtocolError) as exc:
                conn.close()
                if isinstance(exc, RemoteProtocolError):
                    raise
                raise _map_error(exc, url) from exc
            if hdrs.get("connection", "").lower() == "close" or version == "HTTP/1.0":
                body.keep = False
            return conn, status, reason, hdrs, body
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Response:
        """GET *url*, read the whole (gunzipped) body; HTTP errors raise DrmsHttpError."""
        with self._lock:
            for attempt in range(self.retries + 1):
                conn, status, reason, hdrs, body = self._exchange(url, headers, gz=True)
                try:
                    data = body.read_all()
                except _RETRYABLE as exc:
                    conn.close()
                    if attempt < self.retries:
                        logger.debug("retrying %s after %r", url, exc)
                        continue
                    raise _map_error(exc, url) from exc
                except (OSError, RemoteProtocolError) as exc:
                    conn.close()
                    if isinstance(exc, RemoteProtocolError):
                        raise
                    raise _map_error(exc, url) from exc
                if not body.keep:
                    conn.close()
                break
        if hdrs.get("content-encoding", "").lower() == "gzip":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as exc:
                raise RemoteProtocolError("bad gzip body", data[:64]) from exc
        if status >= 400:
            raise DrmsHttpError(
                f"HTTP {status} {reason} for {url}",
                code=status,
                data=data[:500].decode("latin1"),
            )
        return Response(url, status, reason, hdrs, data)

    @contextmanager
    def stream(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> Iterator[tuple[int, Mapping[str, str], Body]]:
        """GET *url* and yield (status, headers, body reader); no gzip, for downloads."""
        with self._lock:
            conn, status, _reason, hdrs, body = self._exchange(url, headers, gz=False)
            try:
                yield status, hdrs, body
                while body.read():  # drain so the connection can be kept
                    pass
            except (*_RETRYABLE, OSError) as exc:
                conn.close()
                raise _map_error(exc, url) from exc
            except BaseException:
                conn.close()
                raise
            if not body.keep:
                conn.close()


def _map_error(exc: BaseException, url: str) -> Exception:
    if isinstance(exc, socket.timeout | TimeoutError):
        return Timeout(f"JSOC did not answer in time: {url}")
    if isinstance(exc, ConnectionRefusedError | socket.gaierror):
        return ConnectError(f"cannot connect for {url}: {exc}")
    if isinstance(exc, _Closed | ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return ConnectionClosed(f"connection closed while talking to {url}: {exc!r}")
    if isinstance(exc, OSError):
        return ConnectError(f"connection failed for {url}: {exc}")
    return ConnectError(f"request failed for {url}: {exc!r}")
