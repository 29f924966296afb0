"""Sans-I/O core of the IBL rig echo protocol: events, codec, message checks, echo state.

Nothing here touches a socket, a thread or a clock. Bytes go in, verdicts and
messages come out, so every rule can be tested byte by byte and fuzzed.

Wire facts (iblutil >= 1.11, protocol version 1.0.0): every message is UTF-8 JSON
exactly as :func:`json.dumps` writes it by default, a list ``[code, *args]``; the
receiver echoes every new message back byte for byte before acting on it, except
error reports ``[0, "ExcName: msg", event]``.
"""

from __future__ import annotations

import enum
import json
import warnings
from collections import Counter
from collections.abc import Hashable, Iterator, MutableMapping
from enum import IntEnum, IntFlag
from functools import reduce
from operator import or_
from typing import Any, Generic, NamedTuple, TypeVar

from sciwire.core.jsonfast import loads as fast_loads
from sciwire.core.jsonfast import reused_encoder
from sciwire.rig._errors import RigTypeError, RigValueError

__all__ = [
    "LISTEN_PORT",
    "MAX_MESSAGE_SIZE",
    "PROTOCOL_VERSION",
    "EchoState",
    "EchoVerdict",
    "ErrorReport",
    "ExpMessage",
    "ExpStatus",
    "LastSentView",
    "Message",
    "Rejected",
    "Service",
    "classify",
    "decode",
    "encode",
    "parse_message",
]

LISTEN_PORT = 11001
PROTOCOL_VERSION = "1.0.0"
#: iblutil's EchoProtocol.max_message_size: the largest UDP payload it expects.
MAX_MESSAGE_SIZE = 65535

T = TypeVar("T")


class ExpMessage(IntFlag):
    """The standard experiment messages (bit flags, combinable for callbacks)."""

    EXPINIT = 1
    EXPSTART = 2
    EXPEND = 4
    EXPCLEANUP = 8
    EXPINTERRUPT = 16
    EXPSTATUS = 32
    EXPINFO = 64
    ALYX = 128

    __version__ = PROTOCOL_VERSION

    @classmethod
    def any(cls) -> ExpMessage:
        """Every message combined (255); excludes the error code 0."""
        return reduce(or_, (m for m in cls.__members__.values()))

    @staticmethod
    def validate(event: Any, allow_bitwise: bool = True) -> ExpMessage:
        """Return the ExpMessage for a name, int or flag.

        Args:
            event: ``"expinit"`` (any case, ``|`` joins names), ``1``, ``ExpMessage.EXPINIT``,
                or a compound flag such as ``EXPEND | EXPINTERRUPT``.
            allow_bitwise: if false, a compound flag is refused.

        Raises:
            RigTypeError: event is not a str, int or ExpMessage (also TypeError).
            RigValueError: unknown name, int out of range, or a refused compound (also ValueError).
        """
        if isinstance(event, ExpMessage):
            value = int(event)
            if allow_bitwise or not value & (value - 1):
                return event  # what ExpMessage(value) gives: the same (cached) flag
        elif isinstance(event, str):
            value = 0
            for part in event.split("|"):
                member = ExpMessage.__members__.get(part.strip().upper())
                if member is None:
                    choices = tuple(ExpMessage.__members__)
                    raise RigValueError(f'Unrecognized event "{event}". Choices: {choices}')
                value |= member
        elif isinstance(event, int) and not isinstance(event, bool):
            value = event
            if not 0 <= value <= 255:
                raise RigValueError(f'Unrecognized event "{event}": codes are 0 to 255')
        else:
            raise RigTypeError(f"Unknown event type {type(event)}")
        result = ExpMessage(value)
        if not allow_bitwise and value & (value - 1):
            raise RigValueError(
                f"Compound (bitwise) events not permitted. Choices: {tuple(ExpMessage)}"
            )
        return result

    def __iter__(self) -> Iterator[ExpMessage]:
        """The single-bit members of this flag (as Python 3.11 iterates flags)."""
        num = int(self)
        while num:
            bit = num & -num
            yield ExpMessage(bit)
            num ^= bit


class ExpStatus(IntEnum):
    """The standard experiment statuses."""

    CONNECTED = 0
    INITIALIZED = 10
    RUNNING = 20
    STOPPED = 30

    __version__ = PROTOCOL_VERSION


