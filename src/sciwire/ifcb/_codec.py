"""Sans-I/O IFCB message codec: ``parse_message`` and ``format_message``.

An IFCB host speaks ``:``-separated text messages (``valuechanged:pausestate:0``,
``triggercontent:daq:...:rois:...``). :func:`parse_message` turns one into a list of
typed fields - the reference client's shape - by looking its leading fields up in
dicts (never scanning every form): ints, floats, real booleans (``"0"`` is False),
strings, :class:`RoiImage` for base64 images (decoded on first access), a datetime for
``graphchanged``, a dict of DAQ values and a list of ``(top, left, image)`` ROIs for
``triggercontent``, JSON for ``interactive:load``.

A message whose leading word (or ``valuechanged`` key) is not in the vocabulary is
returned as an :class:`UnknownMessage` of raw string fields, so handlers still see it.
A known message with the wrong arity or an unconvertible field raises
:class:`IFCBProtocolError` naming the message.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sciwire.errors import RemoteProtocolError

__all__ = [
    "VALUECHANGED_TYPES",
    "DaqValues",
    "IFCBProtocolError",
    "RoiImage",
    "UnknownMessage",
    "format_message",
    "parse_message",
]


class IFCBProtocolError(RemoteProtocolError, ValueError):
    """A known IFCB message is malformed (also a ValueError, as the reference raised)."""


class UnknownMessage(list[Any]):
    """Fields of a well-formed message outside the known vocabulary, as raw strings."""

    known = False


class RoiImage:
    """A base64 image field, decoded only when a handler looks at it.

    ``.data`` (or ``bytes(image)``) decodes once and caches; ``.base64`` is the text as
    received. Compares equal to its decoded bytes.
    """

    __slots__ = ("_data", "base64")

    def __init__(self, b64: str) -> None:
        self.base64 = b64
        self._data: bytes | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> RoiImage:
        """Wrap raw image bytes (for formatting messages)."""
        image = cls(binascii.b2a_base64(data, newline=False).decode("ascii"))
        image._data = bytes(data)
        return image

    @property
    def data(self) -> bytes:
        """The decoded image bytes.

        Raises:
            IFCBProtocolError: the field is not valid base64.
        """
        data = self._data
        if data is None:
            try:
                data = base64.b64decode(self.base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise IFCBProtocolError("image field is not valid base64", self.base64) from exc
            self._data = data
        return data

    def __bytes__(self) -> bytes:
        return self.data

    def __len__(self) -> int:
        return len(self.data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RoiImage):
            return self.base64 == other.base64 or self.data == other.data
        if isinstance(other, bytes | bytearray | memoryview):
            return self.data == bytes(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.data)

    def __repr__(self) -> str:
        return f"RoiImage({len(self.base64)} base64 chars)"


class DaqValues(Mapping[str, float]):
    """The DAQ ``key:value`` pairs of a ``triggercontent``, converted on first access.

    A read-only mapping of str to float; ``dict(daq)`` or :meth:`to_dict` gives a plain
    dict. Compares equal to a dict with the same items.
    """

    __slots__ = ("_fields", "_text", "_values")

    def __init__(self, fields: list[str]) -> None:
        self._fields: list[str] | None = fields
        self._text = ""
        self._values: dict[str, float] | None = None

    @classmethod
    def _from_text(cls, text: str) -> DaqValues:
        # the pairs still joined by ':' (an even number of fields); split on first use
        daq = cls.__new__(cls)
        daq._fields = None
        daq._text = text
        daq._values = None
        return daq

    def _split(self) -> list[str]:
        fields = self._fields
        if fields is None:
            fields = self._fields = self._text.split(":")
        return fields

    def _load(self) -> dict[str, float]:
        values = self._values
        if values is None:
            fields = self._split()
            try:
                values = dict(zip(fields[0::2], map(float, fields[1::2]), strict=True))
            except ValueError as exc:
                raise IFCBProtocolError(
                    "malformed IFCB 'triggercontent' DAQ value", fields
                ) from exc
            self._values = values
        return values

    def to_dict(self) -> dict[str, float]:
        """A plain dict copy."""
        return dict(self._load())

    def __getitem__(self, key: str) -> float:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._split()) // 2

    def __contains__(self, key: object) -> bool:
        return key in self._split()[0::2]

    def __repr__(self) -> str:
        return f"DaqValues({self._load()!r})"


def _bool(text: str) -> bool:
    try:
        return _BOOLS[text]
    except KeyError:
        raise ValueError(f"not a boolean: {text!r}") from None


_BOOLS = {"0": False, "1": True, "false": False, "true": True, "False": False, "True": True}

Conv = Callable[[str], Any]

# -- the vocabulary ---------------------------------------------------------------
# Fixed forms, as the sequence of field kinds after the leading literals. Kinds:
# i int, f float, b bool, s str, r the rest of the text (may contain ':'), any other
# string a literal. Grouped by leading word, and valuechanged by its key.

_KINDS: dict[str, Conv | str] = {"i": int, "f": float, "b": _bool, "s": str, "r": "r"}

_HEADS_SPEC: dict[str, list[str]] = {
    "client": ["reset", "disconnected", "enableroutines", "disableroutines"],
    "syringetrack": ["f"],
    "movevalvestarted": ["s s"],
    "movevalvefinished": ["s"],
    "triggerchanged": ["i processed i i i", "i saved i i", "i skipped i i i i"],
    "graphchanged": ["f f f f i i i f f f f t"],
    "file": ["start s i s", "end s", "chunk s i r"],
    "reportevent": ["r"],
}

_SWITCHES = (
    "stirrer laser camera pump1 pump2 autostart autoshutdown continuoustrigger"
    " refillafterdebubble debubblewithsample primewithsample backflushwithsample beads"
    " runsamplefast liveenv flash pmta pmtb altpmta altpmtb bleachtoexhaust viewimages"
    " viewroisonly viewtriggers viewgraphs viewactivity featuregeneration viewfps"
    " viewsyringe viewvalve auxpower1 triggering blobgeneration folderhierarchy"
    " interactiveautostart outputfiles uvwithsample promptfilecomment viewzoom"
)
_FLOAT_SETTINGS = (
    "biocidevolume bleachrinsevolume bleachvolume pmta triga pmtb trigb flashvoltage"
    " altflashvoltage pumpvoltage altpmta alttriga altpmtb alttrigb samplevolume"
    " altsamplevolume beadsvolume skipvolume flashdelay humiditythreshold primevolume"
    " flushvolume debubbleconevolume debubbleneedlevolume debubblerefillvolume"
    " debubbleleftvolume"
)
_INT_SETTINGS = (
    "cleaninginterval counteralt counterbeads countercleaning altconfigint beadsinterval"
    " fastfactor binarizethreshold minimumblobarea xgrowamount ygrowamount minimumgap"
    " firstframetimeout bleachrinsecount cameragain samplestorun focuslargestep"
    " focussmallstep laserlargestep lasersmallstep"
)

#: valuechanged key -> its forms (after the key)
VALUECHANGED_TYPES: dict[str, list[str]] = {
    "acquisition": ["status r", "started", "stopped"],
    "pausestate": ["b"],
    "interactive": ["load J", "clear", "save", "started", "stopped", "listgroups *", "liststeps *"],
    "getenvironment": ["f f"],
    "setdatafolder": ["r"],
    "setfilecomment": ["r"],
    "setzoomsize": ["i i"],
    "movefocus": ["i"],
    "movelaser": ["i"],
    "fpsrate": ["f"],
    "uvmodulepresent": ["b"],
    "hostversion": ["r"],
    "currentgpsposition": ["r"],
    "samplegpsposition": ["r"],
    **{"switch" + name: ["b"] for name in _SWITCHES.split()},
    **{"set" + name: ["f"] for name in _FLOAT_SETTINGS.split()},
    **{"set" + name: ["i"] for name in _INT_SETTINGS.split()},
}


def _graph_time(text: str) -> datetime.datetime:
    # "YYYY-mm-dd|HH-MM"; strptime costs ~10x this
    if len(text) != 16 or text[4] != "-" or text[7] != "-" or text[10] != "|" or text[13] != "-":
        raise ValueError(f"not a graph time: {text!r}")
    return datetime.datetime(
        int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16])
    )


def _json(text: str) -> Any:
    return json.loads(text)


# "r" rest as text, "J" rest as JSON, "*" every remaining field raw
_SPECIAL: dict[str, Conv | str] = {"t": _graph_time, "J": "J", "*": "*"}


class _Form:
    """One fixed form: literals at some positions, converters at the others."""

    __slots__ = ("convs", "lits", "n", "rest")

    def __init__(self, prefix: Sequence[str], spec: str) -> None:
        kinds = [*prefix, *spec.split()]
        self.lits: list[tuple[int, str]] = []
        self.convs: list[tuple[int, Conv]] = []
        self.rest = ""  # "r" text join, "J" json join, "*" raw list
        for i, kind in enumerate(kinds):
            if i < len(prefix):
                continue
            conv = _KINDS.get(kind) or _SPECIAL.get(kind)
            if conv is None:
                self.lits.append((i, kind))
            elif isinstance(conv, str):
                if i != len(kinds) - 1:
                    raise ValueError(f"rest field must come last in {spec!r}")
                self.rest = conv
            else:
                self.convs.append((i, conv))
        self.n = len(kinds)

    def literals_match(self, args: list[str]) -> bool:
        n = len(args)
        # a plain loop: all() over a generator costs a frame per form tried
        for i, lit in self.lits:  # noqa: SIM110
            if i < n and args[i] != lit:
                return False
        return True

    def parse(self, args: list[str]) -> list[Any]:
        rest = self.rest
        if rest:
            if len(args) < self.n:
                raise ValueError("too few fields")
            if rest == "*":
                return args
            last = self.n - 1
            tail = ":".join(args[last:])
            out: list[Any] = args[:last]
            out.append(_json(tail) if rest == "J" else tail)
        else:
            if len(args) != self.n:
                raise ValueError(f"expected {self.n} fields, got {len(args)}")
            out = args
        for i, conv in self.convs:
            out[i] = conv(out[i])
        return out


def _forms(prefix: Sequence[str], specs: list[str]) -> list[_Form]:
    return [_Form(prefix, spec) for spec in specs]


Parser = Callable[[list[str], str], list[Any]]


def _generic(forms: list[_Form], name: str) -> Parser:
    if len(forms) == 1 and not forms[0].lits and not forms[0].rest and len(forms[0].convs) == 1:
        return _single(forms[0], name)
    if len(forms) == 1 and not forms[0].lits:
        only = forms[0]

        def parse_one(args: list[str], text: str) -> list[Any]:
            try:
                return only.parse(args)
            except ValueError as exc:
                raise _malformed(name, text, exc) from exc

        return parse_one

    def parse_any(args: list[str], text: str) -> list[Any]:
        partial: Exception | None = None
        for form in forms:
            if form.literals_match(args):
                try:
                    return form.parse(args)
                except ValueError as exc:
                    partial = exc
        if partial is not None:
            raise _malformed(name, text, partial) from partial
        return UnknownMessage(args)

    return parse_any


def _single(form: _Form, name: str) -> Parser:
    """The commonest form (``syringetrack:f``, ``valuechanged:<key>:b``...): a fixed
    number of fields, one of them converted; ``_Form.parse`` inlined, same result and
    same errors."""
    n = form.n
    [(pos, conv)] = form.convs

    def parse_single(args: list[str], text: str) -> list[Any]:
        if len(args) != n:
            exc = ValueError(f"expected {n} fields, got {len(args)}")
            raise _malformed(name, text, exc) from exc
        try:
            args[pos] = conv(args[pos])
        except ValueError as exc:
            raise _malformed(name, text, exc) from exc
        return args

    return parse_single


def _malformed(name: str, text: str, exc: Exception | None = None) -> IFCBProtocolError:
    why = f" ({exc})" if exc is not None else ""
    return IFCBProtocolError(f"malformed IFCB {name!r} message{why}", text)


# -- variable-length forms ----------------------------------------------------------


_new = object.__new__  # builds a slotted instance without calling a Python __init__


def _rois(args: list[str], start: int, name: str, text: str) -> list[tuple[int, int, RoiImage]]:
    try:
        count = int(args[start])
    except (ValueError, IndexError) as exc:
        raise _malformed(name, text, exc) from exc
    end = start + 1 + 3 * count
    if count < 0 or end != len(args):
        raise _malformed(name, text, ValueError(f"{count} ROIs announced, {len(args)} fields"))
    rois: list[tuple[int, int, RoiImage]] = []
    i = start + 1
    new = _new
    try:  # a plain loop: a comprehension's extra frame costs a third of this on the hot path
        while i < end:
            # RoiImage(b64) without the Python __init__ frame (a third of the ROI's cost)
            image = new(RoiImage)
            image.base64 = args[i + 2]
            image._data = None
            rois.append((int(args[i]), int(args[i + 1]), image))
            i += 3
    except ValueError as exc:
        raise _malformed(name, text, exc) from exc
    return rois


def _triggerrois(args: list[str], text: str) -> list[Any]:
    return ["triggerrois", _rois(args, 1, "triggerrois", text)]


def _triggerimage(args: list[str], text: str) -> list[Any]:
    if len(args) != 2:
        raise _malformed("triggerimage", text, ValueError("expected 2 fields"))
    return ["triggerimage", RoiImage(args[1])]


_TC_HEAD = "triggercontent:daq:"
_TC_DAQ = len(_TC_HEAD)  # where the DAQ pairs start


def _triggercontent_text(text: str) -> list[Any] | None:
    # The hot path (half of a running instrument's traffic): find the first "rois"
    # field without splitting the DAQ pairs, which DaqValues splits on first use.
    # None when the text is not in this shape; the field-list path then decides.
    ri = text.find(":rois:", _TC_DAQ - 1)
    if ri < 0 or not text.startswith(_TC_HEAD):
        return None
    if ri < _TC_DAQ:
        daq = DaqValues([])
    else:
        pairs = text[_TC_DAQ:ri]
        if not pairs.count(":") % 2:  # an odd number of fields
            return None
        # DaqValues._from_text(pairs), without its Python frame
        daq = _new(DaqValues)
        daq._fields = None
        daq._text = pairs
        daq._values = None
    return ["triggercontent", daq, _rois(text[ri + 6 :].split(":"), 0, "triggercontent", text)]


def _triggercontent(args: list[str], text: str) -> list[Any]:
    # triggercontent:daq:(key:value)*:rois:n:(top:left:b64)*
    try:
        ri = args.index("rois", 2)
    except ValueError:
        raise _malformed("triggercontent", text, ValueError("no 'rois' field")) from None
    if args[1] != "daq" or ri % 2:
        raise _malformed("triggercontent", text, ValueError("DAQ fields are not key:value pairs"))
    return ["triggercontent", DaqValues(args[2:ri]), _rois(args, ri + 1, "triggercontent", text)]


def _file(args: list[str], text: str) -> list[Any]:
    if len(args) >= 2 and args[1] == "list":
        names = args[2:]
        return ["file", "list", [] if names == [""] else names]
    return _file_fixed(args, text)


_file_fixed = _generic(_forms(["file"], _HEADS_SPEC["file"]), "file")

_VALUECHANGED: dict[str, Parser] = {
    key: _generic(_forms(["valuechanged", key], specs), f"valuechanged:{key}")
    for key, specs in VALUECHANGED_TYPES.items()
}


def _valuechanged(args: list[str], text: str) -> list[Any]:
    if len(args) < 2:
        raise _malformed("valuechanged", text, ValueError("no key"))
    parser = _VALUECHANGED.get(args[1])
    if parser is None:
        return UnknownMessage(args)
    return parser(args, text)


_HEADS: dict[str, Parser] = {
    head: _generic(_forms([head], specs), head)
    for head, specs in _HEADS_SPEC.items()
    if head != "file"  # its own parser below
}
_HEADS.update(
    valuechanged=_valuechanged,
    triggercontent=_triggercontent,
    triggerrois=_triggerrois,
    triggerimage=_triggerimage,
    file=_file,
)


def parse_message(text: str) -> list[Any]:
    """Parse one IFCB host message into typed fields.

    Returns:
        A list of fields (the leading words stay strings); an :class:`UnknownMessage`
        of raw strings when the message is outside the known vocabulary.

    Raises:
        IFCBProtocolError: a known message with the wrong shape or a bad value.
    """
    if not isinstance(text, str):
        raise IFCBProtocolError(f"IFCB message must be str, not {type(text).__name__}", text)
    if text.startswith("triggercontent:"):
        fields = _triggercontent_text(text)
        if fields is not None:
            return fields
    args = text.split(":")
    parser = _HEADS.get(args[0])
    if parser is None:
        if not args[0]:
            raise _malformed("", text, ValueError("empty message type"))
        return UnknownMessage(args)
    return parser(args, text)


# -- formatting (the simulator side) ---------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d|%H-%M")
    if isinstance(value, RoiImage):
        return value.base64
    if isinstance(value, bytes | bytearray):
        return binascii.b2a_base64(value, newline=False).decode("ascii")
    if isinstance(value, list | tuple):
        return ":".join(_fmt(v) for v in value)
    raise TypeError(f"cannot format {type(value).__name__} as an IFCB field")


def _fmt_rois(rois: Sequence[Sequence[Any]]) -> str:
    parts = [str(len(rois))]
    for top, left, image in rois:
        parts.extend((str(int(top)), str(int(left)), _fmt(image)))
    return ":".join(parts)


def format_message(*fields: Any) -> str:
    """Build an IFCB message from typed fields (the inverse of :func:`parse_message`).

    ``format_message("valuechanged", "pausestate", False)`` -> ``"valuechanged:pausestate:0"``;
    ``format_message("triggercontent", {"PeakA": 0.1}, [(0, 0, png_bytes)])``.

    Raises:
        TypeError: a field has no IFCB text form.
        ValueError: no fields.
    """
    if not fields:
        raise ValueError("format_message needs at least one field")
    head = fields[0]
    if head == "triggercontent" and len(fields) == 3 and isinstance(fields[1], Mapping):
        daq = ":".join(f"{k}:{_fmt(v)}" for k, v in fields[1].items())
        body = f"daq:{daq}:rois:" if daq else "daq:rois:"
        return f"triggercontent:{body}{_fmt_rois(fields[2])}"
    if head == "triggerrois" and len(fields) == 2:
        return f"triggerrois:{_fmt_rois(fields[1])}"
    if fields[:3] == ("valuechanged", "interactive", "load") and len(fields) == 4:
        payload = fields[3]
        text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        return f"valuechanged:interactive:load:{text}"
    return ":".join(_fmt(f) for f in fields)
