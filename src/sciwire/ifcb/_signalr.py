"""Sans-I/O core of the SignalR JSON hub protocol (client and server roles).

No sockets, no threads, no clock: frames (text or bytes) go in with the current time
through one door, :meth:`SignalRConnection.receive_frame`, and what they complete comes
out as a list (hub messages as dataclasses, with a fast path inside for the commonest
record); every ``send``-like method returns the text to write to the WebSocket. The
I/O layer calls :meth:`SignalRConnection.tick` at :meth:`SignalRConnection.next_deadline`
to get keep-alive pings and server-timeout detection.

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
from typing import Any, Literal, TypeAlias

from sciwire.core.jsonfast import loads
from sciwire.errors import LocalProtocolError, RemoteError, RemoteProtocolError, Timeout
from sciwire.ifcb._messages import (
    PING_RECORD,
    RS,
    CancelInvocation,
    Close,
    Completion,
    HandshakeRequest,
    HandshakeResponse,
    HubMessage,
    Invocation,
    Ping,
    StreamInvocation,
    StreamItem,
    decode_message,
    encode_message,
    scan_invocation,
    split_invocation,
)
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
    "Item",
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

_RS_B = b"\x1e"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

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


#: What :meth:`SignalRConnection.receive_frame` returns, item by item: a canonical
#: fire-and-forget Invocation as ``(target, arguments)``, a hub message, a handshake,
#: or (last) the peer's error.
Item: TypeAlias = (
    "tuple[str, list[Any]] | HubMessage | HandshakeRequest | HandshakeResponse"
    " | RemoteProtocolError | HandshakeError"
)


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

    __slots__ = ("_bytes", "_text", "empty", "limit")

    def __init__(self, limit: int = MAX_RECORD_SIZE) -> None:
        self._text = ""
        self._bytes = b""
        self.limit = limit
        #: True when no part of a record is buffered (an attribute, not a property:
        #: the receive hot path reads it once per frame)
        self.empty = True

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
            self.empty = not self._text
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
        self.empty = not self._bytes
        limit = self.limit
        if limit and len(data) > limit and max(map(len, [self._bytes, *raw])) > limit:
            self._overflow()
        try:
            return [part.decode("utf-8") for part in raw]
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError("hub record is not valid UTF-8", data) from exc

    def _overflow(self) -> None:
        self._text, self._bytes = "", b""  # release the memory now, not at teardown
        self.empty = True
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
        :meth:`receive_frame` with empty data to get them.
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

    def forget(self, invocation_id: str) -> None:
        """Stop waiting for *invocation_id*'s Completion (the caller gave up on it): a
        late one is dropped and counted like any unknown one."""
        self.pending.discard(invocation_id)

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

    def receive_frame(self, data: str | bytes, now: float) -> list[Item]:
        """Feed one received frame; return what it completed, in order.

        The items are: a fire-and-forget Invocation in its canonical form as a
        ``(target, arguments)`` tuple (read in place, no message object), any other hub
        message as its dataclass, the handshake as :class:`HandshakeRequest` (server) or
        :class:`HandshakeResponse` (client), and, last, the peer's error when the input
        is bad (a :class:`RemoteProtocolError`, :class:`RecordTooLarge` or
        :class:`HandshakeError`): what came before it still counts, nothing after it is
        read, and the caller ends the connection. Nothing here raises on peer input.

        A server holds the records that follow the handshake request until
        :meth:`accept_handshake`; call this with empty *data* to get them. Records after a
        Close, Completions nobody waits for and ignored types are dropped and counted in
        :attr:`dropped`.
        """
        self._last_received = now
        buffer = self._buffer
        out: list[Item] = []
        # the hot path takes whole records in a text frame (the usual case) as they are;
        # anything else, and a frame over the record cap, takes the buffer (which checks
        # each record's size) and comes back as whole records
        if not (
            type(data) is str
            and data.endswith(RS)
            and self.state == "open"
            and not self._held
            and buffer.empty
            and not (buffer.limit and len(data) > buffer.limit)
        ):
            data = self._unframed(data, out)
            if not data:
                return out
        # read in place, record by record: a canonical invocation by one JSON scan
        find = data.find
        append = out.append
        size = len(data)
        pos = 0
        while pos < size:
            stop = find(RS, pos)
            call = scan_invocation(data, pos, stop)
            if call is not None:
                append(call)
                pos = stop + 1
                continue
            record = data[pos:stop]
            pos = stop + 1
            try:
                msg = self._message(record)
            except RemoteProtocolError as exc:
                append(exc)
                break
            if msg is not None:
                append(msg)
                if self.state == "closed":  # a Close: what follows it is dropped
                    self.dropped += data.count(RS, pos)
                    break
        return out

    def _unframed(self, data: str | bytes, out: list[Item]) -> str:
        """The buffered path of :meth:`receive_frame`: feed *data* to the record buffer,
        run the handshake, put any held records first; append the handshake items or the
        peer's error to *out*; return the open connection's records to read, each ended by
        0x1E (``""`` when none)."""
        try:
            records = self._buffer.feed(data)
        except RemoteProtocolError as exc:
            out.append(exc)
            return ""
        if self._held and self.state != "handshake":
            records[:0] = self._held
            self._held = []
        index = 0
        while self.state == "handshake" and index < len(records):
            if self._handshake_seen:  # (server) awaiting accept: hold the rest
                self._held.extend(records[index:])
                return ""
            try:
                out.append(self._handshake(records[index]))
            except (RemoteProtocolError, HandshakeError) as exc:
                out.append(exc)
                return ""
            index += 1
        if index == len(records):
            return ""
        if self.state != "open":
            self.dropped += len(records) - index
            return ""
        # (an empty record is a record, and an error: the join keeps it)
        return RS.join(records[index:] if index else records) + RS

    def _message(self, record: str) -> HubMessage | None:
        """Decode one record of an open connection and do its bookkeeping; None when it
        is dropped (ignored types, Completions of unknown invocations, after a Close).

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

    def connection_lost(self) -> None:
        """The I/O layer ended the connection (socket gone, peer error, local stop)."""
        self.state = "closed"

    def _handshake(self, record: str) -> HandshakeRequest | HandshakeResponse:
        try:
            obj = loads(record)
        except (ValueError, RecursionError) as exc:
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
