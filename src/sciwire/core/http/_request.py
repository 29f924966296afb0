"""Requests, both ways: :func:`encode_request` (what the pools send) and the strict
incremental :class:`RequestParser` (what the server reads, held to h11 and llhttp by
tests/core/test_http_differential.py). Re-exported by :mod:`.codec`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sciwire.core.http._grammar import FIELD, MAX_CHUNK_LINE, TOKEN
from sciwire.core.http.limits import MAX_HEAD
from sciwire.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["ParsedRequest", "RequestParser", "RequestTooLarge", "encode_request"]

# The request side of the grammar (see _grammar.py for the shared tokens).
_REQUEST_LINE = re.compile(r"(" + TOKEN + r") ([\x21-\x7e]+) (HTTP/1\.[01])")
_NAME = re.compile(TOKEN)
_FIELD_LINE = re.compile(FIELD)
#: lower-cased header names already found valid (see _read_head)
_GOOD_NAMES: set[str] = {
    "host", "user-agent", "accept", "accept-encoding", "accept-language", "connection",
    "content-length", "content-type", "transfer-encoding", "expect", "authorization",
    "license-id", "cookie", "origin", "referer", "cache-control", "keep-alive", "te",
    "upgrade", "soapaction",
}  # fmt: skip
#: what no part of a request head may hold: a control byte, a bare LF, a CR before
#: anything but LF, or a first byte that cannot start a method
_PARTIAL_BAD = re.compile(
    rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|(?<!\r)\n|\r(?=[^\n])|\A[^-!#$%&'*+.^_`|~0-9A-Za-z]"
)
_REQUEST_LINE_BYTES = re.compile(_REQUEST_LINE.pattern.encode("latin-1"))
_FIELD_LINES = re.compile(rf"(?:\r\n{FIELD})*".encode("latin-1"))
#: what encode_request sends as method and target (no CTL or space: http.client's rule)
_SEND_LINE = re.compile(TOKEN + r" [^\x00-\x20\x7f]+")
_TRAILER_LINE = re.compile(FIELD.encode("latin-1"))
#: a chunk size: hex digits only (``int(x, 16)`` also takes ``0x5``, ``+5``, ``0_5``,
#: `` 5``), then optional extensions, which are ignored
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;[\t\x20-\x7e\x80-\xff]*)?")
_OWS = " \t"
#: Content-Length values longer than this are refused before int() sees them
_MAX_LENGTH_DIGITS = 18


def _take_chunk_size_strict(buf: bytearray) -> int | None:
    """Take one chunk-size line off a request body's *buf*, by the grammar (the
    response side keeps the lenient reading of :func:`_take_chunk_size`, as
    ``http.client`` does); None until it is whole."""
    end = buf.find(b"\r\n")
    if end < 0:
        if len(buf) > MAX_CHUNK_LINE:
            raise RemoteProtocolError("chunk size line too long", buf[:100])
        return None
    match = _CHUNK_SIZE.fullmatch(buf, 0, end)
    if match is None:
        raise RemoteProtocolError("bad chunk size", buf[:end])
    size = int(match.group(1), 16)  # (before the del: the match reads *buf*)
    del buf[: end + 2]
    return size


def encode_request(
    method: str, path: str, host: str, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    """One HTTP/1.1 request (head and body) as bytes; adds Host and Content-Length.

    An empty *path* is sent as ``/`` (as ``http.client`` does).

    Raises:
        LocalProtocolError: the method is no token, or the path holds a space or a
            control byte (which the server would read as another request line).
    """
    path = path or "/"
    if _SEND_LINE.fullmatch(f"{method} {path}") is None:
        raise LocalProtocolError("invalid request line", f"{method} {path}")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if "\r" in name or "\n" in name or "\r" in str(value) or "\n" in str(value):
            raise ValueError(f"invalid header {name!r}")
        lines.append(f"{name}: {value}")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


class RequestTooLarge(RemoteProtocolError):
    """A request head or body is larger than the server accepts.

    Attributes:
        status: the HTTP status to answer: 413 (body) or 431 (head).
    """

    def __init__(self, message: str, data: object = None, status: int = 413) -> None:
        super().__init__(message, data)
        self.status = status


@dataclass
class ParsedRequest:
    """A whole HTTP request.

    Attributes:
        method: the method, upper-case as sent.
        target: the request target (path and query).
        headers: header names lower-cased; repeated headers joined with ", ".
        body: the decoded (de-chunked) body.
        keep_alive: whether the client allows another request on this connection.
        version: the HTTP version, ``HTTP/1.1`` or ``HTTP/1.0``.
    """

    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    keep_alive: bool = True
    version: str = "HTTP/1.1"


class RequestParser:
    """Feed bytes in, get whole requests out (several when the client pipelines).

    Strict where the reference parsers (h11, llhttp) are: a request line of token,
    visible-ASCII target and ``HTTP/1.0`` or ``HTTP/1.1``; header names are tokens and
    values hold no control byte but HTAB; chunk sizes are hex digits; framing that two
    parsers could read differently (``Transfer-Encoding`` with ``Content-Length``, two
    different lengths, a coding other than ``chunked``) is an error, never a guess.

    Args:
        max_body: the largest body accepted; bigger raises :class:`RequestTooLarge`.
        max_head: the largest request line + headers (and trailer) accepted; bigger
            raises :class:`RequestTooLarge` with status 431.
    """

    def __init__(self, max_body: int = 256 * 1024 * 1024, max_head: int = MAX_HEAD) -> None:
        self.max_body = max_body
        self.max_head = max_head
        self._buf = bytearray()
        #: how far a request head still arriving was checked (see _check_partial_head)
        self._scanned = self._lines = 0
        self._req: ParsedRequest | None = None
        self._chunked = False
        self._remaining = 0
        self._chunks = bytearray()
        self._chunk_state = "size"
        #: set once the head of a request with ``Expect: 100-continue`` was parsed
        self.expect_continue = False
        #: an error found after requests that came whole in the same bytes: those are
        #: returned first (as h11 and llhttp read them), this is raised by the next feed
        self.error: RemoteProtocolError | None = None

    def held(self) -> int:
        """Bytes received and kept for a request not complete yet (head or body)."""
        return len(self._buf) + len(self._chunks)

    def in_body(self) -> bool:
        """True while a request's head was read and its body is still arriving."""
        return self._req is not None

    def feed(self, data: bytes) -> list[ParsedRequest]:
        """Add received bytes; returns the requests completed by them (maybe none)."""
        if self.error is not None:
            raise self.error
        if self._req is None and not self._buf and type(data) is bytes:
            # The common case: *data* starts a request, and often it is exactly one
            # whole request: parse it from *data* without buffering.
            end = data.find(b"\r\n\r\n")
            if end > 0:  # (an empty head is the general path's error)
                start = end + 4
                try:
                    if end > self.max_head:
                        raise RequestTooLarge("request head too large", data[:200], 431)
                    req = self._head(data[:end])
                except RemoteProtocolError:
                    self._buf += data[start:]  # as the general path leaves it
                    raise
                if not self._chunked and len(data) - start == self._remaining:
                    req.body = data[start:]
                    self.expect_continue = False
                    return [req]
                self._req = req
                self._buf += memoryview(data)[start:]
                return self._drain()
        self._buf += data
        return self._drain()

    def _drain(self) -> list[ParsedRequest]:
        done: list[ParsedRequest] = []
        try:
            self._drain_into(done)
        except RemoteProtocolError as exc:
            if not done:
                raise
            self.error = exc
        return done

    def _drain_into(self, done: list[ParsedRequest]) -> None:
        while True:
            if self._req is None:
                end = self._buf.find(b"\r\n\r\n")
                if end < 0 or end > self.max_head:
                    if len(self._buf) > self.max_head:
                        raise RequestTooLarge("request head too large", self._buf[:200], 431)
                    self._scanned, self._lines = _check_partial_head(
                        self._buf, self._scanned, self._lines
                    )
                    return
                head = bytes(self._buf[:end])
                del self._buf[: end + 4]
                self._scanned = self._lines = 0
                # (no blank lines before a request line: h11 and llhttp refuse them too)
                self._req = self._head(head)
            req = self._req
            if self._chunked:
                if not self._body_chunked():
                    return
                req.body = bytes(self._chunks)
                self._chunks.clear()
            else:
                if len(self._buf) < self._remaining:
                    return
                req.body = bytes(self._buf[: self._remaining])
                del self._buf[: self._remaining]
            self._req = None
            self.expect_continue = False
            done.append(req)

    def _head(self, head: bytes) -> ParsedRequest:
        # A client sends the same head call after call (a JSON-RPC client differs only
        # in Content-Length, and often not even there): its reading is kept, so the
        # grammar checks run once per distinct head, not once per request.
        read = _HEADS.get(head)
        if read is None:
            read = _read_head(head)
            if len(head) <= _HEAD_CACHE_LINE:
                if len(_HEADS) >= _HEAD_CACHE_SIZE:  # bounded: many distinct heads gain nothing
                    _HEADS.clear()
                _HEADS[head] = read
        method, target, version, headers, keep, chunked, length, expect = read
        if length > self.max_body:
            raise RequestTooLarge("request body too large", f"{length} bytes")
        self._chunked = chunked
        if chunked:
            self._chunk_state = "size"
        self._remaining = length
        self.expect_continue = expect
        return ParsedRequest(method, target, headers.copy(), b"", keep, version)

    def _body_chunked(self) -> bool:
        buf = self._buf
        while True:
            if self._chunk_state == "size":
                size = _take_chunk_size_strict(buf)
                if size is None:
                    return False
                if len(self._chunks) + size > self.max_body:
                    raise RequestTooLarge("request body too large", f"{size} byte chunk")
                self._remaining = size
                self._chunk_state = "data" if size else "trailer"
            elif self._chunk_state == "data":
                if len(buf) < self._remaining + 2:
                    return False
                if buf[self._remaining : self._remaining + 2] != b"\r\n":
                    raise RemoteProtocolError("chunk not followed by CRLF", buf[:100])
                self._chunks += buf[: self._remaining]
                del buf[: self._remaining + 2]
                self._chunk_state = "size"
            else:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > self.max_head:
                        raise RequestTooLarge("trailer too large", buf[:100], 431)
                    return False
                if end and _TRAILER_LINE.fullmatch(buf, 0, end) is None:
                    raise RemoteProtocolError("bad trailer line", buf[:end])
                del buf[: end + 2]
                if end == 0:
                    self._chunk_state = "size"
                    return True


