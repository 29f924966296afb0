"""Cutting a TCP byte stream into messages at JSON value boundaries.

iblutil sends every message as one JSON value with no framing. TCP may glue
several messages into one read or split one across reads; :class:`StreamSplitter`
recovers each message's exact bytes (for the byte-for-byte echo) without any change
to the wire format.

Cases it cannot recover exactly (none is a valid message, which is always a list):

- Bare top-level numbers glued together (``1`` then ``2`` arrive as ``12``); a bare
  number at the end of the buffer is held until a following byte shows it ended.
- Non-JSON text: it has no boundary, so it is cut at the next ``[`` or ``{`` and
  reported as garbage (iblutil takes whatever one read returns).
- A top-level literal (``true``) split across reads is reported as garbage in pieces.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sciwire.errors import RemoteProtocolError
from sciwire.rig._protocol import NOT_JSON

__all__ = [
    "DEFAULT_MAX_BUFFER",
    "DEFAULT_MAX_TOTAL_BUFFER",
    "BufferOverflowError",
    "StreamSplitter",
]

#: Largest incomplete message held per connection before the stream is declared broken.
DEFAULT_MAX_BUFFER = 1 << 20
#: Most bytes of incomplete messages a TCP server holds across all its connections
#: (without it, N connections could hold N times the per-connection cap).
DEFAULT_MAX_TOTAL_BUFFER = 32 << 20

_WS = re.compile(r"[ \t\n\r]*")
# What may still be the unfinished tail of a valid value at the end of the buffer.
_NUMBER_TAIL = re.compile(r"[-+0-9.eE]*\Z")
_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")
_START = re.compile(r"[\[{]")
_decoder = json.JSONDecoder()


class BufferOverflowError(RemoteProtocolError):
    """More than the maximum buffer arrived without a complete JSON value."""


def _maybe_incomplete(text: str, exc: json.JSONDecodeError) -> bool:
    if exc.pos >= len(text) or exc.msg.startswith("Unterminated string"):
        return True
    tail = text[exc.pos :]
    if exc.msg.startswith("Invalid \\u"):
        return len(tail) < 6
    if _NUMBER_TAIL.match(tail):
        return True
    return any(lit.startswith(tail) for lit in _LITERALS)


class StreamSplitter:
    """Per-connection buffer cutting a byte stream into JSON values.

    ``feed(chunk)`` returns ``(raw, value)`` pairs: the exact bytes of each complete
    value (surrounding whitespace dropped) and its decoded value, or
    ``(raw, NOT_JSON)`` for garbage and invalid UTF-8 skipped to resynchronise.

    Args:
        max_buffer: the most bytes held for one incomplete value.
    """

    def __init__(self, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.max_buffer = max_buffer
        self._buf = b""

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete value."""
        return len(self._buf)

    def discard(self) -> None:
        """Drop the incomplete value held (the stream is being closed)."""
        self._buf = b""

    def feed(self, chunk: bytes) -> list[tuple[bytes, Any]]:
        """Add *chunk*; return every complete value now available.

        Raises:
            BufferOverflowError: an incomplete value passed ``max_buffer`` bytes; the
                buffer is discarded (the caller should close the connection).
        """
        buf = self._buf + chunk if self._buf else chunk
        out: list[tuple[bytes, Any]] = []
        ascii_only = buf.isascii()
        text = buf.decode("ascii") if ascii_only else buf.decode("utf-8", "surrogateescape")
        pos = 0
        end_text = len(text)
        while True:
            pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
            if pos >= end_text:
                break
            try:
                value, end = _decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                if _maybe_incomplete(text, exc):
                    break
                nxt = _START.search(text, pos + 1)
                end = nxt.start() if nxt else end_text
                value = NOT_JSON
            except RecursionError:
                end, value = end_text, NOT_JSON
            else:
                if end == end_text and isinstance(value, int | float):
                    break  # a bare number may go on in the next chunk
            raw = self._slice(buf, text, pos, end, ascii_only)
            if not ascii_only and value is not NOT_JSON and _has_bad_utf8(raw):
                value = NOT_JSON
            out.append((raw, value))
            pos = end
        rest = buf[self._offset(text, pos, ascii_only) :] if pos < end_text else b""
        if len(rest) > self.max_buffer:
            self._buf = b""
            raise BufferOverflowError(
                f"more than {self.max_buffer} bytes without a complete JSON value", rest[:200]
            )
        self._buf = rest
        return out

    @staticmethod
    def _offset(text: str, pos: int, ascii_only: bool) -> int:
        if ascii_only:
            return pos
        return len(text[:pos].encode("utf-8", "surrogateescape"))

    def _slice(self, buf: bytes, text: str, start: int, end: int, ascii_only: bool) -> bytes:
        if ascii_only:
            return buf[start:end]
        return buf[self._offset(text, start, False) : self._offset(text, end, False)]


class BufferBudget:
    """Bytes of incomplete messages held across a server's connections, against a limit.

    Sans-I/O bookkeeping: the owner reports each connection's held bytes after every
    read (:meth:`update`), compares the total with its limit, and releases a
    connection when it closes (:meth:`release`).
    """

    def __init__(self) -> None:
        self.total = 0
        self._held: dict[Any, int] = {}

    def update(self, key: Any, before: int, after: int) -> int:
        """Record that *key* now holds *after* bytes (it held *before*); return the total."""
        self.total += after - before
        if after:
            self._held[key] = after
        else:
            self._held.pop(key, None)
        return self.total

    def release(self, key: Any) -> None:
        """Forget what *key* held (its connection closed or its buffer was dropped)."""
        self.total -= self._held.pop(key, 0)


def _has_bad_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
