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
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlparse

from sciwire.core.patterns import Handler, Registry
from sciwire.rig._errors import RigTypeError
from sciwire.rig._protocol import (
    MAX_MESSAGE_SIZE,
    ErrorReport,
    ExpMessage,
    Message,
    Rejected,
    Service,
    decode,
    encode,
    parse_message,
)
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
        logger: default ``logging.getLogger(name)``, the logger named after the
            communicator, as iblutil names it (no handler is added: nothing prints).
    """

    #: the largest message accepted (65535, UDP's maximum)
    max_message_size = MAX_MESSAGE_SIZE

    def __init__(
        self, server_uri: Any, name: str | None = None, logger: logging.Logger | None = None
    ) -> None:
        self.server_uri = validate_uri(server_uri)
        self.name = name or str(server_uri)
        self.logger: logging.Logger = logger or logging.getLogger(self.name)
        self._registry = Registry("flag")
        self._tasks: set[asyncio.Future[Any]] = set()
        #: how many callbacks raised
        self.callback_errors = 0
        #: counts of messages dropped unechoed, by reason
        self.dropped: Counter[str] = Counter()

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
        self._registry.register(value, _Entry(self, callback, compound), once=once)

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
        for handler in self._registry.handlers():
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
            self._registry.unregister(handler.id)
            removed += bits
            if left:
                self._registry.register(left, entry, once=handler.once)
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

    @property
    def _callbacks(self) -> dict[ExpMessage, list[tuple[Callback, bool]]]:
        """iblutil's shape of the callbacks, for reading: ``{event: [(callback, compound)]}``
        for the error event 0 and every single event (a snapshot)."""
        view: dict[ExpMessage, list[tuple[Callback, bool]]] = {
            ExpMessage(0): [],
            **{e: [] for e in ExpMessage.__members__.values()},
        }
        for handler in self._registry.handlers():
            entry = cast(_Entry, handler.callback)
            events = list(ExpMessage(handler.pattern)) if handler.pattern else [ExpMessage(0)]
            for event in events:
                view[event].append((entry.callback, entry.compound))
        return view

    def _receive(self, data: bytes, addr: Addr) -> None:
        """Run the callbacks for one received message (no echo: the transport layer's job).

        Invalid input is dropped with a ``RuntimeWarning``, as iblutil warns.
        """
        parsed = parse_message(data, self.max_message_size)
        if type(parsed) is Message:
            self._dispatch(parsed.event, parsed.data, addr)
        elif type(parsed) is ErrorReport:
            self._error_report(parsed, addr)
        else:
            self._rejected(cast(Rejected, parsed), addr)

    def _rejected(self, parsed: Rejected, addr: Addr) -> None:
        self.dropped[parsed.reason] += 1
        self.logger.warning(
            "%s: dropped message from %s (%s): %.120r", self.name, addr, parsed.detail, parsed.raw
        )
        # The text names only the reason, never the data: the warnings registry keeps
        # one entry per distinct text, so garbage from the network cannot grow it.
        warnings.warn(
            f"Expected a list [event, *data]; dropped a message ({parsed.reason})",
            RuntimeWarning,
            stacklevel=2,
        )

    def _dispatch(self, event: ExpMessage, data: list[Any], addr: Addr) -> int:
        registry = self._registry
        called = registry.dispatch(int(event), data, addr, event) if len(registry) else 0
        if not called:
            self.logger.debug("No callbacks to execute for event %s", event.name)
        return called

    def _handlers(self) -> list[Handler]:
        return self._registry.handlers()

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
        for handler in self._registry.handlers():
            cb = cast(_Entry, handler.callback).callback
            if isinstance(cb, asyncio.Future) and not cb.done():
                cb.cancel("Close called on communicator")
        self._registry.clear()
