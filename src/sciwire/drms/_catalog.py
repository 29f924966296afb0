"""The emulator's synthetic catalog and its record-set query language.

Three series shaped like HMI/AIA ones (``hmi.v_45s``, ``hmi.m_720s``,
``aia.lev1_euv_12s``): a slotted ``T_REC`` primekey plus an integer primekey, hex
``QUALITY``, ``MISSING`` values on flagged records, and FITS segments. Records are
computed, not stored: record *r* of a series is (slot, second primekey index).

Record-set syntax handled: ``series``, positional or named primekey filters
(``[2016.04.01_00:00:00_TAI/1h]``, ``[t1-t2]``, ``[t/1d@6h]``, ``[$]``, ``[^]``,
``[]``, ``[2]``, ``[171,193]``), a where clause ``[? QUALITY=0 and DATAMEAN>1 ?]`` and
a segment list ``{image}``. Times are read as TAI; a ``_UTC``/``Z`` suffix is accepted
and treated the same (the emulator ignores leap seconds).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sciwire.drms._fits import fits_image

__all__ = ["CATALOG", "QueryError", "RecordSet", "Series", "format_time", "parse_recordset"]

MISSING = "MISSING"
_EPOCH = datetime(1977, 1, 1)  # the DRMS internal time epoch (TAI)


class QueryError(ValueError):
    """A record-set query the emulator cannot answer (JSOC answers status 1)."""


def format_time(seconds: float) -> str:
    """DRMS time string (``2016.04.01_00:00:00_TAI``) of seconds since 1977.01.01 TAI."""
    t = _EPOCH + timedelta(seconds=seconds)
    return f"{t.year:04d}.{t.month:02d}.{t.day:02d}_{t.hour:02d}:{t.minute:02d}:{t.second:02d}_TAI"


_TIME = re.compile(
    r"^(\d{4})[.-](\d{1,2})[.-](\d{1,2})"
    r"(?:[_T ](\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d*)?))?)?"
    r"(?:_?(TAI|UTC|UT|Z))?$",
    re.IGNORECASE,
)
_DURATION = re.compile(r"^(\d+(?:\.\d*)?)([smhd]?)$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_time(text: str) -> float:
    """Seconds since the DRMS epoch of a DRMS or ISO time string."""
    m = _TIME.match(text.strip())
    if not m:
        raise QueryError(f"Invalid time string: {text}")
    y, mo, d, hh, mm, ss, _zone = m.groups()
    try:
        t = datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0))
    except ValueError as exc:
        raise QueryError(f"Invalid time string: {text}") from exc
    return (t - _EPOCH).total_seconds() + float(ss or 0)


def parse_duration(text: str) -> float:
    """Seconds of a DRMS duration such as ``1h``, ``30m``, ``45s``, ``2d``."""
    m = _DURATION.match(text.strip())
    seconds = float(m.group(1)) * _UNITS[m.group(2)] if m else math.nan
    if not math.isfinite(seconds):
        raise QueryError(f"Invalid duration: {text}")
    return seconds


@dataclass(frozen=True)
class Keyword:
    """A series keyword: DRMS type, units, note."""

    name: str
    type: str
    units: str = "none"
    note: str = ""
    defval: str = ""
    recscope: str = "variable"


@dataclass
class Series:
    """A synthetic series: a slotted T_REC primekey times one integer primekey."""

    name: str
    note: str
    step: float  # T_REC slot width, seconds
    first: float  # time of the first slot, seconds since epoch
    nslots: int
    key2: str  # the second primekey
    key2_values: tuple[int, ...]
    segment: str
    telescope: str
    keywords: list[Keyword] = field(default_factory=list)
    recnum0: int = 1_000_000
    sunum0: int = 500_000_000

    @property
    def primekeys(self) -> list[str]:
        """The primekeys, in order."""
        return ["T_REC", self.key2]

    @property
    def nrecords(self) -> int:
        """Records in the series."""
        return self.nslots * len(self.key2_values)

    def slot_time(self, slot: int) -> float:
        """T_REC of a slot, seconds since epoch."""
        return self.first + slot * self.step

    def record_name(self, r: int) -> str:
        """``series[T_REC][KEY2]`` of record *r*."""
        slot, k = divmod(r, len(self.key2_values))
        return f"{self.name}[{format_time(self.slot_time(slot))}][{self.key2_values[k]}]"

    def quality(self, slot: int) -> int:
        """Synthetic QUALITY: 0x80000000 (no data) every 97th slot, 0x400 every 13th."""
        if slot % 97 == 0:
            return 0x80000000
        if slot % 13 == 0:
            return 0x00000400
        return 0

    def values(self, name: str, records: Sequence[int]) -> list[str]:
        """The string values of keyword *name* for *records*, as jsoc_info sends them."""
        nk = len(self.key2_values)
        gen = _GENERATORS.get(name)
        if name == self.key2:
            return [str(self.key2_values[r % nk]) for r in records]
        if name == "*recnum*":
            return [str(self.recnum0 + r) for r in records]
        if name == "*sunum*":
            return [str(self.sunum0 + r) for r in records]
        if name == "*online*":
            return ["Y"] * len(records)
        if name == "*size*":
            return [str(len(self.fits(r))) for r in records]
        if gen is None or name not in {k.name for k in self.keywords}:
            return ["Invalid KeyLink"] * len(records)
        return [gen(self, r // nk, self.quality(r // nk)) for r in records]

    def segment_path(self, r: int) -> str:
        """Server path of record *r*'s segment file."""
        return f"/SUM{self.sunum0 + r}/S00000/{self.segment}.fits"

    def fits(self, r: int) -> bytes:
        """A small real FITS file for record *r* (8x8 int16 image)."""
        slot = r // len(self.key2_values)
        base = slot % 1000
        pixels = [[(base + 8 * y + x) % 32000 for x in range(8)] for y in range(8)]
        cards: list[tuple[str, str | int | float | bool, str]] = [
            ("TELESCOP", self.telescope, ""),
            ("T_REC", format_time(self.slot_time(slot)), "slot time"),
            (self.key2, self.key2_values[r % len(self.key2_values)], ""),
            ("QUALITY", self.quality(slot), ""),
        ]
        return fits_image(pixels, cards)

    def struct(self) -> dict[str, Any]:
        """The series_struct answer."""
        last = self.nrecords - 1
        return {
            "note": self.note,
            "retention": 10000,
            "stagingretention": 0,
            "unitsize": 1,
            "archive": 1,
            "tapegroup": 1,
            "primekeys": self.primekeys,
            "primekeysinfo": [
                {"name": "T_REC", "slotted": 1, "step": f"{self.step:g}s"},
                {"name": self.key2, "slotted": 0},
            ],
            "dbindex": self.primekeys,
            "keywords": [
                {
                    "name": k.name,
                    "type": k.type,
                    "recscope": k.recscope,
                    "defval": k.defval,
                    "units": k.units,
                    "note": k.note,
                }
                for k in self.keywords
            ],
            "segments": [
                {
                    "name": self.segment,
                    "type": "short",
                    "units": "none",
                    "protocol": "fits",
                    "dims": "8x8",
                    "note": f"{self.segment} image",
                }
            ],
            "links": [],
            "Interval": {
                "FirstRecord": self.record_name(0),
                "FirstRecnum": self.recnum0,
                "LastRecord": self.record_name(last),
                "LastRecnum": self.recnum0 + last,
                "MaxRecnum": self.recnum0 + last,
            },
            "runtime": 0.001,
            "status": 0,
        }


