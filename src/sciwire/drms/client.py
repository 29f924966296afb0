"""``HttpJsonClient`` (blocking, drop-in for drms.HttpJsonClient) and its asyncio twin.

The blocking client runs on :class:`~sciwire.drms.transport.BlockingTransport`, a lean
keep-alive HTTP/1.1 client on a plain socket, rather than on the portal: for small
sequential CGI calls a direct socket round trip costs far less than a hop through an
event-loop thread or http.client, and it is several times faster than drms's
one-connection-per-request urlopen (see bench/drms.py). The asyncio client uses aiohttp.

Both clients share :class:`_HttpJsonCalls`, which builds every request (URL, argument
checks), holds the docs and the keyword-type cache, and is generic over what a call
returns: a value for the blocking client, an awaitable for the asyncio one. Each
client adds only its I/O: ``_get`` / ``_get_raw``, waiting and downloading.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiohttp

from sciwire.core.http import limits
from sciwire.drms import protocol as P
from sciwire.drms import transfer
from sciwire.drms.config import ServerConfig, get_server
from sciwire.drms.exceptions import DrmsHttpError
from sciwire.drms.transport import BlockingTransport
from sciwire.errors import ConnectError, ConnectionClosed, RemoteProtocolError, Timeout

__all__ = ["AsyncHttpJsonClient", "HttpJsonClient", "HttpJsonRequest"]

logger = logging.getLogger(__name__)

Names = str | Sequence[str] | None

# What a call returns: the value for the blocking client, an awaitable of it for asyncio.
R = TypeVar("R")  # a decoded JSON object: dict[str, Any]
C = TypeVar("C")  # typed columns: dict[str, list[Any]]
L = TypeVar("L")  # downloaded files: list[Path]


class HttpJsonRequest:
    """One finished CGI request: ``url``, ``raw_data`` (bytes) and ``data`` (decoded)."""

    def __init__(self, url: str, raw_data: bytes, encoding: str) -> None:
        self.url = url
        self.raw_data = raw_data
        self._encoding = encoding
        self._data: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<HttpJsonRequest: {self.url}>"

    @property
    def data(self) -> dict[str, Any]:
        """The decoded JSON object (RemoteProtocolError if it is not one)."""
        if self._data is None:
            self._data = P.decode_json(self.raw_data, self._encoding)
        return self._data


def _requestor(requestor: str | bool | None, requester: str | bool | None) -> str | bool | None:
    # drms names the argument "requester"; accept it as an alias of "requestor".
    return requester if requestor is None else requestor


class _HttpJsonCalls(Generic[R, C, L]):
    """The public calls of both clients, written once; subclasses supply the I/O hooks.

    Each call hands its hook a thunk building the URL (or its raw arguments), so a bad
    argument raises where the I/O starts: at the call for the blocking client, at
    ``await`` for the asyncio one.
    """

    def __init__(
        self,
        server: str | ServerConfig = "jsoc",
        debug: bool = False,
        *,
        timeout: float | None = 60.0,
        retries: int = 2,
    ) -> None:
        self._server = get_server(server)
        self.debug = debug
        self._type_cache: dict[str, dict[str, str]] = {}
        self._open(timeout, retries)

    def _open(self, timeout: float | None, retries: int) -> None:
        """Set up the transport (nothing is connected yet)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self._server.name}>"

    @property
    def server(self) -> ServerConfig:
        """The server configuration in use."""
        return self._server

    def _get(self, build: Callable[[], str]) -> R:
        """Build the URL with *build*, GET it and decode the JSON object."""
        raise NotImplementedError

    def _columns(self, ds: str, build: Callable[[], str], types: Mapping[str, str] | None) -> C:
        """Learn *types* of series *ds* if None, GET the rs_list URL, decode it typed."""
        raise NotImplementedError

    def _wait(self, requestid: str, timeout: float, poll: float | None, notfound: int) -> R:
        """Poll exp_status until the export finishes."""
        raise NotImplementedError

    def _download(
        self, status: Mapping[str, Any], dest: str | Path, conc: int, bar: bool | None, ow: bool
    ) -> L:
        """Wait for a pending export, then fetch its files into *dest*."""
        raise NotImplementedError

    def _log_url(self, url: str) -> None:
        logger.log(logging.INFO if self.debug else logging.DEBUG, "URL for request: %s", url)

    def _remember_types(self, name: str, struct: dict[str, Any]) -> dict[str, str]:
        """Cache and return the keyword types of series *name* from its series_struct."""
        checked = P.check_query_status(struct)
        types = {k["name"]: k["type"] for k in checked.get("keywords", [])}
        self._type_cache[name] = types
        return types

    def show_series(self, ds_filter: str | None = None) -> R:
        """List series (``show_series``), optionally filtered by a regex."""
        return self._get(functools.partial(P.show_series_url, self._server, ds_filter))

    def show_series_wrapper(self, ds_filter: str | None = None, *, info: bool = False) -> R:
        """List every public series (``showextseries``); *info* adds descriptions."""
        return self._get(
            functools.partial(P.show_series_wrapper_url, self._server, ds_filter, info=info)
        )

    def series_struct(self, ds: str) -> R:
        """Structure of a series: primekeys, keywords, segments, links, interval."""
        return self._get(functools.partial(P.series_struct_url, self._server, ds))

    def rs_summary(self, ds: str) -> R:
        """Record count of a record set: ``{count, runtime, status}``."""
        return self._get(functools.partial(P.rs_summary_url, self._server, ds))

    def rs_list(
        self,
        ds: str,
        *,
        key: Names = None,
        seg: Names = None,
        link: Names = None,
        recinfo: bool = False,
        n: int | None = None,
        uid: str | None = None,
    ) -> R:
        """Keywords, segments and links of a record set (at least one must be asked)."""
        return self._get(
            functools.partial(
                P.rs_list_url,
                self._server,
                ds,
                key=key,
                seg=seg,
                link=link,
                recinfo=recinfo,
                n=n,
                uid=uid,
            )
        )

    def check_address(self, email: str) -> R:
        """Registration state of an export address: ``{status, msg}`` (2 = registered)."""
        return self._get(functools.partial(P.check_address_url, self._server, email))

    def exp_request(
        self,
        ds: str,
        notify: str,
        *,
        method: str = "url_quick",
        protocol: str = "as-is",
        protocol_args: Mapping[str, Any] | None = None,
        filenamefmt: str | None = None,
        n: int | None = None,
        process: Mapping[str, Mapping[str, Any]] | None = None,
        requestor: str | bool | None = None,
        requester: str | bool | None = None,
    ) -> R:
        """Request an export; ``requester`` is accepted as drms's name for ``requestor``."""
        return self._get(
            functools.partial(
                P.exp_request_url,
                self._server,
                ds,
                notify,
                method=method,
                protocol=protocol,
                protocol_args=protocol_args,
                filenamefmt=filenamefmt,
                n=n,
                process=process,
                requestor=_requestor(requestor, requester),
            )
        )

    def exp_status(self, requestid: str) -> R:
        """Status of an export; when finished, its index.json."""
        return self._get(functools.partial(P.exp_status_url, self._server, requestid))

    def rs_list_columns(
        self,
        ds: str,
        key: Names,
        *,
        n: int | None = None,
        types: Mapping[str, str] | None = None,
    ) -> C:
        """Keywords of a record set as typed columns (sciwire extension).

        Integer keywords (hex QUALITY included) become ints, real ones floats, MISSING
        becomes NaN. *types* default to the series' keyword types (series_struct, cached).
        Raises DrmsQueryError when JSOC reports a failed query.
        """
        build = functools.partial(P.rs_list_url, self._server, ds, key=key, n=n)
        return self._columns(ds, build, types)

    def wait_for_export(
        self,
        requestid: str,
        *,
        timeout: float = 600.0,
        poll: float | None = None,
        retries_notfound: int = 5,
    ) -> R:
        """Poll exp_status until finished; return the finished status (index.json).

        Sleeps the server's ``wait`` (bounded) unless *poll* is given. Raises
        DrmsExportError on failure and :class:`~sciwire.errors.Timeout` at the deadline.
        """
        return self._wait(requestid, timeout, poll, retries_notfound)

    def download(
        self,
        export_status: Mapping[str, Any],
        dest: str | Path,
        *,
        concurrency: int = 4,
        progress: bool | None = None,
        overwrite: bool = False,
    ) -> L:
        """Fetch the files of a finished export into *dest*, concurrently, resuming.

        A pending export is waited for first. Partial files (``name.part``) are resumed
        with HTTP Range; sizes are checked against the server's lengths. The progress
        line goes to stderr, by default only when stderr is a terminal.
        """
        return self._download(export_status, dest, concurrency, progress, overwrite)