#: a request head's reading: method, target, version, headers, keep-alive, chunked,
#: Content-Length (0 when chunked or none), Expect: 100-continue
_Read = tuple[str, str, str, dict[str, str], bool, bool, int, bool]
#: heads already read (see RequestParser._head): at most this many, each this long
_HEADS: dict[bytes, _Read] = {}
_HEAD_CACHE_SIZE = 256
_HEAD_CACHE_LINE = 1024


def _read_head(head: bytes) -> _Read:
    """Read one request head by the grammar (a pure function of *head*)."""
    text = head.decode("latin-1")
    lines = text.split("\r\n")
    request = _REQUEST_LINE.fullmatch(lines[0])
    if request is None:
        raise RemoteProtocolError("bad request head", repr(lines[0]))
    method, target, version = request.groups()
    headers: dict[str, str] = {}
    del lines[0]
    for line in lines:
        # printable (one C pass) means no control byte, no bare CR or LF; a line that
        # is not (HTAB, obs-text) is held to the field grammar itself
        if not line.isprintable() and _FIELD_LINE.fullmatch(line) is None:
            raise RemoteProtocolError("bad request head", repr(line))
        name, sep, value = line.partition(":")
        key = name.lower()
        if not sep:
            raise RemoteProtocolError("bad request head", repr(line))
        if key not in _GOOD_NAMES:  # the usual names are known: no check per request
            if _NAME.fullmatch(key) is None:
                raise RemoteProtocolError("bad request head", repr(line))
            if len(_GOOD_NAMES) < 1024:  # bounded: a client inventing names gains nothing
                _GOOD_NAMES.add(key)
        # SP and HTAB only, not latin-1's other blanks (an ASCII value, checked above,
        # has no other blank that strip() would take)
        value = value.strip() if value.isascii() else value.strip(_OWS)
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    get = headers.get
    conn = get("connection")
    if conn is None:
        keep = version != "HTTP/1.0"
    else:
        conn = conn.lower()
        keep = "keep-alive" in conn if version == "HTTP/1.0" else "close" not in conn
    te = get("transfer-encoding")
    length = get("content-length")
    size = 0
    if te is not None:
        if length is not None:  # RFC 9112 6.3: a smuggling vector; refuse it
            raise RemoteProtocolError("both Transfer-Encoding and Content-Length", te)
        if te.lower() != "chunked":
            raise RemoteProtocolError("unsupported transfer-encoding", te)
    elif length is not None:
        # isdigit() alone takes "²" or "٣"; "5, 5" (a repeated header) is refused too
        if not (length.isascii() and length.isdigit()) or len(length) > _MAX_LENGTH_DIGITS:
            raise RemoteProtocolError("bad content-length", length)
        size = int(length)
    expect = get("expect")
    continued = expect is not None and expect.lower() == "100-continue"
    return method, target, version, headers, keep, te is not None, size, continued


