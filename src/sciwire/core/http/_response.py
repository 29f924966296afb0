"""Responses, both ways: the client's :class:`ResponseParser` (with the one-pass
:func:`whole_response` for the usual case) and :func:`decode_gzip`, and the server's
:func:`encode_response`. Re-exported by :mod:`.codec`."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from sciwire.core.http._grammar import MAX_CHUNK_LINE
from sciwire.core.http.limits import MAX_HEAD
from sciwire.errors import RemoteProtocolError

__all__ = [
    "ParsedResponse",
    "ResponseParser",
    "ResponseTooLarge",
    "decode_gzip",
    "encode_response",
    "whole_response",
]


def _take_chunk_size(buf: bytearray) -> int | None:
    """Take one chunk-size line (extensions ignored) off *buf*; None until it is whole."""
    end = buf.find(b"\r\n")
    if end < 0:
        if len(buf) > MAX_CHUNK_LINE:
            raise RemoteProtocolError("chunk size line too long", buf[:100])
        return None
    line = bytes(buf[:end]).split(b";", 1)[0].strip()
    del buf[: end + 2]
    try:
        size = int(line, 16)
    except ValueError:
        raise RemoteProtocolError("bad chunk size", line) from None
    if size < 0:
        raise RemoteProtocolError("bad chunk size", line)
    return size


@dataclass
class ParsedResponse:
    """A whole HTTP response.

    Attributes:
        status: the status code.
        reason: the reason phrase.
        body: the decoded (de-chunked) body.
        keep_alive: whether the connection may carry another request.
        raw_head: the status line and headers as received.
    """

    status: int
    reason: str
    body: bytes = b""
    keep_alive: bool = True
    raw_head: bytes = b""
    _headers: dict[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def headers(self) -> dict[str, str]:
        """Header names lower-cased; repeated headers joined with ", "."""
        if self._headers is None:
            self._headers = _header_dict(self.raw_head.decode("latin-1").split("\r\n")[1:])
        return self._headers


def _header_dict(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise RemoteProtocolError("bad header line", line)
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


_CL = b"\r\ncontent-length:"
_CONN = b"\r\nconnection:"
_CE = b"\r\ncontent-encoding:"
#: bytes that ``str.strip()`` removes from a latin-1 header name (the general parser's
#: test of a valid name): a name starting or ending with one is left to that parser
_WS = frozenset(i for i in range(256) if chr(i).isspace())


def whole_response(data: bytes, pipelined: bool) -> tuple[ParsedResponse, bytes] | None:
    """The common case in one pass: a whole HTTP/1.1 response with Content-Length in
    *data*. None means "not that case": the general parser takes over (and reports
    any error). What it accepts, it reads exactly as the general parser does, headers
    included: every header line is checked (:func:`_read_head`), so the lazily parsed
    :attr:`ParsedResponse.headers` of a fast response cannot fail later.

    A server sends the same few heads over and over (same status, headers and length),
    so what a head says is kept per head (:data:`_HEADS`): a head seen before costs one
    dict lookup instead of being read again."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end]
    known = _HEADS.get(head, _UNSEEN)
    if known is _UNSEEN:
        known = _read_head(head)
        if end <= _HEAD_KEPT:
            if len(_HEADS) >= _HEADS_MAX:
                _HEADS.clear()  # a server that varies its heads: start again
            _HEADS[head] = known
    if known is None:
        return None
    status, reason, length, keep = known
    total = end + 4 + length
    size = len(data)
    if size == total:
        return ParsedResponse(status, reason, data[end + 4 :], keep, head), b""
    if size < total or not pipelined:
        return None
    return ParsedResponse(status, reason, data[end + 4 : total], keep, head), data[total:]


#: what whole_response learnt of each head it read: (status, reason, body length,
#: keep-alive), or None for a head it leaves to the general parser. At most
#: _HEADS_MAX heads of up to _HEAD_KEPT bytes (a few tens of KiB).
_HEADS: dict[bytes, tuple[int, str, int, bool] | None] = {}
_HEADS_MAX = 128
_HEAD_KEPT = 512
_UNSEEN: tuple[int, str, int, bool] = (0, "", 0, False)  # compared by identity