def validate_status(status: Any) -> ExpStatus:
    """Return the ExpStatus for a member, int or name (``"running"``)."""
    if isinstance(status, ExpStatus):
        return status
    try:
        if isinstance(status, int) and not isinstance(status, bool):
            return ExpStatus(status)
        if isinstance(status, str):
            return ExpStatus[status.strip().upper()]
    except (KeyError, ValueError):
        raise RigValueError(f"Unknown experiment status {status!r}") from None
    raise RigTypeError(f"Unknown status type {type(status)}")


# -- codec -----------------------------------------------------------------------------


# json.dumps(x) with default arguments is exactly this encoder's encode(x), minus the
# argument checks json.dumps makes on every call (and its C encoder is built once).
_ENCODE = reused_encoder(json.JSONEncoder())


def encode(data: Any) -> bytes:
    """Serialise a message exactly as iblutil does.

    Bytes pass through, text is UTF-8 encoded as is, anything else goes through
    :func:`json.dumps` with its defaults (``", "`` and ``": "`` separators, ASCII
    escapes), so echoes compare equal across implementations.

    Raises:
        RigTypeError: the value is not JSON serialisable (also TypeError).
        RigValueError: the value is circular (also ValueError).
    """
    kind = type(data)
    if kind is not list and kind is not tuple:  # every message is a list
        if isinstance(data, bytes):
            return data
        if isinstance(data, bytearray | memoryview):
            return bytes(data)
        if isinstance(data, str):
            return data.encode()
    try:
        return _ENCODE(data).encode()
    except TypeError as exc:
        raise RigTypeError(f"cannot encode message: {exc}") from exc
    except ValueError as exc:
        raise RigValueError(f"cannot encode message: {exc}") from exc


def decode(data: bytes | str) -> Any:
    """Parse a message as iblutil's ``Communicator.decode``: JSON, else the text itself.

    Non-JSON text is returned as a string with a warning, as iblutil warns.

    Raises:
        RigValueError: the bytes are not valid UTF-8 (also ValueError).
    """
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RigValueError("message is not valid UTF-8", data) from exc
    else:
        text = data
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # One fixed text: the warnings registry keeps one entry per distinct message.
        warnings.warn("Failed to decode as JSON", stacklevel=2)
        return text


# -- received messages ----------------------------------------------------------------


class Message(NamedTuple):
    """A valid experiment message: its event, its arguments and its exact bytes."""

    event: ExpMessage
    data: list[Any]
    raw: bytes


class ErrorReport(NamedTuple):
    """A code-0 message: the peer's callback for *event* raised *error*. Never echoed."""

    error: str
    event: int
    raw: bytes


class Rejected(NamedTuple):
    """A message dropped unechoed, with the reason (also the name of its drop counter)."""

    reason: str
    detail: str
    raw: bytes


NOT_JSON = object()  # classify() value for text that is not JSON

#: the single-bit events by code: what ExpMessage(code) gives, without the enum call
_EVENTS: dict[int, ExpMessage] = {int(m): m for m in ExpMessage.__members__.values()}


def loads(text: str) -> Any:
    """``json.loads(text)`` (see :func:`sciwire.core.jsonfast.loads`), or
    :data:`NOT_JSON` where json.loads raises."""
    try:
        return fast_loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError, or too many int digits
        return NOT_JSON


def classify(value: Any, raw: bytes) -> Message | ErrorReport | Rejected:
    """Check a decoded JSON value against the message shapes.

    A message is a list of at least two items whose first is an event code (int
    1-255 with one bit set) or an event name. ``[0, "Exc: msg", event]`` is an error
    report. Anything else is rejected: the reason says why.
    """
    if value is NOT_JSON:
        return Rejected("json", "not JSON", raw)
    if not isinstance(value, list) or len(value) < 2:
        return Rejected("shape", "not a list of at least 2 items", raw)
    code = value[0]
    if type(code) is int and code in _EVENTS:
        return Message(_EVENTS[code], value[1:], raw)
    if code == 0 and type(code) is int:
        if len(value) == 3 and isinstance(value[1], str) and type(value[2]) is int:
            return ErrorReport(value[1], value[2], raw)
        return Rejected("shape", "malformed error report", raw)
    if isinstance(code, str):
        try:
            event = ExpMessage.validate(code, allow_bitwise=False)
        except ValueError:
            return Rejected("event", f"unknown event {code!r}", raw)
        if event:
            return Message(event, value[1:], raw)
    return Rejected("event", f"invalid event code {code!r}", raw)