class HttpJsonClient(_HttpJsonCalls[dict[str, Any], dict[str, list[Any]], list[Path]]):
    """HTTP/JSON access to the DRMS CGIs of one server.

    Args:
        server: a registered server name (``jsoc``, ``kis``...) or a ServerConfig.
        debug: log each request URL at INFO instead of DEBUG.
        timeout: seconds for connecting and for each read (None waits forever).
        retries: retries of a GET after a connection error (never after a timeout).
    """

    def _open(self, timeout: float | None, retries: int) -> None:
        self._transport = BlockingTransport(timeout=timeout, retries=retries)

    def __enter__(self) -> HttpJsonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the kept-alive connection (the client still works afterwards)."""
        self._transport.close()

    def _json_request(self, url: str) -> HttpJsonRequest:
        self._log_url(url)
        resp = self._transport.get(url)
        return HttpJsonRequest(resp.url, resp.body, self._server.encoding)

    def _get(self, build: Callable[[], str]) -> dict[str, Any]:
        # _json_request(url).data without the request object: the hot path of every call
        url = build()
        if logger.isEnabledFor(logging.INFO if self.debug else logging.DEBUG):
            self._log_url(url)
        return P.decode_json(self._transport.get_body(url), self._server._d.get("encoding"))

    def _columns(
        self, ds: str, build: Callable[[], str], types: Mapping[str, str] | None
    ) -> dict[str, list[Any]]:
        if types is None:
            name = P.series_name(ds)
            types = self._type_cache.get(name)
            if types is None:
                types = self._remember_types(name, self.series_struct(name))
        url = build()
        self._log_url(url)
        body = self._transport.get_body(url)
        return P.rs_list_columns(body, types, self._server.encoding)

    def _wait(
        self, requestid: str, timeout: float, poll: float | None, notfound: int
    ) -> dict[str, Any]:
        return transfer.wait_blocking(
            self.exp_status, requestid, timeout=timeout, poll=poll, retries_notfound=notfound
        )

    def _download(
        self, status: Mapping[str, Any], dest: str | Path, conc: int, bar: bool | None, ow: bool
    ) -> list[Path]:
        status = dict(status)
        if P.check_export_status(status) != 0:
            status = self.wait_for_export(str(status.get("requestid")))
        return transfer.download_blocking(
            P.download_urls(self._server, status),
            Path(dest),
            concurrency=conc,
            progress=bar,
            overwrite=ow,
            timeout=self._transport.timeout,
        )


async def _read_capped(resp: aiohttp.ClientResponse, url: str) -> bytes:
    """The body, refused past the pools' response-body cap (see docs/limits.md)."""
    cap = limits.MAX_RESPONSE_BODY
    body = bytearray()
    async for chunk in resp.content.iter_chunked(65536):
        body += chunk
        if len(body) > cap:
            limits.limit_hit(logger, "max_body (response)", url, f"over {cap} bytes")
            raise RemoteProtocolError("response body too large", f"over {cap} bytes for {url}")
    return bytes(body)


