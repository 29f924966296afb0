"""drms.json's names: ``HttpJsonClient`` (blocking), its asyncio twin, ``HttpJsonRequest``.

``AsyncHttpJsonClient`` (``_async_json``) is the one hand-written client; the blocking
``HttpJsonClient`` (``_sync_json``) is generated from it by tools/unasync.py, so both
have the same calls, retries, timeouts and errors. Both run on :mod:`sciwire.core.http`:
the blocking one on its socket pool, a lean keep-alive client that for small sequential
CGI calls costs far less than a hop through an event-loop thread or http.client, and is
several times faster than drms's one-connection-per-request urlopen (see bench/drms.py);
the asyncio one on its asyncio pool. What both decide after a failure (send again or
raise) is one :class:`~sciwire.drms._transport.RetryPolicy`.
"""

from __future__ import annotations

import logging
import socket
from typing import Any
from urllib.request import Request

from sciwire.drms._async_json import AsyncHttpJsonClient
from sciwire.drms._protocol import JsocInfoConstants, decode_json
from sciwire.drms._sync_json import HttpJsonClient
from sciwire.drms._transport import BlockingTransport
from sciwire.drms.utils import create_request_with_header

__all__ = [
    "AsyncHttpJsonClient",
    "HttpJsonClient",
    "HttpJsonRequest",
    "JsocInfoConstants",
    "const",
    "urlopen",
]

#: drms's older name for the constants (``drms.const.all == "**ALL**"``).
const = JsocInfoConstants

#: the clients' logger (each request URL at DEBUG, or INFO with ``debug=True``)
logger = logging.getLogger(__name__)


class _Opened:
    """What :func:`urlopen` returns: the final ``url`` and a ``read()`` of the body."""

    def __init__(self, url: str, body: bytes) -> None:
        self.url = url
        self._body = body

    def read(self) -> bytes:
        """The whole (decoded) body."""
        return self._body


def urlopen(request: Request | str, timeout: float | None = 60.0) -> _Opened:
    """GET *request* (a URL or a urllib Request, its headers sent) over sciwire's transport.

    The one-shot opener behind :class:`HttpJsonRequest`, as drms.json has one; the
    clients keep their connections instead. Failures are sciwire errors
    (:class:`~sciwire.drms.exceptions.DrmsHttpError` for an HTTP error status).
    """
    if isinstance(request, str):
        request = create_request_with_header(request)
    headers = {k: v for k, v in request.header_items() if k.lower() != "host"}
    transport = BlockingTransport(timeout=timeout, retries=0)
    try:
        resp = transport.get(request.full_url, headers)
    finally:
        transport.close()
    return _Opened(resp.url, resp.body)


class HttpJsonRequest:
    """One CGI request, made when created: ``url``, ``raw_data`` (bytes), ``data`` (decoded).

    Args:
        url: the full request URL.
        encoding: the text encoding of the answer (the server config's ``encoding``).
        timeout: seconds to wait (``socket.getdefaulttimeout()`` wins when set, as in drms).
    """

    def __init__(self, url: str, encoding: str, timeout: float | None = 60.0) -> None:
        timeout = socket.getdefaulttimeout() or timeout
        self._http = urlopen(create_request_with_header(url), timeout=timeout)
        self._encoding = encoding
        self._raw: bytes | None = None
        self._data: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<HttpJsonRequest: {self.url}>"

    @property
    def url(self) -> str:
        """The requested URL."""
        return self._http.url

    @property
    def raw_data(self) -> bytes:
        """The answer's body."""
        if self._raw is None:
            self._raw = self._http.read()
        return self._raw

    @property
    def data(self) -> dict[str, Any]:
        """The decoded JSON object (RemoteProtocolError if it is not one)."""
        if self._data is None:
            self._data = decode_json(self.raw_data, self._encoding)
        return self._data
