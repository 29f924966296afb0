"""The sans-I/O HTTP/1.1 codec shared by every sciwire package.

:func:`encode_request` / :func:`encode_response` build one message as a single bytes
object (so it goes out in one send). :class:`ResponseParser` turns received bytes into a
:class:`ParsedResponse` (body framed by ``Content-Length``, ``Transfer-Encoding:
chunked`` or the connection closing; interim 1xx responses skipped; pipelined extra
bytes kept), :class:`RequestParser` turns them into :class:`ParsedRequest` objects
(pipelining, chunked bodies, ``Expect: 100-continue``, size limits). Malformed input
raises :class:`~sciwire.errors.RemoteProtocolError`; nothing else escapes. No sockets,
no clock.

The code lives in :mod:`._request` (request encoding and the strict request parser)
and :mod:`._response` (the response parser, gzip and response encoding), over the
shared grammar of :mod:`._grammar`; this module is their one public door.
"""

from __future__ import annotations

from sciwire.core.http._request import (
    ParsedRequest,
    RequestParser,
    RequestTooLarge,
    encode_request,
)
from sciwire.core.http._response import (
    ParsedResponse,
    ResponseParser,
    ResponseTooLarge,
    decode_gzip,
    encode_response,
    whole_response,
)
from sciwire.core.http.limits import MAX_HEAD

__all__ = [
    "MAX_HEAD",
    "ParsedRequest",
    "ParsedResponse",
    "RequestParser",
    "RequestTooLarge",
    "ResponseParser",
    "ResponseTooLarge",
    "decode_gzip",
    "encode_request",
    "encode_response",
    "whole_response",
]
