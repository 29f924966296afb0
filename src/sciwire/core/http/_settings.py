"""What both connection pools keep about their endpoint (:class:`PoolSettings`): the
base of the blocking :class:`~sciwire.core.http.client.HttpPool` and the asyncio
:class:`~sciwire.core.http.aioclient.AsyncHttpPool`."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping

from sciwire.core.http import limits
from sciwire.core.http._endpoint import Endpoint, host_header
from sciwire.core.http._errors import DEFAULT, ErrorFactory, invalid_response
from sciwire.core.http._policy import Resend, RetryPolicy
from sciwire.core.http.codec import ResponseTooLarge, encode_request
from sciwire.core.http.proxy import Proxy, absolute_form, proxy_for
from sciwire.errors import RemoteProtocolError

__all__ = ["PoolSettings"]


class PoolSettings:
    """What both connection pools (blocking :class:`HttpPool`, asyncio
    :class:`~sciwire.core.http.aioclient.AsyncHttpPool`) keep about their endpoint,
    and the request helpers that need only that."""

    def __init__(
        self,
        endpoint: Endpoint,
        timeout: float | None,
        retries: int,
        retry_seconds: float,
        ssl_context: ssl.SSLContext | None,
        retry: RetryPolicy,
        error_factory: ErrorFactory,
        name: str,
        max_body: int | None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        #: the retry decision, asked by both pools alike (see :mod:`._policy`)
        self.resend = Resend(retry, retries)
        self.retry_seconds = retry_seconds
        self.ssl_context = ssl_context
        self.error = error_factory
        self.name = name
        #: the largest response body gathered (None: no limit); see docs/limits.md
        self.max_body: int | None = limits.MAX_RESPONSE_BODY if max_body is DEFAULT else max_body
        self._host_header = host_header(endpoint)
        #: the proxy from http_proxy / https_proxy / no_proxy, as urllib reads them
        self.proxy: Proxy | None = proxy_for(endpoint.scheme, endpoint.host, endpoint.port)
        #: requests through a plain-HTTP proxy name their target in absolute form
        self._origin = (
            endpoint.origin.encode("latin-1")
            if self.proxy is not None and endpoint.scheme == "http"
            else b""
        )

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy (kept by :attr:`resend`, which decides by it)."""
        return self.resend.policy

    @property
    def retries(self) -> int:
        """The most attempts per request (kept by :attr:`resend`)."""
        return self.resend.retries

    def for_proxy(self, data: bytes) -> bytes:
        """*data* as it goes on the wire: unchanged unless a plain-HTTP proxy is used."""
        if self._origin and self.proxy is not None:
            return absolute_form(data, self._origin, self.proxy)
        return data

    def invalid(self, exc: RemoteProtocolError, url: str, log: logging.Logger) -> Exception:
        """The pool's exception for a response that is not valid HTTP; a body over
        ``max_body`` is also logged on *log* as a limit hit (see :mod:`.limits`)."""
        if isinstance(exc, ResponseTooLarge):
            limits.limit_hit(log, "max_body (response)", self.endpoint.origin, str(exc))
        return self.error(RemoteProtocolError, invalid_response(exc), url, exc.data)

    def request_prefix(self, method: str, path: str, headers: Mapping[str, str]) -> bytes:
        """The head of a request up to ``Content-Length: `` (for ``exchange``)."""
        head = encode_request(method, path, self._host_header, headers, b"")
        return head[: -len(b"0\r\n\r\n")]