def _check_partial_head(buf: bytearray, scanned: int, lines: int) -> tuple[int, int]:
    """Refuse a request head still arriving as soon as what came is wrong, as h11 and
    llhttp do (a head with bare LF line ends would otherwise wait for its CRLF CRLF
    until the head deadline). Only incomplete heads come here: not a hot path.

    Only what came since the last call is read again (a head sent a byte at a time
    would otherwise cost time growing with the square of its length): *scanned* is
    the length of *buf* already searched for bad bytes, *lines* where the line ends
    known good stop (0: the request line is not checked yet). Returns the two for
    the next call."""
    # one byte back: a CR's lookahead was open at the old end (lookbehind sees back)
    if _PARTIAL_BAD.search(buf, max(0, scanned - 1)) is not None:
        raise RemoteProtocolError("bad request head", buf[:200])
    if not lines:
        first = buf.find(b"\r\n")
        if first < 0:
            return len(buf), 0
        if _REQUEST_LINE_BYTES.fullmatch(buf, 0, first) is None:
            raise RemoteProtocolError("bad request head", buf[:200])
        lines = first
    # field lines hold no CR or LF, so the lines up to *lines* stay good as more come
    last = buf.rfind(b"\r\n", lines)
    if last > lines and _FIELD_LINES.fullmatch(buf, lines, last) is None:
        raise RemoteProtocolError("bad request head", buf[:200])
    return len(buf), last


#: (status, content type) -> the response head up to the Content-Length value
