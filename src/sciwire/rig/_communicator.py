"""The transport-free half of a rig communicator: address, logger and callbacks.

Callbacks live in a :class:`sciwire.core.patterns.Registry` of kind ``"flag"``: an
event pattern (single or compound flag) matches every message whose event shares
a bit with it. iblutil's calling conventions are kept: plain callbacks get
``(data, addr)``, callbacks registered for a compound event get ``(data, addr,
event)``, futures are resolved once and removed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlparse

from sciwire.core.patterns import Handler, Registry
from sciwire.rig._errors import RigTypeError
from sciwire.rig._protocol import ErrorReport, ExpMessage, Service, decode, encode
from sciwire.rig._uri import validate_uri

__all__ = ["Communicator", "is_success"]

Addr = tuple[str, int]
Callback = Callable[..., Any] | asyncio.Future[Any]


def is_success(future: asyncio.Future[Any]) -> bool:
    """True if *future* finished with a result (not cancelled, no exception)."""
    return future.done() and not future.cancelled() and future.exception() is None


def _callback_id(callback: Any) -> int:
    # Services wraps callbacks in partials carrying the wrapped callback's id.
    return getattr(callback, "id", None) or hash(callback)


class _Entry:
    """What the registry holds for one assign_callback: the user's callback and how to call it."""

    __slots__ = ("callback", "compound", "key", "owner")

    def __init__(self, owner: Communicator, callback: Callback, compound: bool) -> None:
        self.owner = owner
        self.callback = callback
        self.compound = compound
        self.key = _callback_id(callback)

    def __call__(self, data: list[Any], addr: Addr, event: ExpMessage) -> None:
        cb = self.callback
        if isinstance(cb, asyncio.Future):
            if cb.done():
                if not cb.cancelled():
                    self.owner.logger.warning("Future %s already resolved", cb)
                return
            cb.set_result((data, addr, event) if self.compound else (data, addr))
            return
        try:
            result = cb(data, addr, event) if self.compound else cb(data, addr)
            if inspect.isawaitable(result):
                self.owner._track(result, event, addr, cb)
        except Exception as exc:
            self.owner._callback_failed(cb, exc, event, addr)


