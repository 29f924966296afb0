"""The fleet's wire contract, sans I/O: subjects, the versioned event payload, patterns.

Subjects (see docs/fleet.md)::

    sciwire.ifcb.<serial>.<message>      IFCB host messages (message = the first field)
    sciwire.rig.<rig>.<event>            rig echo-protocol events (expinit, expstatus...)
    sciwire.samp.<mtype>                 SAMP notifications and calls seen by the bridge
    sciwire.cmd.ifcb.<serial>.relay      request/reply: relay_message_to_host
    sciwire.cmd.rig.<rig>.<op>           request/reply: a Services step (init, start...)
    sciwire.health.<bridge>              the bridge's health, once a second (core NATS)

Commands live under ``sciwire.cmd.`` and not beside the events: a JetStream stream that
captures ``sciwire.ifcb.>`` would also capture a request sent there and answer it with
its own publish acknowledgement.

Payload, version 1 (``"v": 1`` in the JSON): a compact JSON object, then the event's
binary fields (IFCB images) as raw bytes. Headers: ``Nats-Msg-Id``
(``<kind>.<instrument>.<seq>``, which JetStream de-duplicates on) and, when there is a
binary tail, ``Sciwire-Blobs: <n1>,<n2>...`` (the byte sizes of its parts). Headers
are few on purpose: the client library encodes and parses them in Python, per event.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sciwire.errors import LocalProtocolError, RemoteError, RemoteProtocolError, SciwireError
from sciwire.ifcb import IFCBProtocolError, RoiImage, parse_message
from sciwire.rig import ExpMessage

__all__ = [
    "HDR_BLOBS",
    "HDR_MSG_ID",
    "KINDS",
    "MAX_PAYLOAD",
    "SCHEMA_VERSION",
    "CommandError",
    "FleetError",
    "FleetEvent",
    "FleetPayloadError",
    "PermissionDenied",
    "decode_event",
    "encode_event",
    "encode_ifcb",
    "event_subject",
    "ifcb_event",
    "pattern_kind",
    "pattern_subject",
    "rig_event",
    "samp_event",
    "subject_matches",
    "valid_token",
]

SCHEMA_VERSION = 1
HDR_BLOBS = "Sciwire-Blobs"
HDR_MSG_ID = "Nats-Msg-Id"
KINDS = ("ifcb", "rig", "samp")
#: the largest event payload accepted (nats-server's default max_payload is 1 MiB)
MAX_PAYLOAD = 1 << 20

_TOKEN = re.compile(r"[^\s.*>]+\Z")
_BAD = re.compile(r"[\s.*>]")
_MTYPE = re.compile(r"[0-9a-zA-Z_\-]+(\.[0-9a-zA-Z_\-]+)*\Z")


class FleetError(SciwireError):
    """Base of the fleet's errors."""


class FleetPayloadError(FleetError, RemoteProtocolError):
    """A message on a fleet subject is not a valid fleet event."""


class CommandError(FleetError, RemoteError):
    """A command came back with an error reply (``code`` says which kind)."""


class PermissionDenied(CommandError):
    """NATS refused the publish or subscribe (the user lacks the permission)."""


def valid_token(token: str) -> bool:
    """True if *token* can be one subject token (no dots, wildcards or spaces)."""
    return bool(_TOKEN.match(token))


def _token(token: str, what: str) -> str:
    if not isinstance(token, str) or not valid_token(token):
        raise LocalProtocolError(f"{what} cannot be a NATS subject token", token)
    return token