def _read_head(head: bytes) -> tuple[int, str, int, bool] | None:
    """What a response head (up to its empty line) says, for :func:`whole_response`:
    (status, reason, body length, keep-alive), or None when it is not the one-pass case."""
    if head[:9] != b"HTTP/1.1 ":
        return None
    code = head[9:12]
    sep = head[12:13]
    if not code.isdigit() or (sep != b" " and head[12:14] != b"\r\n"):
        return None
    status = int(code)
    if status < 200 or status == 204 or status == 304:
        return None
    end = len(head)
    low = head.lower()
    first = low.find(_CL)
    if first < 0 or b"\r\ntransfer-encoding:" in low or low.find(_CL, first + 1) >= 0:
        return None
    ws = _WS
    lines = low.split(b"\r\n")
    if low.count(b"\n") != len(lines) - 1:
        return None  # a bare LF in the head: http.client's line split (general parser)
    for line in lines[1:]:
        colon = line.find(b":")
        if colon <= 0 or line[0] in ws or line[colon - 1] in ws:
            return None
    stop = low.find(b"\r\n", first + 2)
    value = low[first + 17 : stop if stop >= 0 else end]  # 17: len(_CL)
    if not value.isdigit():
        value = value.strip()
        if not value.isdigit():
            return None
    keep = True
    if _CONN in low:  # every Connection header counts, as in the joined value
        conn = low.find(_CONN)
        while conn >= 0:
            stop = low.find(b"\r\n", conn + 2)
            if b"close" in low[conn : stop if stop >= 0 else end]:
                keep = False
                break
            conn = low.find(_CONN, conn + 2)
    reason = head[13 : len(lines[0])].decode("latin-1") if sep == b" " else ""
    return status, reason, int(value), keep


def _head_end(buf: bytearray) -> tuple[int, int, bool]:
    """Where the response head in *buf* ends: (its length, where the body starts, whether
    its lines end in a bare LF), or (-1, -1, False) while it is incomplete.

    The head ends at its first empty line, and every LF ends a line, with or without a
    CR before it: a client accepts what ``http.client`` accepts (some servers, and test
    doubles such as httpretty, send bare LFs); our servers' request parser stays strict.
    The one-pass path (:func:`whole_response`) pays one ``count`` to leave such heads
    to this parser."""
    end = buf.find(b"\r\n\r\n")
    # An empty line before that one ends in a bare LF: "\n\n" or "\n\r\n". (Searching
    # up to end + 2 cannot match inside the CRLF CRLF itself.)
    stop = len(buf) if end < 0 else end + 2
    lf = buf.find(b"\n\n", 0, stop)
    crlf = buf.find(b"\n\r\n", 0, stop)
    if lf < 0 and crlf < 0:
        if end < 0:
            return -1, -1, False
        # a bare LF inside the head is a line end too, as in http.client
        return end, end + 4, buf.count(b"\n", 0, end) != buf.count(b"\r\n", 0, end)
    if crlf < 0 or 0 <= lf < crlf:
        at, start = lf, lf + 2
    else:
        at, start = crlf, crlf + 3
    return (at - 1 if at and buf[at - 1] == 13 else at), start, True  # 13: a CR before LF


class ResponseTooLarge(RemoteProtocolError):
    """A response body is larger than the client's ``max_body`` (see docs/limits.md)."""


