"""SignalR JSON hub messages, without I/O: the message dataclasses, their encoding and
decoding (``HubProtocol.md``), and the fast paths that read a fire-and-forget
Invocation in its canonical form without building a message object.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sciwire.core.jsonfast import loads, scan
from sciwire.errors import RemoteProtocolError

__all__ = [
    "PING_RECORD",
    "RS",
    "CancelInvocation",
    "Close",
    "Completion",
    "HandshakeRequest",
    "HandshakeResponse",
    "HubMessage",
    "Invocation",
    "Ping",
    "StreamInvocation",
    "StreamItem",
    "decode_message",
    "encode_message",
    "scan_invocation",
    "split_invocation",
]

logger = logging.getLogger(__name__)

RS = "\x1e"
#: A Ping record, ready to write.
PING_RECORD = '{"type":6}' + RS
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


# -- messages -------------------------------------------------------------------


@dataclass(slots=True)
class Invocation:
    """Type 1: call *target* with *arguments*; a reply is expected when invocation_id is set."""

    target: str
    arguments: list[Any]
    invocation_id: str | None = None
    stream_ids: list[str] | None = None
    headers: dict[str, str] | None = None


@dataclass(slots=True)
class StreamItem:
    """Type 2: one item of a stream."""

    invocation_id: str
    item: Any
    headers: dict[str, str] | None = None


@dataclass(slots=True)
class Completion:
    """Type 3: the end of an invocation, with a result or an error."""

    invocation_id: str
    result: Any = None
    error: str | None = None
    has_result: bool = False
    headers: dict[str, str] | None = None


@dataclass(slots=True)
class StreamInvocation:
    """Type 4: call a streaming method."""

    invocation_id: str
    target: str
    arguments: list[Any]
    stream_ids: list[str] | None = None
    headers: dict[str, str] | None = None


@dataclass(slots=True)
class CancelInvocation:
    """Type 5: stop a stream."""

    invocation_id: str
    headers: dict[str, str] | None = None


@dataclass(slots=True)
class Ping:
    """Type 6: keep-alive."""


@dataclass(slots=True)
class Close:
    """Type 7: the peer is closing, possibly with an error."""

    error: str | None = None
    allow_reconnect: bool | None = None


@dataclass(slots=True)
class HandshakeRequest:
    """The first record a client sends."""

    protocol: str
    version: int


@dataclass(slots=True)
class HandshakeResponse:
    """The first record a server sends (an empty object when accepted)."""

    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


HubMessage = (
    Invocation | StreamItem | Completion | StreamInvocation | CancelInvocation | Ping | Close
)


def _put_common(out: dict[str, Any], headers: dict[str, str] | None) -> dict[str, Any]:
    if headers:
        out["headers"] = headers
    return out


def encode_message(msg: HubMessage) -> str:
    """Serialise one hub message to a JSON record (with its trailing 0x1E)."""
    out: dict[str, Any]
    if isinstance(msg, Invocation):
        out = {"type": 1}
        if msg.invocation_id is not None:
            out["invocationId"] = msg.invocation_id
        out["target"] = msg.target
        out["arguments"] = msg.arguments
        if msg.stream_ids:
            out["streamIds"] = msg.stream_ids
        _put_common(out, msg.headers)
    elif isinstance(msg, Ping):
        return PING_RECORD
    elif isinstance(msg, Completion):
        out = {"type": 3, "invocationId": msg.invocation_id}
        if msg.error is not None:
            out["error"] = msg.error
        elif msg.has_result or msg.result is not None:
            out["result"] = msg.result
        _put_common(out, msg.headers)
    elif isinstance(msg, StreamItem):
        out = _put_common({"type": 2, "invocationId": msg.invocation_id, "item": msg.item}, None)
        _put_common(out, msg.headers)
    elif isinstance(msg, StreamInvocation):
        out = {
            "type": 4,
            "invocationId": msg.invocation_id,
            "target": msg.target,
            "arguments": msg.arguments,
        }
        if msg.stream_ids:
            out["streamIds"] = msg.stream_ids
        _put_common(out, msg.headers)
    elif isinstance(msg, CancelInvocation):
        out = _put_common({"type": 5, "invocationId": msg.invocation_id}, msg.headers)
    elif isinstance(msg, Close):
        out = {"type": 7}
        if msg.error is not None:
            out["error"] = msg.error
        if msg.allow_reconnect is not None:
            out["allowReconnect"] = msg.allow_reconnect
    else:  # pragma: no cover - exhaustive over HubMessage
        raise TypeError(f"not a hub message: {msg!r}")
    return _dumps(out) + RS


def _req(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], record: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind):
        raise RemoteProtocolError(
            f"hub message type {obj.get('type')} lacks a valid {key!r}", record
        )
    return value


def _opt(obj: dict[str, Any], key: str, kind: type, record: str) -> Any:
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        raise RemoteProtocolError(f"hub message field {key!r} has the wrong type", record)
    return value


def decode_message(record: str) -> HubMessage | None:
    """Parse one JSON record (without its 0x1E) into a hub message.

    Returns None for message types this protocol ignores (8 Ack, 9 Sequence, and any
    unknown type, as the spec asks receivers to ignore them).

    Raises:
        RemoteProtocolError: not JSON, not an object, or a known type missing a field.
    """
    try:
        obj = loads(record)
    except (ValueError, RecursionError) as exc:  # (nesting past the C scanner's depth)
        raise RemoteProtocolError("hub message is not valid JSON", record) from exc
    if type(obj) is not dict:
        raise RemoteProtocolError("hub message is not a JSON object", record)
    kind = obj.get("type")
    if kind == 1:
        if len(obj) == 3:  # the common shape: fire-and-forget {type, target, arguments}
            target = obj.get("target")
            args = obj.get("arguments")
            if type(target) is str and type(args) is list:
                return Invocation(target, args)
        args = obj.get("arguments", [])
        if not isinstance(args, list):
            raise RemoteProtocolError("invocation arguments are not a list", record)
        return Invocation(
            _req(obj, "target", str, record),
            args,
            _opt(obj, "invocationId", str, record),
            _opt(obj, "streamIds", list, record),
            _opt(obj, "headers", dict, record),
        )
    if kind == 6:
        return Ping()
    if kind == 3:
        error = _opt(obj, "error", str, record)
        return Completion(
            _req(obj, "invocationId", str, record),
            obj.get("result"),
            error,
            "result" in obj,
            _opt(obj, "headers", dict, record),
        )
    if kind == 2:
        return StreamItem(
            _req(obj, "invocationId", str, record),
            obj.get("item"),
            _opt(obj, "headers", dict, record),
        )
    if kind == 4:
        args = obj.get("arguments", [])
        if not isinstance(args, list):
            raise RemoteProtocolError("stream invocation arguments are not a list", record)
        return StreamInvocation(
            _req(obj, "invocationId", str, record),
            _req(obj, "target", str, record),
            args,
            _opt(obj, "streamIds", list, record),
            _opt(obj, "headers", dict, record),
        )
    if kind == 5:
        return CancelInvocation(
            _req(obj, "invocationId", str, record), _opt(obj, "headers", dict, record)
        )
    if kind == 7:
        return Close(_opt(obj, "error", str, record), _opt(obj, "allowReconnect", bool, record))
    if isinstance(kind, int) and not isinstance(kind, bool):
        logger.debug("ignoring hub message of type %d", kind)
        return None
    raise RemoteProtocolError("hub message has no integer 'type'", record)


_INVOCATION_HEAD = '{"type":1,"target":"'
_ARGUMENTS = '","arguments":'
_HEAD_LEN = len(_INVOCATION_HEAD)
_ARGS_LEN = len(_ARGUMENTS)


def split_invocation(record: str) -> tuple[str, list[Any]] | None:
    """Fast path for the commonest record, a fire-and-forget Invocation written as
    ``{"type":1,"target":"<name>","arguments":[...]}`` (the key order and compact
    form ASP.NET Core and this package's hub write).

    Returns ``(target, arguments)``, or None when the record has any other shape (then
    :func:`decode_message` gives the exact answer, or the exact error). Same JSON
    decoder, same result as :func:`decode_message` for the records it accepts.
    """
    return scan_invocation(record, 0, len(record))


def scan_invocation(text: str, pos: int, stop: int) -> tuple[str, list[Any]] | None:
    """:func:`split_invocation` of the record ``text[pos:stop]``, read in place (a
    frame's records need not be cut out of it first)."""
    if not text.startswith(_INVOCATION_HEAD, pos):
        return None
    start = pos + _HEAD_LEN
    close = text.find('"', start, stop)
    if close < 0 or not text.startswith(_ARGUMENTS, close):
        return None
    target = text[start:close]
    if "\\" in target:
        return None
    try:
        args, end = scan(text, close + _ARGS_LEN)
    except (StopIteration, ValueError, RecursionError):
        return None  # decode_message gives the exact error
    if end != stop - 1 or text[end] != "}" or type(args) is not list:
        return None
    return target, args
