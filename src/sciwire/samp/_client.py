"""The blocking SAMP clients, drop-in for astropy.samp's: SAMPHubProxy and SAMPClient.

Both run the asyncio core (:mod:`sciwire.samp._aproxy`, :mod:`sciwire.samp._aclient`)
on one background event loop shared by every blocking SAMP object of the process
(a :class:`sciwire.core.portal.Portal`, started with the first connection and stopped
with the last). Incoming messages are handed to a process-wide pool of worker
threads that grows only while every worker is busy, so handlers run on a background
thread (as with astropy) and may call back into the hub (``reply``,
``call_and_wait``...) without deadlocking the loop. There is no thread per message
and no polling.
"""

from __future__ import annotations

import concurrent.futures
import logging
import ssl
import threading
import warnings
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from sciwire.core.portal import Portal
from sciwire.samp import _legacy as legacy
from sciwire.samp._aclient import AsyncSAMPClient
from sciwire.samp._aproxy import AsyncSAMPHubProxy, HubLike
from sciwire.samp._caller import BlockingRpcCaller
from sciwire.samp._common import Bindings, ClientSide, Handler, tls_settings
from sciwire.samp._hubmethods import BlockingHubMethods
from sciwire.samp._legacy import is_legacy
from sciwire.samp._rpc import plain
from sciwire.samp._tls import TlsOptions
from sciwire.samp.errors import SAMPClientError, SAMPHubError, SAMPProxyError, SAMPWarning

__all__ = ["SAMPClient", "SAMPHubProxy", "shared_portal"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The most worker threads running handlers of incoming messages, process-wide. The
#: pool only grows when every worker is busy (a handler blocked in call_and_wait, say),
#: so it behaves like astropy's thread per message without a thread per message.
HANDLER_THREADS = 128

_pool_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def handler_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The worker threads that run blocking clients' handlers (created on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                HANDLER_THREADS, thread_name_prefix="samp-handler"
            )
        return _pool


