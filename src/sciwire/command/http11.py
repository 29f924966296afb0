"""A small sans-I/O HTTP/1.1 codec for the client's hot path.

:func:`encode_request` builds one request as a single bytes object (so it goes out in
one ``sendall``), and :class:`ResponseParser` turns received bytes into a
:class:`ParsedResponse`: status line, headers, then a body framed by
``Content-Length``, ``Transfer-Encoding: chunked`` or the connection closing. Interim
1xx responses are skipped. Malformed input raises
:class:`~sciwire.errors.RemoteProtocolError`; nothing else escapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sciwire.errors import RemoteProtocolError

__all__ = ["MAX_HEAD", "ParsedResponse", "ResponseParser", "encode_request"]

#: Largest status line + headers accepted.
MAX_HEAD = 64 * 1024
_MAX_CHUNK_LINE = 1024


def encode_request(
    method: str, path: str, host: str, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    """One HTTP/1.1 request (head and body) as bytes; adds Host and Content-Length."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if "\r" in name or "\n" in name or "\r" in str(value) or "\n" in str(value):
            raise ValueError(f"invalid header {name!r}")
        lines.append(f"{name}: {value}")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


@dataclass
class ParsedResponse:
    """A whole HTTP response.

    Attributes:
        status: the status code.
        reason: the reason phrase.
        headers: header names lower-cased; repeated headers joined with ", ".
        body: the decoded (de-chunked) body.
        keep_alive: whether the connection may carry another request.
    """

    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    keep_alive: bool = True


class ResponseParser:
    """Feed bytes in; :attr:`response` is set once a whole response arrived.

    Args:
        head: the request was HEAD (the response has no body whatever it says).
    """

    def __init__(self, head: bool = False) -> None:
        self._head_request = head
        self._buf = bytearray()
        self._resp: ParsedResponse | None = None
        self._mode = ""  # "", "length", "chunked", "close"
        self._remaining = 0
        self._chunks = bytearray()
        self._chunk_state = "size"  # size, data, trailer
        self.response: ParsedResponse | None = None
        #: True once any byte was fed.
        self.started = False

    def feed(self, data: bytes) -> ParsedResponse | None:
        """Add received bytes; returns the response once complete (else None)."""
        if self.response is not None:
            if data:
                # Bytes after a complete response: the server is out of step.
                raise RemoteProtocolError("data after a complete response", data)
            return self.response
        if data:
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
            self._resp.body = bytes(self._buf)
            self._resp.keep_alive = False
            self.response = self._resp
            return self._resp
        raise RemoteProtocolError("connection closed before a complete response", self._buf[:200])

    # -- head -----------------------------------------------------------------------

    def _parse_head(self) -> bool:
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEAD:
                    raise RemoteProtocolError("response head too large", self._buf[:200])
                return False
            head = bytes(self._buf[:end])
            del self._buf[: end + 4]
            resp = self._head(head)
            if 100 <= resp.status < 200 and resp.status != 101:
                continue  # interim response (100 Continue): the real one follows
            self._resp = resp
            self._frame(resp)
            return True

    def _head(self, head: bytes) -> ParsedResponse:
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes anything
            raise RemoteProtocolError("undecodable head", head) from exc
        lines = text.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise RemoteProtocolError("bad status line", lines[0])
        version, code = parts[0], parts[1]
        if len(code) != 3 or not code.isdigit():
            raise RemoteProtocolError("bad status code", lines[0])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise RemoteProtocolError("bad header line", line)
            key = name.lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        conn = headers.get("connection", "").lower()
        keep = "keep-alive" in conn if version == "HTTP/1.0" else "close" not in conn
        return ParsedResponse(int(code), parts[2] if len(parts) > 2 else "", headers, b"", keep)

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
            if not value.isdigit():
                raise RemoteProtocolError("bad content-length", value)
            self._mode, self._remaining = "length", int(value)
        else:
            self._mode = "close"
            resp.keep_alive = False

    # -- body -----------------------------------------------------------------------

    def _parse_body(self) -> None:
        resp = self._resp
        assert resp is not None
        if self._mode == "length":
            if len(self._buf) >= self._remaining:
                resp.body = bytes(self._buf[: self._remaining])
                extra = len(self._buf) - self._remaining
                self._buf.clear()
                self.response = resp
                if extra:
                    raise RemoteProtocolError("data after a complete response", f"{extra} bytes")
        elif self._mode == "chunked":
            self._parse_chunks(resp)

    def _parse_chunks(self, resp: ParsedResponse) -> None:
        buf = self._buf
        while True:
            if self._chunk_state == "size":
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > _MAX_CHUNK_LINE:
                        raise RemoteProtocolError("chunk size line too long", buf[:100])
                    return
                line = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[: end + 2]
                try:
                    size = int(line, 16)
                except ValueError:
                    raise RemoteProtocolError("bad chunk size", line) from None
                if size < 0:
                    raise RemoteProtocolError("bad chunk size", line)
                if size == 0:
                    self._chunk_state = "trailer"
                else:
                    self._remaining = size
                    self._chunk_state = "data"
            elif self._chunk_state == "data":
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
                    resp.body = bytes(self._chunks)
                    self.response = resp
                    if buf:
                        raise RemoteProtocolError("data after a complete response", buf[:100])
                    return
