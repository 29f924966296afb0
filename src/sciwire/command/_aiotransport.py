"""The asyncio transport of AsyncCommandClient: the shared
:class:`~sciwire.core.http.aioclient.AsyncHttpPool` raising cryosparc-tools' exceptions.

One request in flight per connection by default (no pipelining, so a failed connection
never leaves other calls in doubt), up to ``limit`` connections. The retry rule is the
blocking transport's: only a connection that could not be made is tried again.
"""

from __future__ import annotations

import ssl

from sciwire.command._transport import pool_options
from sciwire.core.http.aioclient import AsyncHttpPool
from sciwire.core.http.client import Endpoint

__all__ = ["AsyncTransport"]


class AsyncTransport(AsyncHttpPool):
    """Keep-alive HTTP/1.1 for one endpoint, shared by the tasks of one event loop.

    Args:
        endpoint: where to connect.
        timeout: seconds allowed to connect, and for each whole response.
        retries: attempts per request (>= 1) when the connection cannot be made.
        retry_seconds: pause between such attempts.
        ssl_context: TLS settings for ``https`` (default: the system's defaults).
        limit: the most connections open at once.
        pipeline: the most requests in flight on one connection (1: no pipelining).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float | None,
        retries: int,
        retry_seconds: float,
        ssl_context: ssl.SSLContext | None = None,
        limit: int = 64,
        pipeline: int = 1,
    ) -> None:
        super().__init__(
            endpoint,
            limit=limit,
            pipeline=pipeline,
            **pool_options(timeout, retries, retry_seconds, ssl_context),
        )