class _SharedPortal:
    """One event-loop thread for all blocking SAMP objects, counted by users."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._portal: Portal | None = None
        self._users = 0

    def acquire(self) -> Portal:
        with self._lock:
            if self._portal is None:
                portal = Portal("sciwire-samp")
                portal.start()
                self._portal = portal
            self._users += 1
            return self._portal

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._portal is None:
                return
            portal, self._portal = self._portal, None
        portal.stop()

    @property
    def users(self) -> int:
        return self._users


shared_portal = _SharedPortal()


def _run_detached(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that must finish without awaiting I/O (used before start)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise SAMPClientError("this operation needs a connected, started client")


class SAMPHubProxy(BlockingHubMethods):
    """Proxy to a SAMP hub's Standard Profile methods (astropy's SAMPHubProxy API).

    Attributes:
        lockfile: the hub's lockfile contents once connected.
    """

    def __init__(self) -> None:
        self._core = AsyncSAMPHubProxy()
        self._portal: Portal | None = None
        self._portal_lock = threading.Lock()
        # Calls from the user's thread go straight to a socket (no hop to the loop
        # thread and back); the loop serves the callbacks and the asyncio core.
        self._direct: BlockingRpcCaller | None = None
        # astropy's state: a subclass that connects its own way (astropy's Web Profile
        # test proxy) sets these two and overrides _samp_hub.
        self._connected = False
        self.proxy: Any = None

    @property
    def is_connected(self) -> bool:
        """Whether the proxy is connected to a hub."""
        if self._direct is None:
            return self._connected
        return self._connected and self._core.is_connected

    @property
    def _samp_hub(self) -> Any:
        """The object whose attributes are the hub's methods (astropy's hook)."""
        return self.proxy.samp.hub

    @property
    def lockfile(self) -> dict[str, str]:
        """The lockfile contents of the connected hub (empty when not connected)."""
        return self._core.lockfile

    @lockfile.setter
    def lockfile(self, value: dict[str, str]) -> None:
        # astropy's proxy keeps it as a plain attribute that subclasses may set
        self._core.lockfile = dict(value)

    @property
    def core(self) -> AsyncSAMPHubProxy:
        """The asyncio proxy this wraps (use it only on :attr:`portal`'s loop)."""
        return self._core

    @property
    def portal(self) -> Portal | None:
        """The shared portal while connected."""
        return self._portal

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        portal = self._portal
        if portal is None:
            coro.close()
            raise SAMPHubError("Hub proxy not connected")
        return portal.call(coro)

    def connect(
        self,
        hub: HubLike | None = None,
        hub_params: Mapping[str, str] | None = None,
        pool_size: int = 20,
        *,
        key_file: str | None = None,
        cert_file: str | None = None,
        cert_reqs: int = 0,
        ca_certs: str | None = None,
        ssl_version: Any = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Connect to a hub: *hub*, the one described by *hub_params*, or the running one.

        The TLS arguments (astropy's pre-2.0 names) apply to an ``https`` hub:
        *cert_reqs* ``ssl.CERT_REQUIRED`` with *ca_certs* checks its certificate,
        *key_file*/*cert_file* are this side's; *ssl_context* replaces them all.

        Raises:
            ValueError: both *hub* and *hub_params* given.
            SAMPHubError: no hub found, or it does not answer.
        """
        with self._portal_lock:
            if self._portal is None:
                self._portal = shared_portal.acquire()
        try:
            if ssl_context is None:
                tls = TlsOptions(key_file, cert_file, cert_reqs, ca_certs, ssl_version)
                ssl_context = tls.client_context()
            self._run(self._core.connect(hub, hub_params, pool_size, ssl_context=ssl_context))
            direct, self._direct = self._direct, None
            if direct is not None:
                direct.close()
            url = self._core.lockfile["samp.hub.xmlrpc.url"]
            self._direct = BlockingRpcCaller(url, pool_size, ssl_context=ssl_context)
            self.proxy = _MethodPath(self._direct, "")
            self._connected = True
        except BaseException:
            self._release()
            raise

    def disconnect(self) -> None:
        """Disconnect from the hub."""
        self._connected = False
        self.proxy = None  # as astropy: later calls say "not connected", not "closed"
        direct, self._direct = self._direct, None
        if direct is not None:
            direct.close()
        if self._portal is None:
            return
        try:
            self._run(self._core.disconnect())
        finally:
            self._release()

    def _release(self) -> None:
        with self._portal_lock:
            portal, self._portal = self._portal, None
        if portal is not None:
            shared_portal.release()

    def server_close(self) -> None:
        """Close the connections to the hub (same as :meth:`disconnect`)."""
        self.disconnect()

    def _call(self, method: str, *args: Any, timeout: float | str | None = "default") -> Any:
        direct = self._direct
        policy = self._core.args_policy
        if type(self)._samp_hub is not _SAMP_HUB or direct is None:
            # a subclass reaches its hub its own way (astropy's hook, which also pings
            # before it counts itself connected): no timeout to pass
            if self.proxy is None:
                raise SAMPHubError("Hub proxy not connected")
            return getattr(self._samp_hub, method)(*plain(args))
        if not self._core.is_connected:
            raise SAMPHubError("Hub proxy not connected")
        name = "samp.hub." + method
        try:
            return direct.call(name, *policy.first(args), timeout=timeout)
        except SAMPProxyError as fault:
            again = policy.retry(args, fault)
            if again is None:
                raise
            return direct.call(name, *again, timeout=timeout)

    def notify_all(self, private_key: str, message: Mapping[str, Any]) -> list[str]:
        """Proxy to ``notifyAll``: the ids notified (a :class:`SAMPWarning` when none)."""
        ids = super().notify_all(private_key, message)
        if not ids:
            warnings.warn("No client was able to receive this message", SAMPWarning, stacklevel=2)
        return ids


_SAMP_HUB = SAMPHubProxy.__dict__["_samp_hub"]


class _MethodPath:
    """``proxy.samp.hub.ping()`` over a :class:`BlockingRpcCaller` (astropy's ``proxy``)."""

    def __init__(self, caller: BlockingRpcCaller, name: str) -> None:
        self._caller = caller
        self._name = name

    def __getattr__(self, name: str) -> _MethodPath:
        if name.startswith("__"):
            raise AttributeError(name)
        return _MethodPath(self._caller, f"{self._name}.{name}" if self._name else name)

    def __call__(self, *args: Any) -> Any:
        return self._caller.call(self._name, *plain(args))


class SAMPClient(ClientSide[AsyncSAMPClient], Bindings[None]):
    """A callable SAMP client application (astropy's SAMPClient API).

    Args:
        hub: the :class:`SAMPHubProxy` to talk through.
        name: ``samp.name`` metadata.
        description: ``samp.description.text`` metadata.
        metadata: further metadata.
        addr: the callback server's address (default 127.0.0.1; astropy probes the
            internet and may use the host name, we never do).
        port: the callback server's port (0: the system chooses).
        https: serve the callbacks over TLS (needs *cert_file*).
        key_file, cert_file: the callback server's key and certificate (PEM).
        cert_reqs: ``ssl.CERT_NONE`` (default), ``CERT_OPTIONAL`` or
            ``CERT_REQUIRED``: what the callback server asks of the hub's certificate.
        ca_certs: the CA certificates (PEM) that check trusts.
        ssl_version: pin one TLS version (``ssl.TLSVersion`` or ``PROTOCOL_TLSv1_2``...).
        callable: whether the client receives calls and notifications.
    """

    def __init__(
        self,
        hub: SAMPHubProxy,
        name: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        addr: str | None = None,
        port: int = 0,
        https: bool = False,
        key_file: str | None = None,
        cert_file: str | None = None,
        cert_reqs: int = 0,
        ca_certs: str | None = None,
        ssl_version: Any = None,
        callable: bool = True,
    ) -> None:
        _, server_ssl = tls_settings(https, key_file, cert_file, cert_reqs, ca_certs, ssl_version)
        self.hub = hub
        self._callable = callable
        self._core = AsyncSAMPClient(
            hub.core,
            name,
            description,
            metadata,
            addr,
            port,
            callable,
            runner=self._submit,
            receiver=self,
            ssl_context=server_ssl,
        )
        self._portal: Portal | None = None
        self._accepting = False

    @property
    def core(self) -> AsyncSAMPClient:
        """The asyncio client this wraps."""
        return self._core

    @property
    def is_running(self) -> bool:
        """Whether the client is started."""
        if is_legacy(self):
            return bool(self.__dict__.get("_is_running", False))
        return self._core.is_running

    @property
    def is_registered(self) -> bool:
        """Whether the client is registered with the hub."""
        if is_legacy(self):
            return bool(self.__dict__.get("_is_registered", False))
        return self._core.is_registered

    @property
    def _xmlrpcAddr(self) -> str | None:
        return self._core.callback_url

    @property
    def _inner(self) -> AsyncSAMPClient:
        return self._core

    @property
    def _core_client(self) -> AsyncSAMPClient:
        return self._core

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        portal = self._portal or self.hub.portal
        if portal is None or not portal.running:
            return _run_detached(coro)
        return portal.call(coro)

    def _drive(self, coro: Coroutine[Any, Any, None]) -> None:
        self._run(coro)

    def _submit(self, job: Callable[[], Any]) -> None:
        if not self._accepting:
            self._core.dropped += 1
            return
        try:
            (_pool or handler_pool()).submit(self._work, job)
        except RuntimeError:  # the interpreter is shutting down
            self._core.dropped += 1

    @staticmethod
    def _work(job: Callable[[], Any]) -> None:
        try:
            job()
        except Exception:
            logger.exception("SAMP callback failed")

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start the callback server on the background loop (non-blocking)."""
        if is_legacy(self):
            legacy.start(self)
            return
        if self.is_running:
            return
        if self._portal is None:
            self._portal = shared_portal.acquire()
        self._accepting = self._callable
        try:
            self._portal.call(self._core.start())
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the callback server and the handler threads.

        Raises:
            SAMPClientError: the server did not stop within *timeout* seconds.
        """
        if is_legacy(self):
            legacy.stop(self, timeout)
            return
        portal, self._portal = self._portal, None
        self._accepting = False
        try:
            if portal is not None:
                portal.call(self._core.stop(timeout))
        finally:
            if portal is not None:
                shared_portal.release()

    def register(self) -> None:
        """Register with the hub (declares subscriptions and metadata)."""
        if not self.hub.is_connected:
            raise SAMPClientError("Unable to register to the SAMP Hub. Hub proxy not connected.")
        if self._callable and not self.is_running:
            self.start()  # the hub must be able to call back as soon as we are registered
        self._run(self._core.register())

    def unregister(self) -> None:
        """Unregister from the hub.

        Raises:
            SAMPClientError: the hub proxy is not connected (raised by the core).
        """
        if is_legacy(self):
            legacy.unregister(self)
            return
        self._run(self._core.unregister())

    # -- astropy's attribute-based state (see sciwire.samp._legacy) ------------------

    def _ping(
        self, private_key: str, sender_id: str, msg_id: str, mtype: str, params: Any, extra: Any
    ) -> None:
        legacy.ping_reply(self, private_key, msg_id)

    def _client_env_get(
        self, private_key: str, sender_id: str, msg_id: str, mtype: str, params: Any, extra: Any
    ) -> None:
        legacy.env_reply(self, private_key, msg_id, params if isinstance(params, dict) else {})

    def receive_notification(
        self, private_key: str, sender_id: str, message: dict[str, Any]
    ) -> str:
        """Dispatch a notification to the bound handlers; returns ""."""
        if is_legacy(self):
            return legacy.receive_notification(self, private_key, sender_id, message)
        return self._core.receive_notification(private_key, sender_id, message)

    def receive_call(
        self, private_key: str, sender_id: str, msg_id: str, message: dict[str, Any]
    ) -> str:
        """Dispatch a call to the bound handlers; returns ""."""
        if is_legacy(self):
            return legacy.receive_call(self, private_key, sender_id, msg_id, message)
        return self._core.receive_call(private_key, sender_id, msg_id, message)

    def receive_response(
        self, private_key: str, responder_id: str, msg_tag: str, response: dict[str, Any]
    ) -> str:
        """Dispatch a response to the handler bound to its tag; returns ""."""
        if is_legacy(self):
            return legacy.receive_response(self, private_key, responder_id, msg_tag, response)
        return self._core.receive_response(private_key, responder_id, msg_tag, response)

    def _forward(self, name: str, *args: Any) -> None:
        # bind_*, unbind_* and declare_* of _common.Bindings arrive here: astropy-style
        # state (a subclass's own __init__) is served by _legacy, ours by the core.
        if is_legacy(self):
            legacy.forward(self, name, *args)
            return
        super()._forward(name, *args)

    def bind_receive_response(self, msg_tag: str, function: Handler) -> None:
        """Bind responses tagged *msg_tag* to ``function(private_key, responder_id,
        msg_tag, response)``."""
        if is_legacy(self):
            if not self._callable:
                raise SAMPClientError("Client not callable.")
            self.__dict__["_response_bindings"][msg_tag] = function
            return
        self._core.bind_receive_response(msg_tag, function)

    def unbind_receive_response(self, msg_tag: str) -> None:
        """Remove the response binding of *msg_tag* (KeyError if none)."""
        if is_legacy(self):
            del self.__dict__["_response_bindings"][msg_tag]
            return
        self._core.unbind_receive_response(msg_tag)

    def _declare_subscriptions(self, subscriptions: Mapping[str, Any] | None = None) -> None:
        if is_legacy(self):
            legacy.declare_subscriptions(self, subscriptions)
            return
        self._run(self._core._declare_subscriptions(subscriptions))

    def get_private_key(self) -> str | None:
        """The private key from registration (None when not registered)."""
        if is_legacy(self):
            return self.__dict__.get("_private_key")
        return self._core.get_private_key()

    def get_public_id(self) -> str | None:
        """The public id from registration (None when not registered)."""
        if is_legacy(self):
            return self.__dict__.get("_public_id")
        return self._core.get_public_id()

    # receive_* (override them in a subclass to handle messages yourself), bind_*,
    # unbind_*, declare_* and get_* come from sciwire.samp._common.