def parse_message(raw: bytes, max_size: int = MAX_MESSAGE_SIZE) -> Message | ErrorReport | Rejected:
    """Decode and check one received message; never raises.

    Empty, oversized, non-UTF-8, non-JSON and wrongly shaped input comes back as
    :class:`Rejected` with a reason: ``empty``, ``oversized``, ``utf8``, ``json``,
    ``shape`` or ``event``.
    """
    if not raw:
        return Rejected("empty", "empty message", raw)
    if len(raw) > max_size:
        return Rejected("oversized", f"{len(raw)} bytes > {max_size}", raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Rejected("utf8", "invalid UTF-8", raw)
    return classify(loads(text), raw)


# -- echo state -------------------------------------------------------------------------


class EchoVerdict(enum.Enum):
    """What a received message is, as far as echo confirmation goes."""

    NEW = "new"  # not awaited: echo it (if valid) and dispatch it
    MATCH = "match"  # the awaited echo, byte for byte
    TRUNCATED = "truncated"  # the awaited echo cut at the max datagram size: a match
    MISMATCH = "mismatch"  # the next message from an awaited address, but different
    LATE = "late"  # the echo of a confirmed send that already timed out: swallowed


class EchoState(Generic[T]):
    """Awaited echoes per address.

    ``expect(addr, payload, token)`` records what we sent; the next message from
    that address is its echo. After a timeout, ``forget(addr)`` keeps the payload as
    a possible *late* echo, swallowed once if it still arrives: treating it as a new
    message would echo it back and start an endless echo ping-pong with the peer.

    Args:
        max_message_size: an echo exactly this long that is a prefix of the payload
            counts as a (truncated) match, as iblutil allows for UDP.

    Attributes:
        max_late: the most timed-out payloads kept as possible late echoes (one per
            address); past it the oldest is dropped, so a server that times out
            towards ever new addresses does not grow without end.
    """

    max_late = 1024

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        self.counts: Counter[str] = Counter()
        self._awaiting: dict[Hashable, tuple[bytes, T]] = {}
        self._late: dict[Hashable, bytes] = {}
        #: the addresses whose echo is awaited (read-only view; ``addr in awaited``)
        self.awaited = self._awaiting.keys()

    def expect(self, addr: Hashable, payload: bytes, token: T) -> None:
        """Record that *payload* was sent to *addr* and its echo is awaited."""
        self._late.pop(addr, None)
        self._awaiting[addr] = (payload, token)

    def awaiting(self, addr: Hashable | None = None) -> bool:
        """True while an echo is awaited (from *addr*, or from anyone)."""
        if addr is None:
            return bool(self._awaiting)
        return addr in self._awaiting

    def pending(self) -> dict[Hashable, tuple[bytes, T]]:
        """A copy of the awaited payloads and tokens by address."""
        return dict(self._awaiting)

    def get(self, addr: Hashable) -> tuple[bytes, T] | None:
        """The payload and token awaited from *addr*, or None (no copy of the table)."""
        return self._awaiting.get(addr)

    def forget(self, addr: Hashable, late: bool = True) -> None:
        """Stop awaiting *addr*; with *late*, swallow its echo once if it still comes."""
        entry = self._awaiting.pop(addr, None)
        if entry is not None and late:
            held = self._late
            held.pop(addr, None)
            if len(held) >= self.max_late:
                del held[next(iter(held))]  # the oldest (dicts keep insertion order)
            held[addr] = entry[0]

    def clear(self) -> list[T]:
        """Forget everything; return the tokens that were still awaiting."""
        tokens = [token for _, token in self._awaiting.values()]
        self._awaiting.clear()
        self._late.clear()
        return tokens

    def receive(
        self, addr: Hashable, data: bytes, max_size: int | None = None
    ) -> tuple[EchoVerdict, T | None]:
        """Classify a message from *addr*; awaited entries are consumed.

        Args:
            max_size: the truncation length for this call (default ``max_message_size``).
        """
        entry = self._awaiting.pop(addr, None)
        if entry is None:
            if self._late and self._late.get(addr) == data:
                del self._late[addr]
                self.counts["late"] += 1
                return EchoVerdict.LATE, None
            return EchoVerdict.NEW, None
        expected, token = entry
        if data == expected:
            self.counts["match"] += 1
            return EchoVerdict.MATCH, token
        size = self.max_message_size if max_size is None else max_size
        if len(data) == size and expected[:size] == data:
            self.counts["truncated"] += 1
            return EchoVerdict.TRUNCATED, token
        self.counts["mismatch"] += 1
        return EchoVerdict.MISMATCH, token


class LastSentView(MutableMapping[Hashable, tuple[bytes, T]], Generic[T]):
    """iblutil's ``_last_sent`` shape over an :class:`EchoState` whose tokens are
    ``(future, deadline)``: ``{addr: (payload, future)}``.

    Writing an entry awaits that echo with no deadline; deleting one stops awaiting
    it. Deleting an entry that is already gone is a no-op: an entry is consumed when
    its echo arrives, which iblutil's dict does not do.
    """

    def __init__(self, state: EchoState[tuple[T, float]]) -> None:
        self._state = state

    def __getitem__(self, addr: Hashable) -> tuple[bytes, T]:
        entry = self._state.get(addr)
        if entry is None:
            raise KeyError(addr)
        payload, (token, _) = entry
        return payload, token

    def __setitem__(self, addr: Hashable, value: tuple[bytes, T]) -> None:
        payload, token = value
        self._state.expect(addr, payload, (token, float("inf")))

    def __delitem__(self, addr: Hashable) -> None:
        self._state.forget(addr, late=False)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._state.pending())

    def __len__(self) -> int:
        return len(self._state.awaited)