class ResponseParser:
    """Feed bytes in; :attr:`response` is set once a whole response arrived.

    Args:
        head: the request was HEAD (the response has no body whatever it says).
        pipelined: bytes after the response belong to the next one: keep them in
            :attr:`extra` instead of raising.
        max_body: the largest body accepted (None: no limit).
        stream: do not gather the body: :attr:`head` is set once the head arrived,
            :meth:`take` returns the body bytes decoded so far, and :attr:`response`
            (with an empty body) marks the end.
    """

    def __init__(
        self,
        head: bool = False,
        pipelined: bool = False,
        max_body: int | None = None,
        stream: bool = False,
    ) -> None:
        self._head_request = head
        self._pipelined = pipelined
        self._max_body = max_body
        self._stream = stream
        #: the status line and headers, once received (streaming mode)
        self.head: ParsedResponse | None = None
        self._out = bytearray()
        #: bytes received after the complete response (pipelined mode only)
        self.extra = b""
        self._buf = bytearray()
        self._resp: ParsedResponse | None = None
        self._mode = ""  # "", "length", "chunked", "close"
        self._remaining = 0
        self._chunks = bytearray()
        self._chunk_state = "size"  # size, data, trailer
        self.response: ParsedResponse | None = None
        #: True once any byte was fed.
        self.started = False
        #: set by a reader once the connection reported end of stream
        self.eof = False

    def feed(self, data: bytes) -> ParsedResponse | None:
        """Add received bytes; returns the response once complete (else None)."""
        if self.response is not None:
            if data:
                # Bytes after a complete response: the server is out of step.
                raise RemoteProtocolError("data after a complete response", data)
            return self.response
        if data:
            if not self.started and not self._head_request and not self._stream:
                self.started = True
                fast = whole_response(data, self._pipelined)
                if fast is not None and (
                    self._max_body is None or len(fast[0].body) <= self._max_body
                ):
                    self.response, self.extra = fast
                    return self.response
            self.started = True
        self._buf += data
        if self._resp is None and not self._parse_head():
            return None
        self._parse_body()
        return self.response

    def feed_eof(self) -> ParsedResponse:
        """The connection closed: finish a read-until-close body or fail."""
        if self.response is not None:
            return self.response
        if self._resp is not None and self._mode == "close":
            if self._max_body is not None and len(self._buf) > self._max_body:
                raise ResponseTooLarge("response body too large", f"{len(self._buf)} bytes")
            self._resp.body = b"" if self._stream else bytes(self._buf)
            self._resp.keep_alive = False
            self.response = self._resp
            return self._resp
        raise RemoteProtocolError("connection closed before a complete response", self._buf[:200])

    # -- head -----------------------------------------------------------------------

    def _parse_head(self) -> bool:
        while True:
            end, start, bare_lf = _head_end(self._buf)
            if end < 0:
                if len(self._buf) > MAX_HEAD:
                    raise RemoteProtocolError("response head too large", self._buf[:200])
                return False
            head = bytes(self._buf[:end])
            del self._buf[:start]
            resp = self._head(head, bare_lf)
            if 100 <= resp.status < 200 and resp.status != 101:
                continue  # interim response (100 Continue): the real one follows
            self._resp = resp
            self.head = resp
            self._frame(resp)
            return True

    def _head(self, head: bytes, bare_lf: bool = False) -> ParsedResponse:
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes anything
            raise RemoteProtocolError("undecodable head", head) from exc
        # a head with a bare LF has its lines end in LF or CRLF (see _head_end)
        lines = text.replace("\r\n", "\n").split("\n") if bare_lf else text.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise RemoteProtocolError("bad status line", lines[0])
        version, code = parts[0], parts[1]
        if len(code) != 3 or not code.isascii() or not code.isdigit():
            raise RemoteProtocolError("bad status code", lines[0])
        headers = _header_dict(lines[1:])
        conn = headers.get("connection", "").lower()
        keep = "keep-alive" in conn if version == "HTTP/1.0" else "close" not in conn
        reason = parts[2] if len(parts) > 2 else ""
        return ParsedResponse(int(code), reason, b"", keep, head, headers)

    def _frame(self, resp: ParsedResponse) -> None:
        te = resp.headers.get("transfer-encoding", "").lower()
        if self._head_request or resp.status in (204, 304):
            self._mode, self._remaining = "length", 0
        elif te:
            if te.split(",")[-1].strip() != "chunked":
                raise RemoteProtocolError("unsupported transfer-encoding", te)
            self._mode = "chunked"
        elif "content-length" in resp.headers:
            raw = resp.headers["content-length"].split(",")
            values = {v.strip() for v in raw}
            if len(values) != 1:
                raise RemoteProtocolError(
                    "conflicting content-length", resp.headers["content-length"]
                )
            value = values.pop()
            if not value.isascii() or not value.isdigit():
                raise RemoteProtocolError("bad content-length", value)
            self._mode, self._remaining = "length", int(value)
            if self._max_body is not None and self._remaining > self._max_body:
                raise ResponseTooLarge("response body too large", f"{self._remaining} bytes")
        else:
            self._mode = "close"
            resp.keep_alive = False

    # -- body -----------------------------------------------------------------------

    def _parse_body(self) -> None:
        resp = self._resp
        assert resp is not None
        if self._stream and self._mode != "chunked":
            self._stream_body(resp)
        elif self._mode == "length":
            if len(self._buf) >= self._remaining:
                resp.body = bytes(self._buf[: self._remaining])
                extra = len(self._buf) - self._remaining
                if extra and self._pipelined:
                    self.extra = bytes(self._buf[self._remaining :])
                self._buf.clear()
                self.response = resp
                if extra and not self._pipelined:
                    raise RemoteProtocolError("data after a complete response", f"{extra} bytes")
        elif self._mode == "chunked":
            self._parse_chunks(resp)
        elif self._max_body is not None and len(self._buf) > self._max_body:
            raise ResponseTooLarge("response body too large", f"{len(self._buf)} bytes")

    def _stream_body(self, resp: ParsedResponse) -> None:
        buf = self._buf
        if self._mode == "close":
            self._out += buf
            buf.clear()
            return
        n = min(len(buf), self._remaining)
        self._out += buf[:n]
        del buf[:n]
        self._remaining -= n
        if self._remaining == 0:
            self._complete(resp)

    def _complete(self, resp: ParsedResponse) -> None:
        """*resp* is whole: what is left in the buffer is the next response's (pipelined)
        or a server out of step."""
        self.response = resp
        buf = self._buf
        if buf and self._pipelined:
            self.extra = bytes(buf)
            buf.clear()
        elif buf:
            raise RemoteProtocolError("data after a complete response", buf[:100])

    def take(self) -> bytes:
        """Streaming mode: the decoded body bytes received since the last call."""
        src = self._chunks if self._mode == "chunked" else self._out
        data = bytes(src)
        src.clear()
        return data

    def _parse_chunks(self, resp: ParsedResponse) -> None:
        buf = self._buf
        while True:
            if self._chunk_state == "size":
                size = _take_chunk_size(buf)
                if size is None:
                    return
                if size == 0:
                    self._chunk_state = "trailer"
                else:
                    self._remaining = size
                    self._chunk_state = "data"
            elif self._chunk_state == "data":
                limit = self._max_body
                if limit is not None and len(self._chunks) + self._remaining > limit:
                    raise ResponseTooLarge("response body too large", f"over {limit} bytes")
                if len(buf) < self._remaining + 2:
                    return
                if buf[self._remaining : self._remaining + 2] != b"\r\n":
                    raise RemoteProtocolError("chunk not followed by CRLF", buf[:100])
                self._chunks += buf[: self._remaining]
                del buf[: self._remaining + 2]
                self._chunk_state = "size"
            else:  # trailer: header lines up to an empty line
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise RemoteProtocolError("trailer too large", buf[:100])
                    return
                del buf[: end + 2]
                if end == 0:
                    resp.body = b"" if self._stream else bytes(self._chunks)
                    self._complete(resp)
                    return