def _t_obs(s: Series, slot: int, q: int) -> str:
    return MISSING if q & 0x80000000 else format_time(s.slot_time(slot) - s.step / 2 + 1.5)


def _mean(s: Series, slot: int, q: int) -> str:
    return MISSING if q & 0x80000000 else f"{math.sin(slot / 50.0) * 100.0:.6f}"


def _rms(s: Series, slot: int, q: int) -> str:
    return MISSING if q & 0x80000000 else f"{50.0 + (slot % 17) * 0.25:.4f}"


_GENERATORS: dict[str, Callable[[Series, int, int], str]] = {
    "T_REC": lambda s, slot, q: format_time(s.slot_time(slot)),
    "T_OBS": _t_obs,
    "QUALITY": lambda s, slot, q: f"0x{q:08x}",
    "DATAMEAN": _mean,
    "DATARMS": _rms,
    "EXPTIME": lambda s, slot, q: f"{0.1 + (slot % 5) * 0.01:.3f}",
    "CRLT_OBS": lambda s, slot, q: f"{-7.25 + (slot % 365) * 0.04:.4f}",
    "DSUN_OBS": lambda s, slot, q: f"{1.496e11 + (slot % 365) * 1e7:.6e}",
    "TELESCOP": lambda s, slot, q: s.telescope,
}


