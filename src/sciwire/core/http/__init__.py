"""One HTTP/1.1 layer for every sciwire package.

* :mod:`~sciwire.core.http.codec`: sans-I/O request/response encoding and incremental
  parsers (Content-Length, chunked, close-delimited, 1xx, pipelining, 100-continue,
  size limits, keep-alive rules).
* :mod:`~sciwire.core.http.client`: a blocking, thread-safe keep-alive pool (TLS, gzip,
  whole-response timeout, a retry policy chosen by the caller).
* :mod:`~sciwire.core.http.aioclient`: an asyncio keep-alive pool (in-flight limit,
  optional pipelining).
* :mod:`~sciwire.core.http.server`: an asyncio server (TCP_NODELAY, one send per
  response, pipelined answers in order, idle timeout, graceful stop).

Failures are :mod:`sciwire.errors` types; packages map them to their own names.
"""

from __future__ import annotations

from sciwire.core.http.aioclient import AsyncHttpPool
from sciwire.core.http.client import Endpoint, HttpPool
from sciwire.core.http.codec import (
    ParsedRequest,
    ParsedResponse,
    RequestParser,
    RequestTooLarge,
    ResponseParser,
    decode_gzip,
    encode_request,
    encode_response,
)
from sciwire.core.http.server import HttpServer, RouteRequest, RouteResponse

__all__ = [
    "AsyncHttpPool",
    "Endpoint",
    "HttpPool",
    "HttpServer",
    "ParsedRequest",
    "ParsedResponse",
    "RequestParser",
    "RequestTooLarge",
    "ResponseParser",
    "RouteRequest",
    "RouteResponse",
    "decode_gzip",
    "encode_request",
    "encode_response",
]
