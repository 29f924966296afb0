"""The asyncio integrated client: hub proxy and client application in one object.

:class:`AsyncSAMPIntegratedClient` has the methods of astropy's
``SAMPIntegratedClient`` as coroutines (binding and the ``get_*`` id accessors stay
plain methods where no network is involved)::

    async with AsyncSAMPIntegratedClient(name="script") as cli:
        await cli.enotify_all("table.load.votable", url="file:///tmp/t.xml")
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from sciwire.samp.aclient import AsyncSAMPClient, Handler, Receiver, Runner
from sciwire.samp.aproxy import AsyncSAMPHubProxy, HubLike
from sciwire.samp.errors import SAMPClientError

__all__ = [
    "AsyncSAMPIntegratedClient",
    "check_tls_arguments",
    "format_easy_msg",
    "format_easy_response",
]

HTTPS_UNSUPPORTED = (
    "https=True is not supported: sciwire.samp speaks the SAMP Standard Profile over plain "
    "HTTP on the loopback interface only (astropy removed its SSL options in 2.0 too); "
    "connect with https=False"
)


def check_tls_arguments(https: bool) -> None:
    """Refuse ``https=True`` with a clear error (TLS is not implemented).

    Raises:
        SAMPClientError: *https* is true.
    """
    if https:
        raise SAMPClientError(HTTPS_UNSUPPORTED)


def format_easy_msg(mtype: str, params: dict[str, Any]) -> dict[str, Any]:
    """Build ``{samp.mtype, samp.params}``; ``params["extra_kws"]`` adds top-level keys."""
    params = dict(params)
    extra = params.pop("extra_kws", None)
    message: dict[str, Any] = {"samp.mtype": mtype, "samp.params": params}
    if extra:
        message.update(extra)
    return message


def format_easy_response(status: str, result: Any, error: Any) -> dict[str, Any]:
    """Build a response map, leaving out a None result or error."""
    response: dict[str, Any] = {"samp.status": status}
    if result is not None:
        response["samp.result"] = result
    if error is not None:
        response["samp.error"] = error
    return response


class AsyncSAMPIntegratedClient:
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
        self.client_arguments: dict[str, Any] = {
            "name": name,
            "description": description,
            "metadata": metadata,
            "addr": addr,
            "port": port,
            "callable": callable,
        }
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

    @property
    def is_connected(self) -> bool:
        """Whether the client is connected to a hub and running."""
        return self.hub.is_connected and self.client.is_running

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

    def _key(self) -> str:
        key = self.client.get_private_key()
        if key is None:
            raise SAMPClientError("not connected: call connect() first")
        return key

    # -- hub ---------------------------------------------------------------------

    async def ping(self) -> Any:
        """Ping the hub."""
        return await self.hub.ping()

    async def declare_metadata(self, metadata: Mapping[str, Any] | None = None) -> None:
        """Declare (merge) the client's metadata."""
        await self.client.declare_metadata(metadata)

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

    # -- client ------------------------------------------------------------------

    def receive_notification(
        self, private_key: str, sender_id: str, message: dict[str, Any]
    ) -> str:
        """Handle a notification as if the hub had sent it."""
        return self.client.receive_notification(private_key, sender_id, message)

    def receive_call(
        self, private_key: str, sender_id: str, msg_id: str, message: dict[str, Any]
    ) -> str:
        """Handle a call as if the hub had sent it."""
        return self.client.receive_call(private_key, sender_id, msg_id, message)

    def receive_response(
        self, private_key: str, responder_id: str, msg_tag: str, response: dict[str, Any]
    ) -> str:
        """Handle a response as if the hub had sent it."""
        return self.client.receive_response(private_key, responder_id, msg_tag, response)

    async def bind_receive_message(
        self,
        mtype: str,
        function: Handler,
        declare: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind calls and notifications of *mtype* to *function*."""
        await self.client.bind_receive_message(mtype, function, declare, metadata)

    async def bind_receive_notification(
        self,
        mtype: str,
        function: Handler,
        declare: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind notifications of *mtype* to *function*."""
        await self.client.bind_receive_notification(mtype, function, declare, metadata)

    async def bind_receive_call(
        self,
        mtype: str,
        function: Handler,
        declare: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind calls of *mtype* to *function*."""
        await self.client.bind_receive_call(mtype, function, declare, metadata)

    def bind_receive_response(self, msg_tag: str, function: Handler) -> None:
        """Bind responses tagged *msg_tag* to *function*."""
        self.client.bind_receive_response(msg_tag, function)

    async def unbind_receive_notification(self, mtype: str, declare: bool = True) -> None:
        """Remove the notification binding of *mtype*."""
        await self.client.unbind_receive_notification(mtype, declare)

    async def unbind_receive_call(self, mtype: str, declare: bool = True) -> None:
        """Remove the call binding of *mtype*."""
        await self.client.unbind_receive_call(mtype, declare)

    def unbind_receive_response(self, msg_tag: str) -> None:
        """Remove the response binding of *msg_tag*."""
        self.client.unbind_receive_response(msg_tag)

    async def declare_subscriptions(self, subscriptions: Mapping[str, Any] | None = None) -> None:
        """Declare the bound mtypes plus *subscriptions*."""
        await self.client.declare_subscriptions(subscriptions)

    def get_private_key(self) -> str | None:
        """The private key (None when not registered)."""
        return self.client.get_private_key()

    def get_public_id(self) -> str | None:
        """The public id (None when not registered)."""
        return self.client.get_public_id()
