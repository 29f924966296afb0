"""The Standard Profile hub methods, written once for the blocking and asyncio twins.

:class:`HubMethods` is the ``samp.hub.*`` method table of a hub proxy, over one
transport hook, ``_call``: the blocking :class:`sciwire.samp._client.SAMPHubProxy`
answers with the result, the asyncio :class:`sciwire.samp._aproxy.AsyncSAMPHubProxy`
with a coroutine of it. :class:`HubSide` is the integrated clients' half that adds
the private key (and builds ``e*`` messages) on top of such a proxy. Both are
generic over what a call returns, one type per result shape:

=====  ======================================  ===========================
param  blocking                                asyncio
=====  ======================================  ===========================
A      ``Any``                                 ``Coroutine[..., Any]``
D      ``dict[str, Any]``                      ``Coroutine[..., dict]``
L      ``list[str]``                           ``Coroutine[..., list]``
S      ``str``                                 ``Coroutine[..., str]``
M      ``dict[str, str]``                      ``Coroutine[..., dict]``
=====  ======================================  ===========================
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any, Generic, TypeVar, cast

from sciwire.samp._common import format_easy_msg, format_easy_response

__all__ = [
    "CALL_AND_WAIT_GRACE",
    "AsyncHubMethods",
    "AsyncHubSide",
    "BlockingHubMethods",
    "BlockingHubSide",
    "HubMethods",
    "HubSide",
    "call_and_wait_limit",
]

T = TypeVar("T")
A = TypeVar("A")
D = TypeVar("D")
L = TypeVar("L")
S = TypeVar("S")
M = TypeVar("M")

Co = Coroutine[Any, Any, T]

#: Extra seconds the HTTP request of callAndWait may take beyond the SAMP timeout.
CALL_AND_WAIT_GRACE = 10.0


def call_and_wait_limit(timeout: object) -> float | None:
    """How long the HTTP request of a callAndWait with this SAMP *timeout* may take."""
    try:
        seconds = float(timeout)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = 0.0
    return seconds + CALL_AND_WAIT_GRACE if seconds > 0 else None


class HubMethods(Generic[A, D, L, S, M]):
    """Every ``samp.hub.*`` Standard Profile method (astropy's SAMPHubProxy names)."""

    def _call(self, method: str, *args: Any, timeout: float | str | None = "default") -> A:
        """Call ``samp.hub.<method>`` (the transport: blocking or asyncio)."""
        raise NotImplementedError  # pragma: no cover

    def ping(self) -> A:
        """Proxy to ``ping``."""
        return self._call("ping")

    def set_xmlrpc_callback(self, private_key: str, xmlrpc_addr: str) -> A:
        """Proxy to ``setXmlrpcCallback``."""
        return self._call("setXmlrpcCallback", private_key, xmlrpc_addr)

    def register(self, secret: str) -> M:
        """Proxy to ``register``: samp.private-key, samp.self-id, samp.hub-id."""
        return cast("M", self._call("register", secret))

    def unregister(self, private_key: str) -> A:
        """Proxy to ``unregister``."""
        return self._call("unregister", private_key)

    def declare_metadata(self, private_key: str, metadata: Mapping[str, Any]) -> A:
        """Proxy to ``declareMetadata``."""
        return self._call("declareMetadata", private_key, metadata)

    def get_metadata(self, private_key: str, client_id: str) -> D:
        """Proxy to ``getMetadata``."""
        return cast("D", self._call("getMetadata", private_key, client_id))

    def declare_subscriptions(self, private_key: str, subscriptions: Mapping[str, Any]) -> A:
        """Proxy to ``declareSubscriptions``."""
        return self._call("declareSubscriptions", private_key, subscriptions)

    def get_subscriptions(self, private_key: str, client_id: str) -> D:
        """Proxy to ``getSubscriptions``."""
        return cast("D", self._call("getSubscriptions", private_key, client_id))

    def get_registered_clients(self, private_key: str) -> L:
        """Proxy to ``getRegisteredClients`` (every client but the caller, hub included)."""
        return cast("L", self._call("getRegisteredClients", private_key))

    def get_subscribed_clients(self, private_key: str, mtype: str) -> D:
        """Proxy to ``getSubscribedClients``: ``{client-id: annotation map}``."""
        return cast("D", self._call("getSubscribedClients", private_key, mtype))

    def notify(self, private_key: str, recipient_id: str, message: Mapping[str, Any]) -> A:
        """Proxy to ``notify``."""
        return self._call("notify", private_key, recipient_id, message)

    def notify_all(self, private_key: str, message: Mapping[str, Any]) -> L:
        """Proxy to ``notifyAll``: the ids notified."""
        return cast("L", self._call("notifyAll", private_key, message))

    def call(
        self, private_key: str, recipient_id: str, msg_tag: str, message: Mapping[str, Any]
    ) -> S:
        """Proxy to ``call``: the msg-id."""
        return cast("S", self._call("call", private_key, recipient_id, msg_tag, message))

    def call_all(self, private_key: str, msg_tag: str, message: Mapping[str, Any]) -> M:
        """Proxy to ``callAll``: ``{recipient-id: msg-id}``."""
        return cast("M", self._call("callAll", private_key, msg_tag, message))

    def call_and_wait(
        self,
        private_key: str,
        recipient_id: str,
        message: Mapping[str, Any],
        timeout: str | int | float,
    ) -> D:
        """Proxy to ``callAndWait``: the response (``timeout`` "0" waits forever)."""
        limit = call_and_wait_limit(timeout)
        args = (private_key, recipient_id, message, timeout)
        return cast("D", self._call("callAndWait", *args, timeout=limit))

    def reply(self, private_key: str, msg_id: str, response: Mapping[str, Any]) -> A:
        """Proxy to ``reply``."""
        return self._call("reply", private_key, msg_id, response)


BlockingHubMethods = HubMethods[Any, dict[str, Any], list[str], str, dict[str, str]]
AsyncHubMethods = HubMethods[
    Co[Any], Co[dict[str, Any]], Co[list[str]], Co[str], Co[dict[str, str]]
]


class HubSide(Generic[A, D, L, S, M]):
    """An integrated client's hub methods: the proxy's, with our private key added."""

    hub: HubMethods[A, D, L, S, M]

    def _key(self) -> str:
        raise NotImplementedError  # pragma: no cover

    def ping(self) -> A:
        """Ping the hub."""
        return self.hub.ping()

    def get_metadata(self, client_id: str) -> D:
        """Metadata of *client_id*."""
        return self.hub.get_metadata(self._key(), client_id)

    def get_subscriptions(self, client_id: str) -> D:
        """Subscriptions of *client_id*."""
        return self.hub.get_subscriptions(self._key(), client_id)

    def get_registered_clients(self) -> L:
        """Ids of every other registered client (the hub included)."""
        return self.hub.get_registered_clients(self._key())

    def get_subscribed_clients(self, mtype: str) -> D:
        """``{client-id: annotations}`` of the clients subscribed to *mtype*."""
        return self.hub.get_subscribed_clients(self._key(), mtype)

    def notify(self, recipient_id: str, message: Mapping[str, Any]) -> A:
        """Send a notification to one client."""
        return self.hub.notify(self._key(), recipient_id, message)

    def enotify(self, recipient_id: str, mtype: str, **params: Any) -> A:
        """notify() built from *mtype* and keyword params; ``extra_kws={...}`` adds
        top-level message keys."""
        return self.notify(recipient_id, format_easy_msg(mtype, params))

    def notify_all(self, message: Mapping[str, Any]) -> L:
        """Notify every subscribed client; returns the ids notified."""
        return self.hub.notify_all(self._key(), message)

    def enotify_all(self, mtype: str, **params: Any) -> L:
        """notify_all() built from *mtype* and keyword params."""
        return self.notify_all(format_easy_msg(mtype, params))

    def call(self, recipient_id: str, msg_tag: str, message: Mapping[str, Any]) -> S:
        """Call one client; the response goes to the handler bound to *msg_tag*."""
        return self.hub.call(self._key(), recipient_id, msg_tag, message)

    def ecall(self, recipient_id: str, msg_tag: str, mtype: str, **params: Any) -> S:
        """call() built from *mtype* and keyword params."""
        return self.call(recipient_id, msg_tag, format_easy_msg(mtype, params))

    def call_all(self, msg_tag: str, message: Mapping[str, Any]) -> M:
        """Call every subscribed client; returns ``{id: msg-id}``."""
        return self.hub.call_all(self._key(), msg_tag, message)

    def ecall_all(self, msg_tag: str, mtype: str, **params: Any) -> M:
        """call_all() built from *mtype* and keyword params (returns the map; astropy
        drops it and returns None)."""
        return self.call_all(msg_tag, format_easy_msg(mtype, params))

    def call_and_wait(
        self, recipient_id: str, message: Mapping[str, Any], timeout: str | int | float
    ) -> D:
        """Call one client and wait until it answers (*timeout* seconds, "0": no limit)."""
        return self.hub.call_and_wait(self._key(), recipient_id, message, timeout)

    def ecall_and_wait(
        self, recipient_id: str, mtype: str, timeout: str | int | float, **params: Any
    ) -> D:
        """call_and_wait() built from *mtype* and keyword params."""
        return self.call_and_wait(recipient_id, format_easy_msg(mtype, params), timeout)

    def reply(self, msg_id: str, response: Mapping[str, Any]) -> A:
        """Answer the call *msg_id* with *response*."""
        return self.hub.reply(self._key(), msg_id, response)

    def ereply(self, msg_id: str, status: str, result: Any = None, error: Any = None) -> A:
        """reply() built from a status, a result map and an error map."""
        return self.reply(msg_id, format_easy_response(status, result, error))


BlockingHubSide = HubSide[Any, dict[str, Any], list[str], str, dict[str, str]]
AsyncHubSide = HubSide[Co[Any], Co[dict[str, Any]], Co[list[str]], Co[str], Co[dict[str, str]]]
