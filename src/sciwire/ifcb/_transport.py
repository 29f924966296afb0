"""An asyncio SignalR hub client (JSON protocol over aiohttp WebSockets).

:class:`HubClient` negotiates (versions 1 and 0, following redirects), opens the
WebSocket, does the handshake, then runs a reader task that dispatches server
invocations to handlers by target and matches Completions to :meth:`HubClient.invoke`,
and a timer task that pings after ``keep_alive_interval`` seconds of sending nothing
and gives up on a server not heard from for ``server_timeout`` seconds (a half-open
socket). :attr:`HubClient.closed` resolves when the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import WSMsgType

from sciwire.errors import (
    ConnectError,
    ConnectionClosed,
    RemoteError,
    RemoteProtocolError,
    SciwireError,
    Timeout,
)
from sciwire.ifcb._signalr import (
    MAX_MESSAGE_SIZE,
    MAX_RECORD_SIZE,
    Close,
    Completion,
    HandshakeResponse,
    Invocation,
    Item,
    NegotiateError,
    RecordTooLarge,
    ServerTimeout,
    SignalRConnection,
    parse_negotiate,
)

__all__ = ["MAX_NEGOTIATE_BODY", "HubClient", "HubInvocationError", "MessageTooLarge"]

logger = logging.getLogger(__name__)

Handler = Callable[[list[Any]], Any]
_MAX_REDIRECTS = 100
#: the most of a negotiate answer read (a real one is a few hundred bytes; the rest of
#: the handshake is bounded by max_message_size and max_record_size)
MAX_NEGOTIATE_BODY = 64 * 1024
_MESSAGE_TOO_BIG = 1009  # RFC 6455 7.4.1: the close code for an over-long message
# how long a graceful close waits for the server's close frame (API changed in aiohttp 3.11)
_WS_TIMEOUT: dict[str, Any] = (
    {"timeout": aiohttp.ClientWSTimeout(ws_close=2.0)}
    if hasattr(aiohttp, "ClientWSTimeout")
    else {"timeout": 2.0}
)


class HubInvocationError(RemoteError):
    """The hub answered an invocation with an error Completion."""


class MessageTooLarge(ConnectionClosed):
    """The hub sent a WebSocket message over ``max_message_size``; the connection closed."""


def _with_scheme(url: str, ws: bool) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    secure = scheme in ("https", "wss")
    if scheme not in ("http", "https", "ws", "wss"):
        raise ValueError(f"hub URL must be http(s) or ws(s): {url!r}")
    new = ("wss" if secure else "ws") if ws else ("https" if secure else "http")
    return urlunsplit((new, parts.netloc, parts.path, parts.query, ""))


def _add_query(url: str, key: str, value: str) -> str:
    sep = "&" if urlsplit(url).query else "?"
    return f"{url}{sep}{key}={value}"


def negotiate_url(url: str) -> str:
    """The negotiate endpoint of a hub URL (``.../negotiate?negotiateVersion=1``)."""
    parts = urlsplit(_with_scheme(url, ws=False))
    path = parts.path.rstrip("/") + "/negotiate"
    query = f"{parts.query}&negotiateVersion=1" if parts.query else "negotiateVersion=1"
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


class HubClient:
    """One SignalR hub connection (no reconnect; callers start a new one).

    Args:
        url: the hub URL (http, https, ws or wss).
        keep_alive_interval: ping after this long without sending.
        server_timeout: declare the server gone after this long without hearing from it.
        handshake_timeout: limit for negotiate, connect and handshake together.
        skip_negotiation: connect the WebSocket directly, without negotiate.
        max_message_size: largest WebSocket message accepted, bytes (0: no limit).
        max_record_size: longest SignalR record accepted, also across frames (0: no limit).

    A message or record over its limit ends the connection (logged once, naming the
    limit); :attr:`closed` then resolves to the cause.
    """

    def __init__(
        self,
        url: str,
        *,
        keep_alive_interval: float = 15.0,
        server_timeout: float = 30.0,
        handshake_timeout: float = 15.0,
        skip_negotiation: bool = False,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_record_size: int = MAX_RECORD_SIZE,
    ) -> None:
        self.url = url
        self.max_message_size = max_message_size
        self.max_record_size = max_record_size
        self.keep_alive_interval = keep_alive_interval
        self.server_timeout = server_timeout
        self.handshake_timeout = handshake_timeout
        self.skip_negotiation = skip_negotiation
        self.connection_id: str | None = None
        #: handler exceptions caught and logged
        self.handler_errors = 0
        self._handlers: dict[str, list[Handler]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse[bool] | None = None
        self._proto: SignalRConnection | None = None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closed: asyncio.Future[BaseException | None] | None = None
        self._backlog: list[Item] = []

    # -- handlers ---------------------------------------------------------------------

    def on(self, target: str, handler: Handler) -> None:
        """Call ``handler(arguments)`` for every server invocation of *target*."""
        self._handlers.setdefault(target, []).append(handler)

    # -- life cycle -------------------------------------------------------------------

    @property
    def closed(self) -> asyncio.Future[BaseException | None]:
        """Resolves when the connection ends: None after :meth:`stop`, else the cause."""
        if self._closed is None:
            raise ConnectionClosed("the hub connection was never started")
        return self._closed

    @property
    def connected(self) -> bool:
        """True between a successful :meth:`start` and the end of the connection."""
        return self._closed is not None and not self._closed.done()

    async def start(self) -> None:
        """Negotiate, connect and hand-shake.

        Raises:
            ConnectError: the hub cannot be reached or refused the WebSocket.
            NegotiateError: negotiate answered with an error.
            HandshakeError: the hub refused the handshake.
            Timeout: it all took longer than ``handshake_timeout``.
        """
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        self._session = aiohttp.ClientSession()
        try:
            await asyncio.wait_for(self._open(), self.handshake_timeout)
        except BaseException as exc:
            await self._teardown()
            if not self._closed.done():
                self._closed.set_result(exc if isinstance(exc, Exception) else None)
            if isinstance(exc, asyncio.TimeoutError) and not isinstance(exc, Timeout):
                raise Timeout(
                    f"hub connection not ready within {self.handshake_timeout} s"
                ) from exc
            raise
        self._tasks = [
            asyncio.create_task(self._reader(), name="signalr-reader"),
            asyncio.create_task(self._timers(), name="signalr-timers"),
        ]

    async def _open(self) -> None:
        assert self._session is not None
        url = self.url
        headers: dict[str, str] = {}
        ws_id: str | None = None
        if not self.skip_negotiation:
            for _ in range(_MAX_REDIRECTS):
                result = parse_negotiate(await self._post_json(negotiate_url(url), headers))
                if not result.is_redirect:
                    ws_id = result.ws_id
                    self.connection_id = result.connection_id
                    break
                url = str(result.url)
                if result.access_token:
                    headers = {"Authorization": f"Bearer {result.access_token}"}
            else:
                raise NegotiateError("negotiate redirected too many times")
        ws_url = _with_scheme(url, ws=True)
        if ws_id is not None:
            ws_url = _add_query(ws_url, "id", ws_id)
        try:
            self._ws = await self._session.ws_connect(
                ws_url,
                headers=headers,
                autoping=True,
                max_msg_size=self.max_message_size,
                **_WS_TIMEOUT,
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise ConnectError(f"hub refused the WebSocket ({exc.status}): {ws_url}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectError(f"cannot connect to {ws_url}: {exc}") from exc
        loop = asyncio.get_running_loop()
        proto = SignalRConnection(
            "client",
            loop.time(),
            keep_alive_interval=self.keep_alive_interval,
            server_timeout=self.server_timeout,
            handshake_timeout=self.handshake_timeout,
            max_record_size=self.max_record_size,
        )
        self._proto = proto
        await self._write(proto.handshake_request(loop.time()))
        ws = self._ws
        while proto.state == "handshake":
            msg = await ws.receive()
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                raise ConnectionClosed("hub closed the connection during the handshake")
            items = proto.receive_frame(msg.data, loop.time())
            if not items:
                continue  # the reply is still unfinished
            first = items[0]
            if type(first) is HandshakeResponse:
                self._backlog = items[1:]  # records after the reply in the same frame
                return
            # before the reply, the only other item is the peer's error
            if isinstance(first, SciwireError):
                raise first
            raise RemoteProtocolError(f"hub sent {first!r} before the handshake reply")

    async def _post_json(self, url: str, headers: dict[str, str]) -> Any:
        assert self._session is not None
        try:
            async with self._session.post(url, headers=headers) as resp:
                body = await _read_capped(resp.content, MAX_NEGOTIATE_BODY, url)
                if resp.status != 200:
                    raise NegotiateError(
                        f"negotiate failed with HTTP {resp.status}",
                        code=resp.status,
                        data=body.decode("utf-8", "replace"),
                    )
                try:
                    return json.loads(body)
                except (ValueError, RecursionError) as exc:
                    raise RemoteProtocolError("negotiate reply is not JSON") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectError(f"cannot reach {url}: {exc}") from exc

    async def stop(self) -> None:
        """Close the connection (idempotent); :attr:`closed` resolves to None."""
        await self._finish(None)

    # -- calls ------------------------------------------------------------------------

    async def send(self, target: str, arguments: list[Any]) -> None:
        """Invoke *target* on the hub without waiting for a reply.

        Raises:
            ConnectionClosed: the connection is not open.
        """
        proto = self._proto
        if proto is None or not self.connected or proto.state != "open":
            raise ConnectionClosed("the hub connection is not open")
        loop = asyncio.get_running_loop()
        await self._write(proto.send_invocation(target, arguments, loop.time()))

    async def invoke(self, target: str, arguments: list[Any], timeout: float | None = None) -> Any:
        """Invoke *target* and wait for its Completion's result.

        Raises:
            HubInvocationError: the hub answered with an error.
            ConnectionClosed: the connection ended first.
            Timeout: no Completion within *timeout* seconds.
        """
        proto = self._proto
        if proto is None or not self.connected or proto.state != "open":
            raise ConnectionClosed("the hub connection is not open")
        loop = asyncio.get_running_loop()
        invocation_id, record = proto.invoke(target, arguments, loop.time())
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[invocation_id] = future
        try:
            await self._write(record)
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError as exc:
            proto.forget(invocation_id)
            raise Timeout(f"no reply to {target!r} within {timeout} s") from exc
        finally:
            self._pending.pop(invocation_id, None)

    async def _write(self, text: str) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionClosed("the hub connection is closed")
        # A hub that takes nothing for server_timeout is gone: without a deadline, a send
        # waiting for room in a full socket would wait for good while the hub still pings.
        # A timer that cancels this task, not wait_for: that would add a task (and a loop
        # turn) to every send, where aiohttp almost never waits.
        task = asyncio.current_task()
        expired = []

        def expire() -> None:
            expired.append(True)
            if task is not None:
                task.cancel()

        timer = asyncio.get_running_loop().call_later(self.server_timeout, expire)
        try:
            await ws.send_str(text)
        except asyncio.CancelledError:
            if not expired:
                raise
            uncancel = getattr(task, "uncancel", None)  # (Python 3.11+)
            if uncancel is not None:
                uncancel()
            error = ServerTimeout(f"the hub took nothing for {self.server_timeout} s")
            await self._finish(error)  # (a frame may be cut short: the connection is over)
            raise error from None
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            raise ConnectionClosed(f"hub connection lost while sending: {exc}") from exc
        finally:
            timer.cancel()

    # -- tasks ------------------------------------------------------------------------

    def _dispatch(self, items: Sequence[Item]) -> BaseException | None:
        """Act on received items, in order; returns None to go on, else why the
        connection ends (a Close, or the peer's error).

        The hot path: a canonical fire-and-forget invocation arrives as a
        ``(target, arguments)`` tuple and goes straight to its handlers.
        """
        handlers = self._handlers
        for item in items:
            if type(item) is tuple:
                target, arguments = item
            elif type(item) is Invocation:
                target, arguments = item.target, item.arguments
                if item.invocation_id is not None:
                    logger.debug("client methods do not return results: %s", target)
            else:
                cause = self._event(item)
                if cause is not None:
                    return cause
                continue
            for handler in handlers.get(target, ()):
                try:
                    handler(arguments)
                except Exception:
                    self.handler_errors += 1
                    logger.exception("handler for %r raised", target)
        return None

    def _event(self, item: Item) -> BaseException | None:
        """The items other than invocations: Completions, a Close, the peer's error."""
        if type(item) is Completion:
            future = self._pending.get(item.invocation_id)
            if future is not None and not future.done():
                if item.error is not None:
                    future.set_exception(HubInvocationError(item.error))
                else:
                    future.set_result(item.result)
        elif type(item) is Close:
            if item.error:
                return ConnectionClosed(f"hub closed the connection: {item.error}")
            return ConnectionClosed("hub closed the connection")
        elif isinstance(item, SciwireError):
            if isinstance(item, RecordTooLarge):
                logger.warning("closing the hub connection to %s: %s", self.url, item)
            return item
        return None

    async def _reader(self) -> None:
        ws = self._ws
        proto = self._proto
        assert ws is not None and proto is not None
        clock = asyncio.get_running_loop().time
        receive_frame = proto.receive_frame
        dispatch = self._dispatch
        cause = dispatch(self._backlog)
        self._backlog = []
        try:
            while cause is None:
                msg = await ws.receive()
                kind = msg.type
                if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                    cause = dispatch(receive_frame(msg.data, clock()))
                elif kind is WSMsgType.ERROR:
                    cause = ConnectionClosed(f"hub connection failed: {msg.data}")
                    if getattr(msg.data, "code", None) == _MESSAGE_TOO_BIG:
                        cause = MessageTooLarge(
                            f"a message exceeded max_message_size ({self.max_message_size} bytes)"
                        )
                        logger.warning("closing the hub connection to %s: %s", self.url, cause)
                elif kind in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    cause = ConnectionClosed("hub closed the WebSocket")
        except asyncio.CancelledError:
            return
        except Exception as exc:  # the transport failed under us
            cause = ConnectionClosed(f"hub connection failed: {exc!r}")
        await self._finish(cause)

    async def _timers(self) -> None:
        proto = self._proto
        assert proto is not None
        loop = asyncio.get_running_loop()
        try:
            while proto.state == "open":
                await asyncio.sleep(max(0.0, proto.next_deadline() - loop.time()))
                ping = proto.tick(loop.time())
                if ping:
                    await self._write(ping)
        except asyncio.CancelledError:
            return
        except (Timeout, ConnectionClosed) as exc:
            logger.info("hub connection ended: %s", exc)
            await self._finish(exc)

    async def _finish(self, cause: BaseException | None) -> None:
        closed = self._closed
        if closed is None or closed.done():
            return
        closed.set_result(cause)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionClosed("hub connection ended before the reply"))
        if self._proto is not None:
            self._proto.connection_lost()
        await self._teardown(abort=cause is not None)

    async def _teardown(self, abort: bool = False) -> None:
        ws, self._ws = self._ws, None
        session, self._session = self._session, None
        if ws is not None:
            if abort:
                # a dead or half-open peer would never answer the close handshake
                with contextlib.suppress(Exception):
                    conn = ws._response.connection
                    if conn is not None and conn.transport is not None:
                        conn.transport.abort()
            with contextlib.suppress(Exception):
                await ws.close()
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()


async def _read_capped(stream: aiohttp.StreamReader, limit: int, url: str) -> bytes:
    """The whole body of a response, or RemoteProtocolError once it passes *limit* bytes."""
    body = bytearray()
    async for chunk in stream.iter_any():
        body += chunk
        if len(body) > limit:
            raise RemoteProtocolError(f"negotiate reply from {url} is over {limit} bytes")
    return bytes(body)
