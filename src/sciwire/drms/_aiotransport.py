"""The asyncio HTTP/1.1 GET transport of the DRMS client, on :mod:`sciwire.core.http`.

The twin of :class:`~sciwire.drms._transport.BlockingTransport`, with the same calls
(awaitable): ``get_body`` runs on the shared
:class:`~sciwire.core.http.aioclient.AsyncHttpPool` (keep-alive, gzip, one timer per
pool), sends the same request bytes and asks the same
:class:`~sciwire.drms._transport.RetryPolicy`; errors come from the same error factory.

``stream`` (downloads) reads a response as it arrives, which the pool does not offer: it
keeps its own few connections per endpoint, made with :func:`asyncio.open_connection`,
and parses with the core's :class:`~sciwire.core.http.codec.ResponseParser` in
streaming mode. Every read has the transport's timeout; at most 1 MiB of an unread body
is drained to keep a connection, beyond that it is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from sciwire.core.http.aioclient import AsyncHttpPool
from sciwire.core.http.client import Endpoint, header_block
from sciwire.core.http.codec import ResponseParser
from sciwire.drms._transport import (
    _FIXED,
    _HEADERS,
    MAX_ANSWER,
    TransportSettings,
    checked_body,
    drms_error,
    get_request,
    host_line,
    split_url,
    with_headers,
)
from sciwire.errors import ConnectError, ConnectionClosed, RemoteProtocolError, Timeout

__all__ = ["AsyncBody", "AsyncTransport"]

_READ = 1 << 16
#: the most of an unread body read (and dropped) to keep its connection
_DRAIN = 1 << 20
#: idle download connections kept per endpoint
_IDLE_STREAMS = 16

_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class AsyncBody:
    """A response body being read: ``await read(n)``; b"" at its end.

    Attributes:
        status: the status code.
        headers: header names lower-cased.
    """

    def __init__(
        self, conn: _Conn, parser: ResponseParser, url: str, timeout: float | None
    ) -> None:
        head = parser.head
        assert head is not None
        self.status = head.status
        self.headers: Mapping[str, str] = head.headers
        self._reader = conn[0]
        self._parser = parser
        self._url = url
        self._timeout = timeout
        self._pending = parser.take()

    @property
    def done(self) -> bool:
        """True once the whole body was read."""
        return not self._pending and self._parser.response is not None

    async def read(self, n: int = _READ) -> bytes:
        """Up to *n* bytes of the body; b"" at its end.

        Raises:
            Timeout: no byte within the timeout.
            ConnectionClosed: the connection ended before the body did.
            RemoteProtocolError: the body's framing is invalid.
        """
        parser = self._parser
        while not self._pending and parser.response is None:
            await _feed(self._reader, parser, self._url, self._timeout)
            self._pending = parser.take()
        out = self._pending[:n]
        self._pending = self._pending[n:]
        return out

    async def drain(self, most: int = _DRAIN) -> bool:
        """Read and drop the rest of the body, up to *most* bytes: True when it ended."""
        left = most
        while left >= 0:
            chunk = await self.read()
            if not chunk:
                return True
            left -= len(chunk)
        return False


async def _feed(
    reader: asyncio.StreamReader, parser: ResponseParser, url: str, timeout: float | None
) -> None:
    """One read into *parser*, under *timeout*; failures as the pools' errors."""
    try:
        chunk = await asyncio.wait_for(reader.read(_READ), timeout)
        if chunk:
            parser.feed(chunk)
        else:
            parser.eof = True
            parser.feed_eof()
    except (TimeoutError, asyncio.TimeoutError) as exc:
        raise drms_error(Timeout, "", url, None) from exc
    except RemoteProtocolError as exc:
        if parser.started and not parser.eof:
            raise drms_error(
                RemoteProtocolError, f"invalid HTTP response: {exc}", url, exc.data
            ) from exc
        raise drms_error(
            ConnectionClosed, f"connection closed before a complete response: {exc}", url, None
        ) from exc
    except OSError as exc:
        raise drms_error(
            ConnectionClosed, f"connection closed before a complete response: {exc}", url, None
        ) from exc


