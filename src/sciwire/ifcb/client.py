"""IFCB clients: :class:`AsyncIFCBClient` (asyncio) and :class:`IFCBClient` (the
reference client's blocking API, on a background event-loop thread).

On every connection the client negotiates, hand-shakes, calls
``startAsClient(serial)``, and on ``startedAsClient`` relays ``"Client connected."`` and
``"refresh"`` as the reference does. A lost connection (dropped socket, hub restart,
half-open socket detected by the server timeout) is re-established with backoff, and
``startAsClient`` is sent again every time; handlers stay registered. Messages are
parsed with :func:`~sciwire.ifcb.protocol.parse_message` and dispatched to prefix
patterns through :class:`sciwire.core.patterns.Registry`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from sciwire.core.patterns import Registry
from sciwire.core.portal import Portal
from sciwire.errors import ConnectionClosed, SciwireError, Timeout
from sciwire.ifcb.protocol import IFCBProtocolError, parse_message
from sciwire.ifcb.transport import HubClient

__all__ = ["AsyncIFCBClient", "IFCBClient"]

logger = logging.getLogger(__name__)

#: seconds to wait before reconnect attempts 1, 2, 3...; the last repeats
RECONNECT_DELAYS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)


def _run_hooks(hooks: list[Callable[..., Any]], *args: Any) -> None:
    for hook in hooks:
        try:
            hook(*args)
        except Exception:
            logger.exception("IFCB hook %r raised", hook)


class AsyncIFCBClient:
    """An asyncio IFCB client.

    Args:
        server: the hub URL, e.g. ``ws://192.168.1.100:8092/ifcbHub``.
        id: the instrument's serial number (as the reference names it).
        reconnect: reconnect automatically after an unexpected loss.
        reconnect_delays: backoff schedule in seconds (the last value repeats).
        keep_alive_interval: ping the hub after this long without sending.
        server_timeout: treat the hub as gone after this long without hearing from it.
        handshake_timeout: limit for one connection attempt.
    """

    def __init__(
        self,
        server: str,
        id: str,
        *,
        reconnect: bool = True,
        reconnect_delays: Sequence[float] = RECONNECT_DELAYS,
        keep_alive_interval: float = 15.0,
        server_timeout: float = 30.0,
        handshake_timeout: float = 15.0,
    ) -> None:
        self.server_url = server
        self.ifcb_id = id
        self.reconnect = reconnect
        self.reconnect_delays = tuple(reconnect_delays) or (1.0,)
        self.keep_alive_interval = keep_alive_interval
        self.server_timeout = server_timeout
        self.handshake_timeout = handshake_timeout
        self.handlers = Registry("prefix")
        #: messages received, malformed messages dropped, reconnections made
        self.messages = 0
        self.malformed = 0
        self.reconnects = 0
        self._started_hooks: list[Callable[..., Any]] = []
        self._reconnect_hooks: list[Callable[..., Any]] = []
        self._any_hooks: list[Callable[..., Any]] = []
        self._hub: HubClient | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._started: asyncio.Event | None = None
        self._wanted = False
        self._tasks: set[asyncio.Future[None]] = set()

    # -- registration (thread-safe) ---------------------------------------------------

    def on(self, prefix_pattern: Sequence[Any], callback: Callable[..., Any]) -> int:
        """Call ``callback(*fields)`` for messages whose leading parsed fields match.

        The pattern is a sequence of constants and None (any value); a pattern longer
        than the message does not match. Returns the handler id.
        """
        return self.handlers.register(tuple(prefix_pattern), callback)

    def unregister(self, handler_id: int) -> None:
        """Remove a handler by the id :meth:`on` returned (KeyError if unknown)."""
        self.handlers.unregister(handler_id)

    def on_started(self, callback: Callable[..., Any]) -> None:
        """Call ``callback(arguments)`` each time the hub confirms ``startAsClient``."""
        self._started_hooks.append(callback)

    def on_reconnect(self, callback: Callable[..., Any]) -> None:
        """Call ``callback()`` after each automatic reconnection."""
        self._reconnect_hooks.append(callback)

    def on_any_message(self, callback: Callable[..., Any]) -> None:
        """Call ``callback([sender_id, smsgsrc, seqno, msg])`` for every relayed message."""
        self._any_hooks.append(callback)

    # -- connection -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a hub connection is open."""
        return self._hub is not None and self._hub.connected

    async def connect(self) -> None:
        """Connect and register; keep reconnecting in the background afterwards.

        Raises:
            ConnectError, NegotiateError, HandshakeError, Timeout: the first attempt failed.
        """
        if self._supervisor is not None and not self._supervisor.done():
            return
        self._started = asyncio.Event()
        self._wanted = True
        try:
            await self._open()
        except BaseException:
            self._wanted = False
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="ifcb-supervisor")

    async def wait_started(self, timeout: float | None = None) -> None:
        """Wait until the hub has confirmed ``startAsClient`` on the current connection.

        Raises:
            Timeout: not within *timeout* seconds.
        """
        if self._started is None:
            raise ConnectionClosed("connect() has not been called")
        try:
            await asyncio.wait_for(self._started.wait(), timeout)
        except asyncio.TimeoutError as exc:
            raise Timeout(f"hub did not confirm startAsClient within {timeout} s") from exc

    async def _open(self) -> None:
        hub = HubClient(
            self.server_url,
            keep_alive_interval=self.keep_alive_interval,
            server_timeout=self.server_timeout,
            handshake_timeout=self.handshake_timeout,
        )
        hub.on("messageRelayed", self._relayed)
        hub.on("startedAsClient", self._started_as_client)
        hub.on("heartbeat", _ignore)
        hub.on("disconnect", self._hub_disconnect)
        await hub.start()
        try:
            await hub.send("startAsClient", [self.ifcb_id])
        except BaseException:
            await hub.stop()
            raise
        self._hub = hub

    async def _supervise(self) -> None:
        while self._wanted:
            hub = self._hub
            assert hub is not None
            cause = await asyncio.shield(hub.closed)
            if self._started is not None:
                self._started.clear()
            if not self._wanted or not self.reconnect:
                break
            logger.warning("IFCB hub connection lost (%s); reconnecting", cause)
            attempt = 0
            while self._wanted:
                delay = self.reconnect_delays[min(attempt, len(self.reconnect_delays) - 1)]
                attempt += 1
                await asyncio.sleep(delay)
                if not self._wanted:
                    return
                try:
                    await self._open()
                except (SciwireError, OSError) as exc:
                    logger.info("IFCB reconnect attempt %d failed: %s", attempt, exc)
                    continue
                self.reconnects += 1
                _run_hooks(self._reconnect_hooks)
                break

    async def disconnect(self) -> None:
        """Tell the host "Client disconnected." (as the reference does), close the
        connection and stop reconnecting (idempotent)."""
        self._wanted = False
        supervisor, self._supervisor = self._supervisor, None
        hub = self._hub
        if hub is not None:
            if hub.connected:
                with contextlib.suppress(ConnectionClosed):
                    await hub.send("relayMessageToHost", [self.ifcb_id, "Client disconnected."])
            await hub.stop()
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(BaseException):
                await supervisor

    async def relay_message_to_host(self, message: str) -> None:
        """Send a command (``"refresh"``, ``"routine:runsample"``...) to the instrument.

        Raises:
            ConnectionClosed: not connected.
        """
        hub = self._hub
        if hub is None:
            raise ConnectionClosed("not connected")
        await hub.send("relayMessageToHost", [self.ifcb_id, message])

    # -- hub callbacks ------------------------------------------------------------------

    def _started_as_client(self, arguments: list[Any]) -> None:
        hub = self._hub
        if hub is not None:
            # the reference relays these two on every startedAsClient
            self._background(self._greet(hub))
        if self._started is not None:
            self._started.set()
        _run_hooks(self._started_hooks, arguments)

    async def _greet(self, hub: HubClient) -> None:
        try:
            await hub.send("relayMessageToHost", [self.ifcb_id, "Client connected."])
            await hub.send("relayMessageToHost", [self.ifcb_id, "refresh"])
        except ConnectionClosed as exc:
            logger.info("could not greet the host: %s", exc)

    def _hub_disconnect(self, arguments: list[Any]) -> None:
        # The hub asks us to leave: say goodbye and stop without reconnecting.
        self._wanted = False

        self._background(self.disconnect())

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _relayed(self, arguments: list[Any]) -> None:
        # the hot path: one call per relayed message (registry dispatch is thread-safe)
        self.messages += 1
        if self._any_hooks:
            _run_hooks(self._any_hooks, arguments)
        try:
            fields = parse_message(arguments[3])
        except (IFCBProtocolError, IndexError) as exc:
            self.malformed += 1
            logger.warning("dropping malformed message %.200r: %s", arguments, exc)
            return
        self.handlers.dispatch(fields, *fields)


