"""The blocking IFCB client under pyifcbclient's module name (``ifcbclient.ifcbclient``).

:class:`IFCBClient` has the reference client's public members and wiring: its
``hub_connection`` is started by :meth:`IFCBClient.connect`, and the hub's calls arrive
at :meth:`IFCBClient.handle_message`, :meth:`IFCBClient.started` and
:meth:`IFCBClient.do_nothing` (so a subclass may override them, and a test may replace
``hub_connection`` with a stand-in). Underneath, ``hub_connection`` is a
:class:`ClientHubConnection`: sciwire's asyncio client on a background event-loop
thread, with reconnect, re-registration and half-open detection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sciwire.core.patterns import Registry
from sciwire.core.portal import Portal
from sciwire.errors import ConnectionClosed
from sciwire.ifcb._client import GOODBYE, GREETING, AsyncIFCBClient
from sciwire.ifcb.protocol import parse_response

__all__ = ["ClientHubConnection", "IFCBClient", "parse_response"]

logger = logging.getLogger(__name__)


class ClientHubConnection:
    """A blocking hub connection shaped like signalrcore's (``start``, ``stop``, ``send``,
    ``on``, ``on_open``, ``on_close``, ``on_reconnect``), driving an
    :class:`~sciwire.ifcb.AsyncIFCBClient` on a :class:`~sciwire.core.portal.Portal`.

    Callbacks run on the portal's event-loop thread. :meth:`send` may be called from
    there too (it then queues the call, in order, instead of blocking).

    Args:
        client: the asyncio client to drive.
        timeout: seconds a blocking call waits.
    """

    def __init__(self, client: AsyncIFCBClient, timeout: float = 30.0) -> None:
        self.client = client
        self.timeout = timeout
        self.portal = Portal("ifcb-client")
        self._lock = threading.Lock()

    @property
    def connected(self) -> bool:
        """True while a hub connection is open."""
        return self.client.connected

    def start(self) -> bool:
        """Connect, register with ``startAsClient``, and keep reconnecting afterwards.

        Returns:
            True once registered.

        Raises:
            ConnectError, NegotiateError, HandshakeError, Timeout: the first attempt failed.
        """
        with self._lock:
            self.portal.start()
            try:
                self.portal.call(self.client.connect(), self.timeout)
            except BaseException:
                self.portal.stop()
                raise
        return True

    def stop(self) -> None:
        """Close the connection (without a goodbye message) and stop the loop thread.

        Idempotent. From a callback (on the loop thread) it only schedules the close.
        """
        if self._on_loop():
            self.client.spawn(self.client.disconnect(goodbye=False))
            return
        with self._lock:
            if not self.portal.running:
                return
            try:
                self.portal.call(self.client.disconnect(goodbye=False), self.timeout)
            finally:
                self.portal.stop()

    def send(self, method: str, arguments: list[Any]) -> None:
        """Call hub method *method* with *arguments*, fire-and-forget.

        Raises:
            ConnectionClosed: not connected.
        """
        if self._on_loop():
            # Blocking here would deadlock the loop; tasks start in creation order,
            # so queued sends still go out in the order they were made.
            self.client.spawn(self.client.send(method, list(arguments)))
            return
        # the asyncio client decides whether a call is refused (so both forms refuse alike)
        self.client.require_connection()
        self.portal.call(self.client.send(method, list(arguments)), self.timeout)

    def on(self, event: str, callback: Callable[[list[Any]], Any]) -> None:
        """Call ``callback(arguments)`` for every hub call of *event*."""
        self.client.on_invocation(event, callback)

    def on_open(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` each time a connection opens (reconnections too)."""
        self.client.on_open(callback)

    def on_close(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` each time a connection ends."""
        self.client.on_close(callback)

    def on_reconnect(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` after each automatic reconnection."""
        self.client.on_reconnect(callback)

    def _on_loop(self) -> bool:
        if not self.portal.running:
            return False
        try:
            return asyncio.get_running_loop() is self.portal.loop
        except RuntimeError:  # no loop in this thread
            return False


class IFCBClient:
    """A client of an IFCB hub with pyifcbclient's API (blocking; handlers run on a
    background event-loop thread).

    Args:
        server: the hub URL, e.g. ``ws://192.168.1.100:8092/ifcbHub``.
        id: the instrument's serial number.
        timeout: seconds a blocking call waits.
        **options: passed to :class:`~sciwire.ifcb.AsyncIFCBClient` (``reconnect``,
            ``server_timeout``, ``max_message_size``...).
    """

    def __init__(self, server: str, id: str, *, timeout: float = 30.0, **options: Any) -> None:
        self.server_url = server
        self.ifcb_id = id
        self.timeout = timeout
        #: the asyncio client underneath (its ``handlers`` are this client's)
        self.client = AsyncIFCBClient(server, id, events=self, **options)
        #: the hub connection :meth:`connect` starts (replaceable, as in pyifcbclient)
        self.hub_connection: Any = ClientHubConnection(self.client, timeout)
        self._next_id = 1

    @property
    def handlers(self) -> Registry:
        """The handler registry (prefix patterns to callbacks)."""
        return self.client.handlers

    @property
    def next_handler_id(self) -> int:
        """The id the next :meth:`on` returns."""
        return self._next_id

    # -- handlers ---------------------------------------------------------------------

    def on(self, prefix_pattern: Sequence[Any], callback: Callable[..., Any]) -> int:
        """Call ``callback(*fields)`` for messages whose leading parsed fields match
        *prefix_pattern* (constants, and None for any value); returns the handler id."""
        handler_id = self.client.on(prefix_pattern, callback)
        self._next_id = handler_id + 1
        return handler_id

    def unregister(self, handler_id: int) -> None:
        """Remove a handler by the id :meth:`on` returned (KeyError if unknown)."""
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

    # -- what the hub calls -----------------------------------------------------------

    def handle_message(self, response: list[Any]) -> None:
        """Parse a relayed ``[sender_id, smsgsrc, seqno, msg]`` and call every handler
        whose pattern matches its fields (a malformed message is logged and dropped)."""
        self.client.handle_message(response)

    def on_connect(self) -> None:
        """Register with the hub as a client of this instrument (``startAsClient``).

        The connection does this itself on every (re)connection.
        """
        self.hub_connection.send("startAsClient", [self.ifcb_id])

    def started(self, response: list[Any]) -> None:
        """The hub confirmed ``startAsClient``: tell the host "Client connected." and ask
        for its state with "refresh"."""
        for text in GREETING:
            self.relay_message_to_host(text)
        self.client.mark_started(response)

    def do_nothing(self, response: Any) -> None:
        """Ignore a hub heartbeat."""

    # -- connection -------------------------------------------------------------------

    def connect(self) -> None:
        """Connect in a background thread; returns once registered with the hub."""
        self.hub_connection.start()

    def wait_started(self, timeout: float | None = None) -> None:
        """Block until the hub confirmed ``startAsClient`` on the current connection.

        Raises:
            Timeout: not within *timeout* seconds.
            ConnectionClosed: not connected.
        """
        hub = self.hub_connection
        if not isinstance(hub, ClientHubConnection) or not hub.portal.running:
            raise ConnectionClosed("not connected")
        hub.portal.call(self.client.wait_started(timeout), None)

    def disconnect(self) -> None:
        """Tell the host "Client disconnected.", close the connection and stop the
        background thread (idempotent)."""
        with contextlib.suppress(ConnectionClosed):
            self.relay_message_to_host(GOODBYE)
        self.hub_connection.stop()

    def relay_message_to_host(self, message: str) -> None:
        """Send a command (``"refresh"``, ``"routine:runsample"``...) to the instrument.

        Raises:
            ConnectionClosed: not connected.
        """
        self.hub_connection.send("relayMessageToHost", [self.ifcb_id, message])

    def __enter__(self) -> IFCBClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
