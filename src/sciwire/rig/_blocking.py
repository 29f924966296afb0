"""A blocking facade for rig scripts that are not async.

Every blocking communicator runs its :class:`EchoProtocol` on a
:class:`sciwire.core.portal.Portal` (one shared background loop by default)::

    with BlockingEchoProtocol.client("udp://10.0.0.2") as rig:
        rig.init({"exp_ref": "2024-01-01_1_mouse"})
        data, addr = rig.on_event("EXPINIT", timeout=10)

The methods are the asyncio ones, run on the portal: each is made from the async
method by :func:`_awaited` or :func:`_on_loop`, so its signature, defaults,
docstring and errors are the async method's and cannot drift from it. What is
blocking-only is named: the constructors' *portal*, ``on_event``'s *timeout* (a
blocking wait needs a deadline), and ``close`` also waiting for the sockets.

Callbacks assigned here run on the portal's loop thread.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from sciwire.core.portal import Portal
from sciwire.rig._client import EchoProtocol
from sciwire.rig._errors import RigTypeError, RigValueError
from sciwire.rig._services import Services

__all__ = ["BlockingEchoProtocol", "BlockingServices", "default_portal"]

P = ParamSpec("P")
T = TypeVar("T")
_lock = threading.Lock()
_portal: Portal | None = None


def default_portal() -> Portal:
    """The background loop shared by blocking communicators (started on first use)."""
    global _portal
    with _lock:
        if _portal is None or not _portal.running:
            _portal = Portal("sciwire-rig")
            _portal.start()
        return _portal


class _Twin:
    """An asyncio object driven from blocking code through a portal."""

    def __init__(self, target: Any, portal: Portal) -> None:
        self._target = target
        self.portal = portal


def _awaited(
    fn: Callable[Concatenate[Any, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[_Twin, P], T]:
    """The blocking form of an async method: the same call, awaited on the portal."""
    name = fn.__name__

    def method(self: _Twin, /, *args: P.args, **kwargs: P.kwargs) -> T:
        coro: Coroutine[Any, Any, T] = getattr(self._target, name)(*args, **kwargs)
        return self.portal.call(coro)

    functools.update_wrapper(method, fn)
    return method


def _on_loop(fn: Callable[Concatenate[Any, P], T]) -> Callable[Concatenate[_Twin, P], T]:
    """The blocking form of a plain method that must run on the loop thread (it
    touches the loop's callbacks, futures or transports)."""
    name = fn.__name__

    def method(self: _Twin, /, *args: P.args, **kwargs: P.kwargs) -> T:
        bound = getattr(self._target, name)

        async def run() -> T:
            result: T = bound(*args, **kwargs)
            return result

        return self.portal.call(run())

    functools.update_wrapper(method, fn)
    return method


def _read(name: str, doc: str | None) -> Any:
    """A read-only property showing the asyncio object's attribute *name*."""
    return property(lambda self: getattr(self._target, name), doc=doc)


class BlockingEchoProtocol(_Twin):
    """An :class:`EchoProtocol` driven from blocking code.

    Build with :meth:`client` or :meth:`server`. Methods are the async ones and
    block until done; errors are the same.

    Attributes:
        com: the underlying asyncio communicator (use only on the portal's loop).
        portal: the loop it runs on.
        close_timeout: seconds :meth:`close` waits for the sockets to be released.
    """

    close_timeout = 10.0

    def __init__(self, com: EchoProtocol, portal: Portal) -> None:
        super().__init__(com, portal)
        self.com = com

    @classmethod
    def client(
        cls,
        server_uri: Any,
        name: str | None = None,
        log: Any = None,
        portal: Portal | None = None,
        **kwargs: Any,
    ) -> BlockingEchoProtocol:
        """Connect to a remote rig (see :meth:`EchoProtocol.client`)."""
        portal = portal or default_portal()
        return cls(portal.call(EchoProtocol.client(server_uri, name, log, **kwargs)), portal)

    @classmethod
    def server(
        cls,
        server_uri: Any,
        name: str | None = None,
        log: Any = None,
        portal: Portal | None = None,
        **kwargs: Any,
    ) -> BlockingEchoProtocol:
        """Listen on a local address (see :meth:`EchoProtocol.server`)."""
        portal = portal or default_portal()
        return cls(portal.call(EchoProtocol.server(server_uri, name, log, **kwargs)), portal)

    name = _read("name", "The communicator's label.")
    server_uri = _read("server_uri", EchoProtocol.server_uri.__doc__)
    hostname = _read("hostname", EchoProtocol.hostname.__doc__)
    port = _read("port", EchoProtocol.port.__doc__)
    protocol = _read("protocol", EchoProtocol.protocol.__doc__)
    role = _read("role", EchoProtocol.role.__doc__)
    is_connected = _read("is_connected", EchoProtocol.is_connected.__doc__)

    init = _awaited(EchoProtocol.init)
    start = _awaited(EchoProtocol.start)
    stop = _awaited(EchoProtocol.stop)
    status = _awaited(EchoProtocol.status)
    info = _awaited(EchoProtocol.info)
    cleanup = _awaited(EchoProtocol.cleanup)
    alyx = _awaited(EchoProtocol.alyx)
    confirmed_send = _awaited(EchoProtocol.confirmed_send)
    send = _on_loop(EchoProtocol.send)
    assign_callback = _on_loop(EchoProtocol.assign_callback)
    clear_callbacks = _on_loop(EchoProtocol.clear_callbacks)
    awaiting_response = _on_loop(EchoProtocol.awaiting_response)

    def on_event(self, event: Any, timeout: float | None = None) -> Any:
        """Block until *event* arrives (see :meth:`EchoProtocol.on_event`).

        Raises:
            sciwire.errors.Timeout: not within *timeout* seconds (also TimeoutError).
        """
        return self.portal.call(self.com.on_event(event), timeout)

    def close(self) -> None:
        """Close the communicator and wait until its sockets are released (the shared
        portal keeps running); closing again does nothing."""
        if self.portal.running:
            self.portal.call(self.com.wait_closed(), self.close_timeout)

    def __enter__(self) -> BlockingEchoProtocol:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class BlockingServices(_Twin):
    """:class:`Services` over blocking communicators that share one portal.

    Args:
        remote_rigs: the blocking communicators.
        timeout: as :class:`Services`'.

    Raises:
        RigTypeError: a rig is not a :class:`BlockingEchoProtocol` (also TypeError).
        RigValueError: the communicators run on different portals (also ValueError).
    """

    def __init__(self, remote_rigs: Any, timeout: float | None = 10.0) -> None:
        rigs = list(remote_rigs)
        if not all(isinstance(r, BlockingEchoProtocol) for r in rigs):
            raise RigTypeError(f"Remote services must be of type {BlockingEchoProtocol}")
        if len({id(r.portal) for r in rigs}) > 1:
            raise RigValueError("all rigs of a BlockingServices must share one portal")
        portal = rigs[0].portal if rigs else default_portal()
        self.services = Services([r.com for r in rigs], timeout=timeout)
        super().__init__(self.services, portal)
        self.rigs: dict[str, BlockingEchoProtocol] = {r.name: r for r in rigs}

    is_connected = _read("is_connected", Services.is_connected.__doc__)
    timeout = _read("timeout", "Seconds to wait for every rig's reply.")

    init = _awaited(Services.init)
    start = _awaited(Services.start)
    stop = _awaited(Services.stop)
    status = _awaited(Services.status)
    info = _awaited(Services.info)
    cleanup = _awaited(Services.cleanup)
    alyx = _awaited(Services.alyx)
    await_all = _awaited(Services.await_all)
    assign_callback = _on_loop(Services.assign_callback)
    clear_callbacks = _on_loop(Services.clear_callbacks)

    def close(self) -> None:
        """Close every rig (see :meth:`BlockingEchoProtocol.close`)."""
        for rig in self.rigs.values():
            rig.close()

    def __enter__(self) -> BlockingServices:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
