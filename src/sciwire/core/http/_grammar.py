"""The HTTP/1.1 grammar both message directions share (RFC 9110/9112 tokens and field
lines, the chunk-size line's bound), for :mod:`._request` and :mod:`._response`."""

from __future__ import annotations

__all__ = ["FIELD", "MAX_CHUNK_LINE", "TOKEN"]

#: the longest chunk-size line read before it is refused
MAX_CHUNK_LINE = 1024

# RFC 9110/9112 grammar, checked over a whole head at once (no Python loop per byte):
# token = 1*tchar; a request line is method SP target SP HTTP-version, the target
# visible ASCII; field-value bytes are HTAB, SP, VCHAR and obs-text (0x80-0xFF), so
# NUL, DEL and the other controls are refused wherever they appear, and CR and LF only
# come as CRLF line ends (a bare LF ends no line: h11 and llhttp refuse it too).
TOKEN = r"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
FIELD = TOKEN + r":[\t\x20-\x7e\x80-\xff]*"
