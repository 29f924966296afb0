"""The blocking integrated client, drop-in for astropy's ``SAMPIntegratedClient``."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any

from sciwire.samp.aclient import AsyncSAMPClient
from sciwire.samp.aproxy import HubLike
from sciwire.samp.client import SAMPClient, SAMPHubProxy
from sciwire.samp.common import (
    Bindings,
    IntegratedSide,
    check_tls_arguments,
    client_arguments,
    format_easy_msg,
    format_easy_response,
)

__all__ = ["SAMPIntegratedClient"]


class SAMPIntegratedClient(IntegratedSide[SAMPHubProxy, SAMPClient], Bindings[None]):
    """A SAMP client: hub proxy and callable client in one object.

    Handlers bound with ``bind_receive_*`` run on background worker threads and may
    call any method of this client. Bindings made before :meth:`connect` are kept and
    declared at registration, and survive a disconnect/connect cycle.

    Args:
        name: ``samp.name`` metadata.
        description: ``samp.description.text`` metadata.
        metadata: further metadata.
        addr: the callback server's address (default 127.0.0.1; astropy probes the
            internet and may use the host name, we never do).
        port: the callback server's port (0: the system chooses).
        https: must be False; True raises :class:`SAMPClientError` (TLS is not
            supported, as in astropy since 2.0).
        key_file: unused, for signature compatibility.
        cert_file: unused, for signature compatibility.
        cert_reqs: unused, for signature compatibility.
        ca_certs: unused, for signature compatibility.
        ssl_version: unused, for signature compatibility.
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
    ) -> None:
        check_tls_arguments(https)
        self.hub = SAMPHubProxy()
        self.client_arguments = client_arguments(name, description, metadata, addr, port, callable)
        self.client = SAMPClient(self.hub, **self.client_arguments)

    def __enter__(self) -> SAMPIntegratedClient:
        if not self.is_connected:
            self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    # -- general -------------------------------------------------------------------

    def connect(
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
        self.hub.connect(hub, hub_params, pool_size)
        try:
            self.client.start()
            self.client.register()
        except BaseException:
            try:
                self.client.stop()
            finally:
                self.hub.disconnect()
            raise

    def disconnect(self) -> None:
        """Unregister, stop the client and disconnect from the hub (no-op if not connected)."""
        if not (self.hub.is_connected or self.client.is_running):
            return
        try:
            if self.hub.is_connected and self.client.get_private_key() is not None:
                self.client.unregister()
        finally:
            try:
                if self.client.is_running:
                    self.client.stop()
            finally:
                self.hub.disconnect()

    # -- hub -----------------------------------------------------------------------

    def ping(self) -> Any:
        """Ping the hub."""
        return self.hub.ping()

    def get_metadata(self, client_id: str) -> dict[str, Any]:
        """Metadata of *client_id*."""
        return self.hub.get_metadata(self._key(), client_id)

    def get_subscriptions(self, client_id: str) -> dict[str, Any]:
        """Subscriptions of *client_id*."""
        return self.hub.get_subscriptions(self._key(), client_id)

    def get_registered_clients(self) -> list[str]:
        """Ids of every other registered client (the hub included)."""
        return self.hub.get_registered_clients(self._key())

    def get_subscribed_clients(self, mtype: str) -> dict[str, Any]:
        """``{client-id: annotations}`` of the clients subscribed to *mtype*."""
        return self.hub.get_subscribed_clients(self._key(), mtype)

    def notify(self, recipient_id: str, message: Mapping[str, Any]) -> Any:
        """Send a notification to one client."""
        return self.hub.notify(self._key(), recipient_id, message)

    def enotify(self, recipient_id: str, mtype: str, **params: Any) -> Any:
        """notify() built from *mtype* and keyword params; ``extra_kws={...}`` adds
        top-level message keys."""
        return self.notify(recipient_id, format_easy_msg(mtype, params))

    def notify_all(self, message: Mapping[str, Any]) -> list[str]:
        """Notify every subscribed client; returns the ids notified."""
        return self.hub.notify_all(self._key(), message)

    def enotify_all(self, mtype: str, **params: Any) -> list[str]:
        """notify_all() built from *mtype* and keyword params."""
        return self.notify_all(format_easy_msg(mtype, params))

    def call(self, recipient_id: str, msg_tag: str, message: Mapping[str, Any]) -> str:
        """Call one client; the response goes to the handler bound to *msg_tag*."""
        return self.hub.call(self._key(), recipient_id, msg_tag, message)

    def ecall(self, recipient_id: str, msg_tag: str, mtype: str, **params: Any) -> str:
        """call() built from *mtype* and keyword params."""
        return self.call(recipient_id, msg_tag, format_easy_msg(mtype, params))

    def call_all(self, msg_tag: str, message: Mapping[str, Any]) -> dict[str, str]:
        """Call every subscribed client; returns ``{id: msg-id}``."""
        return self.hub.call_all(self._key(), msg_tag, message)

    def ecall_all(self, msg_tag: str, mtype: str, **params: Any) -> dict[str, str]:
        """call_all() built from *mtype* and keyword params (returns the map; astropy
        drops it and returns None)."""
        return self.call_all(msg_tag, format_easy_msg(mtype, params))

    def call_and_wait(
        self, recipient_id: str, message: Mapping[str, Any], timeout: str | int | float
    ) -> dict[str, Any]:
        """Call one client and block until it answers (*timeout* seconds, "0": no limit)."""
        return self.hub.call_and_wait(self._key(), recipient_id, message, timeout)

    def ecall_and_wait(
        self, recipient_id: str, mtype: str, timeout: str | int | float, **params: Any
    ) -> dict[str, Any]:
        """call_and_wait() built from *mtype* and keyword params."""
        return self.call_and_wait(recipient_id, format_easy_msg(mtype, params), timeout)

    def reply(self, msg_id: str, response: Mapping[str, Any]) -> Any:
        """Answer the call *msg_id* with *response*."""
        return self.hub.reply(self._key(), msg_id, response)

    def ereply(self, msg_id: str, status: str, result: Any = None, error: Any = None) -> Any:
        """reply() built from a status, a result map and an error map."""
        return self.reply(msg_id, format_easy_response(status, result, error))

    # -- client: receive_*, bind_*, unbind_*, declare_*, get_* (common.py) ---------

    @property
    def _core_client(self) -> AsyncSAMPClient:
        return self.client.core

    def _drive(self, coro: Coroutine[Any, Any, None]) -> None:
        self.client._drive(coro)
