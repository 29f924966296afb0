"""The download progress display: tqdm bars with rate and ETA, one per file and a total.

This is the display scientists know from parfive and sunpy's ``Fido.fetch``: a total
bar (bytes, rate, ETA once every size is known, files done in its label) and one bar
per file in flight. Callers decide whether to show it at all (by default only when the
stream is a terminal), and it is safe to call from several download threads.
"""

from __future__ import annotations

import os
import threading
from typing import IO, Any

__all__ = ["MAX_FILE_BARS", "DownloadBars"]

#: Per-file bars shown at once; further concurrent files count in the total only.
MAX_FILE_BARS = 4


def _columns(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


class DownloadBars:
    """Total and per-file tqdm bars for a batch of *files* downloads.

    Args:
        files: number of files expected.
        stream: where to draw (a terminal, normally stderr).
    """

    def __init__(self, files: int, stream: IO[str]) -> None:
        from tqdm import tqdm  # type: ignore[import-untyped]  # only a terminal pays for it

        self._tqdm = tqdm
        self._lock = threading.Lock()
        self.files = files
        self.done = 0
        self._sizes: dict[str, int | None] = {}
        self._bars: dict[str, tuple[Any, int]] = {}  # name -> (bar, screen line)
        self._free = list(range(MAX_FILE_BARS, 0, -1))
        self._stream = stream
        # a terminal that reports no size (a fresh pty, some CI consoles) would get no
        # bars at all (tqdm hides bars below the screen's 0 lines): assume 100x24 then
        size: dict[str, Any] = {"dynamic_ncols": True}
        if not _columns(stream):
            size = {"ncols": 100, "nrows": 24}
        self._width = size
        self.total = tqdm(
            total=None,
            desc=self._label(),
            unit="B",
            unit_scale=True,
            unit_divisor=1000,
            file=stream,
            position=0,
            leave=True,
            mininterval=0.1,
            **self._width,
        )

    def _label(self) -> str:
        return f"download {self.done}/{self.files} files"

    def begin(self, name: str, size: int | None, offset: int) -> None:
        """A file's answer arrived: *size* bytes in all (if known), *offset* already here."""
        with self._lock:
            first = name not in self._sizes
            self._sizes[name] = size
            sizes = list(self._sizes.values())
            # an ETA needs every size; until then the bar shows bytes and rate only
            if len(sizes) == self.files and None not in sizes:
                self.total.total = sum(s for s in sizes if s is not None)
            if first and offset:
                self.total.update(offset)  # resumed: those bytes are already on disk
            if name not in self._bars and self._free:
                line = self._free.pop()
                self._bars[name] = (
                    self._tqdm(
                        total=size,
                        initial=offset,
                        desc=name if len(name) <= 32 else "..." + name[-29:],  # the distinct end
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1000,
                        file=self._stream,
                        position=line,
                        leave=False,
                        mininterval=0.1,
                        **self._width,
                    ),
                    line,
                )

    def add(self, nbytes: int, name: str | None = None) -> None:
        """Count *nbytes* received (for file *name*, when known)."""
        with self._lock:
            self.total.update(nbytes)
            entry = self._bars.get(name) if name is not None else None
            if entry is not None:
                entry[0].update(nbytes)

    def file_done(self, name: str | None = None) -> None:
        """Count a finished file and remove its bar."""
        with self._lock:
            self.done += 1
            self.total.set_description_str(self._label(), refresh=True)
            entry = self._bars.pop(name, None) if name is not None else None
            if entry is not None:
                entry[0].close()
                self._free.append(entry[1])

    def close(self) -> None:
        """Close every bar; the total stays on screen as the last line."""
        with self._lock:
            for bar, _ in self._bars.values():
                bar.close()
            self._bars.clear()
            self.total.close()