class Communicator(Service):
    """Base of rig communicators: the remote address, a name, a logger and callbacks.

    Args:
        server_uri: the remote (client role) or local (server role) address.
        name: a label, default the URI.
        logger: default ``logging.getLogger("sciwire.rig")``.
    """

    def __init__(
        self, server_uri: Any, name: str | None = None, logger: logging.Logger | None = None
    ) -> None:
        self.server_uri = validate_uri(server_uri)
        self.name: str = name or str(server_uri)
        self.logger: logging.Logger = logger or logging.getLogger("sciwire.rig")
        self._callbacks = Registry("flag")
        self._tasks: set[asyncio.Future[Any]] = set()
        #: callbacks that raised, by event name
        self.callback_errors = 0

    # -- address ----------------------------------------------------------------------

    @property
    def server_uri(self) -> str:
        """The full URI of the remote (client role) or local (server role) address."""
        return self._server_uri

    @server_uri.setter
    def server_uri(self, value: str) -> None:
        parsed = urlparse(value)
        self._server_uri = value
        self._scheme = parsed.scheme
        self._host = parsed.hostname or ""
        self._port = int(parsed.port or 0)

    @property
    def port(self) -> int:
        """The remote (or local, in the server role) port."""
        return self._port

    @property
    def hostname(self) -> str:
        """The remote (or local) IP address, without IPv6 brackets."""
        return self._host

    @property
    def protocol(self) -> str:
        """The URI scheme: udp, tcp, ws or wss."""
        return self._scheme

    @property
    def is_connected(self) -> bool:
        """True if the transport is open."""
        raise NotImplementedError

    # -- codec ------------------------------------------------------------------------

    #: Serialise a message byte-identically to iblutil (see :func:`protocol.encode`).
    encode = staticmethod(encode)

    @staticmethod
    def decode(data: bytes) -> Any:
        """Parse JSON, falling back to the text itself (see :func:`protocol.decode`)."""
        return decode(data)

    def send(self, data: Any, addr: Addr | None = None) -> None:
        """Serialise *data* and pass it to the transport."""
        raise NotImplementedError

    # -- callbacks --------------------------------------------------------------------

    def assign_callback(self, event: Any, callback: Callback) -> None:
        """Call *callback* (or resolve a future once) when *event* arrives.

        Args:
            event: name, int or ExpMessage; a compound flag registers for each bit and
                the callback then also gets the event: ``(data, addr, event)``.
            callback: a callable ``(data, addr)``, a coroutine function (run as a
                task), or an asyncio Future resolved with ``(data, addr)``.

        Raises:
            TypeError: the callback is neither callable nor a future.
            ValueError: unknown event.
        """
        event = ExpMessage.validate(event)
        if not (callable(callback) or isinstance(callback, asyncio.Future)):
            raise RigTypeError("Callback must be callable or a Future")
        value = int(event)
        compound = value & (value - 1) != 0
        once = isinstance(callback, asyncio.Future)
        self._callbacks.register(value, _Entry(self, callback, compound), once=once)

    def clear_callbacks(
        self, event: Any, callback: Callback | None = None, cancel_futures: bool = True
    ) -> int:
        """Remove *callback* (or every callback) for *event*.

        A compound registration loses only the bits cleared. Returns how many
        (event bit, callback) registrations were removed, as iblutil counts them.
        """
        event = ExpMessage.validate(event)
        want = None if callback is None else _callback_id(callback)
        mask = int(event)
        removed = 0
        for handler in self._callbacks.handlers():
            entry = cast(_Entry, handler.callback)
            pattern: int = handler.pattern
            if want is not None and entry.key != want:
                continue
            if mask == 0:  # the error event 0 matches only its own registrations
                if pattern != 0:
                    continue
                bits, left = 1, 0
            else:
                common = pattern & mask
                if not common:
                    continue
                bits, left = bin(common).count("1"), pattern & ~mask
            self._callbacks.unregister(handler.id)
            removed += bits
            if left:
                self._callbacks.register(left, entry, once=handler.once)
            elif cancel_futures and isinstance(entry.callback, asyncio.Future):
                entry.callback.cancel()
        self.logger.debug("[%s] %i callbacks cleared", self.name, removed)
        return removed

    async def on_event(self, event: Any) -> Any:
        """Wait for *event*; return ``(data, addr)`` (``(data, addr, event)`` if compound)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.assign_callback(event, fut)
        try:
            return await fut
        finally:
            if not fut.done() or fut.cancelled():  # still registered
                self.clear_callbacks(event, fut)

    def _dispatch(self, event: ExpMessage, data: list[Any], addr: Addr) -> int:
        if not len(self._callbacks):
            return 0
        return self._callbacks.dispatch(int(event), data, addr, event)

    def _handlers(self) -> list[Handler]:
        return self._callbacks.handlers()

    def _track(self, awaitable: Any, event: ExpMessage, addr: Addr, cb: Any) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)

        def done(t: asyncio.Future[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and (exc := t.exception()) is not None:
                self._callback_failed(cb, exc, event, addr)

        task.add_done_callback(done)

    def _callback_failed(
        self, callback: Any, exc: BaseException, event: ExpMessage, addr: Addr
    ) -> None:
        """Log a raising callback and tell the peer with a code-0 error report."""
        self.callback_errors += 1
        self.logger.error('Callback "%s" failed with error "%s"', callback, exc, exc_info=exc)
        report = self.encode([0, f"{type(exc).__name__}: {exc}", int(event)])
        try:
            self.send(report, addr)
        except Exception:  # the link may be gone; the failure is logged above
            self.logger.debug("could not report callback error to %s", addr, exc_info=True)

    def _error_report(self, report: ErrorReport, addr: Addr) -> None:
        try:
            name = ExpMessage(report.event).name if 0 <= report.event <= 255 else None
        except ValueError:
            name = None
        self.logger.error(
            "Callback for %s on %s://%s:%s failed with %s",
            name or report.event,
            self.protocol,
            addr[0],
            addr[1],
            report.error,
        )
        self._dispatch(ExpMessage(0), [report.error, report.event], addr)

    def close(self) -> None:
        """De-register every callback and cancel waiting futures."""
        for handler in self._callbacks.handlers():
            cb = cast(_Entry, handler.callback).callback
            if isinstance(cb, asyncio.Future) and not cb.done():
                cb.cancel("Close called on communicator")
        self._callbacks.clear()
