"""The emulator's export book: requests, their lifecycle on a clock, and their files."""

from __future__ import annotations

import io
import json
import math
import re
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any

from sciwire.drms._catalog import CATALOG, QueryError, Series, format_time, parse_recordset

__all__ = ["Export", "ExportBook", "FileRef"]

_FIELD = re.compile(r"\{([\w*]+)(?::([^}]*))?\}")
_SUM_FILE = re.compile(r"^/SUM(\d+)/S00000/(\w+)\.fits$")
_FAILED_WAIT = 999999


@dataclass(frozen=True)
class FileRef:
    """A servable file: how to make its bytes, and its content type."""

    data: Callable[[], bytes]
    content_type: str = "application/octet-stream"


@dataclass
class Export:
    """One queued export request."""

    requestid: str
    user: str
    created: float
    method: str
    protocol: str
    series: Series
    records: list[int]
    segment: str
    directory: str
    filenames: list[str]
    tarname: str | None = None
    files: dict[str, FileRef] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Records exported."""
        return len(self.records)

    def size_mb(self) -> int:
        """Total size in MB, rounded up, as JSOC reports it."""
        return max(1, math.ceil(self.count * 5760 / 1e6))

    def index(self) -> dict[str, Any]:
        """The finished export's index.json: header values are strings, as JSOC writes them."""
        data = [
            {"record": f"{self.series.record_name(r)}{{{self.segment}}}", "filename": name}
            for r, name in zip(self.records, self.filenames, strict=True)
        ]
        out: dict[str, Any] = {
            "version": "1",
            "requestid": self.requestid,
            "method": self.method,
            "protocol": self.protocol,
            "count": str(self.count),
            "size": str(self.size_mb()),
            "dir": self.directory,
            "keywords": f"{self.directory}/{self.requestid}.keywords.txt",
            "status": "0",
            "wait": "0",
            "data": data,
        }
        if self.tarname is not None:
            out["tarfile"] = f"{self.directory}/{self.tarname}"
        return out


def _filename(fmt: str, series: Series, r: int, segment: str) -> str:
    slot, k = divmod(r, len(series.key2_values))

    def one(m: re.Match[str]) -> str:
        name, spec = m.group(1), m.group(2)
        if name == "seriesname":
            return series.name
        if name == "segment":
            return segment
        if name == "recnum":
            return str(series.recnum0 + r)
        if name == "T_REC":
            text = format_time(series.slot_time(slot))
            return text.replace(".", "").replace(":", "") if spec == "A" else text
        if name == series.key2:
            return str(series.key2_values[k])
        return m.group(0)

    return _FIELD.sub(one, fmt)


