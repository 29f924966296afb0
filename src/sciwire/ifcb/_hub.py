"""A SignalR hub server (JSON protocol, WebSockets) on aiohttp.

Serves ``POST {path}/negotiate`` (versions 0 and 1) and the WebSocket at ``{path}``
(with ``?id=`` from negotiate, or without to skip negotiation). Each connection runs
the sans-I/O :class:`~sciwire.ifcb._signalr.SignalRConnection` in the server role:
handshake (versions 0-2), keep-alive pings, client timeout, Completions for invocations
with an id. Outgoing records are queued and written by one task per connection, so a
burst goes out as few frames holding many records.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
import struct
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from sciwire.errors import SciwireError, Timeout
from sciwire.ifcb._signalr import (
    MAX_MESSAGE_SIZE,
    MAX_RECORD_SIZE,
    SERVER_VERSIONS,
    Close,
    Completion,
    HandshakeRequest,
    Invocation,
    Item,
    RecordTooLarge,
    SignalRConnection,
    negotiate_response,
)

__all__ = ["HubConnection", "HubServer", "HubSettings"]

logger = logging.getLogger(__name__)

HubMethod = Callable[..., Any]

_MESSAGE_TOO_BIG = 1009  # RFC 6455 7.4.1: the close code for an over-long message
_LEN2 = struct.Struct("!BBH").pack
_LEN8 = struct.Struct("!BBQ").pack
# ask aiohttp to check for a full socket buffer on every frame it sends (aiohttp >= 3.11)
_WS_OPTIONS: dict[str, Any] = (
    {"writer_limit": 0}
    if "writer_limit" in inspect.signature(web.WebSocketResponse).parameters
    else {}
)


#: default cap on the records queued for one client (setting ``max_queued``)
MAX_QUEUED = 100_000

#: a coalesced frame holds records up to about this many characters (at most 3 bytes each
#: in UTF-8), so a burst never makes one frame over a peer's 4 MiB message cap
FRAME_CHARS = 1024 * 1024


def _coalesce(records: list[str]) -> list[str]:
    """Join queued records into as few frames as :data:`FRAME_CHARS` allows (a record
    longer than that still travels alone, whole)."""
    if len(records) == 1:
        return [records[0]]
    if sum(map(len, records)) <= FRAME_CHARS:  # the common case: one frame
        return ["".join(records)]
    frames: list[str] = []
    start = size = 0
    for index, record in enumerate(records):
        if size and size + len(record) > FRAME_CHARS:
            frames.append("".join(records[start:index]))
            start, size = index, 0
        size += len(record)
    frames.append("".join(records[start:]))
    return frames


def _text_frame(text: str) -> bytes:
    """One final, unmasked WebSocket text frame (server to client, RFC 6455 5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return _LEN2(0x81, 126, size) + payload
    return _LEN8(0x81, 127, size) + payload


class HubSettings(Protocol):
    """What a connection reads from its server (the seam between them)."""

    keep_alive_interval: float
    client_timeout: float
    handshake_timeout: float
    max_record_size: int
    max_queued: int
    coalesce: bool


class HubConnection:
    """The server's view of one client connection.

    Args:
        hub: the server's settings: timers, limits, coalescing.
        connection_id: the SignalR connection id.
        ws: the prepared WebSocket.
        transport: the connection's TCP transport, to write frame bursts and to abort.
    """

    def __init__(
        self,
        hub: HubSettings,
        connection_id: str,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.hub = hub
        self.id = connection_id
        self.ws = ws
        self._transport = transport
        self.proto = SignalRConnection(
            "server",
            loop.time(),
            keep_alive_interval=hub.keep_alive_interval,
            server_timeout=hub.client_timeout,
            handshake_timeout=hub.handshake_timeout,
            max_record_size=hub.max_record_size,
        )
        #: the client's address as "host:port" (for logs)
        self.peer = "?"
        #: set by the hub's fault controls: read nothing, send nothing (a half-open peer)
        self.frozen = False
        self.items: dict[str, Any] = {}
        self._queue: list[str] = []
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._closing = False
        self._loop = loop

    @property
    def open(self) -> bool:
        """True while the handshake is done and the connection not closed."""
        return self.proto.state == "open" and not self.ws.closed

    def send(self, target: str, *arguments: Any) -> None:
        """Queue a fire-and-forget invocation of *target* on the client."""
        if self.proto.state != "open" or self._closing:
            return
        self.enqueue(self.proto.send(Invocation(target, list(arguments)), self._loop.time()))

    def send_record(self, record: str) -> None:
        """Queue an already encoded record (one JSON hub message ending in 0x1E)."""
        if self.proto.state != "open" or self._closing:
            return
        self.proto.note_sent(self._loop.time())
        self.enqueue(record)

    def send_records(self, records: list[str]) -> None:
        """Queue several already encoded records at once."""
        if self.proto.state != "open" or self._closing:
            return
        self.proto.note_sent(self._loop.time())
        self._queue.extend(records)
        self._queued()

    def enqueue(self, record: str) -> None:
        """Queue one encoded record in any state (the hub's handshake answers, completions)."""
        self._queue.append(record)
        self._queued()

    def _queued(self) -> None:
        if len(self._queue) > self.hub.max_queued > 0:
            self._too_slow()
            return
        self._drained.clear()
        self._wake.set()

    def over_limit(self, limit: str, detail: str) -> None:
        """Say that this connection is closed for passing *limit*: the one log line it gets."""
        logger.warning("closing connection %s from %s: %s: %s", self.id, self.peer, limit, detail)

    def _too_slow(self) -> None:
        # a client that does not read would grow the queue without bound
        self.over_limit("max_queued", f"more than {self.hub.max_queued} records wait for it")
        self._queue.clear()
        self.abort()
        self._drained.set()

    async def drain(self) -> None:
        """Wait until everything queued has been handed to the writer (which may still be
        writing the last batch it took)."""
        if self._queue or self._wake.is_set():
            await self._drained.wait()

    async def close(self, error: str | None = None, *, abort: bool = False) -> None:
        """Send Close (with *error*) after the queue, then close the socket: with the
        WebSocket closing handshake, or at once if *abort* (for a peer that broke a
        limit, which would otherwise be read until it answers the handshake)."""
        if self.proto.state == "open" and not self._closing:
            self.enqueue(self.proto.close(self._loop.time(), error))
        self._closing = True
        self._wake.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.drain(), 2.0)
        if abort:
            self.abort()
            return
        await self.ws.close()

    def abort(self) -> None:
        """Drop the TCP connection without a Close message or WebSocket close frame."""
        self._closing = True
        transport = self._transport
        if transport is not None:
            transport.abort()

    async def run(self, read: Callable[[HubConnection], Awaitable[None]]) -> None:
        """Write and keep time for this connection while *read* reads it; stop after."""
        writer = asyncio.create_task(self._writer())
        timers = asyncio.create_task(self._timers())
        try:
            await read(self)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.proto.connection_lost()
            self._closing = True
            self._wake.set()
            timers.cancel()
            writer.cancel()
            for task in (timers, writer):
                with contextlib.suppress(BaseException):
                    await task

    async def _writer(self) -> None:
        ws = self.ws
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.frozen:
                self._queue.clear()
            if self._queue:
                frames = _coalesce(self._queue) if self.hub.coalesce else list(self._queue)
                self._queue.clear()
                try:
                    if len(frames) > 1:
                        # one frame per record, but one socket write for the burst (as a
                        # server's output pipe does); the last frame goes through aiohttp,
                        # which waits while the socket's buffer is full
                        self._write_frames(frames[:-1])
                        frames = frames[-1:]
                    for data in frames:
                        await ws.send_str(data)
                except (ConnectionError, RuntimeError) as exc:
                    logger.debug("connection %s: write failed: %s", self.id, exc)
                    self._closing = True
                    self._drained.set()
                    return
            if not self._queue:
                self._drained.set()
            if self._closing and not self._queue:
                return

    def _write_frames(self, records: list[str]) -> None:
        transport = self._transport
        if transport is None or transport.is_closing() or self.ws.closed:
            raise ConnectionError("the connection is closing")
        transport.write(b"".join([_text_frame(record) for record in records]))

    async def _timers(self) -> None:
        proto = self.proto
        loop = self._loop
        while proto.state != "closed":
            await asyncio.sleep(max(0.0, proto.next_deadline() - loop.time()))
            if self.frozen:
                continue
            try:
                ping = proto.tick(loop.time())
            except Timeout as exc:
                logger.info("connection %s: %s", self.id, exc)
                await self.ws.close()
                return
            if ping:
                self.enqueue(ping)


class HubServer:
    """A SignalR hub on aiohttp.

    Args:
        path: the hub's URL path.
        keep_alive_interval: ping a client after this long without sending to it.
        client_timeout: drop a client not heard from for this long.
        handshake_timeout: drop a client whose handshake takes longer.
        coalesce: write everything queued as one frame of several records (True), or
            one frame per message (False).
        max_message_size: largest WebSocket message accepted from a client, bytes (0: no
            limit); a larger one closes that connection with code 1009.
        max_record_size: longest SignalR record accepted, also across frames (0: no
            limit); beyond it the connection is closed with an error Close message.
        max_queued: most records waiting to be written to one client (0: no limit);
            beyond it the client is too slow (or not reading) and is dropped.

    A connection closed by a limit is logged once at WARNING with the client's address
    and the limit's name.
    """

    def __init__(
        self,
        path: str = "/hub",
        *,
        keep_alive_interval: float = 15.0,
        client_timeout: float = 30.0,
        handshake_timeout: float = 15.0,
        coalesce: bool = True,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_record_size: int = MAX_RECORD_SIZE,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self.path = path
        self.max_queued = max_queued
        self.max_message_size = max_message_size
        self.max_record_size = max_record_size
        self.coalesce = coalesce
        self.keep_alive_interval = keep_alive_interval
        self.client_timeout = client_timeout
        self.handshake_timeout = handshake_timeout
        self.methods: dict[str, HubMethod] = {}
        self.connections: dict[str, HubConnection] = {}
        self.host = "127.0.0.1"
        self.port = 0
        self._pending: dict[str, str] = {}  # ws id (token or connection id) -> connection id
        self._in_use: set[str] = set()  # ws ids with a live socket (a second one gets 409)
        self._runner: web.AppRunner | None = None
        self.app = web.Application()
        self.app.router.add_post(path + "/negotiate", self._negotiate)
        self.app.router.add_get(path, self._websocket)

    # -- life cycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The hub's http URL (clients negotiate there)."""
        return f"http://{self.host}:{self.port}{self.path}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on *host*:*port* (0 picks a free port; read it back from :attr:`port`)."""
        runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.host = host
        addresses = runner.addresses  # the bound (host, port, ...) of each site
        self.port = addresses[0][1] if addresses else port

    async def stop(self, graceful: bool = False) -> None:
        """Stop listening and drop every connection (with a Close message if *graceful*)."""
        for conn in list(self.connections.values()):
            if graceful:
                await conn.close()
            else:
                conn.abort()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._pending.clear()

    def method(self, name: str, func: HubMethod) -> None:
        """Expose *func* as hub method *name*; it is called as ``func(connection, *args)``."""
        self.methods[name] = func

    def on_connected(self, conn: HubConnection) -> None:
        """Hook: a client finished its handshake."""

    def on_disconnected(self, conn: HubConnection) -> None:
        """Hook: a client went away."""

    # -- fault controls ---------------------------------------------------------------

    def drop_connections(self) -> int:
        """Abort every connection's TCP socket (no Close message); returns how many."""
        conns = list(self.connections.values())
        for conn in conns:
            conn.abort()
        return len(conns)

    def freeze_connections(self) -> int:
        """Make every current connection half-open: nothing read, nothing sent (no pings)."""
        conns = list(self.connections.values())
        for conn in conns:
            conn.frozen = True
        return len(conns)

    # -- HTTP handlers ----------------------------------------------------------------

    async def _negotiate(self, request: web.Request) -> web.Response:
        try:
            version = int(request.query.get("negotiateVersion", "0"))
        except ValueError:
            return web.json_response({"error": "negotiateVersion must be an integer"})
        connection_id = secrets.token_urlsafe(16)
        token = secrets.token_urlsafe(16)
        ws_id = token if version >= 1 else connection_id
        self._pending[ws_id] = connection_id
        return web.json_response(negotiate_response(connection_id, token, version))

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws_id = request.query.get("id")
        if ws_id is None:
            connection_id = secrets.token_urlsafe(16)
        else:
            if ws_id in self._in_use:
                raise web.HTTPConflict(text="connection already in use")
            found = self._pending.pop(ws_id, None)
            if found is None:
                raise web.HTTPNotFound(text="no such connection")
            connection_id = found
            self._in_use.add(ws_id)
        ws = web.WebSocketResponse(max_msg_size=self.max_message_size, autoping=True, **_WS_OPTIONS)
        try:
            await ws.prepare(request)
        except BaseException:
            self._in_use.discard(ws_id or "")
            raise
        conn = HubConnection(self, connection_id, ws, request.transport)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if isinstance(peer, tuple) and len(peer) >= 2:
            conn.peer = f"{peer[0]}:{peer[1]}"
        self.connections[connection_id] = conn
        try:
            await conn.run(self._read)
        finally:
            self.connections.pop(connection_id, None)
            self._in_use.discard(ws_id or "")
            with contextlib.suppress(Exception):
                await ws.close()
            self.on_disconnected(conn)
        return ws

    async def _read(self, conn: HubConnection) -> None:
        ws = conn.ws
        proto = conn.proto
        loop = asyncio.get_running_loop()
        async for msg in ws:
            if conn.frozen:
                continue
            if msg.type == WSMsgType.TEXT or msg.type == WSMsgType.BINARY:
                for item in proto.receive_frame(msg.data, loop.time()):
                    if not await self._handle(conn, item):
                        return
            elif msg.type == WSMsgType.ERROR:
                if getattr(msg.data, "code", None) == _MESSAGE_TOO_BIG:
                    conn.over_limit(
                        "max_message_size", f"a message over {self.max_message_size} bytes"
                    )
                return

    async def _handle(self, conn: HubConnection, item: Item) -> bool:
        """Act on one received item; False ends the connection."""
        proto = conn.proto
        now = asyncio.get_running_loop().time()
        if type(item) is tuple:
            await self._invoke(conn, *item)
        elif isinstance(item, Invocation):
            await self._invoke(conn, item.target, item.arguments, item.invocation_id)
        elif isinstance(item, HandshakeRequest):
            if item.protocol != "json" or item.version not in SERVER_VERSIONS:
                error = f"protocol {item.protocol!r} version {item.version} is not supported"
                conn.enqueue(proto.reject_handshake(error, now))
                await conn.close()
                return False
            conn.enqueue(proto.accept_handshake(now))
            self.on_connected(conn)
            for held in proto.receive_frame(b"", now):  # records that shared the handshake frame
                if not await self._handle(conn, held):
                    return False
        elif isinstance(item, Close):
            await conn.ws.close()
            return False
        elif isinstance(item, SciwireError):
            # the peer's error; over a limit: say why, then drop the socket rather than
            # keep reading the peer until it answers the closing handshake
            limit = isinstance(item, RecordTooLarge)
            if limit:
                conn.over_limit("max_record_size", f"a record over {self.max_record_size} long")
            else:
                logger.warning("connection %s: %s", conn.id, item)
            if proto.state == "open":
                await conn.close(f"Connection closed with an error. {item}", abort=limit)
            else:
                conn.enqueue(proto.reject_handshake(str(item), now))
                await conn.close(abort=limit)
            return False
        return True

    async def _invoke(
        self,
        conn: HubConnection,
        target: str,
        arguments: list[Any],
        invocation_id: str | None = None,
    ) -> None:
        func = self.methods.get(target)
        result: Any = None
        error: str | None = None
        if func is None:
            error = f"Unknown hub method '{target}'"
            logger.info("connection %s: %s", conn.id, error)
        else:
            try:
                result = func(conn, *arguments)
                if inspect.isawaitable(result):
                    result = await result
            except (SciwireError, TypeError, ValueError) as exc:
                error = f"An unexpected error occurred invoking '{target}' on the server. {exc}"
                logger.info("connection %s: %s", conn.id, error)
            except Exception as exc:
                error = f"An unexpected error occurred invoking '{target}' on the server."
                logger.exception("hub method %s raised", target, exc_info=exc)
        if invocation_id is not None and conn.proto.state == "open":
            completion = Completion(invocation_id, result, error, error is None)
            conn.enqueue(conn.proto.send(completion, asyncio.get_running_loop().time()))