def subject_matches(pattern: str, subject: str) -> bool:
    """True if the NATS subject filter *pattern* (``*`` one token, ``>`` the rest) covers
    *subject* (which may itself hold ``*`` and ``>``, read as "any value there")."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have):
            return False
        if have[i] == ">" or (token != "*" and token != have[i]):
            return False
    return len(have) == len(want)


def event_subject(kind: str, instrument: str, name: str) -> str:
    """The subject an event is published on (SAMP: *name* is the mtype, no instrument)."""
    if kind == "samp":
        if not _MTYPE.match(name):
            raise LocalProtocolError("not a SAMP mtype", name)
        return f"sciwire.samp.{name}"
    if kind not in KINDS:
        raise LocalProtocolError("unknown event kind", kind)
    return f"sciwire.{kind}.{_token(instrument, 'instrument name')}.{name}"


@dataclass
class FleetEvent:
    """One instrument event as a consumer receives it.

    Attributes:
        kind: ``"ifcb"``, ``"rig"`` or ``"samp"``.
        instrument: the IFCB serial, the rig name or the SAMP hub's name in the config.
        name: the IFCB message name, the rig event name (``expinit``...) or the mtype.
        seq: the bridge's per-instrument sequence number (1, 2, 3... with no gaps).
        time: when the bridge received the event from the instrument (epoch seconds;
            the IFCB and rig protocols carry no timestamp of their own).
        fields: the typed payload as the package gives it: IFCB ``parse_message``
            fields (``DaqValues``, ``RoiImage``...); rig ``[ExpMessage, data]``;
            SAMP ``[mtype, params]``.
        body: the JSON part of the payload as sent.
        subject: the NATS subject.
        stream_seq: the JetStream stream sequence (None for a core NATS message).
    """

    kind: str
    instrument: str
    name: str
    seq: int
    time: float
    fields: list[Any]
    body: dict[str, Any] = field(repr=False)
    subject: str = ""
    stream_seq: int | None = None

    @property
    def data(self) -> Any:
        """The rig event's data, the SAMP params, or the IFCB fields after the name."""
        if self.kind == "ifcb":
            return self.fields[1:]
        return self.fields[1]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able summary (images become their sizes)."""
        out = {k: v for k, v in self.body.items() if k != "text"}
        out["subject"] = self.subject
        if self.stream_seq is not None:
            out["stream_seq"] = self.stream_seq
        if self.kind == "ifcb":
            out["fields"] = _jsonable(self.fields)
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, RoiImage):
        return {"image_bytes": len(value.data)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


# -- building events (the bridge side) ------------------------------------------------


def _image_slots(head: str, nargs: int, count: int) -> list[int]:
    # images are always the last field of (top, left, image) triples at the end of the
    # message, or the one field of triggerimage
    if head == "triggerimage":
        return [nargs - 1]
    return [nargs - 3 * count + 2 + 3 * j for j in range(count)]


def _images(fields: Sequence[Any], out: list[RoiImage]) -> list[RoiImage]:
    for value in fields:
        if isinstance(value, RoiImage):
            out.append(value)
        elif isinstance(value, list | tuple):
            _images(value, out)
    return out


if sys.version_info >= (3, 11):

    def _b64decode(text: str) -> bytes:
        # strict: the C decoder refuses what base64.b64decode(validate=True) refuses,
        # without that function's regular-expression pass (a third of the bridge's work
        # on an image message)
        try:
            return binascii.a2b_base64(text, strict_mode=True)
        except binascii.Error as exc:
            raise IFCBProtocolError("image field is not valid base64", text) from exc

else:  # pragma: no cover - Python 3.10

    def _b64decode(text: str) -> bytes:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise IFCBProtocolError("image field is not valid base64", text) from exc


_TC_HEAD = "triggercontent:daq:"
_TC_DAQ = len(_TC_HEAD)


def _triggercontent_blobs(text: str) -> tuple[str, list[bytes]] | None:
    # The bridge's hot path (half of a running instrument's traffic): cut the images
    # out of ``triggercontent:daq:(key:value)*:rois:n:(top:left:b64)*`` without
    # parsing the message. Accepts only what parse_message accepts in that shape (the
    # same checks, in the same order of strictness); None sends anything else down
    # the general path, which decides (a differential test holds the two together).
    ri = text.find(":rois:", _TC_DAQ - 1)
    if ri < 0 or not text.startswith(_TC_HEAD):
        return None
    if ri >= _TC_DAQ and not text.count(":", _TC_DAQ, ri) % 2:
        return None  # an odd number of DAQ fields
    tail = text[ri + 6 :].split(":")
    try:
        count = int(tail[0])
        if count < 0 or len(tail) != 1 + 3 * count:
            return None
        for j in range(1, len(tail), 3):
            int(tail[j])
            int(tail[j + 1])
    except ValueError:
        return None
    if not count:
        return text, []
    blobs = []
    for j in range(3, len(tail), 3):
        blobs.append(_b64decode(tail[j]))
        tail[j] = ""
    return f"{text[: ri + 6]}{':'.join(tail)}", blobs


def _trigger_blobs(head: str, text: str) -> tuple[str, list[bytes]]:
    # any trigger* message: parse it, find its images, empty their slots
    images = _images(parse_message(text), [])
    if not images:
        return text, []
    blobs = [_b64decode(image.base64) for image in images]
    args = text.split(":")
    for slot in _image_slots(head, len(args), len(images)):
        args[slot] = ""
    return ":".join(args), blobs


def _ifcb_parts(text: str) -> tuple[str, str, list[bytes]]:
    # name, text without its images, the images' bytes
    head = text.split(":", 1)[0]
    name = head if valid_token(head) else (_BAD.sub("_", head) or "_")
    if head.startswith("trigger"):
        cut = _triggercontent_blobs(text) if head == "triggercontent" else None
        text, blobs = cut if cut is not None else _trigger_blobs(head, text)
        return name, text, blobs
    return name, text, []


def ifcb_event(
    serial: str, seq: int, time: float, text: str, hub_seq: Any = None
) -> tuple[str, dict[str, Any], list[bytes]]:
    """Subject, JSON body and binary tail of one IFCB host message.

    Image fields leave the text (their slot stays, empty) and travel as raw bytes.

    Raises:
        IFCBProtocolError: an image-carrying message is malformed (text messages are
            forwarded as they are; consumers parse them).
    """
    name, text, blobs = _ifcb_parts(text)
    body = {
        "v": SCHEMA_VERSION,
        "kind": "ifcb",
        "instrument": serial,
        "name": name,
        "seq": seq,
        "time": time,
        "hub_seq": hub_seq,
        "text": text,
    }
    return f"sciwire.ifcb.{serial}.{name}", body, blobs


def rig_event(
    rig: str, seq: int, time: float, event: int, data: Any, addr: Any = None
) -> tuple[str, dict[str, Any], list[bytes]]:
    """Subject and JSON body of one rig message (*event* a single ExpMessage bit)."""
    flag = ExpMessage(event)
    name = (flag.name or str(int(flag))).lower()
    body = {
        "v": SCHEMA_VERSION,
        "kind": "rig",
        "instrument": rig,
        "name": name,
        "seq": seq,
        "time": time,
        "event": int(flag),
        "data": data,
        "addr": None if addr is None else list(addr),
    }
    return f"sciwire.rig.{rig}.{name}", body, []


def samp_event(
    hub: str, seq: int, time: float, mtype: str, params: Any, sender: str, call: bool
) -> tuple[str, dict[str, Any], list[bytes]]:
    """Subject and JSON body of one SAMP message the bridge received."""
    body = {
        "v": SCHEMA_VERSION,
        "kind": "samp",
        "instrument": hub,
        "name": mtype,
        "seq": seq,
        "time": time,
        "params": params,
        "sender": sender,
        "call": call,
    }
    return event_subject("samp", hub, mtype), body, []


_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True)
_quote = json.encoder.encode_basestring_ascii  # the C string encoder (json's own)
_IFCB_KEYS = {"v", "kind", "instrument", "name", "seq", "time", "hub_seq", "text"}


def _ifcb_json(body: Mapping[str, Any]) -> bytes:
    return _ifcb_json_of(
        body["instrument"], body["name"], body["seq"], body["time"], body["hub_seq"], body["text"]
    )


def _ifcb_json_of(instrument: str, name: str, seq: int, time: float, hub: Any, text: str) -> bytes:
    # the bridge's hot path: one format instead of the general encoder's walk; the
    # output is what json.dumps(body, separators=(",", ":")) gives (a differential
    # test holds it to that)
    hub_text = (
        "null" if hub is None else str(int(hub)) if isinstance(hub, int) else _encoder.encode(hub)
    )
    return (
        f'{{"v":{SCHEMA_VERSION},"kind":"ifcb","instrument":{_quote(instrument)},'
        f'"name":{_quote(name)},"seq":{int(seq)},"time":{float(time)!r},'
        f'"hub_seq":{hub_text},"text":{_quote(text)}}}'
    ).encode()


def encode_ifcb(
    serial: str, seq: int, time: float, text: str, hub_seq: Any = None
) -> tuple[str, bytes, dict[str, str]]:
    """Subject, payload and headers of one IFCB host message, in one step: what
    ``encode_event`` gives for ``ifcb_event``'s body and blobs, without the body.

    Raises:
        IFCBProtocolError: an image-carrying message is malformed.
        LocalProtocolError: the payload would exceed :data:`MAX_PAYLOAD`.
    """
    name, text, blobs = _ifcb_parts(text)
    data = _ifcb_json_of(serial, name, seq, time, hub_seq, text)
    headers = {HDR_MSG_ID: f"ifcb.{serial}.{seq}"}
    if blobs:
        headers[HDR_BLOBS] = ",".join([str(len(b)) for b in blobs])
        data = b"".join((data, *blobs))
    if len(data) > MAX_PAYLOAD:
        raise LocalProtocolError(f"event of {len(data)} bytes exceeds {MAX_PAYLOAD}", text)
    return f"sciwire.ifcb.{serial}.{name}", data, headers


def encode_event(
    body: Mapping[str, Any], blobs: Sequence[bytes] = ()
) -> tuple[bytes, dict[str, str]]:
    """Payload bytes and headers of an event (``Nats-Msg-Id`` included).

    Raises:
        LocalProtocolError: the payload would exceed :data:`MAX_PAYLOAD`.
    """
    if body.get("kind") == "ifcb" and body.keys() == _IFCB_KEYS:
        data = _ifcb_json(body)
    else:
        data = _encoder.encode(body).encode()
    headers = {HDR_MSG_ID: f"{body['kind']}.{body['instrument']}.{body['seq']}"}
    if blobs:
        headers[HDR_BLOBS] = ",".join(str(len(b)) for b in blobs)
        data = b"".join((data, *blobs))
    if len(data) > MAX_PAYLOAD:
        raise LocalProtocolError(f"event of {len(data)} bytes exceeds {MAX_PAYLOAD}", body)
    return data, headers


# -- reading events (the consumer side) -----------------------------------------------


def _blob_sizes(header: str | None, total: int) -> list[int]:
    if not header:
        return []
    try:
        sizes = [int(part) for part in header.split(",")]
    except ValueError:
        raise FleetPayloadError("bad Sciwire-Blobs header", header) from None
    if any(s < 0 for s in sizes) or sum(sizes) > total:
        raise FleetPayloadError("Sciwire-Blobs sizes do not fit the payload", header)
    return sizes


def decode_event(
    subject: str,
    data: bytes,
    headers: Mapping[str, str] | None,
    stream_seq: int | None = None,
) -> FleetEvent:
    """Parse a fleet message back into a :class:`FleetEvent` with typed fields.

    Raises:
        FleetPayloadError: wrong schema version, bad JSON or blob sizes, missing keys,
            or an IFCB message that does not parse.
    """
    headers = headers or {}
    if len(data) > MAX_PAYLOAD:
        raise FleetPayloadError(f"event of {len(data)} bytes exceeds {MAX_PAYLOAD}")
    sizes = _blob_sizes(headers.get(HDR_BLOBS), len(data))
    end = len(data) - sum(sizes)
    try:
        # a str: json.loads would first guess the encoding of bytes, per event
        body = _loads(data[:end].decode())
    except ValueError as exc:
        raise FleetPayloadError(f"bad event body: {exc}", data[:end]) from exc
    if not isinstance(body, dict) or body.get("v") != SCHEMA_VERSION:
        raise FleetPayloadError("not a sciwire fleet v1 event", data[:end])
    try:
        kind, instrument, name = body["kind"], body["instrument"], body["name"]
        seq, time = int(body["seq"]), float(body["time"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FleetPayloadError(f"bad event body: {exc!r}", data[:end]) from exc
    blobs = []
    pos = end
    for size in sizes:
        blobs.append(data[pos : pos + size])
        pos += size
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise FleetPayloadError("unknown event kind", kind)
    try:
        fields = decoder(body, blobs)
    except FleetPayloadError:
        raise
    except (SciwireError, ValueError, KeyError, TypeError) as exc:
        raise FleetPayloadError(f"bad {kind} event: {exc}", data[:end]) from exc
    return FleetEvent(kind, instrument, name, seq, time, fields, body, subject, stream_seq)


_raw_decode = json.JSONDecoder().raw_decode


def _loads(text: str) -> Any:
    # json.loads without its wrapper's two calls and trailing-whitespace regex per
    # event; anything but one bare value (whitespace around it, trailing data, an
    # error) goes to json.loads, which decides as before
    try:
        value, end = _raw_decode(text)
    except ValueError:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def _ifcb_fields(body: dict[str, Any], blobs: list[bytes]) -> list[Any]:
    fields = parse_message(body["text"])
    if (
        blobs
        and type(fields) is list
        and len(fields) == 3
        and fields[0] == "triggercontent"
        and type(fields[2]) is list
    ):
        # the hot path: each ROI is a (top, left, image) tuple of the third field
        rois = fields[2]
        if len(rois) != len(blobs):
            more = "more" if len(blobs) > len(rois) else "fewer"
            raise FleetPayloadError(f"{more} images than image fields", body["text"])
        from_bytes = RoiImage.from_bytes
        fields[2] = [
            (top, left, from_bytes(blob)) for (top, left, _), blob in zip(rois, blobs, strict=True)
        ]
        return fields
    if blobs:
        images = iter(blobs)
        fields = _refill(fields, images)
        if next(images, None) is not None:
            raise FleetPayloadError("more images than image fields", body["text"])
    return fields


def _refill(values: Any, images: Any) -> Any:
    out = []
    for value in values:
        if isinstance(value, RoiImage):
            blob = next(images, None)
            if blob is None:
                raise FleetPayloadError("fewer images than image fields")
            value = RoiImage.from_bytes(blob)
        elif isinstance(value, list | tuple):
            value = type(value)(_refill(value, images))
        out.append(value)
    return type(values)(out) if isinstance(values, list) else out


def _rig_fields(body: dict[str, Any], blobs: list[bytes]) -> list[Any]:
    return [ExpMessage(int(body["event"])), body["data"]]


def _samp_fields(body: dict[str, Any], blobs: list[bytes]) -> list[Any]:
    return [body["name"], body["params"]]


_DECODERS: dict[str, Callable[[dict[str, Any], list[bytes]], list[Any]]] = {
    "ifcb": _ifcb_fields,
    "rig": _rig_fields,
    "samp": _samp_fields,
}


# -- patterns -------------------------------------------------------------------------


def pattern_kind(pattern: Any) -> str:
    """Which instruments a handler pattern is for: tuples are IFCB prefixes, ints and
    ExpMessage flags rig events, strings SAMP mtypes.

    Raises:
        TypeError: none of those.
    """
    if isinstance(pattern, tuple | list):
        return "ifcb"
    if isinstance(pattern, int) and not isinstance(pattern, bool):
        return "rig"
    if isinstance(pattern, str):
        return "samp"
    raise TypeError(f"a fleet pattern is a tuple, an ExpMessage or an mtype, not {pattern!r}")


def pattern_subject(pattern: Any, instrument: str | None = None) -> str:
    """The subject (with wildcards) that carries every event *pattern* can match.

    Raises:
        TypeError, ValueError: a malformed pattern or instrument name.
    """
    kind = pattern_kind(pattern)
    who = "*" if instrument is None else _token(instrument, "instrument name")
    if kind == "ifcb":
        head = pattern[0] if pattern else None
        if head is not None and not (isinstance(head, str) and valid_token(head)):
            raise ValueError(f"IFCB pattern head {head!r} cannot be a subject token")
        return f"sciwire.ifcb.{who}.{head or '*'}"
    if kind == "rig":
        flag = ExpMessage.validate(pattern)
        single = int(flag) and not int(flag) & (int(flag) - 1)
        return f"sciwire.rig.{who}.{(flag.name or '').lower() if single else '*'}"
    if instrument is not None:
        raise ValueError("SAMP subjects carry no instrument name; filter on event.instrument")
    if pattern == "*":
        return "sciwire.samp.>"
    if pattern.endswith(".*") and _MTYPE.match(pattern[:-2]):
        return f"sciwire.samp.{pattern[:-2]}.>"
    if not _MTYPE.match(pattern):
        raise ValueError(f"not a SAMP mtype pattern: {pattern!r}")
    return f"sciwire.samp.{pattern}"
