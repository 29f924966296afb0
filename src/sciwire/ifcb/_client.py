"""The asyncio IFCB client, :class:`AsyncIFCBClient` (the blocking
:class:`~sciwire.ifcb.ifcbclient.IFCBClient` runs it on a background event-loop thread).

On every connection the client negotiates, hand-shakes, calls
``startAsClient(serial)``, and on ``startedAsClient`` relays ``"Client connected."`` and
``"refresh"`` as the reference does. A lost connection (dropped socket, hub restart,
half-open socket detected by the server timeout) is re-established with backoff, and
``startAsClient`` is sent again every time; handlers stay registered. Messages are
parsed with :func:`~sciwire.ifcb._codec.parse_message` and dispatched to prefix
patterns through :class:`sciwire.core.patterns.Registry`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from sciwire.core.patterns import Registry
from sciwire.errors import ConnectionClosed, SciwireError, Timeout
from sciwire.ifcb._codec import IFCBProtocolError, parse_message
from sciwire.ifcb._signalr import MAX_MESSAGE_SIZE, MAX_RECORD_SIZE, RecordTooLarge
from sciwire.ifcb._transport import HubClient, MessageTooLarge

__all__ = ["AsyncIFCBClient", "ClientEvents"]

logger = logging.getLogger(__name__)

#: seconds to wait before reconnect attempts 1, 2, 3...; the last repeats
RECONNECT_DELAYS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)
#: what a client relays to the host on each startAsClient confirmation, and on leaving
#: (as the reference does)
GREETING = ("Client connected.", "refresh")
GOODBYE = "Client disconnected."


class ClientEvents(Protocol):
    """The seam through which a hub connection reaches its owner's handlers.

    :class:`AsyncIFCBClient` is its own default; the blocking ``IFCBClient`` passes
    itself, so its public ``handle_message``/``started``/``do_nothing`` (and a
    subclass's overrides of them) receive the hub's calls, as in pyifcbclient.
    """

    def handle_message(self, response: list[Any]) -> None:
        """A relayed ``[sender_id, smsgsrc, seqno, msg]``."""

    def started(self, response: list[Any]) -> None:
        """The hub confirmed ``startAsClient``."""

    def do_nothing(self, response: Any) -> None:
        """A heartbeat."""


def _run_hooks(hooks: list[Callable[..., Any]], *args: Any) -> None:
    for hook in hooks:
        try:
            hook(*args)
        except Exception:
            logger.exception("IFCB hook %r raised", hook)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.info("IFCB client task failed: %s", task.exception())


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
        max_message_size: largest WebSocket message accepted from the hub, in bytes (0:
            no limit); a larger one closes the connection (then reconnect).
        max_record_size: longest SignalR record (text up to 0x1E) accepted, in characters
            or bytes, also across frames (0: no limit).
        events: receives the hub's relayed messages, confirmations and heartbeats
            (default: this client).
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
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_record_size: int = MAX_RECORD_SIZE,
        events: ClientEvents | None = None,
    ) -> None:
        self.server_url = server
        self.ifcb_id = id
        self.reconnect = reconnect
        self.reconnect_delays = tuple(reconnect_delays) or (1.0,)
        self.keep_alive_interval = keep_alive_interval
        self.server_timeout = server_timeout
        self.handshake_timeout = handshake_timeout
        self.max_message_size = max_message_size
        self.max_record_size = max_record_size
        self.events: ClientEvents = self if events is None else events
        self.handlers = Registry("prefix")
        #: messages received, malformed messages dropped, reconnections made
        self.messages = 0
        self.malformed = 0
        self.reconnects = 0
        self._started_hooks: list[Callable[..., Any]] = []
        self._reconnect_hooks: list[Callable[..., Any]] = []
        self._any_hooks: list[Callable[..., Any]] = []
        self._open_hooks: list[Callable[..., Any]] = []
        self._close_hooks: list[Callable[..., Any]] = []
        self._targets: list[tuple[str, Callable[[list[Any]], Any]]] = []
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

    def on_open(self, callback: Callable[..., Any]) -> None:
        """Call ``callback()`` each time a hub connection opens (reconnections too)."""
        self._open_hooks.append(callback)

    def on_close(self, callback: Callable[..., Any]) -> None:
        """Call ``callback()`` each time a hub connection ends."""
        self._close_hooks.append(callback)

    def on_invocation(self, target: str, callback: Callable[[list[Any]], Any]) -> None:
        """Call ``callback(arguments)`` for every hub call of *target* on this client
        (``"messageRelayed"``, ``"startedAsClient"``...), on every connection, the
        current one included."""
        self._targets.append((target, callback))
        hub = self._hub
        if hub is not None and hub.connected:
            # (appending to a handler list is atomic; the reader sees it from its next call)
            hub.on(target, callback)

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
        started = self._started
        if started is None or not self._wanted:
            raise ConnectionClosed("not connected")
        try:
            await asyncio.wait_for(started.wait(), timeout)
        except asyncio.TimeoutError as exc:
            raise Timeout(f"hub did not confirm startAsClient within {timeout} s") from exc

    async def _open(self) -> None:
        hub = HubClient(
            self.server_url,
            keep_alive_interval=self.keep_alive_interval,
            server_timeout=self.server_timeout,
            handshake_timeout=self.handshake_timeout,
            max_message_size=self.max_message_size,
            max_record_size=self.max_record_size,
        )
        events = self.events
        hub.on("messageRelayed", events.handle_message)
        hub.on("startedAsClient", events.started)
        hub.on("heartbeat", events.do_nothing)
        hub.on("disconnect", self._hub_disconnect)
        for target, callback in self._targets:
            hub.on(target, callback)
        await hub.start()
        try:
            await hub.send("startAsClient", [self.ifcb_id])
        except BaseException:
            await hub.stop()
            raise
        self._hub = hub
        # on the future itself, so the hooks run once per connection however it ends
        hub.closed.add_done_callback(lambda _: _run_hooks(self._close_hooks))
        _run_hooks(self._open_hooks)

    async def _supervise(self) -> None:
        while self._wanted:
            hub = self._hub
            assert hub is not None
            cause = await asyncio.shield(hub.closed)
            if self._started is not None:
                self._started.clear()
            if not self._wanted:
                break
            # a limit's close was logged where it was decided: once is enough
            level = (
                logging.DEBUG
                if isinstance(cause, RecordTooLarge | MessageTooLarge)
                else logging.WARNING
            )
            again = "; reconnecting" if self.reconnect else ""
            logger.log(
                level, "IFCB hub connection to %s lost (%s)%s", self.server_url, cause, again
            )
            if not self.reconnect:
                break
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

    async def disconnect(self, goodbye: bool = True) -> None:
        """Tell the host "Client disconnected." (as the reference does; not when
        *goodbye* is False), close the connection and stop reconnecting (idempotent)."""
        self._wanted = False
        supervisor, self._supervisor = self._supervisor, None
        hub = self._hub
        if hub is not None:
            if hub.connected and goodbye:
                with contextlib.suppress(ConnectionClosed):
                    await hub.send("relayMessageToHost", [self.ifcb_id, GOODBYE])
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
        await self.require_connection().send("relayMessageToHost", [self.ifcb_id, message])

    async def send(self, target: str, arguments: list[Any]) -> None:
        """Call hub method *target* with *arguments*, fire-and-forget.

        Raises:
            ConnectionClosed: not connected.
        """
        await self.require_connection().send(target, arguments)

    def require_connection(self) -> HubClient:
        """The open hub connection (the blocking client asks this too, so both forms
        refuse a call the same way).

        Raises:
            ConnectionClosed: not connected (not yet, not any more, or between
                reconnections).
        """
        hub = self._hub
        if hub is None or not self._wanted or not hub.connected:
            raise ConnectionClosed("not connected")
        return hub

    # -- hub callbacks ------------------------------------------------------------------

    def started(self, response: list[Any]) -> None:
        """The hub confirmed ``startAsClient``: relay "Client connected." and "refresh"
        (as the reference does on every confirmation), then :meth:`mark_started`."""
        hub = self._hub
        if hub is not None:
            self.spawn(self._greet(hub))
        self.mark_started(response)

    def mark_started(self, response: list[Any]) -> None:
        """Release :meth:`wait_started` and run the :meth:`on_started` hooks."""
        if self._started is not None:
            self._started.set()
        _run_hooks(self._started_hooks, response)

    def do_nothing(self, response: Any) -> None:
        """Ignore a hub heartbeat."""

    async def _greet(self, hub: HubClient) -> None:
        try:
            for text in GREETING:
                await hub.send("relayMessageToHost", [self.ifcb_id, text])
        except ConnectionClosed as exc:
            logger.info("could not greet the host: %s", exc)

    def _hub_disconnect(self, arguments: list[Any]) -> None:
        # The hub asks us to leave: say goodbye and stop without reconnecting.
        self._wanted = False
        self.spawn(self.disconnect())

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run *coro* as a task of this client, from the loop's thread (a callback
        cannot await): held until done, since asyncio keeps only weak references to
        tasks; a failure is logged. Tasks start in the order they were spawned."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    def handle_message(self, response: list[Any]) -> None:
        """Parse a relayed ``[sender_id, smsgsrc, seqno, msg]`` and call the matching
        handlers with its fields; a malformed message is logged, counted and dropped."""
        # the hot path: one call per relayed message (registry dispatch is thread-safe)
        self.messages += 1
        if self._any_hooks:
            _run_hooks(self._any_hooks, response)
        try:
            fields = parse_message(response[3])
        except (IFCBProtocolError, IndexError, TypeError) as exc:
            self.malformed += 1
            logger.warning("dropping malformed message %.200r: %s", response, exc)
            return
        self.handlers.dispatch(fields, *fields)
