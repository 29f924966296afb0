"""What export waits and downloads decide, without I/O: poll intervals and deadlines,
resume plans, size checks, safe file names; and the progress line.

Both clients (blocking and asyncio) and both download loops use these; the I/O is in
``_async_fetch`` (and its generated twin ``_sync_fetch``) and ``_downloads``. The
progress display (tqdm bars: total and per file, rate, ETA; see
:mod:`sciwire.core.progress`) is shown by default only when stderr is a terminal; without tqdm it
is a one-line counter.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from sciwire.core.progress import DownloadBars
from sciwire.drms._protocol import check_export_status, plain_name
from sciwire.drms.exceptions import DrmsExportError, DrmsHttpError
from sciwire.errors import Timeout

__all__ = [
    "CHUNK",
    "ExportPoll",
    "Progress",
    "Resume",
    "poll_interval",
    "safe_target",
    "targets",
]

logger = logging.getLogger(__name__)

#: Bounds on the server-suggested polling interval, seconds.
MIN_POLL, MAX_POLL = 0.05, 30.0
#: bytes written to a file at a time
CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


class Progress:
    """The download progress display: tqdm bars, or a one-line counter.

    Args:
        files: number of files expected.
        enabled: True/False, or None to show it only when *stream* is a terminal.
        stream: where to draw (stderr by default).
        fancy: tqdm bars (total and per file, rate, ETA) when tqdm is installed; False
            for the one-line counter.
    """

    def __init__(
        self,
        files: int,
        enabled: bool | None = None,
        stream: IO[str] | None = None,
        fancy: bool = True,
    ):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.files = files
        self.done = 0
        self.nbytes = 0
        self._lock = threading.Lock()
        self._drawn = 0.0
        self._bars: DownloadBars | None = None
        if enabled and fancy:
            try:
                self._bars = DownloadBars(files, self.stream)
            except ImportError:  # tqdm missing: the plain line below
                self._bars = None

    def begin(self, name: str, size: int | None, offset: int) -> None:
        """A file's answer arrived: its *size* (if known), *offset* bytes already on disk."""
        if self._bars is not None:
            self._bars.begin(name, size, offset)

    def add(self, nbytes: int, name: str | None = None) -> None:
        """Count received bytes (of file *name*, when given)."""
        if self._bars is not None:
            self._bars.add(nbytes, name)
            return
        with self._lock:
            self.nbytes += nbytes
            self._draw(force=False)

    def file_done(self, name: str | None = None) -> None:
        """Count a finished file."""
        if self._bars is not None:
            self._bars.file_done(name)
            return
        with self._lock:
            self.done += 1
            self._draw(force=True)

    def close(self) -> None:
        """End the display."""
        if self._bars is not None:
            self._bars.close()
        elif self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, *, force: bool) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        width = 20
        filled = width * self.done // self.files if self.files else width
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(
            f"\rdownload [{bar}] {self.done}/{self.files} files, {self.nbytes / 1e3:.1f} kB"
        )
        self.stream.flush()


def poll_interval(d: Mapping[str, Any], poll: float | None) -> float:
    """Seconds to sleep before the next poll: *poll* if given, else the status's
    ``wait`` bounded to [MIN_POLL, MAX_POLL] (1 s when it is not a number)."""
    if poll is not None:
        return max(0.0, poll)
    try:
        wait = float(d.get("wait", 1.0))
    except (TypeError, ValueError):
        wait = 1.0
    return min(max(wait, MIN_POLL), MAX_POLL)