def _ignore(arguments: list[Any]) -> None:
    pass


class IFCBClient:
    """The reference client's blocking API, running :class:`AsyncIFCBClient` on a
    background event-loop thread (handlers run on that thread).

    Args:
        server: the hub URL, e.g. ``ws://192.168.1.100:8092/ifcbHub``.
        id: the instrument's serial number.
        timeout: seconds a blocking call waits.
        **options: passed to :class:`AsyncIFCBClient` (reconnect, server_timeout...).
    """

    def __init__(
        self,
        server: str,
        id: str,
        *,
        timeout: float = 30.0,
        **options: Any,
    ) -> None:
        self.server_url = server
        self.ifcb_id = id
        self.timeout = timeout
        self.client = AsyncIFCBClient(server, id, **options)
        self._portal = Portal("ifcb-client")

    @property
    def handlers(self) -> Registry:
        """The handler registry."""
        return self.client.handlers

    def on(self, prefix_pattern: Sequence[Any], callback: Callable[..., Any]) -> int:
        """Register *callback* for messages starting with *prefix_pattern*; returns its id."""
        return self.client.on(prefix_pattern, callback)

    def unregister(self, handler_id: int) -> None:
        """Remove a handler by id."""
        self.client.unregister(handler_id)

    def on_started(self, callback: Callable[..., Any]) -> None:
        """Call ``callback(arguments)`` each time the hub confirms ``startAsClient``."""
        self.client.on_started(callback)

    def on_reconnect(self, callback: Callable[..., Any]) -> None:
        """Call ``callback()`` after each automatic reconnection."""
        self.client.on_reconnect(callback)

    def on_any_message(self, callback: Callable[..., Any]) -> None:
        """Call ``callback([sender_id, smsgsrc, seqno, msg])`` for every relayed message."""
        self.client.on_any_message(callback)

    def connect(self) -> None:
        """Connect in a background thread and return once registered with the hub."""
        self._portal.start()
        try:
            self._portal.call(self.client.connect(), self.timeout)
        except BaseException:
            self._portal.stop()
            raise

    def wait_started(self, timeout: float | None = None) -> None:
        """Block until the hub confirmed ``startAsClient`` on the current connection."""
        self._portal.call(self.client.wait_started(timeout), None)

    def disconnect(self) -> None:
        """Close the connection and stop the background thread (idempotent)."""
        if not self._portal.running:
            return
        try:
            self._portal.call(self.client.disconnect(), self.timeout)
        finally:
            self._portal.stop()

    def relay_message_to_host(self, message: str) -> None:
        """Send a command to the instrument's host software."""
        if not self._portal.running:
            raise ConnectionClosed("not connected")
        self._portal.call(self.client.relay_message_to_host(message), self.timeout)

    def __enter__(self) -> IFCBClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
