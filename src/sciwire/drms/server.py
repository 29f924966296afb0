"""``JsocEmulator``: the JSOC CGIs and export file server on aiohttp, for offline use.

Serves ``/cgi-bin/ajax/{show_series,showextseries,jsoc_info,jsoc_fetch,checkAddress.sh}``
and export downloads (with HTTP Range) from the synthetic catalog of
:mod:`sciwire.drms.catalog`. Export lifecycle (queued -> processing -> finished ->
expired) runs on an injectable clock, so tests can step it without sleeping.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from sciwire.core.portal import Portal
from sciwire.drms.catalog import CATALOG, QueryError, parse_recordset
from sciwire.drms.config import ServerConfig, jsoc_layout
from sciwire.drms.exports import ExportBook, FileRef

__all__ = ["CGI_PATH", "JsocEmulator"]

logger = logging.getLogger(__name__)

#: Where the CGIs live, as on jsoc.stanford.edu.
CGI_PATH = "/cgi-bin/ajax/"
_GZIP_MIN = 1024
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class JsocEmulator:
    """A JSOC look-alike on loopback.

    Args:
        host: address to bind.
        port: port to bind (0 picks a free one; read :attr:`port` after start).
        clock: monotonic seconds, for the export lifecycle (inject to step time in tests).
        queue_time: seconds an export stays queued (status 2).
        processing_time: seconds it then stays processing (status 1).
        retention: seconds a finished export stays available before it expires (5).
        registered: addresses registered for exports.
        quick_limit: url_quick/as-is requests up to this many records finish at once.
        max_records: largest record set a query may touch.
        pending_limit: unfinished exports allowed per user (status 7 beyond).

    Attributes:
        requests: each request's path and raw query string, in arrival order (the
            last 10,000).
        faults: injected faults consumed one per CGI request: ``"badjson"``,
            ``"http500"``, ``"hang"`` (never answers until stop) or ``"close"``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        queue_time: float = 0.2,
        processing_time: float = 0.3,
        retention: float = 3600.0,
        registered: Iterable[str] = ("user@example.com", "drms@example.org"),
        quick_limit: int = 100,
        max_records: int = 1_000_000,
        pending_limit: int = 1,
    ) -> None:
        self.host = host
        self.port = port
        self.clock = clock
        self.quick_limit = quick_limit
        self.max_records = max_records
        self.registered = set(registered)
        self.pending_registrations: set[str] = set()
        self.book = ExportBook(
            clock, queue_time, processing_time, retention, pending_limit, max_records
        )
        # bounded, so a long-running emulator does not grow without limit
        self.requests: deque[str] = deque(maxlen=10_000)
        self._summaries: dict[str, bytes] = {}
        self.faults: list[str] = []
        self.errors = 0
        self._runner: web.AppRunner | None = None
        self._portal: Portal | None = None
        self._stopping: asyncio.Event | None = None

    # -- life cycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8080/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def server_config(self, name: str = "emulator") -> ServerConfig:
        """A ServerConfig pointing at this emulator (JSOC layout)."""
        return jsoc_layout(name, self.url)

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        app.router.add_get(CGI_PATH + "show_series", self._show_series)
        app.router.add_get(CGI_PATH + "showextseries", self._showextseries)
        app.router.add_get(CGI_PATH + "jsoc_info", self._jsoc_info)
        app.router.add_get(CGI_PATH + "jsoc_fetch", self._jsoc_fetch)
        app.router.add_get(CGI_PATH + "checkAddress.sh", self._check_address)
        app.router.add_get("/{path:SUM.+}", self._file)
        return app

    async def start(self) -> None:
        """Bind and serve on the running loop."""
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        logger.debug("JSOC emulator on %s", self.url)

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def start_background(self) -> JsocEmulator:
        """Serve from a background loop thread (for blocking code); returns self."""
        portal = Portal("jsoc-emulator")
        portal.start()
        try:
            portal.call(self.start(), timeout=10)
        except BaseException:
            portal.stop()
            raise
        self._portal = portal
        return self

    def stop_background(self) -> None:
        """Stop the background server and its loop thread (idempotent)."""
        portal, self._portal = self._portal, None
        if portal is not None:
            try:
                portal.call(self.stop(), timeout=10)
            finally:
                portal.stop()

    def __enter__(self) -> JsocEmulator:
        return self.start_background()

    def __exit__(self, *exc: object) -> None:
        self.stop_background()

    async def __aenter__(self) -> JsocEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- helpers ---------------------------------------------------------------------

    async def _reply(self, request: web.Request, data: Any) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        fault = self.faults.pop(0) if self.faults else None
        if fault == "hang":
            assert self._stopping is not None
            await self._stopping.wait()
            raise web.HTTPServiceUnavailable()
        if fault == "http500":
            return web.Response(status=500, text="Internal Server Error")
        if fault == "close" and request.transport is not None:
            request.transport.close()
            return web.Response(status=500)
        if fault == "badjson":
            body = b'{"status": 0, "count": '
        else:
            body = data if isinstance(data, bytes) else _dump(data)
        if len(body) >= _GZIP_MIN and "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            return web.Response(
                body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
            )
        return web.Response(body=body, content_type="application/json")

    # -- CGIs ------------------------------------------------------------------------

    async def _show_series(self, request: web.Request) -> web.StreamResponse:
        try:
            pattern = re.compile(request.query.get("filter", ""), re.IGNORECASE)
        except re.error as exc:
            return await self._reply(request, {"status": 1, "errmsg": f"bad filter: {exc}"})
        names = [
            {"name": s.name, "primekeys": ", ".join(s.primekeys), "note": s.note}
            for s in CATALOG.values()
            if pattern.search(s.name)
        ]
        return await self._reply(request, {"status": 0, "names": names, "n": len(names)})

    async def _showextseries(self, request: web.Request) -> web.StreamResponse:
        try:
            pattern = re.compile(request.query.get("filter", ""), re.IGNORECASE)
        except re.error as exc:
            return await self._reply(request, {"errMsg": f"bad filter: {exc}", "seriesList": []})
        series = [s for s in CATALOG.values() if pattern.search(s.name)]
        items: list[Any]
        if request.query.get("info") == "1":
            items = [{s.name: {"description": s.note}} for s in series]
        else:
            items = [s.name for s in series]
        return await self._reply(request, {"errMsg": "", "seriesList": items})

    async def _jsoc_info(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        op = q.get("op", "")
        ds = q.get("ds", "")
        data: Any
        try:
            if op == "series_struct":
                name = ds.split("[")[0].split("{")[0].strip().lower()
                series = CATALOG.get(name)
                if series is None:
                    raise QueryError(f"Unknown series: {ds}")
                data = series.struct()
            elif op == "rs_summary":
                # answers are a pure function of ds: keep the encoded ones (bounded)
                data = self._summaries.get(ds)
                if data is None:
                    count = len(parse_recordset(ds, limit=self.max_records).records)
                    if len(self._summaries) >= 1024:
                        self._summaries.clear()
                    data = _dump({"count": count, "runtime": 0.001, "status": 0})
                    self._summaries[ds] = data
            elif op == "rs_list":
                data = self._rs_list(request)
            else:
                raise QueryError(f"Unknown jsoc_info op: {op!r}")
        except QueryError as exc:
            self.errors += 1
            data = {"status": 1, "error": str(exc)}
        return await self._reply(request, data)

    def _rs_list(self, request: web.Request) -> dict[str, Any]:
        q = request.query
        rs = parse_recordset(q.get("ds", ""), limit=self.max_records)
        records = rs.records
        if "n" in q:
            try:
                n = int(q["n"])
            except ValueError as exc:
                raise QueryError(f"Invalid n: {q['n']}") from exc
            records = records[:n] if n >= 0 else records[n:]
        if not records:
            return {"count": 0, "runtime": 0.001, "status": 0}
        series = rs.series
        out: dict[str, Any] = {}
        keys = [k for k in q.get("key", "").split(",") if k]
        if keys == ["**ALL**"]:
            keys = [k.name for k in series.keywords]
        if keys and keys != ["**NONE**"]:
            out["keywords"] = [{"name": k, "values": series.values(k, records)} for k in keys]
        segs = [s for s in q.get("seg", "").split(",") if s]
        if segs:
            out["segments"] = [self._segment(series, s, records) for s in segs]
        links = [s for s in q.get("link", "").split(",") if s]
        if links:
            out["links"] = [{"name": s, "values": ["Invalid_Link"] * len(records)} for s in links]
        if q.get("R") == "1":
            out["recinfo"] = [{"name": series.record_name(r), "online": "Y"} for r in records]
        out.update(count=len(records), runtime=0.001, status=0)
        return out

    @staticmethod
    def _segment(series: Any, name: str, records: Any) -> dict[str, Any]:
        n = len(records)
        if name != series.segment:
            values = ["InvalidSegName"] * n
        else:
            values = [series.segment_path(r) for r in records]
        return {
            "name": name,
            "values": values,
            "dims": ["8x8"] * n,
            "cparms": [""] * n,
            "bzeros": ["0"] * n,
            "bscales": ["1"] * n,
        }

    async def _check_address(self, request: web.Request) -> web.StreamResponse:
        address = request.query.get("address", "")
        # drms quote_plus()es the address before urlencoding it: undo both layers.
        from urllib.parse import unquote_plus

        address = unquote_plus(address)
        if not _EMAIL.match(address):
            data = {"status": -2, "msg": "Not a valid email address"}
        elif address in self.registered:
            data = {"status": 2, "msg": "Address is registered"}
        elif address in self.pending_registrations:
            data = {"status": 3, "msg": "Registration pending"}
        elif request.query.get("checkonly") == "1":
            data = {"status": 4, "msg": "Address is not registered"}
        else:
            self.pending_registrations.add(address)
            data = {"status": 1, "msg": "Registration started; reply to the email"}
        return await self._reply(request, data)

    async def _jsoc_fetch(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        op = q.get("op", "")
        if op == "exp_request":
            notify = q.get("notify", "")
            if notify not in self.registered:
                data: dict[str, Any] = {
                    "status": 4,
                    "error": f"Email address {notify!r} is not registered for exports",
                    "wait": 999999,
                }
            else:
                data = self.book.request(q, quick_limit=self.quick_limit)
        elif op == "exp_status":
            data = self.book.status(q.get("requestid", ""))
        else:
            data = {"status": 4, "error": f"Unknown jsoc_fetch op: {op!r}"}
        return await self._reply(request, data)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        ref: FileRef | None = self.book.file("/" + request.match_info["path"])
        if ref is None:
            raise web.HTTPNotFound()
        body = ref.data()
        size = len(body)
        rng = request.headers.get("Range", "")
        m = re.match(r"^bytes=(\d+)-(\d*)$", rng.strip())
        base = {"Accept-Ranges": "bytes", "Content-Type": ref.content_type}
        if m:
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else size - 1
            if start >= size:
                return web.Response(
                    status=416, headers={**base, "Content-Range": f"bytes */{size}"}
                )
            end = min(end, size - 1)
            return web.Response(
                status=206,
                body=body[start : end + 1],
                headers={**base, "Content-Range": f"bytes {start}-{end}/{size}"},
            )
        return web.Response(body=body, headers=base)


def _dump(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode("latin1")
