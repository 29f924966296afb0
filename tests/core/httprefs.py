"""The two reference HTTP/1.1 request parsers (h11 and llhttp through httptools) and
ours behind one function each, for the differential tests: every one returns
``("ok", method, target, headers, body)`` for the first request in the bytes,
``"reject"`` or ``"incomplete"``."""

from __future__ import annotations

from typing import Any

import h11
import httptools

from sciwire.core.http.codec import RequestParser
from sciwire.errors import RemoteProtocolError

Outcome = Any


def _joined(pairs: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def h11_parse(data: bytes) -> Outcome:
    """What h11 (server side) reads."""
    conn = h11.Connection(h11.SERVER)
    try:
        conn.receive_data(data)
        request = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return "incomplete"
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return (
                    "ok",
                    request.method.decode("latin-1"),
                    request.target.decode("latin-1"),
                    _joined([(n, v) for n, v in request.headers]),
                    body,
                )
    except h11.RemoteProtocolError:
        return "reject"


class _Callbacks:
    def __init__(self) -> None:
        self.url = b""
        self.pairs: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.done = False
        self.head_done = False

    def on_headers_complete(self) -> None:
        self.head_done = True  # what follows are trailer fields: not compared

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.head_done:
            self.pairs.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


class _Stop(Exception):
    pass


def llhttp_parse(data: bytes) -> Outcome:
    """What llhttp (through httptools, default strict settings) reads."""
    cb = _Callbacks()
    parser = httptools.HttpRequestParser(cb)

    def complete() -> None:
        cb.done = True
        raise _Stop  # the first request only: pipelined bytes are not its business

    cb.on_message_complete = complete  # type: ignore[method-assign]
    try:
        parser.feed_data(data)
    except httptools.HttpParserCallbackError:
        pass
    except httptools.HttpParserUpgrade:
        return "reject"
    except httptools.HttpParserError:
        return "reject"
    if not cb.done:
        return "incomplete"
    method = parser.get_method().decode("latin-1")
    return ("ok", method, cb.url.decode("latin-1"), _joined(cb.pairs), cb.body)


def ours_parse(data: bytes, step: int | None = None) -> Outcome:
    """What sciwire's RequestParser reads, fed whole or *step* bytes at a time."""
    parser = RequestParser()
    step = step or len(data) or 1
    try:
        for i in range(0, len(data), step):
            got = parser.feed(data[i : i + step])
            if got:
                req = got[0]
                return ("ok", req.method, req.target, req.headers, req.body)
    except RemoteProtocolError:
        return "reject"
    return "incomplete"
