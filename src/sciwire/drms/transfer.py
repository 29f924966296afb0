"""Export waiting and file downloads (blocking and asyncio): resume, size checks, progress.

The progress display is a small built-in line on stderr (no tqdm dependency), shown
by default only when stderr is a terminal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import aiohttp

from sciwire.drms import protocol as P
from sciwire.drms.exceptions import DrmsExportError, DrmsHttpError
from sciwire.drms.transport import BlockingTransport
from sciwire.errors import ConnectError, ConnectionClosed, Timeout

__all__ = ["Progress", "download_async", "download_blocking", "wait_async", "wait_blocking"]

logger = logging.getLogger(__name__)

#: Bounds on the server-suggested polling interval, seconds.
MIN_POLL, MAX_POLL = 0.05, 30.0
_CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


class Progress:
    """A one-line download progress display: files done, bytes received.

    Args:
        files: number of files expected.
        enabled: True/False, or None to show it only when *stream* is a terminal.
        stream: where to draw (stderr by default).
    """

    def __init__(self, files: int, enabled: bool | None = None, stream: IO[str] | None = None):
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

    def add(self, nbytes: int) -> None:
        """Count received bytes."""
        with self._lock:
            self.nbytes += nbytes
            self._draw(force=False)

    def file_done(self) -> None:
        """Count a finished file."""
        with self._lock:
            self.done += 1
            self._draw(force=True)

    def close(self) -> None:
        """End the line."""
        if self.enabled:
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


def _poll_interval(d: Mapping[str, Any], poll: float | None) -> float:
    if poll is not None:
        return max(0.0, poll)
    try:
        wait = float(d.get("wait", 1.0))
    except (TypeError, ValueError):
        wait = 1.0
    return min(max(wait, MIN_POLL), MAX_POLL)


class _ExportPoll:
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
        status = P.check_export_status(d)
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
        return min(_poll_interval(d, self.poll), remaining)


def wait_blocking(
    exp_status: Callable[[str], dict[str, Any]],
    requestid: str,
    *,
    timeout: float,
    poll: float | None,
    retries_notfound: int,
) -> dict[str, Any]:
    """Poll *exp_status* until the export finishes; Timeout at the hard deadline."""
    state = _ExportPoll(requestid, timeout, poll, retries_notfound, time.monotonic())
    while True:
        d = exp_status(requestid)
        pause = state.pause(d, time.monotonic())
        if pause is None:
            return d
        time.sleep(pause)


async def wait_async(
    exp_status: Callable[[str], Awaitable[dict[str, Any]]],
    requestid: str,
    *,
    timeout: float,
    poll: float | None,
    retries_notfound: int,
) -> dict[str, Any]:
    """The asyncio form of :func:`wait_blocking`."""
    loop = asyncio.get_running_loop()
    state = _ExportPoll(requestid, timeout, poll, retries_notfound, loop.time())
    while True:
        d = await exp_status(requestid)
        pause = state.pause(d, loop.time())
        if pause is None:
            return d
        await asyncio.sleep(pause)


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


class _Resume:
    """Sans-I/O state of one resumable file fetch (at most one restart from zero)."""

    def __init__(self, url: str, final: Path) -> None:
        self.url = url
        self.final = final
        self.part = _part(final)
        self.offset = 0
        self.expected: int | None = None

    def headers(self) -> dict[str, str]:
        """Request headers for the next attempt (a Range when a partial file exists)."""
        self.offset = self.part.stat().st_size if self.part.exists() else 0
        return {"Range": f"bytes={self.offset}-"} if self.offset else {}

    def answer(self, status: int, headers: Mapping[str, str]) -> str | None:
        """Open mode for the body ("ab"/"wb"), "" when already complete, None to retry."""
        action, self.expected = _plan(status, headers, self.offset, self.url)
        if action == "restart":
            self.part.unlink(missing_ok=True)
            return None
        return {"complete": "", "append": "ab"}.get(action, "wb")

    def finish(self) -> Path:
        """Check the size and move the partial file into place."""
        return _finish(self.part, self.final, self.expected, self.url)

    def no_resume(self) -> DrmsExportError:
        """The error for a server that keeps ignoring the Range asked."""
        return DrmsExportError(f"server does not honour resume requests for {self.url}")


def _fetch_blocking(
    t: BlockingTransport, url: str, final: Path, overwrite: bool, bar: Progress
) -> Path:
    if final.exists() and not overwrite:
        return final
    fetch = _Resume(url, final)
    for _ in range(2):
        with t.stream(url, fetch.headers()) as (status, hdrs, body):
            mode = fetch.answer(status, hdrs)
            if mode is None:
                continue
            if mode:
                with open(fetch.part, mode) as out:
                    while chunk := body.read(_CHUNK):
                        out.write(chunk)
                        bar.add(len(chunk))
        return fetch.finish()
    raise fetch.no_resume()


def download_blocking(
    jobs: Sequence[tuple[str, str]],
    dest: Path,
    *,
    concurrency: int,
    progress: bool | None,
    overwrite: bool,
    timeout: float | None,
) -> list[Path]:
    """Download (filename, url) *jobs* into *dest* with a pool of keep-alive workers."""
    dest.mkdir(parents=True, exist_ok=True)
    bar = Progress(len(jobs), progress)
    local = threading.local()
    transports: list[BlockingTransport] = []

    def one(job: tuple[str, str]) -> Path:
        t: BlockingTransport | None = getattr(local, "transport", None)
        if t is None:
            t = local.transport = BlockingTransport(timeout=timeout)
            transports.append(t)
        path = _fetch_blocking(t, job[1], dest / job[0], overwrite, bar)
        bar.file_done()
        return path

    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(one, jobs))
    finally:
        for t in transports:
            t.close()
        bar.close()


async def _fetch_async(
    session: aiohttp.ClientSession, url: str, final: Path, overwrite: bool, bar: Progress
) -> Path:
    if final.exists() and not overwrite:
        return final
    fetch = _Resume(url, final)
    for _ in range(2):
        # identity: sizes are checked against the stored file's length, never a gzip one
        headers = {"Accept-Encoding": "identity", **fetch.headers()}
        async with session.get(url, headers=headers) as resp:
            mode = fetch.answer(resp.status, {k.lower(): v for k, v in resp.headers.items()})
            if mode is None:
                continue
            if mode:
                with open(fetch.part, mode) as out:
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        out.write(chunk)
                        bar.add(len(chunk))
        return fetch.finish()
    raise fetch.no_resume()


async def download_async(
    session: aiohttp.ClientSession,
    jobs: Sequence[tuple[str, str]],
    dest: Path,
    *,
    concurrency: int,
    progress: bool | None,
    overwrite: bool,
) -> list[Path]:
    """The asyncio form of :func:`download_blocking` (one shared aiohttp session)."""
    dest.mkdir(parents=True, exist_ok=True)
    bar = Progress(len(jobs), progress)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(name: str, url: str) -> Path:
        async with gate:
            try:
                path = await _fetch_async(session, url, dest / name, overwrite, bar)
            except (TimeoutError, asyncio.TimeoutError) as exc:  # (3.10: apart)
                raise Timeout(f"download timed out: {url}") from exc
            except aiohttp.ClientConnectorError as exc:
                raise ConnectError(f"cannot connect for {url}: {exc}") from exc
            except (aiohttp.ClientError, aiohttp.ClientPayloadError) as exc:
                raise ConnectionClosed(f"download failed for {url}: {exc!r}") from exc
            bar.file_done()
            return path

    try:
        return list(await asyncio.gather(*(one(n, u) for n, u in jobs)))
    finally:
        bar.close()