def _close(conn: _Conn) -> None:
    with contextlib.suppress(Exception):  # the loop may be closed already
        conn[1].close()


class AsyncTransport(TransportSettings[AsyncHttpPool]):
    """Keep-alive connections per (scheme, host, port) for the tasks of one event loop
    (arguments: :class:`~sciwire.drms._transport.TransportSettings`)."""

    #: the clock (the blocking transport's) and the asyncio pause
    clock = staticmethod(time.monotonic)
    sleep = staticmethod(asyncio.sleep)
    pool_class = AsyncHttpPool

    def __init__(
        self, timeout: float | None = 60.0, retries: int = 2, *, max_body: int = MAX_ANSWER
    ) -> None:
        super().__init__(timeout, retries, max_body=max_body)
        self._streams: dict[tuple[str, str, int], list[_Conn]] = {}

    def _drop_pools(self) -> list[AsyncHttpPool]:
        pools, self._pools = list(self._pools.values()), {}
        self._targets.clear()
        self._close_streams()
        return [pool for pool, _ in pools]

    async def close(self) -> None:
        """Close every kept connection."""
        for pool in self._drop_pools():
            await pool.close()

    def abort(self) -> None:
        """Drop every connection now, without awaiting (for finalizers)."""
        for pool in self._drop_pools():
            pool.abort_all()

    def _close_streams(self) -> None:
        streams, self._streams = self._streams, {}
        for conns in streams.values():
            for conn in conns:
                _close(conn)

    async def get_body(self, url: str) -> bytes:
        """GET *url* and return its whole (gunzipped) body; HTTP errors raise
        DrmsHttpError."""
        pool, host, target = self._target(url)
        data = get_request(host, target, _FIXED)
        attempt = 1
        while True:
            try:
                answer = await pool.exchange(data, target)
                return checked_body(answer, url, self.max_body)
            except (ConnectError, ConnectionClosed) as exc:
                if not self.policy.again(exc, attempt):
                    raise
                attempt += 1

    async def _connect(self, key: tuple[str, str, int], url: str) -> _Conn:
        scheme, host, port = key
        ctx = ssl.create_default_context() if scheme == "https" else None
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, ssl=ctx, server_hostname=host if ctx is not None else None
                ),
                self.timeout,
            )
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise drms_error(Timeout, "", url, None) from exc
        except OSError as exc:  # ssl.SSLError included
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise drms_error(ConnectError, f"URL Error {reason}", url, None) from exc

    def _take(self, key: tuple[str, str, int]) -> _Conn | None:
        idle = self._streams.get(key)
        while idle:
            conn = idle.pop()
            if not conn[0].at_eof() and not conn[1].is_closing():
                return conn
            _close(conn)
        return None

    def _keep(self, key: tuple[str, str, int], conn: _Conn) -> None:
        idle = self._streams.setdefault(key, [])
        if len(idle) < _IDLE_STREAMS:
            idle.append(conn)
        else:
            _close(conn)

    @asynccontextmanager
    async def stream(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[tuple[int, Mapping[str, str], AsyncBody]]:
        """GET *url* once and yield (status, headers, body reader); no gzip, for
        downloads (whose loop asks :attr:`policy` itself, to resume where it stopped)."""
        key, target = split_url(url.split("#", 1)[0])
        fixed = header_block(with_headers(_HEADERS, headers))
        data = get_request(host_line(Endpoint(*key)), target, fixed)
        conn = self._take(key) or await self._connect(key, url)
        parser = ResponseParser(stream=True)
        try:
            conn[1].write(data)
            while parser.head is None:
                await _feed(conn[0], parser, url, self.timeout)
            body = AsyncBody(conn, parser, url, self.timeout)
            yield body.status, body.headers, body
            kept = await body.drain()
        except BaseException:
            _close(conn)
            raise
        if kept and parser.response is not None and parser.response.keep_alive:
            self._keep(key, conn)
        else:
            _close(conn)