class ExportPoll:
    """Sans-I/O state of one wait for an export: feed each status with the clock time."""

    def __init__(
        self, requestid: str, timeout: float, poll: float | None, notfound: int, now: float
    ) -> None:
        self.requestid = requestid
        self.timeout = timeout
        self.poll = poll
        self.notfound = notfound
        self.deadline = now + timeout

    def pause(self, d: Mapping[str, Any], now: float) -> float | None:
        """None when *d* is a finished export, else the seconds to sleep before the next poll.

        Raises DrmsExportError when the export failed or stays unknown, Timeout past the deadline.
        """
        status = check_export_status(d)
        if status == 0:
            return None
        if status == 6:
            if self.notfound <= 0:
                detail = f" ({d['error']})" if d.get("error") else ""
                msg = f"Export request {self.requestid} not found{detail} [status=6]"
                raise DrmsExportError(msg, code=6, data=dict(d))
            self.notfound -= 1
        remaining = self.deadline - now
        if remaining <= 0:
            raise Timeout(
                f"export {self.requestid} not finished after {self.timeout:g} s (status {d})"
            )
        return min(poll_interval(d, self.poll), remaining)


def _part(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def _plan(status: int, headers: Mapping[str, str], offset: int, url: str) -> tuple[str, int | None]:
    """Decide how to write an answer: ('append'|'write'|'complete'|'restart', expected size)."""
    crange = _CONTENT_RANGE.match(headers.get("content-range", ""))
    total = int(crange.group(3)) if crange and crange.group(3) != "*" else None
    if status == 416 and offset:
        return ("complete" if total == offset else "restart"), total
    if status >= 400:
        raise DrmsHttpError(f"HTTP {status} for {url}", code=status)
    if status == 206:
        if not crange or crange.group(1) is None or int(crange.group(1)) != offset:
            return "restart", None
        return "append", total
    length = headers.get("content-length")
    return "write", int(length) if length and length.isdigit() else None


def _finish(part: Path, final: Path, expected: int | None, url: str) -> Path:
    size = part.stat().st_size
    if expected is not None and size != expected:
        raise DrmsExportError(
            f"size mismatch for {url}: got {size} bytes, expected {expected}; "
            f"partial file kept for resume: {part}"
        )
    os.replace(part, final)
    return final


class Resume:
    """Sans-I/O state of one resumable file fetch (at most one restart from zero: a
    server that keeps ignoring the Range asked raises DrmsExportError)."""

    def __init__(self, url: str, final: Path) -> None:
        self.url = url
        self.final = final
        self.part = _part(final)
        self.offset = 0
        self.expected: int | None = None
        self.restarted = False

    def headers(self) -> dict[str, str]:
        """Request headers for the next attempt (a Range when a partial file exists)."""
        self.offset = self.part.stat().st_size if self.part.exists() else 0
        return {"Range": f"bytes={self.offset}-"} if self.offset else {}

    def answer(self, status: int, headers: Mapping[str, str]) -> str | None:
        """Open mode for the body ("ab"/"wb"), "" when already complete, None to ask
        again from zero."""
        action, self.expected = _plan(status, headers, self.offset, self.url)
        if action == "restart":
            if self.restarted:
                raise self.no_resume()
            self.restarted = True
            self.part.unlink(missing_ok=True)
            return None
        return {"complete": "", "append": "ab"}.get(action, "wb")

    def finish(self) -> Path:
        """Check the size and move the partial file into place."""
        return _finish(self.part, self.final, self.expected, self.url)

    def no_resume(self) -> DrmsExportError:
        """The error for a server that keeps ignoring the Range asked."""
        return DrmsExportError(f"server does not honour resume requests for {self.url}")


def safe_target(dest: Path, name: str) -> Path:
    """``dest / name`` for a server-supplied file *name*, or DrmsExportError.

    A name must be one plain file name: not empty, not ``.`` or ``..``, no path
    separator, no NUL, nothing that resolves outside *dest* (its ``.part`` file
    included), so a hostile or broken export can never write beside or above *dest*.
    """
    # an absolute path has a separator, so plain_name refuses it too
    target = dest / plain_name(name)
    root = dest.resolve()
    for path in (target, _part(target)):
        if path.resolve().parent != root:
            raise DrmsExportError(
                f"refusing the server's file name {name!r}: not a plain file name"
            )
    return target


def targets(jobs: Sequence[tuple[str, str]], dest: Path) -> list[Path]:
    """The checked target of each (filename, url) job: every name is checked before
    anything is created or written."""
    return [safe_target(dest, name) for name, _url in jobs]
