"""``JsocEmulator``: the JSOC CGIs and export file server, for offline use.

Serves ``/cgi-bin/ajax/{show_series,showextseries,jsoc_info,jsoc_fetch,checkAddress.sh}``
and export downloads (with HTTP Range) from the synthetic catalog of
:mod:`sciwire.drms._catalog`. Export lifecycle (queued -> processing -> finished ->
expired) runs on an injectable clock, so tests can step it without sleeping.

It serves on :class:`sciwire.core.http.server.HttpServer` (the asyncio server
sciwire.command uses): every CGI answers synchronously inside ``data_received``, with
no task and no aiohttp request/response objects. That cut the emulator's CPU per
keep-alive rs_summary request by about 30% here (and per new-connection request by
about 20%), which is what bounds the client figures in bench/drms.py.
:meth:`JsocEmulator.app` still offers the same routes as an aiohttp application.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_plus

from aiohttp import web

from sciwire.core.http.codec import ParsedRequest, encode_response
from sciwire.core.http.server import HttpServer, Reply
from sciwire.core.portal import Portal
from sciwire.drms._catalog import CATALOG, QueryError, parse_recordset
from sciwire.drms._exports import ExportBook, FileRef
from sciwire.drms.config import ServerConfig, jsoc_layout

__all__ = ["CGI_PATH", "JsocEmulator"]

logger = logging.getLogger(__name__)

#: Where the CGIs live, as on jsoc.stanford.edu.
CGI_PATH = "/cgi-bin/ajax/"
_GZIP_MIN = 1024
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


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
        self._queries: dict[str, dict[str, str]] = {}
        self.faults: list[str] = []
        self.errors = 0
        self._http: _JsocHttp | None = None
        self._portal: Portal | None = None
        self._stopping: asyncio.Event | None = None
        self._cgis: dict[str, Callable[[dict[str, str]], Any]] = {
            "show_series": self._show_series,
            "showextseries": self._showextseries,
            "jsoc_info": self._jsoc_info,
            "jsoc_fetch": self._jsoc_fetch,
            "checkAddress.sh": self._check_address,
        }

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
        """The same routes as an aiohttp application (to mount in an aiohttp server)."""

        async def handle(request: web.Request) -> web.StreamResponse:
            headers = {k.lower(): v for k, v in request.headers.items()}
            answer = self._handle(request.method, request.raw_path, headers)
            if not isinstance(answer, _Answer):
                answer = await answer
            if answer.close and request.transport is not None:
                request.transport.close()
            return web.Response(
                status=answer.status,
                body=answer.body,
                headers={"Content-Type": answer.content_type, **answer.headers},
            )

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app

    async def start(self) -> None:
        """Bind and serve on the running loop."""
        self._stopping = asyncio.Event()
        http = _JsocHttp(self._handle, self.host, self.port)
        await http.start()
        self._http = http
        self.port = http.port
        logger.debug("JSOC emulator on %s", self.url)

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._stopping is not None:
            self._stopping.set()
        if self._http is not None:
            http, self._http = self._http, None
            await http.stop()

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

    # -- routing ---------------------------------------------------------------------

    def _handle(
        self, method: str, target: str, headers: dict[str, str]
    ) -> _Answer | Awaitable[_Answer]:
        """Answer one request (*headers* with lower-case names), as aiohttp routed it."""
        raw_path, _, qs = target.partition("?")
        path = unquote(raw_path) if "%" in raw_path else raw_path
        cgi = self._cgis.get(path[len(CGI_PATH) :]) if path.startswith(CGI_PATH) else None
        is_file = cgi is None and path.startswith("/SUM") and len(path) > 4
        if cgi is None and not is_file:
            return _Answer(404, b"404: Not Found", "text/plain; charset=utf-8")
        if method not in ("GET", "HEAD"):
            return _Answer(
                405,
                b"405: Method Not Allowed",
                "text/plain; charset=utf-8",
                {"Allow": "GET,HEAD"},
            )
        self.requests.append(target)
        if is_file:
            return self._file(path, headers)
        assert cgi is not None
        return self._reply(cgi(self._query(qs)), headers)

    def _query(self, qs: str) -> dict[str, str]:
        # clients repeat the same queries (polling, paging): keep the parsed ones (bounded)
        parsed = self._queries.get(qs)
        if parsed is None:
            parsed = {}
            for key, value in parse_qsl(qs, keep_blank_values=True):
                parsed.setdefault(key, value)  # the first value wins, as with aiohttp
            if len(self._queries) >= 1024:
                self._queries.clear()
            self._queries[qs] = parsed
        return dict(parsed)  # a copy: handlers may keep or change theirs

    def _reply(self, data: Any, headers: dict[str, str]) -> _Answer | Awaitable[_Answer]:
        fault = self.faults.pop(0) if self.faults else None
        if fault == "hang":
            return self._hang()
        if fault == "http500":
            return _Answer(500, b"Internal Server Error", "text/plain; charset=utf-8")
        if fault == "close":
            return _Answer(500, close=True)
        if fault == "badjson":
            body = b'{"status": 0, "count": '
        else:
            body = data if isinstance(data, bytes) else _dump(data)
        if len(body) >= _GZIP_MIN and "gzip" in headers.get("accept-encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            return _Answer(200, body, headers={"Content-Encoding": "gzip"})
        return _Answer(200, body)

    async def _hang(self) -> _Answer:
        if self._stopping is None:
            self._stopping = asyncio.Event()
        await self._stopping.wait()
        return _Answer(503, b"503: Service Unavailable", "text/plain; charset=utf-8")

    # -- CGIs ------------------------------------------------------------------------

    def _show_series(self, q: dict[str, str]) -> Any:
        try:
            pattern = re.compile(q.get("filter", ""), re.IGNORECASE)
        except re.error as exc:
            return {"status": 1, "errmsg": f"bad filter: {exc}"}
        names = [
            {"name": s.name, "primekeys": ", ".join(s.primekeys), "note": s.note}
            for s in CATALOG.values()
            if pattern.search(s.name)
        ]
        return {"status": 0, "names": names, "n": len(names)}

    def _showextseries(self, q: dict[str, str]) -> Any:
        try:
            pattern = re.compile(q.get("filter", ""), re.IGNORECASE)
        except re.error as exc:
            return {"errMsg": f"bad filter: {exc}", "seriesList": []}
        series = [s for s in CATALOG.values() if pattern.search(s.name)]
        items: list[Any]
        if q.get("info") == "1":
            items = [{s.name: {"description": s.note}} for s in series]
        else:
            items = [s.name for s in series]
        return {"errMsg": "", "seriesList": items}

    def _jsoc_info(self, q: dict[str, str]) -> Any:
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
                data = self._rs_list(q)
            else:
                raise QueryError(f"Unknown jsoc_info op: {op!r}")
        except QueryError as exc:
            self.errors += 1
            data = {"status": 1, "error": str(exc)}
        return data

    def _rs_list(self, q: dict[str, str]) -> dict[str, Any]:
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

    def _check_address(self, q: dict[str, str]) -> Any:
        address = q.get("address", "")
        # drms quote_plus()es the address before urlencoding it: undo both layers.
        address = unquote_plus(address)
        if not _EMAIL.match(address):
            data = {"status": -2, "msg": "Not a valid email address"}
        elif address in self.registered:
            data = {"status": 2, "msg": "Address is registered"}
        elif address in self.pending_registrations:
            data = {"status": 3, "msg": "Registration pending"}
        elif q.get("checkonly") == "1":
            data = {"status": 4, "msg": "Address is not registered"}
        else:
            self.pending_registrations.add(address)
            data = {"status": 1, "msg": "Registration started; reply to the email"}
        return data

    def _jsoc_fetch(self, q: dict[str, str]) -> Any:
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
        return data

    def _file(self, path: str, headers: dict[str, str]) -> _Answer:
        ref: FileRef | None = self.book.file(path)
        if ref is None:
            return _Answer(404, b"404: Not Found", "text/plain; charset=utf-8")
        body = ref.data()
        size = len(body)
        m = _RANGE.match(headers.get("range", "").strip())
        base = {"Accept-Ranges": "bytes"}
        if m:
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else size - 1
            if start >= size:
                return _Answer(
                    416, b"", ref.content_type, {**base, "Content-Range": f"bytes */{size}"}
                )
            end = min(end, size - 1)
            return _Answer(
                206,
                body[start : end + 1],
                ref.content_type,
                {**base, "Content-Range": f"bytes {start}-{end}/{size}"},
            )
        return _Answer(200, body, ref.content_type, base)


@dataclass
class _Answer:
    """One reply, before it is encoded for either server."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    #: drop the connection without answering (the "close" fault)
    close: bool = False


