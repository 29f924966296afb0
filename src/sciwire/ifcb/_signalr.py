"""Sans-I/O core of the SignalR JSON hub protocol (client and server roles).

No sockets, no threads, no clock: text or bytes go in with the current time, hub
messages (dataclasses) come out, and every ``send``-like method returns the text to
write to the WebSocket. The I/O layer calls :meth:`SignalRConnection.tick` at
:meth:`SignalRConnection.next_deadline` to get keep-alive pings and server-timeout
detection.

Spec facts (ASP.NET Core ``HubProtocol.md`` / ``TransportProtocols.md``): every JSON
record ends with the record separator 0x1E; one frame may carry several records and a
record may span frames; the first record each way is the handshake; message types
1-7 (8 Ack and 9 Sequence belong to the opt-in stateful reconnect and are ignored);
an Invocation with an ``invocationId`` expects a Completion, one without is
fire-and-forget; each side pings after 15 s of sending nothing and drops a peer it has
not heard from for 30 s.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from sciwire.core.jsonfast import scan
from sciwire.errors import LocalProtocolError, RemoteError, RemoteProtocolError, Timeout
from sciwire.ifcb._negotiate import (
    NegotiateError,
    NegotiateResult,
    negotiate_response,
    parse_negotiate,
)

__all__ = [
    "MAX_MESSAGE_SIZE",
    "MAX_RECORD_SIZE",
    "PING_RECORD",
    "RS",
    "CancelInvocation",
    "Close",
    "Completion",
    "HandshakeError",
    "HandshakeRequest",
    "HandshakeResponse",
    "HubMessage",
    "Invocation",
    "NegotiateError",
    "NegotiateResult",
    "Ping",
    "RecordBuffer",
    "RecordTooLarge",
    "ServerTimeout",
    "SignalRConnection",
    "StreamInvocation",
    "StreamItem",
    "decode_message",
    "encode_message",
    "negotiate_response",
    "parse_negotiate",
    "scan_invocation",
    "split_invocation",
]

logger = logging.getLogger(__name__)

RS = "\x1e"
_RS_B = b"\x1e"
#: A Ping record, ready to write.
PING_RECORD = '{"type":6}' + RS
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_loads = json.loads

#: Default cap on one WebSocket message, bytes (aiohttp's own default): a larger one
#: closes the connection (setting ``max_message_size``; 0 means no limit).
MAX_MESSAGE_SIZE = 4 * 1024 * 1024
#: Default cap on an unfinished record (text not yet ended by 0x1E) buffered across
#: frames, characters or bytes (setting ``max_record_size``; 0 means no limit).
MAX_RECORD_SIZE = 4 * 1024 * 1024

#: Handshake versions a server accepts (signalrcore 1.0.x sends 0, current clients 1).
SERVER_VERSIONS = (0, 1, 2)


class HandshakeError(RemoteError):
    """The peer refused the handshake, or sent an invalid one."""


class RecordTooLarge(RemoteProtocolError):
    """The peer sent more than ``max_record_size`` without ending the record."""


class ServerTimeout(Timeout):
    """Nothing was heard from the peer for the server-timeout interval (half-open socket)."""


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
        obj, end = scan(record, 0)
    except (StopIteration, ValueError):
        end = -1
    if end != len(record):  # whitespace around it, or not JSON: the slow, exact way
        try:
            obj = _loads(record)
        except ValueError as exc:
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
    except (StopIteration, ValueError):
        return None
    if end != stop - 1 or text[end] != "}" or type(args) is not list:
        return None
    return target, args


class RecordBuffer:
    """Splits a stream of text or bytes into 0x1E-terminated records.

    Records may span several ``feed`` calls, and one call may complete several.
    Splitting bytes on 0x1E is safe in UTF-8 (no multi-byte sequence contains it), so a
    frame cut inside a character is fine.

    Args:
        limit: the longest record accepted, finished or not (0: no limit); beyond it
            ``feed`` raises :class:`RecordTooLarge`, because a peer that never sends 0x1E
            would otherwise grow the buffer without bound.
    """

    __slots__ = ("_bytes", "_text", "limit")

    def __init__(self, limit: int = MAX_RECORD_SIZE) -> None:
        self._text = ""
        self._bytes = b""
        self.limit = limit

    @property
    def pending(self) -> int:
        """How many characters/bytes of an unfinished record are buffered."""
        return len(self._text) + len(self._bytes)

    def feed(self, data: str | bytes) -> list[str]:
        """Add *data*; return the complete records (without separators).

        Raises:
            RemoteProtocolError: a complete record is not valid UTF-8.
            RecordTooLarge: the unfinished record outgrew :attr:`limit`.
        """
        if isinstance(data, str):
            if self._bytes:
                data = self._take_bytes() + data
            if self._text:
                data = self._text + data
            parts = data.split(RS)
            self._text = parts.pop()
            limit = self.limit
            # one comparison per feed unless the input itself is over the limit
            if limit and len(data) > limit and max(map(len, [self._text, *parts])) > limit:
                self._overflow()
            return parts
        if self._text:  # mixed input: keep one buffer
            data = self._text.encode() + data
            self._text = ""
        if self._bytes:
            data = self._bytes + bytes(data)
        raw = bytes(data).split(_RS_B)
        self._bytes = raw.pop()
        limit = self.limit
        if limit and len(data) > limit and max(map(len, [self._bytes, *raw])) > limit:
            self._overflow()
        try:
            return [part.decode("utf-8") for part in raw]
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError("hub record is not valid UTF-8", data) from exc

    def _overflow(self) -> None:
        self._text, self._bytes = "", b""  # release the memory now, not at teardown
        raise RecordTooLarge(f"a SignalR record exceeds max_record_size ({self.limit})")

    def _take_bytes(self) -> str:
        raw, self._bytes = self._bytes, b""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError("hub record is not valid UTF-8", raw) from exc


# -- connection state machine ---------------------------------------------------

Role = Literal["client", "server"]
State = Literal["handshake", "open", "closed"]


class SignalRConnection:
    """One side of a SignalR JSON hub connection, without I/O.

    Args:
        role: ``"client"`` or ``"server"``.
        now: the current time (any monotonic clock, seconds).
        keep_alive_interval: ping after this long without sending anything.
        server_timeout: declare the peer gone after this long without hearing from it.
        handshake_timeout: how long the handshake may take.
        max_record_size: the longest record accepted, also across frames (0: no limit).
    """

    def __init__(
        self,
        role: Role,
        now: float = 0.0,
        *,
        keep_alive_interval: float = 15.0,
        server_timeout: float = 30.0,
        handshake_timeout: float = 15.0,
        max_record_size: int = MAX_RECORD_SIZE,
    ) -> None:
        if role not in ("client", "server"):
            raise ValueError(f"role must be 'client' or 'server', not {role!r}")
        self.role: Role = role
        self.state: State = "handshake"
        self.keep_alive_interval = keep_alive_interval
        self.server_timeout = server_timeout
        self.handshake_timeout = handshake_timeout
        self.protocol_version: int | None = None
        self.close_error: str | None = None
        #: invocation ids we sent and whose Completion has not come back
        self.pending: set[str] = set()
        #: records dropped (unmatched Completions, ignored types)
        self.dropped = 0
        self._started = now
        self._last_sent = now
        self._last_received = now
        self._ids = itertools.count(1)
        self._buffer = RecordBuffer(max_record_size)
        self._handshake_seen = False
        self._held: list[str] = []  # records after the handshake request, until accepted

    # -- handshake ------------------------------------------------------------------

    def handshake_request(self, now: float, protocol: str = "json", version: int = 1) -> str:
        """(client) The handshake record to send first."""
        self._need("client", "handshake")
        self._last_sent = now
        return _dumps({"protocol": protocol, "version": version}) + RS

    def accept_handshake(self, now: float) -> str:
        """(server) Accept the client's handshake; returns ``{}`` + 0x1E.

        Records that arrived after the handshake request are held until now: call
        :meth:`receive` with empty data to get them.
        """
        self._need("server", "handshake")
        self.state = "open"
        self._last_sent = now
        return "{}" + RS

    def reject_handshake(self, error: str, now: float) -> str:
        """(server) Refuse the handshake; the caller closes the socket after sending.

        Also allowed after a malformed handshake closed the connection.
        """
        if self.role != "server" or self.state == "open":
            self._need("server", "handshake")
        self.state = "closed"
        self.close_error = error
        self._last_sent = now
        return _dumps({"error": error}) + RS

    # -- sending --------------------------------------------------------------------

    def send(self, msg: HubMessage, now: float) -> str:
        """Serialise *msg* for sending and note the time."""
        if self.state != "open":
            raise LocalProtocolError(f"cannot send on a connection in state {self.state!r}")
        self._last_sent = now
        return encode_message(msg)

    def note_sent(self, now: float) -> None:
        """Record that a record encoded elsewhere was sent (for the keep-alive timer)."""
        self._last_sent = now

    def send_invocation(self, target: str, arguments: list[Any], now: float) -> str:
        """A fire-and-forget Invocation (no invocationId, no reply)."""
        return self.send(Invocation(target, arguments), now)

    def invoke(self, target: str, arguments: list[Any], now: float) -> tuple[str, str]:
        """An Invocation expecting a Completion; returns ``(invocation_id, record)``."""
        invocation_id = str(next(self._ids))
        record = self.send(Invocation(target, arguments, invocation_id), now)
        self.pending.add(invocation_id)
        return invocation_id, record

    def close(
        self, now: float, error: str | None = None, allow_reconnect: bool | None = None
    ) -> str:
        """A Close record; the connection is closed afterwards."""
        record = encode_message(Close(error, allow_reconnect))
        self.state = "closed"
        self.close_error = error
        self._last_sent = now
        return record

    # -- receiving ------------------------------------------------------------------

    def receive(
        self, data: str | bytes, now: float
    ) -> list[HubMessage | HandshakeRequest | HandshakeResponse]:
        """Feed received frame data; return the messages it completed.

        Raises:
            HandshakeError: (client) the server refused the handshake.
            RemoteProtocolError: a record is malformed, or the handshake is invalid.
        """
        self._last_received = now
        records = self._buffer.feed(data)
        if self._held and self.state != "handshake":
            records[:0] = self._held
            self._held = []
        out: list[HubMessage | HandshakeRequest | HandshakeResponse] = []
        for index, record in enumerate(records):
            if self.state == "handshake":
                if self._handshake_seen:  # (server) awaiting accept: hold the rest
                    self._held.extend(records[index:])
                    break
                out.append(self._handshake(record))
                continue
            if self.state == "closed":
                self.dropped += 1
                continue
            msg = self.receive_record(record)
            if msg is not None:
                out.append(msg)
        return out

    def open_records(self, data: str | bytes, now: float) -> list[str] | None:
        """The fast path of :meth:`receive` for an open connection.

        Returns the complete records of *data* (unfinished ones stay buffered), for the
        caller to pass to :func:`split_invocation` or :meth:`receive_record` one by one;
        or None, without consuming *data*, when the connection is not open or holds
        records back (then call :meth:`receive`).

        Raises:
            RemoteProtocolError: a complete record is not valid UTF-8.
        """
        if self.state != "open" or self._held:
            return None
        self._last_received = now
        return self._buffer.feed(data)

    def open_frame(self, data: str | bytes, now: float) -> bool:
        """The fast path of :meth:`open_records` for whole text frames: True (and *data*
        counts as received) when *data* is text ending with 0x1E on an open connection
        with nothing buffered or held, so the caller may read its records in place
        (the records of ``data.split(RS)[:-1]``, each then as :func:`split_invocation`
        or :meth:`receive_record` would take it); False, without consuming *data*, for
        anything else (then :meth:`open_records`)."""
        if (
            type(data) is not str
            or not data.endswith(RS)
            or self.state != "open"
            or self._held
            or self._buffer.pending
            or (self._buffer.limit and len(data) > self._buffer.limit)
        ):
            # (a frame over the record cap takes the general path, which checks each record)
            return False
        self._last_received = now
        return True

    def receive_record(self, record: str) -> HubMessage | None:
        """Decode one record of an open connection and do its bookkeeping.

        Returns the message, or None when it is dropped (ignored types, Completions
        of unknown invocations, anything after a Close).

        Raises:
            RemoteProtocolError: the record is malformed.
        """
        if self.state != "open":
            self.dropped += 1
            return None
        msg = decode_message(record)
        if type(msg) is Invocation:
            return msg
        if msg is None:
            self.dropped += 1
            return None
        if isinstance(msg, Completion):
            if msg.invocation_id not in self.pending:
                self.dropped += 1
                logger.warning("dropping Completion for unknown invocation %r", msg.invocation_id)
                return None
            self.pending.discard(msg.invocation_id)
        elif isinstance(msg, Close):
            self.state = "closed"
            self.close_error = msg.error
        return msg

    def _handshake(self, record: str) -> HandshakeRequest | HandshakeResponse:
        try:
            obj = _loads(record)
        except ValueError as exc:
            self.state = "closed"
            raise RemoteProtocolError("handshake is not valid JSON", record) from exc
        if not isinstance(obj, dict):
            self.state = "closed"
            raise RemoteProtocolError("handshake is not a JSON object", record)
        if self.role == "client":
            if "error" in obj:
                self.state = "closed"
                self.close_error = str(obj["error"])
                raise HandshakeError(f"server refused the handshake: {obj['error']}", data=obj)
            self.state = "open"
            return HandshakeResponse(None, obj)
        protocol, version = obj.get("protocol"), obj.get("version")
        if not isinstance(protocol, str) or not isinstance(version, int):
            self.state = "closed"
            raise RemoteProtocolError("handshake request lacks protocol/version", record)
        self.protocol_version = version
        self._handshake_seen = True
        return HandshakeRequest(protocol, version)

    # -- timers ---------------------------------------------------------------------

    def next_deadline(self) -> float:
        """When :meth:`tick` next has something to do."""
        if self.state == "handshake":
            return self._started + self.handshake_timeout
        return min(
            self._last_sent + self.keep_alive_interval,
            self._last_received + self.server_timeout,
        )

    def tick(self, now: float) -> str:
        """Run the timers: returns a Ping record when one is due, else ``""``.

        Raises:
            Timeout: the handshake did not finish in time.
            ServerTimeout: nothing heard from the peer for ``server_timeout`` seconds.
        """
        if self.state == "handshake":
            if now - self._started >= self.handshake_timeout:
                self.state = "closed"
                raise Timeout(f"handshake did not finish within {self.handshake_timeout} s")
            return ""
        if self.state != "open":
            return ""
        if now - self._last_received >= self.server_timeout:
            self.state = "closed"
            raise ServerTimeout(f"nothing heard from the peer for {self.server_timeout} s")
        if now - self._last_sent >= self.keep_alive_interval:
            self._last_sent = now
            return PING_RECORD
        return ""

    def _need(self, role: Role, state: State) -> None:
        if self.role != role or self.state != state:
            raise LocalProtocolError(
                f"not allowed for a {self.role} connection in state {self.state!r}"
            )
