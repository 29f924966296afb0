"""astropy's attribute-based client state, for SAMPClient subclasses that set it themselves.

astropy's ``SAMPClient`` keeps its state in plain attributes (``_notification_bindings``,
``_call_bindings``, ``_response_bindings``, ``_private_key``, ``_is_running``,
``_thread``...). Code written against astropy (its own Web Profile test client, for
one) subclasses it and builds that state in its own ``__init__`` without calling
ours. :class:`sciwire.samp.SAMPClient` detects such an instance (it has no sciwire
core) and runs these functions on those attributes instead, with astropy's
meaning: handlers run inline, on the thread that received the message.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from sciwire.samp._protocol import client_env_response, make_ok_response, mtype_subtypes
from sciwire.samp.errors import SAMPClientError

__all__ = ["is_legacy"]


def is_legacy(client: Any) -> bool:
    """Whether *client* was built by a subclass's own ``__init__`` (no sciwire core)."""
    return "_core" not in vars(client)


def _positional(function: Any) -> int:
    from sciwire.samp.utils import get_num_args

    try:
        return get_num_args(function)
    except TypeError:
        return 6


def start(client: Any) -> None:
    if client._callable:
        client._is_running = True
        thread = getattr(client, "_thread", None)
        if thread is not None and not thread.is_alive():
            thread.start()


def stop(client: Any, timeout: float) -> None:
    client._is_running = False
    thread = getattr(client, "_thread", None)
    if thread is not None and thread.is_alive():
        thread.join(timeout)
        if thread.is_alive():
            raise SAMPClientError(f"Client was not shut down successfully (timeout={timeout}s)")


def unregister(client: Any) -> None:
    if not client.hub.is_connected:
        raise SAMPClientError("Unable to unregister from the SAMP Hub. Hub proxy not connected.")
    client._is_registered = False
    client.hub.unregister(client._private_key)
    client._hub_id = client._public_id = client._private_key = None


def _split(message: Mapping[str, Any]) -> tuple[str, Any, dict[str, Any]]:
    extra = dict(message)
    return str(extra.pop("samp.mtype")), extra.pop("samp.params", {}), extra


def receive_notification(client: Any, private_key: str, sender_id: str, message: Any) -> str:
    if private_key != client._private_key or "samp.mtype" not in message:
        return ""
    mtype, params, extra = _split(message)
    for pattern in mtype_subtypes(mtype):
        bound = client._notification_bindings.get(pattern)
        if bound is None:
            continue
        function = bound[0]
        if _positional(function) == 5:
            function(private_key, sender_id, mtype, params, extra)
        else:
            function(private_key, sender_id, None, mtype, params, extra)
    return ""


def receive_call(client: Any, private_key: str, sender_id: str, msg_id: str, message: Any) -> str:
    if private_key != client._private_key or "samp.mtype" not in message:
        return ""
    mtype, params, extra = _split(message)
    for pattern in mtype_subtypes(mtype):
        bound = client._call_bindings.get(pattern)
        if bound is not None:
            bound[0](private_key, sender_id, msg_id, mtype, params, extra)
    return ""


def receive_response(
    client: Any, private_key: str, responder_id: str, msg_tag: str, response: Any
) -> str:
    function = client._response_bindings.get(msg_tag)
    if private_key == client._private_key and function is not None:
        function(private_key, responder_id, msg_tag, response)
    return ""


def bind(
    client: Any,
    table: str,
    mtype: str,
    function: Any,
    declare: bool,
    metadata: Mapping[str, Any] | None,
) -> None:
    if not client._callable:
        raise SAMPClientError("Client not callable.")
    getattr(client, table)[mtype] = [function, dict(metadata or {})]
    if declare:
        declare_subscriptions(client)


def unbind(client: Any, table: str, mtype: str, declare: bool) -> None:
    if not client._callable:
        raise SAMPClientError("Client not callable.")
    del getattr(client, table)[mtype]
    if declare:
        declare_subscriptions(client)


def declare_subscriptions(client: Any, subscriptions: Mapping[str, Any] | None = None) -> None:
    if not (client.hub.is_connected and client._private_key is not None):
        raise SAMPClientError(
            "Unable to declare subscriptions. Hub unreachable or not connected or client "
            "not registered."
        )
    mtypes: dict[str, Any] = {}
    for table in (client._notification_bindings, client._call_bindings):
        for mtype, bound in table.items():
            mtypes[mtype] = copy.deepcopy(bound[1])
    mtypes.update(copy.deepcopy(dict(subscriptions or {})))
    client.hub.declare_subscriptions(client._private_key, mtypes)


def declare_metadata(client: Any, metadata: Mapping[str, Any] | None) -> None:
    if not (client.hub.is_connected and client._private_key is not None):
        raise SAMPClientError(
            "Unable to declare metadata. Hub unreachable or not connected or client not registered."
        )
    if metadata is not None:
        client._metadata.update(metadata)
    client.hub.declare_metadata(client._private_key, client._metadata)


def ping_reply(client: Any, private_key: str, msg_id: str) -> None:
    client.hub.reply(private_key, msg_id, make_ok_response())


def env_reply(client: Any, private_key: str, msg_id: str, params: Mapping[str, Any]) -> None:
    client.hub.reply(private_key, msg_id, client_env_response(str(params.get("name", ""))))


def _bind_message(client: Any, *args: Any) -> None:
    mtype, function, declare, metadata = args
    client.bind_receive_notification(mtype, function, False, metadata)
    client.bind_receive_call(mtype, function, declare, metadata)


def _declare_if_callable(client: Any, subscriptions: Mapping[str, Any] | None) -> None:
    if not client._callable:
        raise SAMPClientError("Client not callable.")
    declare_subscriptions(client, subscriptions)


#: the binding methods of ``sciwire.samp._common.Bindings``, by name, on astropy's state
_FORWARD: dict[str, Callable[..., None]] = {
    "bind_receive_message": _bind_message,
    "bind_receive_notification": lambda c, *a: bind(c, "_notification_bindings", *a),
    "bind_receive_call": lambda c, *a: bind(c, "_call_bindings", *a),
    "unbind_receive_notification": lambda c, *a: unbind(c, "_notification_bindings", *a),
    "unbind_receive_call": lambda c, *a: unbind(c, "_call_bindings", *a),
    "declare_subscriptions": _declare_if_callable,
    "declare_metadata": declare_metadata,
}


def forward(client: Any, name: str, *args: Any) -> None:
    """Run the binding method *name* with *args* on *client*'s astropy-style state."""
    _FORWARD[name](client, *args)