#: answers one request: (method, target, lower-case headers) -> answer, now or later
_Answerer = Callable[[str, str, dict[str, str]], "_Answer | Awaitable[_Answer]"]


class _JsocHttp(HttpServer):
    """The emulator's routes on sciwire's asyncio HTTP server."""

    def __init__(self, answer: _Answerer, host: str, port: int) -> None:
        super().__init__(
            host=host,
            port=port,
            ssl_context=None,
            max_body=1 << 20,
            shutdown_timeout=5.0,
            name="jsoc-emulator",
        )
        self.answer = answer  # the emulator's router, shared with its aiohttp app()

    def respond(self, req: ParsedRequest, remote: str | None) -> Reply:
        answer = self.answer(req.method, req.target, req.headers)
        if isinstance(answer, _Answer):
            return self._encode(answer, req)
        return self._later(answer, req)

    async def _later(self, answer: Awaitable[_Answer], req: ParsedRequest) -> bytes:
        return self._encode(await answer, req)

    @staticmethod
    def _encode(answer: _Answer, req: ParsedRequest) -> bytes:
        if answer.close:
            req.keep_alive = False  # the connection closes with nothing written
            return b""
        return encode_response(
            answer.status,
            answer.body,
            answer.content_type,
            keep_alive=req.keep_alive,
            headers=answer.headers,
            head_only=req.method == "HEAD",
        )


def _dump(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode("latin1")