class AsyncHttpJsonClient(
    _HttpJsonCalls[
        Awaitable[dict[str, Any]], Awaitable[dict[str, list[Any]]], Awaitable[list[Path]]
    ]
):
    """The asyncio twin of :class:`HttpJsonClient` (aiohttp, keep-alive, gzip).

    Same constructor and calls; each call returns an awaitable. Use
    ``async with AsyncHttpJsonClient(server) as c: await c.rs_summary(ds)``.
    """

    def _open(self, timeout: float | None, retries: int) -> None:
        self.timeout = timeout
        self.retries = retries
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncHttpJsonClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session (created on first use)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": P.USER_AGENT, "Accept-Encoding": "gzip"},
                trust_env=True,  # http_proxy / https_proxy / no_proxy, as urllib
            )
        return self._session

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _get(self, build: Callable[[], str]) -> dict[str, Any]:
        return P.decode_json(await self._get_raw(build()), self._server.encoding)

    async def _get_raw(self, url: str) -> bytes:
        self._log_url(url)
        for attempt in range(self.retries + 1):
            try:
                async with self.session().get(url) as resp:
                    body = await _read_capped(resp, url)
                    status, reason = resp.status, resp.reason
                break
            except (TimeoutError, asyncio.TimeoutError) as exc:  # (distinct before 3.11)
                raise Timeout(f"JSOC did not answer in time: {url}") from exc
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                if attempt < self.retries:
                    logger.debug("retrying %s after %r", url, exc)
                    continue
                if isinstance(exc, aiohttp.ClientConnectorError):
                    raise ConnectError(f"cannot connect for {url}: {exc}") from exc
                raise ConnectionClosed(f"connection failed for {url}: {exc!r}") from exc
            except aiohttp.ClientResponseError as exc:
                raise RemoteProtocolError(f"bad HTTP answer for {url}", repr(exc)) from exc
        if status >= 400:
            raise DrmsHttpError(
                f"HTTP {status} {reason} for {url}", code=status, data=body[:500].decode("latin1")
            )
        return body

    async def _columns(
        self, ds: str, build: Callable[[], str], types: Mapping[str, str] | None
    ) -> dict[str, list[Any]]:
        if types is None:
            name = P.series_name(ds)
            types = self._type_cache.get(name)
            if types is None:
                types = self._remember_types(name, await self.series_struct(name))
        body = await self._get_raw(build())
        return P.rs_list_columns(body, types, self._server.encoding)

    async def _wait(
        self, requestid: str, timeout: float, poll: float | None, notfound: int
    ) -> dict[str, Any]:
        return await transfer.wait_async(
            self.exp_status, requestid, timeout=timeout, poll=poll, retries_notfound=notfound
        )

    async def _download(
        self, status: Mapping[str, Any], dest: str | Path, conc: int, bar: bool | None, ow: bool
    ) -> list[Path]:
        status = dict(status)
        if P.check_export_status(status) != 0:
            status = await self.wait_for_export(str(status.get("requestid")))
        return await transfer.download_async(
            self.session(),
            P.download_urls(self._server, status),
            Path(dest),
            concurrency=conc,
            progress=bar,
            overwrite=ow,
        )
