"""A blocking facade for rig scripts that are not async.

Every blocking communicator runs its :class:`EchoProtocol` on a
:class:`sciwire.core.portal.Portal` (one shared background loop by default)::

    with BlockingEchoProtocol.client("udp://10.0.0.2") as rig:
        rig.init({"exp_ref": "2024-01-01_1_mouse"})
        data, addr = rig.on_event("EXPINIT", timeout=10)

Callbacks assigned here run on the portal's loop thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from sciwire.core.portal import Portal
from sciwire.rig._client import EchoProtocol
from sciwire.rig._communicator import Addr
from sciwire.rig._services import Services

__all__ = ["BlockingEchoProtocol", "BlockingServices", "default_portal"]

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


class BlockingEchoProtocol:
    """An :class:`EchoProtocol` driven from blocking code.

    Build with :meth:`client` or :meth:`server`. Methods mirror the async ones and
    block until done; errors are the same.

    Attributes:
        com: the underlying asyncio communicator (use only on the portal's loop).
        portal: the loop it runs on.
    """

    def __init__(self, com: EchoProtocol, portal: Portal) -> None:
        self.com = com
        self.portal = portal

    @classmethod
    def client(
        cls,
        server_uri: Any,
        name: str | None = None,
        log: Any = None,
        portal: Portal | None = None,
        **kwargs: Any,
    ) -> BlockingEchoProtocol:
        """Connect to a remote rig."""
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
        """Listen on a local address."""
        portal = portal or default_portal()
        return cls(portal.call(EchoProtocol.server(server_uri, name, log, **kwargs)), portal)

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self.portal.call(coro, timeout)

    def _sync(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async def run() -> T:
            return func(*args, **kwargs)

        return self.portal.call(run())

    # -- properties -------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The communicator's label."""
        return self.com.name

    @property
    def server_uri(self) -> str:
        """The remote (client) or local (server) URI."""
        return self.com.server_uri

    @property
    def role(self) -> str:
        """``"client"`` or ``"server"``."""
        return self.com.role

    @property
    def is_connected(self) -> bool:
        """True while the transport is open."""
        return self.com.is_connected

    # -- messages ---------------------------------------------------------------------

    def init(self, data: Any = None, addr: Addr | None = None) -> None:
        """Send EXPINIT and wait for its echo."""
        self._call(self.com.init(data, addr=addr))

    def start(self, exp_ref: Any, data: Any = None, addr: Addr | None = None) -> None:
        """Send EXPSTART and wait for its echo."""
        self._call(self.com.start(exp_ref, data, addr=addr))

    def stop(self, data: Any = None, immediately: bool = False, addr: Addr | None = None) -> None:
        """Send EXPEND (EXPINTERRUPT if *immediately*) and wait for its echo."""
        self._call(self.com.stop(data, immediately=immediately, addr=addr))

    def status(self, status: Any, addr: Addr | None = None) -> None:
        """Send EXPSTATUS and wait for its echo."""
        self._call(self.com.status(status, addr=addr))

    def info(self, status: Any, data: Any = None, addr: Addr | None = None) -> None:
        """Send EXPINFO and wait for its echo."""
        self._call(self.com.info(status, data, addr=addr))

    def cleanup(self, data: Any = None, addr: Addr | None = None) -> None:
        """Send EXPCLEANUP and wait for its echo."""
        self._call(self.com.cleanup(data, addr=addr))

    def alyx(self, alyx: Any = None, addr: Addr | None = None) -> Any:
        """Send our Alyx token, or ask for the peer's and return it."""
        return self._call(self.com.alyx(alyx, addr=addr))

    def confirmed_send(
        self, data: Any, addr: Addr | None = None, timeout: float | None = None
    ) -> None:
        """Send and wait for the echo."""
        self._call(self.com.confirmed_send(data, addr=addr, timeout=timeout))

    def send(self, data: Any, addr: Addr | None = None) -> None:
        """Send without waiting for an echo."""
        self._sync(self.com.send, data, addr)

    def on_event(self, event: Any, timeout: float | None = None) -> Any:
        """Block until *event* arrives; TimeoutError after *timeout* seconds."""
        return self._call(self.com.on_event(event), timeout)

    def assign_callback(self, event: Any, callback: Callable[..., Any]) -> None:
        """Call *callback* (on the portal thread) when *event* arrives."""
        self._sync(self.com.assign_callback, event, callback)

    def clear_callbacks(self, event: Any, callback: Any = None) -> int:
        """Remove callbacks for *event*; return how many."""
        return self._sync(self.com.clear_callbacks, event, callback)

    def close(self) -> None:
        """Close the communicator (the shared portal keeps running)."""
        if self.portal.running:
            self._call(self.com.wait_closed())

    def __enter__(self) -> BlockingEchoProtocol:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class BlockingServices:
    """:class:`Services` over blocking communicators that share one portal.

    Raises:
        ValueError: the communicators run on different portals.
    """

    def __init__(self, remote_rigs: list[BlockingEchoProtocol], timeout: float = 10.0) -> None:
        portals = {id(r.portal) for r in remote_rigs}
        if len(portals) > 1:
            raise ValueError("all rigs of a BlockingServices must share one portal")
        self.portal = remote_rigs[0].portal if remote_rigs else default_portal()
        self.services = Services([r.com for r in remote_rigs], timeout=timeout)
        self.rigs = {r.name: r for r in remote_rigs}

    @property
    def is_connected(self) -> bool:
        """True if all rigs are connected."""
        return self.services.is_connected

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.portal.call(coro)

    def init(self, data: Any = None, concurrent: bool = True) -> dict[str, Any]:
        """EXPINIT to every rig; their replies by name."""
        return self._call(self.services.init(data, concurrent=concurrent))

    def start(self, exp_ref: Any, data: Any = None, concurrent: bool = True) -> dict[str, Any]:
        """EXPSTART to every rig; their replies by name."""
        return self._call(self.services.start(exp_ref, data, concurrent=concurrent))

    def stop(self, data: Any = None, immediately: bool = False, **kw: Any) -> dict[str, Any]:
        """EXPEND or EXPINTERRUPT to every rig (reverse order); their replies."""
        return self._call(self.services.stop(data, immediately=immediately, **kw))

    def cleanup(self, data: Any = None, concurrent: bool = True) -> dict[str, Any]:
        """EXPCLEANUP to every rig (reverse order); their replies."""
        return self._call(self.services.cleanup(data, concurrent=concurrent))

    def status(self, status: Any, **kw: Any) -> dict[str, Any]:
        """EXPSTATUS to every rig; their replies."""
        return self._call(self.services.status(status, **kw))

    def info(self, status: Any, data: Any = None, **kw: Any) -> dict[str, Any]:
        """EXPINFO to every rig; their replies."""
        return self._call(self.services.info(status, data, **kw))

    def alyx(self, alyx: Any) -> None:
        """Send the Alyx token to every rig."""
        self._call(self.services.alyx(alyx))

    def await_all(self, event: Any) -> dict[str, Any]:
        """Wait for every rig to send *event*."""
        return self._call(self.services.await_all(event))

    def close(self) -> None:
        """Close every rig."""
        for rig in self.rigs.values():
            rig.close()

    def __enter__(self) -> BlockingServices:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
