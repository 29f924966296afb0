"""The SAMP hub as a state machine: clients, keys, metadata, subscriptions, msg-ids.

:class:`HubState` holds no sockets, threads or clock. Each ``samp.hub.*`` operation
checks its arguments, updates the state and returns *effects* for the I/O layer to
carry out:

* :class:`Delivery` — call ``samp.client.<method>`` on a client (its callback URL
  for the Standard Profile, its pull queue for the Web Profile);
* :class:`Resolve` — a ``callAndWait`` caller is waiting on this msg-id: wake it
  with the response.

A bad request raises :class:`HubFault` (a :class:`SAMPHubError`), which the server
turns into an XML-RPC fault. The msg-id of a call is recorded before its delivery is
even returned, so a reply can never arrive for a msg-id the hub does not know yet.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sciwire.core.patterns import Registry, mtype_matches
from sciwire.samp import _protocol as P
from sciwire.samp.errors import SAMPDataError, SAMPHubError

__all__ = ["Client", "Delivery", "Effect", "HubFault", "HubState", "Pending", "Resolve"]

logger = logging.getLogger(__name__)

Profile = Literal["std", "web", "hub"]
Method = Literal["receiveNotification", "receiveCall", "receiveResponse"]


class HubFault(SAMPHubError):
    """A hub method refused its arguments; the server answers with an XML-RPC fault."""


@dataclass(eq=False)
class Client:
    """One registered client as the hub sees it."""

    public_id: str
    private_key: str
    profile: Profile
    metadata: dict[str, Any] = field(default_factory=dict)
    subscriptions: dict[str, Any] = field(default_factory=dict)
    callback_url: str | None = None
    #: Web Profile: allowReverseCallbacks was set to "1"
    reverse_callbacks: bool = False
    #: free-form registration information (Web Profile identity, origin...)
    info: dict[str, Any] = field(default_factory=dict)
    sub_handles: list[int] = field(default_factory=list, repr=False)

    @property
    def callable(self) -> bool:
        """Whether the hub can deliver callbacks to this client."""
        if self.profile == "hub":
            return True
        if self.profile == "web":
            return self.reverse_callbacks
        return self.callback_url is not None


@dataclass(frozen=True)
class Delivery:
    """Call ``samp.client.<method>(private-key, *args)`` on *recipient*.

    For ``receiveCall`` the *msg_id* is set, so a failed delivery can be answered.
    """

    recipient: Client
    method: Method
    args: tuple[Any, ...]
    msg_id: str | None = None


@dataclass(frozen=True)
class Resolve:
    """Wake the ``callAndWait`` caller waiting on *msg_id* with *response*."""

    msg_id: str
    response: dict[str, Any]


Effect = Delivery | Resolve


@dataclass
class Pending:
    """A call the hub delivered and whose reply it awaits."""

    msg_id: str
    sender: Client
    recipient_id: str
    tag: str | None  # None for callAndWait
    mtype: str

    @property
    def sync(self) -> bool:
        """True for a callAndWait call."""
        return self.tag is None


@dataclass(frozen=True)
class _Subscription:
    """A registry callback that names its client (dispatch never calls it)."""

    client_id: str

    def __call__(self, *args: Any) -> None:  # pragma: no cover - registry needs a callable
        return None


def _default_key(profile: Profile) -> str:
    return ("wk:" if profile == "web" else "sk:") + secrets.token_urlsafe(18)


class HubState:
    """Everything a SAMP hub knows, and the rules that change it.

    Args:
        secret: the Standard Profile registration secret (from the lockfile).
        hub_id: the hub's own public id.
        hub_metadata: the hub's metadata (``samp.name`` and so on).
        strict: refuse ints, floats and bools in incoming data (JSAMP's behaviour);
            by default they are relayed as sent (astropy's hub does, and astropy
            clients rely on it).
        coerce: turn them into SAMP strings instead (for strict recipients).
        web_restrict: restrict what Web Profile clients may send to non-web clients
            to safe mtypes (:data:`sciwire.samp._protocol.SAFE_MTYPES`), unless the
            recipient's subscription says ``samp.mostly-harmless``.
        safe_mtypes: the safe list used by *web_restrict*.
        key_factory: makes private keys (``secrets``-grade by default).
        max_pending: most calls awaiting replies; beyond it the oldest is answered
            with an error (memory stays bounded when recipients never reply).
    """

    def __init__(
        self,
        secret: str,
        *,
        hub_id: str = "hub",
        hub_metadata: Mapping[str, str] | None = None,
        strict: bool = False,
        coerce: bool = False,
        web_restrict: bool = True,
        safe_mtypes: Iterable[str] = P.SAFE_MTYPES,
        key_factory: Callable[[Profile], str] = _default_key,
        max_pending: int = 100_000,
    ) -> None:
        self.secret = secret
        self.hub_id = hub_id
        self.strict = strict
        self.coerce = coerce and not strict
        # astropy's hub relays ints, floats and bools as sent (its own tests rely on it)
        self.keep = not strict and not coerce
        self.web_restrict = web_restrict
        self.safe_mtypes = tuple(safe_mtypes)
        self._key_factory = key_factory
        self.max_pending = max_pending
        self._ids = itertools.count(1)
        self._msg_ids = itertools.count(1)
        self._by_key: dict[str, Client] = {}
        self._by_id: dict[str, Client] = {}
        self._subs = Registry("mtype")
        self.pending: dict[str, Pending] = {}
        self.hub = Client(
            hub_id,
            key_factory("hub"),
            "hub",
            metadata=dict(
                hub_metadata
                or {
                    "samp.name": "sciwire hub",
                    "samp.description.text": "sciwire SAMP hub (asyncio)",
                    "author.name": "sciwire",
                }
            ),
        )
        self._add(self.hub)
        self._set_subscriptions(self.hub, {"samp.app.ping": {}})

    # -- bookkeeping --------------------------------------------------------------

    def _add(self, client: Client) -> None:
        self._by_key[client.private_key] = client
        self._by_id[client.public_id] = client

    @property
    def clients(self) -> list[Client]:
        """Registered clients, the hub itself excluded."""
        return [c for c in self._by_id.values() if c.profile != "hub"]

    def client_by_key(self, private_key: object) -> Client:
        """The client owning *private_key*.

        Raises:
            HubFault: unknown key (never the hub's own).
        """
        client = self._by_key.get(private_key) if isinstance(private_key, str) else None
        if client is None or client.profile == "hub":
            raise HubFault("unknown private key")
        return client

    def client_by_id(self, public_id: object) -> Client:
        """The client (or hub) with *public_id*.

        Raises:
            HubFault: no such client.
        """
        client = self._by_id.get(public_id) if isinstance(public_id, str) else None
        if client is None:
            raise HubFault(f"no client with id {public_id!r} is registered")
        return client

    def client_by_key_or_none(self, private_key: object) -> Client | None:
        """The client (or hub) owning *private_key*, or None."""
        return self._by_key.get(private_key) if isinstance(private_key, str) else None

    def client_by_id_or_none(self, public_id: str) -> Client | None:
        """The client (or hub) with *public_id*, or None."""
        return self._by_id.get(public_id)

    def _value(self, value: object, where: str) -> Any:
        try:
            return P.check_value(value, coerce=self.coerce, where=where, keep=self.keep)
        except SAMPDataError as exc:
            raise HubFault(str(exc)) from None

    def _message(self, message: object) -> dict[str, Any]:
        try:
            return P.check_message(message, coerce=self.coerce, keep=self.keep)
        except SAMPDataError as exc:
            raise HubFault(str(exc)) from None

    def _string(self, value: object, where: str) -> str:
        if not self.strict and isinstance(value, bool | int | float):
            # a scalar argument of the protocol (a flag, a timeout), not relayed data:
            # astropy clients send True or 5 here, the hub reads "1" or "5"
            return str(P.stringify(value))
        value = self._value(value, where)
        if not isinstance(value, str):
            raise HubFault(f"{where} must be a string, not {type(value).__name__}")
        return value

    def _map(self, value: object, where: str) -> dict[str, Any]:
        value = self._value(value, where)
        if not isinstance(value, dict):
            raise HubFault(f"{where} must be a map, not {type(value).__name__}")
        return value

    # -- registration -------------------------------------------------------------

    def register(self, secret: object) -> tuple[Client, list[Effect]]:
        """Standard Profile ``register(secret)``.

        Raises:
            HubFault: wrong secret.
        """
        if not isinstance(secret, str) or not secrets.compare_digest(
            secret.encode(), self.secret.encode()
        ):
            raise HubFault("bad secret: registration refused")
        return self._register("std", {})

    def register_web(self, identity: Mapping[str, Any]) -> tuple[Client, list[Effect]]:
        """Web Profile ``register(identity-info)``, after consent was given."""
        return self._register("web", dict(identity))

    def _register(self, profile: Profile, info: dict[str, Any]) -> tuple[Client, list[Effect]]:
        public_id = f"c{next(self._ids)}"
        client = Client(public_id, self._key_factory(profile), profile, info=info)
        self._add(client)
        return client, self._event(P.HUB_EVENT_REGISTER, {"id": public_id})

    def reg_info(self, client: Client) -> dict[str, str]:
        """The map ``register`` returns."""
        return {
            "samp.private-key": client.private_key,
            "samp.self-id": client.public_id,
            "samp.hub-id": self.hub_id,
        }

    def unregister(self, private_key: object) -> list[Effect]:
        """``unregister``: forget the client, fail calls awaiting it, tell the others."""
        return self.remove(self.client_by_key(private_key))

    def remove(self, client: Client, reason: str = "unregistered") -> list[Effect]:
        """Remove *client* (unregistered, dead or disconnected) and return the effects."""
        if self._by_id.get(client.public_id) is not client:
            return []
        del self._by_id[client.public_id]
        del self._by_key[client.private_key]
        for handle in client.sub_handles:
            self._subs.unregister(handle)
        client.sub_handles.clear()
        effects: list[Effect] = []
        for msg_id, pending in list(self.pending.items()):
            if pending.recipient_id == client.public_id:
                error = P.make_error_response(
                    P.samp_text(f"recipient {client.public_id} {reason} before replying"),
                    code="samp.noresponse",
                )
                effects.extend(self._answer(pending, client.public_id, error))
            elif pending.sender is client:
                del self.pending[msg_id]
                if pending.sync:  # wake the waiting coroutine; its caller is gone
                    effects.append(Resolve(msg_id, P.make_error_response("caller unregistered")))
        effects.extend(self._event(P.HUB_EVENT_UNREGISTER, {"id": client.public_id}))
        return effects

    def set_callback(self, private_key: object, url: object) -> None:
        """``setXmlrpcCallback(url)``."""
        client = self.client_by_key(private_key)
        url = self._string(url, "callback URL")
        if not url.startswith(("http://", "https://")):
            raise HubFault(f"callback URL must be http(s): {url[:80]!r}")
        client.callback_url = url

    def allow_reverse_callbacks(self, private_key: object, allow: object) -> None:
        """Web Profile ``allowReverseCallbacks(key, "0"|"1")``."""
        client = self.client_by_key(private_key)
        flag = self._string(allow, "allow flag")
        if flag not in ("0", "1"):
            raise HubFault(f"allowReverseCallbacks wants '0' or '1', not {flag[:20]!r}")
        client.reverse_callbacks = flag == "1"

    # -- metadata and subscriptions ---------------------------------------------------

    def declare_metadata(self, private_key: object, metadata: object) -> list[Effect]:
        """``declareMetadata(map)``."""
        client = self.client_by_key(private_key)
        client.metadata = self._map(metadata, "metadata")
        params = {"id": client.public_id, "metadata": client.metadata}
        return self._event(P.HUB_EVENT_METADATA, params)

    def get_metadata(self, private_key: object, client_id: object) -> dict[str, Any]:
        """``getMetadata(id)``."""
        self.client_by_key(private_key)
        return self.client_by_id(client_id).metadata

    def declare_subscriptions(self, private_key: object, subscriptions: object) -> list[Effect]:
        """``declareSubscriptions({mtype-pattern: annotation-map})``."""
        client = self.client_by_key(private_key)
        subs = self._map(subscriptions, "subscriptions")
        for pattern, annotation in subs.items():
            try:
                P.check_mtype_pattern(pattern)
            except SAMPDataError as exc:
                raise HubFault(str(exc)) from None
            if not isinstance(annotation, dict):
                raise HubFault(f"annotation of {pattern!r} must be a map")
        self._set_subscriptions(client, subs)
        params = {"id": client.public_id, "subscriptions": client.subscriptions}
        return self._event(P.HUB_EVENT_SUBSCRIPTIONS, params)

    def _set_subscriptions(self, client: Client, subs: dict[str, Any]) -> None:
        for handle in client.sub_handles:
            self._subs.unregister(handle)
        callback = _Subscription(client.public_id)
        client.sub_handles = [self._subs.register(pattern, callback) for pattern in subs]
        client.subscriptions = subs

    def get_subscriptions(self, private_key: object, client_id: object) -> dict[str, Any]:
        """``getSubscriptions(id)``."""
        self.client_by_key(private_key)
        return self.client_by_id(client_id).subscriptions

    def get_registered_clients(self, private_key: object) -> list[str]:
        """``getRegisteredClients()``: every id but the caller's, the hub's included."""
        caller = self.client_by_key(private_key)
        return [cid for cid, c in self._by_id.items() if c is not caller]

    def get_subscribed_clients(self, private_key: object, mtype: object) -> dict[str, Any]:
        """``getSubscribedClients(mtype)``: ``{id: annotation}``, the caller excluded."""
        caller = self.client_by_key(private_key)
        mtype = self._string(mtype, "mtype")
        out: dict[str, Any] = {}
        for client in self.subscribers(mtype):
            if client is not caller and self._permitted(caller, client, mtype):
                out[client.public_id] = self.annotation(client, mtype)
        return out

    def subscribers(self, mtype: str) -> list[Client]:
        """Clients subscribed to *mtype*, oldest subscription first, no duplicates."""
        seen: dict[str, Client] = {}
        for handler in self._subs.match(mtype):
            cid = getattr(handler.callback, "client_id", None)
            if not isinstance(cid, str):
                continue
            if cid not in seen and cid in self._by_id:
                seen[cid] = self._by_id[cid]
        return list(seen.values())

    @staticmethod
    def annotation(client: Client, mtype: str) -> dict[str, Any]:
        """The annotation map of the most specific subscription of *client* covering *mtype*."""
        subs = client.subscriptions
        if mtype in subs:
            return dict(subs[mtype])
        best = max((p for p in subs if mtype_matches(p, mtype)), key=len, default=None)
        return dict(subs[best]) if best is not None else {}

    def _permitted(self, sender: Client, recipient: Client, mtype: str) -> bool:
        if not self.web_restrict or sender.profile != "web" or recipient.profile == "web":
            return True
        return P.is_safe_mtype(mtype, self.annotation(recipient, mtype), self.safe_mtypes)

    def _target(self, sender: Client, recipient_id: object, mtype: str) -> Client:
        recipient = self.client_by_id(recipient_id)
        if not any(mtype_matches(p, mtype) for p in recipient.subscriptions):
            raise HubFault(f"client {recipient.public_id} is not subscribed to {mtype}")
        if not recipient.callable:
            raise HubFault(f"client {recipient.public_id} is not callable")
        if not self._permitted(sender, recipient, mtype):
            raise HubFault(f"Web Profile clients may not send {mtype} to {recipient.public_id}")
        return recipient

    def _broadcast_targets(self, sender: Client, mtype: str) -> list[Client]:
        return [
            c
            for c in self.subscribers(mtype)
            if c is not sender and c.callable and self._permitted(sender, c, mtype)
        ]

    # -- messaging ----------------------------------------------------------------

    def notify(self, private_key: object, recipient_id: object, message: object) -> list[Effect]:
        """``notify(id, message)``."""
        sender = self.client_by_key(private_key)
        msg = self._message(message)
        recipient = self._target(sender, recipient_id, msg["samp.mtype"])
        return self._deliver_notification(sender, recipient, msg)

    def notify_all(self, private_key: object, message: object) -> tuple[list[str], list[Effect]]:
        """``notifyAll(message)`` -> (recipient ids, effects)."""
        sender = self.client_by_key(private_key)
        msg = self._message(message)
        effects: list[Effect] = []
        ids = []
        args = (sender.public_id, msg)  # one tuple for all: the I/O layer encodes it once
        for recipient in self._broadcast_targets(sender, msg["samp.mtype"]):
            ids.append(recipient.public_id)
            if recipient.profile != "hub":
                effects.append(Delivery(recipient, "receiveNotification", args))
        return ids, effects

    def call(
        self, private_key: object, recipient_id: object, msg_tag: object, message: object
    ) -> tuple[str, list[Effect]]:
        """``call(id, tag, message)`` -> (msg-id, effects)."""
        sender = self.client_by_key(private_key)
        tag = self._string(msg_tag, "msg-tag")
        msg = self._message(message)
        recipient = self._target(sender, recipient_id, msg["samp.mtype"])
        return self._deliver_call(sender, recipient, tag, msg)

    def call_all(
        self, private_key: object, msg_tag: object, message: object
    ) -> tuple[dict[str, str], list[Effect]]:
        """``callAll(tag, message)`` -> ({id: msg-id}, effects)."""
        sender = self.client_by_key(private_key)
        tag = self._string(msg_tag, "msg-tag")
        msg = self._message(message)
        out: dict[str, str] = {}
        effects: list[Effect] = []
        for recipient in self._broadcast_targets(sender, msg["samp.mtype"]):
            msg_id, more = self._deliver_call(sender, recipient, tag, msg)
            out[recipient.public_id] = msg_id
            effects.extend(more)
        return out, effects

    def call_and_wait(
        self, private_key: object, recipient_id: object, message: object
    ) -> tuple[str, list[Effect]]:
        """``callAndWait(id, message, timeout)`` -> (msg-id to wait on, effects).

        The I/O layer waits for the :class:`Resolve` of that msg-id and calls
        :meth:`abandon` if its timeout expires first.
        """
        sender = self.client_by_key(private_key)
        msg = self._message(message)
        recipient = self._target(sender, recipient_id, msg["samp.mtype"])
        return self._deliver_call(sender, recipient, None, msg)

    def reply(self, private_key: object, msg_id: object, response: object) -> list[Effect]:
        """``reply(msg-id, response)``.

        Raises:
            HubFault: unknown msg-id, a msg-id addressed to another client, or a
                malformed response.
        """
        responder = self.client_by_key(private_key)
        pending = self.pending.get(msg_id) if isinstance(msg_id, str) else None
        if pending is None or pending.recipient_id != responder.public_id:
            raise HubFault(f"no call with msg-id {str(msg_id)[:80]!r} awaits a reply from you")
        try:
            checked = P.check_response(response, coerce=self.coerce, keep=self.keep)
        except SAMPDataError as exc:
            raise HubFault(str(exc)) from None
        return self._answer(pending, responder.public_id, checked)

    def abandon(self, msg_id: str) -> None:
        """Forget a pending call (its callAndWait timed out); a late reply then faults."""
        self.pending.pop(msg_id, None)

    def delivery_failed(self, delivery: Delivery, reason: str) -> list[Effect]:
        """A delivery could not be made: answer the call it carried with an error."""
        if delivery.method != "receiveCall" or delivery.msg_id is None:
            return []
        pending = self.pending.get(delivery.msg_id)
        if pending is None:
            return []
        error = P.make_error_response(
            P.samp_text(f"delivery to {pending.recipient_id} failed: {reason}")
        )
        return self._answer(pending, pending.recipient_id, error)

    def shutdown(self) -> list[Effect]:
        """The effects of shutting down: the shutdown event, errors to pending calls."""
        effects = self._event(P.HUB_EVENT_SHUTDOWN, {})
        for pending in list(self.pending.values()):
            error = P.make_error_response("hub shutting down", code="samp.noresponse")
            effects.extend(self._answer(pending, pending.recipient_id, error))
        return effects

    def disconnect(self, client: Client, reason: str) -> list[Effect]:
        """Send ``samp.hub.disconnect`` to *client* (if it listens), then remove it."""
        effects: list[Effect] = []
        if client.callable and self.subscribers_include(client, P.HUB_EVENT_DISCONNECT):
            msg = P.make_message(P.HUB_EVENT_DISCONNECT, {"reason": reason})
            effects.append(Delivery(client, "receiveNotification", (self.hub_id, msg)))
        return effects + self.remove(client, reason)

    @staticmethod
    def subscribers_include(client: Client, mtype: str) -> bool:
        """Whether *client* is subscribed to *mtype*."""
        return any(mtype_matches(p, mtype) for p in client.subscriptions)

    # -- internals ----------------------------------------------------------------

    def _event(self, mtype: str, params: dict[str, Any]) -> list[Effect]:
        args = (self.hub_id, P.make_message(mtype, params))
        effects: list[Effect] = []
        for client in self.subscribers(mtype):
            if client.profile != "hub" and client.callable:
                effects.append(Delivery(client, "receiveNotification", args))
        return effects

    def _deliver_notification(
        self, sender: Client, recipient: Client, msg: dict[str, Any]
    ) -> list[Effect]:
        if recipient.profile == "hub":
            return []  # the hub takes note of samp.app.ping notifications and that's all
        return [Delivery(recipient, "receiveNotification", (sender.public_id, msg))]

    def _deliver_call(
        self, sender: Client, recipient: Client, tag: str | None, msg: dict[str, Any]
    ) -> tuple[str, list[Effect]]:
        msg_id = f"m{next(self._msg_ids)}-{sender.public_id}"
        pending = Pending(msg_id, sender, recipient.public_id, tag, msg["samp.mtype"])
        self.pending[msg_id] = pending  # registered BEFORE anything is delivered
        if recipient.profile == "hub":
            return msg_id, self._answer(pending, recipient.public_id, self._hub_answer(msg))
        effects: list[Effect] = [
            Delivery(recipient, "receiveCall", (sender.public_id, msg_id, msg), msg_id)
        ]
        while len(self.pending) > self.max_pending:  # recipients that never reply
            oldest = next(iter(self.pending.values()))
            error = P.make_error_response(
                "no reply: the hub gave up on this call", code="samp.noresponse"
            )
            effects.extend(self._answer(oldest, oldest.recipient_id, error))
        return msg_id, effects

    def _hub_answer(self, msg: dict[str, Any]) -> dict[str, Any]:
        if msg["samp.mtype"] == "samp.app.ping":
            return P.make_ok_response({})
        return P.make_error_response(f"the hub does not handle {msg['samp.mtype']}")

    def _answer(
        self, pending: Pending, responder_id: str, response: dict[str, Any]
    ) -> list[Effect]:
        self.pending.pop(pending.msg_id, None)
        if pending.sync:
            return [Resolve(pending.msg_id, response)]
        sender = pending.sender
        if self._by_id.get(sender.public_id) is not sender or not sender.callable:
            return []  # the caller left or cannot take callbacks: nobody to tell
        args = (responder_id, pending.tag, response)
        return [Delivery(sender, "receiveResponse", args)]
