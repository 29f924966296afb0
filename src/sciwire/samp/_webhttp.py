"""The Web Profile's HTTP server, on the shared HTTP/1.1 layer (:mod:`sciwire.core.http`).

:class:`WebServer` listens, owns the connections and answers each request through one
handler, ``handle(WebRequest) -> WebReply``, run as a task (a ``pullCallbacks`` long
poll waits there; a client that hangs up cancels it). Framing, the body cap (413),
pipelining order and strict parsing come from
:class:`~sciwire.core.http.server.HttpConnection`.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sciwire.core.http.codec import ParsedRequest, encode_response
from sciwire.core.http.server import HttpConnection
from sciwire.samp._http import Accepted, TrackedConnection, stop_serving

__all__ = ["WebReply", "WebRequest", "WebServer"]

logger = logging.getLogger(__name__)

#: Seconds a stopping server waits for answers under way before cancelling them.
STOP_GRACE = 2.0


@dataclass(frozen=True)
class WebRequest:
    """One request, as the Web Profile sees it.

    Attributes:
        method: the HTTP method.
        path: the percent-decoded path.
        query: the query's first value for each name.
        headers: header names lower-cased.
        body: the request body.
        remote: the peer's address.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    remote: str | None


@dataclass
class WebReply:
    """One answer: status, body, content type and extra headers."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


WebHandler = Callable[[WebRequest], Awaitable[WebReply]]


def _request(req: ParsedRequest, remote: str | None) -> WebRequest:
    parts = urllib.parse.urlsplit(req.target)
    query: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(name, value)
    path = urllib.parse.unquote(parts.path or "/")
    return WebRequest(req.method, path, query, req.headers, req.body, remote)


class WebServer:
    """Serves the Web Profile port (a :class:`~sciwire.core.http.server.ConnectionHost`).

    Args:
        handle: answers one request.
        max_body: the largest request body accepted (413 beyond).
    """

    concurrent = True

    def __init__(self, handle: WebHandler, max_body: int) -> None:
        self._handle = handle
        self.max_body = max_body
        self.errors = 0
        self.connections: set[HttpConnection] = set()
        self.tasks: set[asyncio.Future[bytes]] = set()
        self.stopping = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._accepted = Accepted()  # from accept to close, for stop (issue #13)

    async def start(self, addr: str, port: int) -> None:
        """Bind *addr*:*port* and serve (OSError when the port is taken)."""
        loop = asyncio.get_running_loop()
        self.stopping = False
        accepted = self._accepted = Accepted()
        self._server = await loop.create_server(
            lambda: TrackedConnection(self, accepted),
            addr,
            port,
            backlog=1024,
            reuse_address=True,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and close every connection (their tasks are cancelled)."""
        server, self._server = self._server, None
        self.stopping = True
        if server is None:
            return
        # answers already under way (long polls just woken by the hub) get a moment to
        # leave, as aiohttp's shutdown timeout gave them; then the rest is cancelled
        # (connections made meanwhile close at once: stopping is set)
        pending = {task for conn in self.connections for task in conn.pending}
        if pending:
            await asyncio.wait(pending, timeout=STOP_GRACE)
        await stop_serving(server, self._accepted, STOP_GRACE)
        self.connections.clear()

    # -- ConnectionHost -------------------------------------------------------------

    def respond(self, req: ParsedRequest, remote: str | None) -> Awaitable[bytes]:
        """Answer one request (see :class:`~sciwire.core.http.server.ConnectionHost`)."""
        return self._answer(req, remote)

    async def _answer(self, req: ParsedRequest, remote: str | None) -> bytes:
        try:
            reply = await self._handle(_request(req, remote))
        except Exception:  # a bug: answer 500 and keep serving
            logger.exception("Web Profile request %s %.80s failed", req.method, req.target)
            reply = WebReply(500, b"internal error")
        return encode_response(
            reply.status,
            reply.body,
            reply.content_type,
            keep_alive=req.keep_alive,
            headers=reply.headers,
            head_only=req.method == "HEAD",
        )

    def error_response(self, status: int, message: str) -> bytes:
        """The closing answer to a request that could not be parsed."""
        return encode_response(
            status, message.encode("utf-8", "replace"), "text/plain", keep_alive=False
        )

    def loop_time(self) -> float:
        """The serving loop's clock."""
        return asyncio.get_running_loop().time()
