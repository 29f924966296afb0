"""The Standard Profile hub methods, asyncio: the source of the blocking twin.

:class:`AsyncHubMethods` is the ``samp.hub.*`` method table of the asyncio hub proxy
(astropy's SAMPHubProxy names) over one transport hook, ``_call``.
:class:`AsyncHubSide` is an integrated client's half that adds the private key (and
builds ``e*`` messages) on top of such a proxy, and :class:`AsyncSessionSide` its
``connect`` and ``disconnect`` (the proxy and the client started and stopped together).

``tools/unasync.py`` generates :mod:`sciwire.samp._hubmethods` (``BlockingHubMethods``,
``BlockingHubSide``, ``BlockingSessionSide``) from this file, so the blocking proxy and
integrated client run the same method bodies over their own transport; edit this file,
never the twin.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any, Protocol, cast

from sciwire.samp._common import (
    HubLike,
    call_and_wait_limit,
    format_easy_msg,
    format_easy_response,
)

__all__ = ["AsyncHubMethods", "AsyncHubSide", "AsyncSessionSide"]


class AsyncHubMethods:
    """Every ``samp.hub.*`` Standard Profile method (astropy's SAMPHubProxy names)."""

    async def _call(self, method: str, *args: Any, timeout: float | str | None = "default") -> Any:
        """Call ``samp.hub.<method>`` (the transport, supplied by the proxy)."""
        raise NotImplementedError  # pragma: no cover

    async def ping(self) -> Any:
        """Proxy to ``ping``."""
        return await self._call("ping")

    async def set_xmlrpc_callback(self, private_key: str, xmlrpc_addr: str) -> Any:
        """Proxy to ``setXmlrpcCallback``."""
        return await self._call("setXmlrpcCallback", private_key, xmlrpc_addr)

    async def register(self, secret: str) -> dict[str, str]:
        """Proxy to ``register``: samp.private-key, samp.self-id, samp.hub-id."""
        return cast("dict[str, str]", await self._call("register", secret))

    async def unregister(self, private_key: str) -> Any:
        """Proxy to ``unregister``."""
        return await self._call("unregister", private_key)

    async def declare_metadata(self, private_key: str, metadata: Mapping[str, Any]) -> Any:
        """Proxy to ``declareMetadata``."""
        return await self._call("declareMetadata", private_key, metadata)

    async def get_metadata(self, private_key: str, client_id: str) -> dict[str, Any]:
        """Proxy to ``getMetadata``."""
        return cast("dict[str, Any]", await self._call("getMetadata", private_key, client_id))

    async def declare_subscriptions(
        self,
        private_key: str,
        subscriptions: Mapping[str, Any],
    ) -> Any:
        """Proxy to ``declareSubscriptions``."""
        return await self._call("declareSubscriptions", private_key, subscriptions)

    async def get_subscriptions(self, private_key: str, client_id: str) -> dict[str, Any]:
        """Proxy to ``getSubscriptions``."""
        return cast("dict[str, Any]", await self._call("getSubscriptions", private_key, client_id))

    async def get_registered_clients(self, private_key: str) -> list[str]:
        """Proxy to ``getRegisteredClients`` (every client but the caller, hub included)."""
        return cast("list[str]", await self._call("getRegisteredClients", private_key))

    async def get_subscribed_clients(self, private_key: str, mtype: str) -> dict[str, Any]:
        """Proxy to ``getSubscribedClients``: ``{client-id: annotation map}``."""
        return cast("dict[str, Any]", await self._call("getSubscribedClients", private_key, mtype))

    async def notify(self, private_key: str, recipient_id: str, message: Mapping[str, Any]) -> Any:
        """Proxy to ``notify``."""
        return await self._call("notify", private_key, recipient_id, message)

    async def notify_all(self, private_key: str, message: Mapping[str, Any]) -> list[str]:
        """Proxy to ``notifyAll``: the ids notified."""
        return cast("list[str]", await self._call("notifyAll", private_key, message))

    async def call(
        self, private_key: str, recipient_id: str, msg_tag: str, message: Mapping[str, Any]
    ) -> str:
        """Proxy to ``call``: the msg-id."""
        return cast("str", await self._call("call", private_key, recipient_id, msg_tag, message))

    async def call_all(
        self, private_key: str, msg_tag: str, message: Mapping[str, Any]
    ) -> dict[str, str]:
        """Proxy to ``callAll``: ``{recipient-id: msg-id}``."""
        return cast("dict[str, str]", await self._call("callAll", private_key, msg_tag, message))

    async def call_and_wait(
        self,
        private_key: str,
        recipient_id: str,
        message: Mapping[str, Any],
        timeout: str | int | float,
    ) -> dict[str, Any]:
        """Proxy to ``callAndWait``: the response (``timeout`` "0" waits forever)."""
        limit = call_and_wait_limit(timeout)
        args = (private_key, recipient_id, message, timeout)
        return cast("dict[str, Any]", await self._call("callAndWait", *args, timeout=limit))

    async def reply(self, private_key: str, msg_id: str, response: Mapping[str, Any]) -> Any:
        """Proxy to ``reply``."""
        return await self._call("reply", private_key, msg_id, response)


class AsyncHubSide:
    """An integrated client's hub methods: the proxy's, with our private key added."""

    hub: AsyncHubMethods

    def _key(self) -> str:
        raise NotImplementedError  # pragma: no cover

    async def ping(self) -> Any:
        """Ping the hub."""
        return await self.hub.ping()

    async def get_metadata(self, client_id: str) -> dict[str, Any]:
        """Metadata of *client_id*."""
        return await self.hub.get_metadata(self._key(), client_id)

    async def get_subscriptions(self, client_id: str) -> dict[str, Any]:
        """Subscriptions of *client_id*."""
        return await self.hub.get_subscriptions(self._key(), client_id)

    async def get_registered_clients(self) -> list[str]:
        """Ids of every other registered client (the hub included)."""
        return await self.hub.get_registered_clients(self._key())

    async def get_subscribed_clients(self, mtype: str) -> dict[str, Any]:
        """``{client-id: annotations}`` of the clients subscribed to *mtype*."""
        return await self.hub.get_subscribed_clients(self._key(), mtype)

    async def notify(self, recipient_id: str, message: Mapping[str, Any]) -> Any:
        """Send a notification to one client."""
        return await self.hub.notify(self._key(), recipient_id, message)

    async def enotify(self, recipient_id: str, mtype: str, **params: Any) -> Any:
        """notify() built from *mtype* and keyword params; ``extra_kws={...}`` adds
        top-level message keys."""
        return await self.notify(recipient_id, format_easy_msg(mtype, params))

    async def notify_all(self, message: Mapping[str, Any]) -> list[str]:
        """Notify every subscribed client; returns the ids notified."""
        return await self.hub.notify_all(self._key(), message)

    async def enotify_all(self, mtype: str, **params: Any) -> list[str]:
        """notify_all() built from *mtype* and keyword params."""
        return await self.notify_all(format_easy_msg(mtype, params))

    async def call(self, recipient_id: str, msg_tag: str, message: Mapping[str, Any]) -> str:
        """Call one client; the response goes to the handler bound to *msg_tag*."""
        return await self.hub.call(self._key(), recipient_id, msg_tag, message)

    async def ecall(self, recipient_id: str, msg_tag: str, mtype: str, **params: Any) -> str:
        """call() built from *mtype* and keyword params."""
        return await self.call(recipient_id, msg_tag, format_easy_msg(mtype, params))

    async def call_all(self, msg_tag: str, message: Mapping[str, Any]) -> dict[str, str]:
        """Call every subscribed client; returns ``{id: msg-id}``."""
        return await self.hub.call_all(self._key(), msg_tag, message)

    async def ecall_all(self, msg_tag: str, mtype: str, **params: Any) -> dict[str, str]:
        """call_all() built from *mtype* and keyword params (returns the map; astropy
        drops it and returns None)."""
        return await self.call_all(msg_tag, format_easy_msg(mtype, params))

    async def call_and_wait(
        self, recipient_id: str, message: Mapping[str, Any], timeout: str | int | float
    ) -> dict[str, Any]:
        """Call one client and wait until it answers (*timeout* seconds, "0": no limit)."""
        return await self.hub.call_and_wait(self._key(), recipient_id, message, timeout)

    async def ecall_and_wait(
        self, recipient_id: str, mtype: str, timeout: str | int | float, **params: Any
    ) -> dict[str, Any]:
        """call_and_wait() built from *mtype* and keyword params."""
        return await self.call_and_wait(recipient_id, format_easy_msg(mtype, params), timeout)

    async def reply(self, msg_id: str, response: Mapping[str, Any]) -> Any:
        """Answer the call *msg_id* with *response*."""
        return await self.hub.reply(self._key(), msg_id, response)

    async def ereply(self, msg_id: str, status: str, result: Any = None, error: Any = None) -> Any:
        """reply() built from a status, a result map and an error map."""
        return await self.reply(msg_id, format_easy_response(status, result, error))


class _Proxy(Protocol):
    """What :class:`AsyncSessionSide` needs of the hub proxy."""

    @property
    def is_connected(self) -> bool: ...  # pragma: no cover

    async def connect(
        self,
        hub: HubLike | None = ...,
        hub_params: Mapping[str, str] | None = ...,
        pool_size: int = ...,
        *,
        ssl_context: ssl.SSLContext | None = ...,
    ) -> None: ...  # pragma: no cover

    async def disconnect(self) -> None: ...  # pragma: no cover


class _Client(Protocol):
    """What :class:`AsyncSessionSide` needs of the client application."""

    @property
    def is_running(self) -> bool: ...  # pragma: no cover

    def get_private_key(self) -> str | None: ...  # pragma: no cover

    async def start(self) -> None: ...  # pragma: no cover

    async def register(self) -> None: ...  # pragma: no cover

    async def unregister(self) -> None: ...  # pragma: no cover

    async def stop(self) -> None: ...  # pragma: no cover


class _Tls(Protocol):
    def client_context(self) -> ssl.SSLContext: ...  # pragma: no cover


class AsyncSessionSide:
    """An integrated client's ``connect`` and ``disconnect``: its hub proxy and its
    client application started and stopped together."""

    hub: _Proxy
    client: _Client
    _tls: _Tls

    async def connect(
        self,
        hub: HubLike | None = None,
        hub_params: Mapping[str, str] | None = None,
        pool_size: int = 20,
    ) -> None:
        """Connect to the hub (*hub*, *hub_params*, or the running one), start the client
        and register.

        Raises:
            ValueError: both *hub* and *hub_params* given.
            SAMPHubError: no hub found, or it does not answer.
            SAMPClientError: registration failed.
        """
        await self.hub.connect(hub, hub_params, pool_size, ssl_context=self._tls.client_context())
        try:
            await self.client.start()
            await self.client.register()
        except BaseException:
            # a stop that fails must not leave the hub proxy connected
            try:
                await self.client.stop()
            finally:
                await self.hub.disconnect()
            raise

    async def disconnect(self) -> None:
        """Unregister, stop the client and disconnect from the hub (no-op if not connected)."""
        if not (self.hub.is_connected or self.client.is_running):
            return
        try:
            if self.hub.is_connected and self.client.get_private_key() is not None:
                await self.client.unregister()
        finally:
            try:
                if self.client.is_running:
                    await self.client.stop()
            finally:
                await self.hub.disconnect()