_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


def decode_gzip(resp: ParsedResponse) -> bytes:
    """The body of *resp*, gunzipped when it says ``Content-Encoding: gzip``.

    Raises:
        RemoteProtocolError: the body is not valid gzip.
    """
    # A response from the one-pass parser has every header line checked but its
    # dict not built yet: without a Content-Encoding line there is nothing to decode.
    if resp._headers is None and _CE not in resp.raw_head.lower():
        return resp.body
    if resp.headers.get("content-encoding", "").lower() != "gzip":
        return resp.body
    try:
        return gzip.decompress(resp.body)
    except (OSError, EOFError, zlib.error) as exc:
        raise RemoteProtocolError("bad gzip body", resp.body[:64]) from exc


_HEAD_PREFIX: dict[tuple[int, str], bytes] = {}


def encode_response(
    status: int,
    body: bytes,
    content_type: str = "application/json",
    *,
    keep_alive: bool = True,
    headers: Mapping[str, str] | None = None,
    head_only: bool = False,
) -> bytes:
    """One HTTP/1.1 response as a single bytes object (written in one send)."""
    prefix = _HEAD_PREFIX.get((status, content_type))
    if prefix is None:
        prefix = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: "
        ).encode("latin-1")
        if len(_HEAD_PREFIX) < 256:  # a few statuses and types in practice: keep them
            _HEAD_PREFIX[(status, content_type)] = prefix
    if keep_alive and not headers:
        if head_only:
            return b"%s%d\r\n\r\n" % (prefix, len(body))
        return b"%s%d\r\n\r\n%s" % (prefix, len(body), body)
    lines = [f"{len(body)}"]
    if not keep_alive:
        lines.append("Connection: close")
    for name, value in (headers or {}).items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"invalid header {name!r}")
        lines.append(f"{name}: {value}")
    head = prefix + ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body