# -- outgoing message shapes (iblutil's Service) ----------------------------------------


def exp_ref_string(exp_ref: Any) -> Any:
    """An experiment reference as sent: a dict becomes ``date_sequence_subject``; '' -> None."""
    exp_ref = exp_ref or None
    if isinstance(exp_ref, dict):
        try:
            parts = (exp_ref["date"], int(exp_ref["sequence"]), exp_ref["subject"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RigValueError(f"invalid experiment reference {exp_ref!r}") from exc
        return "_".join(map(str, parts))
    return exp_ref


class Service:
    """Base of every rig service: the message each experiment step sends.

    Each method returns the message as a tuple ``(event, *args)``; communicators
    override them to send it (asynchronously).
    """

    #: the service's label (on the class too, as iblutil's slot makes it, so that
    #: ``mock.create_autospec`` and ``spec=`` doubles of a communicator have it)
    name: str = ""

    def init(self, data: Any = None) -> Any:
        """``(EXPINIT, data)``."""
        return ExpMessage.EXPINIT, data

    def start(self, exp_ref: Any, data: Any = None) -> Any:
        """``(EXPSTART, exp_ref, data)``; a dict exp_ref becomes ``yyyy-mm-dd_n_subject``."""
        return ExpMessage.EXPSTART, exp_ref_string(exp_ref), data

    def stop(self, data: Any = None, immediately: bool = False) -> Any:
        """``(EXPEND, data)``, or ``(EXPINTERRUPT, data)`` if *immediately*."""
        return ExpMessage.EXPINTERRUPT if immediately else ExpMessage.EXPEND, data

    def status(self, status: Any) -> Any:
        """``(EXPSTATUS, status)`` with the status validated."""
        return ExpMessage.EXPSTATUS, validate_status(status)

    def info(self, status: Any, data: Any = None) -> Any:
        """``(EXPINFO, status, data)``."""
        return ExpMessage.EXPINFO, validate_status(status), data

    def cleanup(self, data: Any = None) -> Any:
        """``(EXPCLEANUP, data)``."""
        return ExpMessage.EXPCLEANUP, data

    def alyx(self, alyx: Any) -> Any:
        """``(ALYX, base_url, {user: token})``; ``(ALYX, None, {})`` asks for the peer's."""
        base_url = alyx.base_url if alyx else None
        token = {alyx.user: alyx._token} if alyx and alyx.is_logged_in else {}
        return ExpMessage.ALYX, base_url, token
