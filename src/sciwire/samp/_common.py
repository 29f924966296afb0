"""What the blocking and the asyncio SAMP clients share, written once.

- pure helpers: the TLS refusal, the callAndWait HTTP deadline, message and response
  shaping (``e*`` methods, ``extra_kws``), the client arguments an integrated client
  keeps;
- :class:`ClientSide`: the network-free client methods (``receive_*``, response
  bindings, ids), forwarded to the client object behind a facade;
- :class:`Bindings`: the binding and declaring methods, run on the asyncio client (seen
  through the :class:`BindingCore` seam) and handed to a *driver*: the blocking facades
  run the coroutine on their portal, the asyncio integrated client returns it to be
  awaited. All of them pass through one hook, ``_forward``, which a facade with other
  state overrides (the blocking integrated client: its own client object; SAMPClient:
  astropy-style attribute state) instead of re-declaring each method.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Generic, Protocol, TypeVar

from sciwire.samp._tls import TlsOptions
from sciwire.samp.errors import SAMPClientError

__all__ = [
    "CALL_AND_WAIT_GRACE",
    "BindingCore",
    "Bindings",
    "ClientSide",
    "Handler",
    "HubLike",
    "IntegratedSide",
    "Receiver",
    "call_and_wait_limit",
    "client_arguments",
    "format_easy_msg",
    "format_easy_response",
    "tls_settings",
]

Handler = Callable[..., Any]

R = TypeVar("R", covariant=True)


#: Extra seconds the HTTP request of callAndWait may take beyond the SAMP timeout.
CALL_AND_WAIT_GRACE = 10.0


def call_and_wait_limit(timeout: object) -> float | None:
    """How long the HTTP request of a callAndWait with this SAMP *timeout* may take."""
    try:
        seconds = float(timeout)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = 0.0
    return seconds + CALL_AND_WAIT_GRACE if seconds > 0 else None


def tls_settings(
    https: bool,
    key_file: str | None,
    cert_file: str | None,
    cert_reqs: int,
    ca_certs: str | None,
    ssl_version: Any,
) -> tuple[TlsOptions, ssl.SSLContext | None]:
    """A client's TLS options, and its callback server's context when *https*.

    Raises:
        SAMPClientError: *https* without a certificate, or unreadable files.
    """
    options = TlsOptions(key_file, cert_file, cert_reqs, ca_certs, ssl_version)
    return options, options.server_context() if https else None


def client_arguments(
    name: str | None,
    description: str | None,
    metadata: Mapping[str, Any] | None,
    addr: str | None,
    port: int,
    callable: bool,
) -> dict[str, Any]:
    """The keyword arguments an integrated client gives its client (``client_arguments``)."""
    return {
        "name": name,
        "description": description,
        "metadata": metadata,
        "addr": addr,
        "port": port,
        "callable": callable,
    }


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


class Receiver(Protocol):
    """Whatever answers the three ``samp.client.*`` callbacks (a client, or its facade)."""

    def receive_notification(
        self, private_key: str, sender_id: str, message: dict[str, Any]
    ) -> str: ...  # pragma: no cover

    def receive_call(
        self, private_key: str, sender_id: str, msg_id: str, message: dict[str, Any]
    ) -> str: ...  # pragma: no cover

    def receive_response(
        self, private_key: str, responder_id: str, msg_tag: str, response: dict[str, Any]
    ) -> str: ...  # pragma: no cover


class HubLike(Protocol):
    """What ``connect(hub=...)`` needs from a hub object (ours or astropy's)."""

    @property
    def is_running(self) -> bool: ...  # pragma: no cover

    @property
    def params(self) -> Mapping[str, str]: ...  # pragma: no cover


class _Client(Receiver, Protocol):
    """The network-free surface of a SAMP client (blocking or asyncio)."""

    def bind_receive_response(
        self, msg_tag: str, function: Handler
    ) -> None: ...  # pragma: no cover

    def unbind_receive_response(self, msg_tag: str) -> None: ...  # pragma: no cover

    def get_private_key(self) -> str | None: ...  # pragma: no cover

    def get_public_id(self) -> str | None: ...  # pragma: no cover

    @property
    def is_running(self) -> bool: ...  # pragma: no cover


class _Hub(Protocol):
    @property
    def is_connected(self) -> bool: ...  # pragma: no cover


ClientT = TypeVar("ClientT", bound=_Client)
HubT = TypeVar("HubT", bound=_Hub)


class ClientSide(Generic[ClientT]):
    """The client methods that touch no network, forwarded to :attr:`_inner`."""

    @property
    def _inner(self) -> ClientT:
        raise NotImplementedError  # pragma: no cover

    def receive_notification(
        self, private_key: str, sender_id: str, message: dict[str, Any]
    ) -> str:
        """Dispatch a notification to the bound handlers; returns ""."""
        return self._inner.receive_notification(private_key, sender_id, message)

    def receive_call(
        self, private_key: str, sender_id: str, msg_id: str, message: dict[str, Any]
    ) -> str:
        """Dispatch a call to the bound handlers; returns ""."""
        return self._inner.receive_call(private_key, sender_id, msg_id, message)

    def receive_response(
        self, private_key: str, responder_id: str, msg_tag: str, response: dict[str, Any]
    ) -> str:
        """Dispatch a response to the handler bound to its tag; returns ""."""
        return self._inner.receive_response(private_key, responder_id, msg_tag, response)

    def bind_receive_response(self, msg_tag: str, function: Handler) -> None:
        """Bind responses tagged *msg_tag* to ``function(private_key, responder_id, msg_tag,
        response)``."""
        self._inner.bind_receive_response(msg_tag, function)

    def unbind_receive_response(self, msg_tag: str) -> None:
        """Remove the response binding of *msg_tag* (KeyError if none)."""
        self._inner.unbind_receive_response(msg_tag)

    def get_private_key(self) -> str | None:
        """The private key from registration (None when not registered)."""
        return self._inner.get_private_key()

    def get_public_id(self) -> str | None:
        """The public id from registration (None when not registered)."""
        return self._inner.get_public_id()


class IntegratedSide(ClientSide[ClientT], Generic[HubT, ClientT]):
    """The network-free half of an integrated client (a hub proxy plus a client).

    Attributes:
        hub: the hub proxy.
        client: the client application (the target of the ``receive_*`` methods).
        client_arguments: the keyword arguments *client* was made with.
    """

    hub: HubT
    client: ClientT
    client_arguments: dict[str, Any]

    @property
    def _inner(self) -> ClientT:
        return self.client

    @property
    def is_connected(self) -> bool:
        """Whether the client is connected to a hub and running."""
        return self.hub.is_connected and self.client.is_running

    def _key(self) -> str:
        key = self.client.get_private_key()
        if key is None:
            raise SAMPClientError("not connected: call connect() first")
        return key


class BindingCore(Protocol):
    """What :class:`Bindings` needs of the asyncio client (``AsyncSAMPClient`` fits).

    A seam, so that this module does not import the client that imports it.
    """

    async def bind_receive_message(
        self,
        mtype: str,
        function: Handler,
        declare: bool = ...,
        metadata: Mapping[str, Any] | None = ...,
    ) -> None: ...

    async def bind_receive_notification(
        self,
        mtype: str,
        function: Handler,
        declare: bool = ...,
        metadata: Mapping[str, Any] | None = ...,
    ) -> None: ...

    async def bind_receive_call(
        self,
        mtype: str,
        function: Handler,
        declare: bool = ...,
        metadata: Mapping[str, Any] | None = ...,
    ) -> None: ...

    async def unbind_receive_notification(self, mtype: str, declare: bool = ...) -> None: ...

    async def unbind_receive_call(self, mtype: str, declare: bool = ...) -> None: ...

    async def declare_subscriptions(
        self, subscriptions: Mapping[str, Any] | None = ...
    ) -> None: ...

    async def declare_metadata(self, metadata: Mapping[str, Any] | None = ...) -> None: ...


class Bindings(Generic[R]):
    """Binding and declaring methods, run on the asyncio core and handed to :meth:`_drive`.

    A blocking facade's driver runs the coroutine and returns None; the asyncio
    integrated client's driver returns the coroutine for the caller to await.
    """

    @property
    def _core_client(self) -> BindingCore:
        raise NotImplementedError  # pragma: no cover

    def _drive(self, coro: Coroutine[Any, Any, None]) -> R:
        raise NotImplementedError  # pragma: no cover

    def _forward(self, name: str, *args: Any) -> R:
        # The one place the binding methods meet their target: a facade whose client
        # keeps another state (astropy's attributes, or the integrated client's own
        # client object) overrides this, not each public method.
        return self._drive(getattr(self._core_client, name)(*args))

    def bind_receive_message(
        self,
        mtype: str,
        function: Handler,
        declare: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> R:
        """Bind calls and notifications of *mtype* to *function* (astropy's integrated
        client ignores *declare* and *metadata*; we honour them)."""
        return self._forward("bind_receive_message", mtype, function, declare, metadata)

    def bind_receive_notification(
        self,
        mtype: str,
        function: Handler,
        declare: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> R:
        """Bind notifications of *mtype* (``*`` and ``a.*`` allowed) to
        ``function(private_key, sender_id, mtype, params, extra)``."""
        return self._forward("bind_receive_notification", mtype, function, declare, metadata)

    def bind_receive_call(
        self,
        mtype: str,
        function: Handler,
        declare: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> R:
        """Bind calls of *mtype* to ``function(private_key, sender_id, msg_id, mtype, params,
        extra)``."""
        return self._forward("bind_receive_call", mtype, function, declare, metadata)

    def unbind_receive_notification(self, mtype: str, declare: bool = True) -> R:
        """Remove the notification binding of *mtype*."""
        return self._forward("unbind_receive_notification", mtype, declare)

    def unbind_receive_call(self, mtype: str, declare: bool = True) -> R:
        """Remove the call binding of *mtype*."""
        return self._forward("unbind_receive_call", mtype, declare)

    def declare_subscriptions(self, subscriptions: Mapping[str, Any] | None = None) -> R:
        """Declare the bound mtypes plus *subscriptions* (``{mtype: annotations}``)."""
        return self._forward("declare_subscriptions", subscriptions)

    def declare_metadata(self, metadata: Mapping[str, Any] | None = None) -> R:
        """Declare (merge) the client's metadata."""
        return self._forward("declare_metadata", metadata)