class ExportBook:
    """Export requests, their state on *clock*, and the files they make available."""

    def __init__(
        self,
        clock: Callable[[], float],
        queue_time: float,
        processing_time: float,
        retention: float,
        pending_limit: int,
        max_records: int,
    ) -> None:
        self.clock = clock
        self.queue_time = queue_time
        self.processing_time = processing_time
        self.retention = retention
        self.pending_limit = pending_limit
        self.max_records = max_records
        self.exports: dict[str, Export] = {}
        self._files: dict[str, tuple[Export, FileRef]] = {}
        self._serial = 0

    def _state(self, e: Export, now: float) -> int:
        age = now - e.created
        if age < self.queue_time:
            return 2
        if age < self.queue_time + self.processing_time:
            return 1
        if age < self.queue_time + self.processing_time + self.retention:
            return 0
        return 5

    def request(self, q: Mapping[str, str], *, quick_limit: int) -> dict[str, Any]:
        """Handle ``jsoc_fetch?op=exp_request``."""
        method = q.get("method", "url")
        protocol = q.get("protocol", "as-is").split(",")[0]
        notify = q.get("notify", "")
        try:
            rs = parse_recordset(q.get("ds", ""), limit=self.max_records)
        except QueryError as exc:
            return {"status": 4, "error": str(exc), "wait": _FAILED_WAIT}
        records = list(rs.records)
        steps = q.get("process=n", q.get("process", "n=0"))
        n_text = steps.split("|")[0].removeprefix("n=")
        try:
            n = int(n_text)
        except ValueError:
            return {"status": 4, "error": f"Invalid process: {steps}", "wait": _FAILED_WAIT}
        if n:
            records = records[:n] if n > 0 else records[n:]
        if not records:
            return {"status": 4, "error": "No records in the record set", "wait": _FAILED_WAIT}
        series = rs.series
        segment = (rs.segments or [series.segment])[0]
        if segment != series.segment:
            return {"status": 4, "error": f"Unknown segment {segment}", "wait": _FAILED_WAIT}
        count = len(records)
        if method == "url_quick" and protocol == "as-is" and count <= quick_limit:
            return {
                "rcount": count,
                "count": count,
                "size": max(1, math.ceil(count * 5760 / 1e6)),
                "dir": "",
                "data": [
                    {
                        "record": f"{series.record_name(r)}{{{segment}}}",
                        "filename": series.segment_path(r),
                    }
                    for r in records
                ],
                "requestid": "",
                "method": method,
                "protocol": protocol,
                "wait": 0,
                "status": 0,
            }
        # JSOC identifies the user by "requestor"; drms's "requester" is ignored.
        user = q.get("requestor") or notify
        now = self.clock()
        pending = [
            e for e in self.exports.values() if e.user == user and self._state(e, now) in (1, 2)
        ]
        if len(pending) >= self.pending_limit:
            return {
                "status": 7,
                "error": (
                    f"User {user} has {len(pending)} pending export requests "
                    f"({', '.join(e.requestid for e in pending)}), please wait until they finish."
                ),
                "wait": _FAILED_WAIT,
            }
        self._serial += 1
        day = datetime.now(timezone.utc).strftime("%Y%m%d")
        requestid = f"JSOC_{day}_{self._serial}"
        directory = f"/SUM{900000 + self._serial}/D{self._serial}/S00000"
        fmt = q.get("filenamefmt") or "{seriesname}.{recnum:%lld}.{segment}"
        names = [_filename(fmt, series, r, segment) + ".fits" for r in records]
        e = Export(
            requestid, user, now, method, protocol, series, records, segment, directory, names
        )
        for r, name in zip(records, names, strict=True):
            e.files[f"{directory}/{name}"] = FileRef(partial(series.fits, r), "image/fits")
        e.files[f"{directory}/index.json"] = FileRef(
            lambda: json.dumps(e.index()).encode(), "application/json"
        )
        e.files[f"{directory}/{requestid}.keywords.txt"] = FileRef(
            lambda: "\n".join(e.series.record_name(r) for r in e.records).encode(), "text/plain"
        )
        if method.endswith("-tar"):
            e.tarname = f"{requestid}.tar"
            e.files[f"{directory}/{e.tarname}"] = FileRef(lambda: _tar(e), "application/x-tar")
        self.exports[requestid] = e
        for path, ref in e.files.items():
            self._files[path] = (e, ref)
        return {
            "status": 2,
            "requestid": requestid,
            "method": method,
            "protocol": protocol,
            "wait": math.ceil(self.queue_time + self.processing_time),
            "rcount": count,
            "size": e.size_mb(),
        }

    def status(self, requestid: str) -> dict[str, Any]:
        """Handle ``jsoc_fetch?op=exp_status``."""
        e = self.exports.get(requestid)
        if e is None:
            return {
                "status": 6,
                "requestid": requestid,
                "error": f"Bad RequestID '{requestid}' provided.",
                "wait": _FAILED_WAIT,
            }
        now = self.clock()
        state = self._state(e, now)
        if state == 0:
            return e.index()
        if state == 5:
            return {
                "status": 5,
                "requestid": requestid,
                "error": f"Request {requestid} has expired; its files were removed.",
                "wait": _FAILED_WAIT,
            }
        remaining = self.queue_time + self.processing_time - (now - e.created)
        return {
            "status": state,
            "requestid": requestid,
            "method": e.method,
            "protocol": e.protocol,
            "wait": max(1, math.ceil(remaining)),
            "rcount": e.count,
            "size": e.size_mb(),
        }

    def file(self, path: str) -> FileRef | None:
        """The file at *path* if it can be downloaded now (finished, not expired)."""
        m = _SUM_FILE.match(path)
        if m:
            sunum = int(m.group(1))
            for series in CATALOG.values():
                r = sunum - series.sunum0
                if 0 <= r < series.nrecords and m.group(2) == series.segment:
                    return FileRef(partial(series.fits, r), "image/fits")
        found = self._files.get(path)
        if found is None or self._state(found[0], self.clock()) != 0:
            return None
        return found[1]


def _tar(e: Export) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for r, name in zip(e.records, e.filenames, strict=True):
            data = e.series.fits(r)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
