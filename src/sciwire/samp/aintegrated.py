"""The asyncio integrated client: hub proxy and client application in one object.

:class:`AsyncSAMPIntegratedClient` has the methods of astropy's
``SAMPIntegratedClient`` as coroutines (binding and the ``get_*`` id accessors stay
plain methods where no network is involved)::

    async with AsyncSAMPIntegratedClient(name="script") as cli:
        await cli.enotify_all("table.load.votable", url="file:///tmp/t.xml")
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any

from sciwire.samp.aclient import AsyncSAMPClient, Receiver, Runner
from sciwire.samp.aproxy import AsyncSAMPHubProxy, HubLike
from sciwire.samp.common import (
    HTTPS_UNSUPPORTED,
    Bindings,
    IntegratedSide,
    check_tls_arguments,
    client_arguments,
    format_easy_msg,
    format_easy_response,
)

__all__ = [
    "HTTPS_UNSUPPORTED",
    "AsyncSAMPIntegratedClient",
    "check_tls_arguments",
    "format_easy_msg",
    "format_easy_response",
]


class AsyncSAMPIntegratedClient(
    IntegratedSide[AsyncSAMPHubProxy, AsyncSAMPClient],
    Bindings[Coroutine[Any, Any, None]],
):
    """A SAMP client (hub proxy plus callable client) for asyncio code.

    Args:
        name: ``samp.name`` metadata.
        description: ``samp.description.text`` metadata.
        metadata: further metadata.
        addr: the callback server's address (default 127.0.0.1).
        port: the callback server's port (0: the system chooses).
        https: must be False; True raises :class:`SAMPClientError` (see HTTPS_UNSUPPORTED).
        key_file: accepted for signature compatibility, unused.
        cert_file: accepted for signature compatibility, unused.
        cert_reqs: accepted for signature compatibility, unused.
        ca_certs: accepted for signature compatibility, unused.
        ssl_version: accepted for signature compatibility, unused.
        callable: whether the client receives calls and notifications.
    """

    def __init__(
        self,
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
        ssl_version: int | None = None,
        callable: bool = True,
        *,
        runner: Runner | None = None,
        receiver: Receiver | None = None,
    ) -> None:
        check_tls_arguments(https)
        self.hub = AsyncSAMPHubProxy()
        self.client_arguments = client_arguments(name, description, metadata, addr, port, callable)
        self.client = AsyncSAMPClient(
            self.hub, **self.client_arguments, runner=runner, receiver=receiver
        )

    async def __aenter__(self) -> AsyncSAMPIntegratedClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    async def connect(
        self,
        hub: HubLike | None = None,
        hub_params: Mapping[str, str] | None = None,
        pool_size: int = 20,
    ) -> None:
        """Connect to the hub (the given one, *hub_params*, or the running one), start the
        callback server and register."""
        await self.hub.connect(hub, hub_params, pool_size)
        try:
            await self.client.start()
            await self.client.register()
        except BaseException:
            await self.client.stop()
            await self.hub.disconnect()
            raise

    async def disconnect(self) -> None:
        """Unregister, stop the callback server and disconnect from the hub."""
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

    # -- hub ---------------------------------------------------------------------

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
        """Ids of the other registered clients (the hub included)."""
        return await self.hub.get_registered_clients(self._key())

    async def get_subscribed_clients(self, mtype: str) -> dict[str, Any]:
        """``{client-id: annotations}`` of the clients subscribed to *mtype*."""
        return await self.hub.get_subscribed_clients(self._key(), mtype)

    async def notify(self, recipient_id: str, message: Mapping[str, Any]) -> Any:
        """Send a notification to one client."""
        return await self.hub.notify(self._key(), recipient_id, message)

    async def enotify(self, recipient_id: str, mtype: str, **params: Any) -> Any:
        """notify() built from *mtype* and keyword params (``extra_kws`` adds keys)."""
        return await self.notify(recipient_id, format_easy_msg(mtype, params))

    async def notify_all(self, message: Mapping[str, Any]) -> list[str]:
        """Notify every subscribed client; returns the ids notified."""
        return await self.hub.notify_all(self._key(), message)

    async def enotify_all(self, mtype: str, **params: Any) -> list[str]:
        """notify_all() built from *mtype* and keyword params."""
        return await self.notify_all(format_easy_msg(mtype, params))

    async def call(self, recipient_id: str, msg_tag: str, message: Mapping[str, Any]) -> str:
        """Call one client asynchronously; the response goes to bind_receive_response."""
        return await self.hub.call(self._key(), recipient_id, msg_tag, message)

    async def ecall(self, recipient_id: str, msg_tag: str, mtype: str, **params: Any) -> str:
        """call() built from *mtype* and keyword params."""
        return await self.call(recipient_id, msg_tag, format_easy_msg(mtype, params))

    async def call_all(self, msg_tag: str, message: Mapping[str, Any]) -> dict[str, str]:
        """Call every subscribed client; returns ``{id: msg-id}``."""
        return await self.hub.call_all(self._key(), msg_tag, message)

    async def ecall_all(self, msg_tag: str, mtype: str, **params: Any) -> dict[str, str]:
        """call_all() built from *mtype* and keyword params (returns the map; astropy's
        returns None)."""
        return await self.call_all(msg_tag, format_easy_msg(mtype, params))

    async def call_and_wait(
        self, recipient_id: str, message: Mapping[str, Any], timeout: str | int | float
    ) -> dict[str, Any]:
        """Call one client and wait for its response (timeout "0": no limit)."""
        return await self.hub.call_and_wait(self._key(), recipient_id, message, timeout)

    async def ecall_and_wait(
        self, recipient_id: str, mtype: str, timeout: str | int | float, **params: Any
    ) -> dict[str, Any]:
        """call_and_wait() built from *mtype* and keyword params."""
        return await self.call_and_wait(recipient_id, format_easy_msg(mtype, params), timeout)

    async def reply(self, msg_id: str, response: Mapping[str, Any]) -> Any:
        """Answer the call *msg_id*."""
        return await self.hub.reply(self._key(), msg_id, response)

    async def ereply(self, msg_id: str, status: str, result: Any = None, error: Any = None) -> Any:
        """reply() built from a status, a result map and an error map."""
        return await self.reply(msg_id, format_easy_response(status, result, error))

    # -- client: receive_*, bind_*, unbind_*, declare_*, get_* (common.py) ---------

    @property
    def _core_client(self) -> AsyncSAMPClient:
        return self.client

    def _drive(self, coro: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None]:
        return coro  # awaited by the caller