def _keywords(key2: str, key2_note: str) -> list[Keyword]:
    return [
        Keyword("T_REC", "time", "TAI", "[T_REC] slot time", "-4712.01.01_11:59_TAI"),
        Keyword(key2, "int", "none", key2_note, "-2147483648"),
        Keyword("T_OBS", "time", "TAI", "[T_OBS] observation time", "-4712.01.01_11:59_TAI"),
        Keyword("QUALITY", "int", "none", "Quality bits", "0"),
        Keyword("DATAMEAN", "double", "DN", "mean of data", "nan"),
        Keyword("DATARMS", "double", "DN", "rms of data", "nan"),
        Keyword("EXPTIME", "double", "s", "exposure time", "nan"),
        Keyword("CRLT_OBS", "float", "deg", "Carrington latitude of observer", "nan"),
        Keyword("DSUN_OBS", "double", "m", "distance to Sun centre", "nan"),
        Keyword("TELESCOP", "string", "none", "telescope", "", "constant"),
    ]


def _series(spec: dict[str, Any]) -> Series:
    t0, t1 = parse_time(spec.pop("first")), parse_time(spec.pop("last"))
    key2_note = spec.pop("key2_note")
    step = float(spec["step"])
    return Series(
        first=t0,
        nslots=int((t1 - t0) // step) + 1,
        keywords=_keywords(spec["key2"], key2_note),
        **spec,
    )


_SPECS: list[dict[str, Any]] = [
    {
        "name": "hmi.v_45s",
        "note": "Dopplergrams with a cadence of 45 seconds",
        "step": 45.0,
        "key2": "CAMERA",
        "key2_values": (2,),
        "key2_note": "camera",
        "segment": "Dopplergram",
        "telescope": "SDO/HMI",
        "first": "2010.04.30_19:00:00_TAI",
        "last": "2019.12.31_23:59:15_TAI",
        "sunum0": 500_000_000,
    },
    {
        "name": "hmi.m_720s",
        "note": "Line-of-sight magnetograms with a cadence of 720 seconds",
        "step": 720.0,
        "key2": "CAMERA",
        "key2_values": (3,),
        "key2_note": "camera",
        "segment": "magnetogram",
        "telescope": "SDO/HMI",
        "first": "2010.04.30_19:00:00_TAI",
        "last": "2019.12.31_23:48:00_TAI",
        "sunum0": 600_000_000,
    },
    {
        "name": "aia.lev1_euv_12s",
        "note": "AIA Level 1, 12 second cadence",
        "step": 12.0,
        "key2": "WAVELNTH",
        "key2_values": (94, 131, 171, 193, 211, 304, 335),
        "key2_note": "wavelength",
        "segment": "image",
        "telescope": "SDO/AIA",
        "first": "2010.05.01_00:00:00_TAI",
        "last": "2019.12.31_23:59:48_TAI",
        "sunum0": 700_000_000,
    },
]

#: The emulator's series, by lower-case name (distinct storage-unit ranges, so a
#: /SUM<n> path names exactly one record).
CATALOG: dict[str, Series] = {spec["name"]: _series(dict(spec)) for spec in _SPECS}


@dataclass
class RecordSet:
    """A parsed record-set query, resolved to record numbers."""

    series: Series
    records: list[int] | range
    segments: list[str] | None = None


_CONDITION = re.compile(r"^\s*([\w*]+)\s*(==|=|!=|<>|<=|>=|<|>)\s*(.+?)\s*$")


def _number(text: str) -> float | None:
    text = text.strip()
    try:
        return float(int(text, 0)) if text[:2].lower() == "0x" else float(text)
    except ValueError:
        return None


def _compare(a: float, op: str, b: float) -> bool:
    if op in ("=", "=="):
        return a == b
    if op in ("!=", "<>"):
        return a != b
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _where(series: Series, records: Sequence[int], clause: str, limit: int) -> list[int]:
    if len(records) > limit:
        raise QueryError(f"Too many records to filter ({len(records)} > {limit})")
    keep = list(records)
    for part in re.split(r"\s+(?:and|AND)\s+", clause.strip()):
        m = _CONDITION.match(part)
        if not m:
            raise QueryError(f"Unsupported where clause: {clause}")
        name, op, raw = m.groups()
        value = _number(raw)
        values = series.values(name, keep)
        if values and values[0] == "Invalid KeyLink":
            raise QueryError(f"Unknown keyword in where clause: {name}")
        if value is None:
            text = raw.strip("'\"")
            keep = [r for r, v in zip(keep, values, strict=True) if (v == text) == (op in "==")]
            continue
        nums = [_number(v) for v in values]
        keep = [
            r for r, v in zip(keep, nums, strict=True) if v is not None and _compare(v, op, value)
        ]
    return keep


def _slots(series: Series, spec: str) -> range:
    last = series.nslots - 1
    spec = spec.strip()
    if spec in ("", "*"):
        return range(0, last + 1)
    if spec == "$":
        return range(last, last + 1)
    if spec == "^":
        return range(0, 1)
    step = 1
    if "@" in spec:
        spec, _, every = spec.partition("@")
        step = max(1, round(parse_duration(every) / series.step))
    if "/" in spec:
        start_text, _, dur = spec.partition("/")
        start = parse_time(start_text)
        stop = start + parse_duration(dur)
    elif re.match(r"^.+_TAI-.+$|^.+_UTC-.+$", spec) or (spec.count("-") == 1 and "." in spec):
        start_text, _, stop_text = spec.partition("-")
        start, stop = parse_time(start_text), parse_time(stop_text) + 1e-6
    else:
        t = parse_time(spec)
        slot = round((t - series.first) / series.step)
        return range(slot, slot + 1) if 0 <= slot <= last else range(0)
    lo = max(0, math.ceil((start - series.first) / series.step - 1e-9))
    hi = min(last, math.ceil((stop - series.first) / series.step - 1e-9) - 1)
    return range(lo, hi + 1, step) if hi >= lo else range(0)


def _key2(series: Series, spec: str) -> list[int]:
    spec = spec.strip()
    if spec in ("", "*"):
        return list(range(len(series.key2_values)))
    idx = []
    for part in spec.split(","):
        lo_text, _, hi_text = part.partition("-")
        lo = _number(lo_text)
        hi = _number(hi_text) if hi_text else lo
        if lo is None or hi is None:
            raise QueryError(f"Invalid {series.key2} value: {part}")
        idx += [i for i, v in enumerate(series.key2_values) if lo <= v <= hi]
    return sorted(set(idx))


_NAME = re.compile(r"^\s*([A-Za-z][\w]*\.[\w]+)")


def parse_recordset(text: str, *, limit: int = 1_000_000) -> RecordSet:
    """Resolve a record-set query against :data:`CATALOG`; QueryError if it cannot."""
    m = _NAME.match(text)
    if not m:
        raise QueryError(f"Invalid record set: {text}")
    name = m.group(1)
    series = CATALOG.get(name.lower())
    if series is None:
        raise QueryError(f"Unknown series: {name}")
    pos = m.end()
    filters: list[str] = []
    where: list[str] = []
    segments: list[str] | None = None
    while pos < len(text):
        ch = text[pos]
        if ch.isspace():
            pos += 1
        elif text.startswith("[?", pos):
            end = text.find("?]", pos + 2)
            if end < 0:
                raise QueryError(f"Unterminated where clause: {text}")
            where.append(text[pos + 2 : end])
            pos = end + 2
        elif ch == "[":
            end = text.find("]", pos)
            if end < 0:
                raise QueryError(f"Unterminated filter: {text}")
            filters.append(text[pos + 1 : end])
            pos = end + 1
        elif ch == "{":
            end = text.find("}", pos)
            if end < 0:
                raise QueryError(f"Unterminated segment list: {text}")
            segments = [s for s in re.split(r"[\s,]+", text[pos + 1 : end]) if s]
            pos = end + 1
        else:
            raise QueryError(f"Invalid record set: {text}")
    specs = {"T_REC": "", series.key2: ""}
    keys = series.primekeys
    for i, f in enumerate(filters):
        named = re.match(r"^\s*(\w+)\s*=(.*)$", f)
        if named and named.group(1).upper() in specs:
            specs[named.group(1).upper()] = named.group(2)
        elif i < len(keys):
            specs[keys[i]] = f
        else:
            raise QueryError(f"Too many primekey filters: {text}")
    slots = _slots(series, specs["T_REC"])
    ks = _key2(series, specs[series.key2])
    nk = len(series.key2_values)
    records: list[int] | range
    if len(ks) == nk == 1:
        records = slots
    else:
        if len(slots) * len(ks) > limit:
            raise QueryError(f"Too many records ({len(slots) * len(ks)} > {limit})")
        records = [s * nk + k for s in slots for k in ks]
    for clause in where:
        records = _where(series, records, clause, limit)
    return RecordSet(series, records, segments)
