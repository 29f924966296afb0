"""``AsyncHttpJsonClient``: the asyncio DRMS JSON client (public in ``sciwire.drms.json``).

The hand-written source of both clients: tools/unasync.py generates the blocking one
from this file, so the two cannot drift (same calls, arguments, retries, timeouts and
errors). This layer only builds URLs, logs, decodes and waits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sciwire.drms._protocol as P
from sciwire.drms._aiotransport import AsyncTransport
from sciwire.drms._downloads import download_async
from sciwire.drms._transfer import ExportPoll
from sciwire.drms.config import ServerConfig, get_server

__all__ = ["AsyncHttpJsonClient"]

logger = logging.getLogger("sciwire.drms.json")

Names = str | Sequence[str] | None


class AsyncHttpJsonClient:
    """HTTP/JSON access to the DRMS CGIs of one server.

    Args:
        server: a registered server name (``jsoc``, ``kis``...) or a ServerConfig.
        debug: log each request URL at INFO instead of DEBUG.
        timeout: seconds for connecting and for each whole answer (None waits forever).
        retries: how often a GET is sent again after a connection error (never after
            a timeout).
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
        self._transport = AsyncTransport(timeout=timeout, retries=retries)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self._server.name}>"

    @property
    def server(self) -> ServerConfig:
        """The server configuration in use."""
        return self._server

    @property
    def timeout(self) -> float | None:
        """Seconds for connecting and for each whole answer."""
        return self._transport.timeout

    @property
    def retries(self) -> int:
        """How often a GET is sent again after a connection error."""
        return self._transport.retries

    async def __aenter__(self) -> AsyncHttpJsonClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the kept-alive connections (the client still works afterwards)."""
        await self._transport.close()

    def __del__(self) -> None:
        # drms users never close a client: drop its kept connections when it goes,
        # rather than leave the sockets to the garbage collector (a ResourceWarning)
        transport = self.__dict__.get("_transport")
        if transport is not None:
            with contextlib.suppress(Exception):  # never raise from a finalizer
                transport.abort()

    def _log_url(self, url: str) -> None:
        logger.log(logging.INFO if self.debug else logging.DEBUG, "URL for request: %s", url)

    async def _raw(self, url: str) -> bytes:
        """GET *url* on a kept connection and return the body (for Client's fast paths)."""
        self._log_url(url)
        return await self._transport.get_body(url)

    async def _get(self, url: str) -> dict[str, Any]:
        """GET *url* and decode the JSON object: the path of every call."""
        if logger.isEnabledFor(logging.INFO if self.debug else logging.DEBUG):
            self._log_url(url)
        # the config's dict, not its attribute lookup (a __getattr__): once per call
        encoding = self._server._d.get("encoding")
        return P.decode_json(await self._transport.get_body(url), encoding)

    async def show_series(self, ds_filter: str | None = None) -> dict[str, Any]:
        """List series (``show_series``), optionally filtered by a regex."""
        return await self._get(P.show_series_url(self._server, ds_filter))

    async def show_series_wrapper(
        self, ds_filter: str | None = None, *, info: bool = False
    ) -> dict[str, Any]:
        """List every public series (``showextseries``); *info* adds descriptions."""
        return await self._get(P.show_series_wrapper_url(self._server, ds_filter, info=info))

    async def series_struct(self, ds: str) -> dict[str, Any]:
        """Structure of a series: primekeys, keywords, segments, links, interval."""
        return await self._get(P.series_struct_url(self._server, ds))

    async def rs_summary(self, ds: str) -> dict[str, Any]:
        """Record count of a record set: ``{count, runtime, status}``."""
        return await self._get(P.rs_summary_url(self._server, ds))

    async def rs_list(
        self,
        ds: str,
        *,
        key: Names = None,
        seg: Names = None,
        link: Names = None,
        recinfo: bool = False,
        n: int | None = None,
        uid: str | None = None,
    ) -> dict[str, Any]:
        """Keywords, segments and links of a record set (at least one must be asked)."""
        url = P.rs_list_url(
            self._server, ds, key=key, seg=seg, link=link, recinfo=recinfo, n=n, uid=uid
        )
        return await self._get(url)

    async def check_address(self, email: str) -> dict[str, Any]:
        """Registration state of an export address: ``{status, msg}`` (2 = registered)."""
        return await self._get(P.check_address_url(self._server, email))

    async def exp_request(
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
    ) -> dict[str, Any]:
        """Request an export; ``requester`` is accepted as drms's name for ``requestor``."""
        url = P.exp_request_url(
            self._server,
            ds,
            notify,
            method=method,
            protocol=protocol,
            protocol_args=protocol_args,
            filenamefmt=filenamefmt,
            n=n,
            process=process,
            requestor=requester if requestor is None else requestor,
        )
        return await self._get(url)

    async def exp_status(self, requestid: str) -> dict[str, Any]:
        """Status of an export; when finished, its index.json."""
        return await self._get(P.exp_status_url(self._server, requestid))

    async def rs_list_columns(
        self,
        ds: str,
        key: Names,
        *,
        n: int | None = None,
        types: Mapping[str, str] | None = None,
    ) -> dict[str, list[Any]]:
        """Keywords of a record set as typed columns (sciwire extension).

        Integer keywords (hex QUALITY included) become ints, real ones floats, MISSING
        becomes NaN. *types* default to the series' keyword types (series_struct, cached).
        Raises DrmsQueryError when JSOC reports a failed query.
        """
        url = P.rs_list_url(self._server, ds, key=key, n=n)
        if types is None:
            name = P.series_name(ds)
            types = self._type_cache.get(name)
            if types is None:
                struct = P.check_query_status(await self.series_struct(name))
                types = {k["name"]: k["type"] for k in struct.get("keywords", [])}
                self._type_cache[name] = types
        return P.rs_list_columns(await self._raw(url), types, self._server.encoding)

    async def wait_for_export(
        self,
        requestid: str,
        *,
        timeout: float = 600.0,
        poll: float | None = None,
        retries_notfound: int = 5,
    ) -> dict[str, Any]:
        """Poll exp_status until finished; return the finished status (index.json).

        Sleeps the server's ``wait`` (bounded) unless *poll* is given. Raises
        DrmsExportError on failure and :class:`~sciwire.errors.Timeout` at the deadline.
        """
        clock = self._transport.clock
        state = ExportPoll(requestid, timeout, poll, retries_notfound, clock())
        while True:
            d = await self.exp_status(requestid)
            pause = state.pause(d, clock())
            if pause is None:
                return d
            await self._transport.sleep(pause)

    async def download(
        self,
        export_status: Mapping[str, Any],
        dest: str | Path,
        *,
        concurrency: int = 4,
        progress: bool | None = None,
        overwrite: bool = False,
    ) -> list[Path]:
        """Fetch the files of a finished export into *dest*, concurrently, resuming.

        A pending export is waited for first. Partial files (``name.part``) are resumed
        with HTTP Range; sizes are checked against the server's lengths. The progress
        line goes to stderr, by default only when stderr is a terminal.
        """
        status = dict(export_status)
        if P.check_export_status(status) != 0:
            status = await self.wait_for_export(str(status.get("requestid")))
        return await download_async(
            self._transport,
            P.download_urls(self._server, status),
            Path(dest),
            concurrency=concurrency,
            progress=progress,
            overwrite=overwrite,
        )
