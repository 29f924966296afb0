"""The asyncio XML-RPC caller of SAMP clients: the source of the blocking twin.

:class:`RpcCaller` calls methods at one URL over keep-alive HTTP (the shared pools, via
:mod:`sciwire.samp._http`); what a call decides (its wait, its errors, reading the
answer) is in :mod:`sciwire.samp._rpc`. ``tools/unasync.py`` generates
:mod:`sciwire.samp._caller` (``BlockingRpcCaller``, over ``BlockingHttpClient``) from
this file; edit this file, never the twin.
"""

from __future__ import annotations

import ssl
from typing import Any

from sciwire.errors import ConnectError, RemoteProtocolError, Timeout
from sciwire.samp._http import HttpClientPool
from sciwire.samp._protocol import encode_call
from sciwire.samp._rpc import (
    MAX_BODY,
    call_failed,
    call_limit,
    call_result,
    context_for,
    split_url,
)

__all__ = ["RpcCaller"]


class RpcCaller:
    """Calls XML-RPC methods at one URL over keep-alive HTTP.

    Args:
        url: the endpoint (``samp.hub.xmlrpc.url``), an ``http://`` or ``https://`` URL.
        pool_size: the most idle connections kept open.
        timeout: default seconds to wait for an answer (None waits forever).
        ssl_context: the TLS settings for an ``https`` URL (None: the system's).

    Raises:
        SAMPHubError: the URL is not an http(s) URL.
    """

    def __init__(
        self,
        url: str,
        pool_size: int = 20,
        timeout: float | None = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        host, port, path = split_url(url)
        self.url = url
        self.timeout = timeout
        # no limit on calls in flight: a callAndWait holds its connection until the
        # callee replies, and the callee may be this very client
        self._http = HttpClientPool(
            host,
            port,
            path,
            max(1, int(pool_size)),
            MAX_BODY,
            max_connections=None,
            ssl_context=context_for(url, ssl_context),
        )

    async def call(self, method: str, *params: Any, timeout: float | str | None = "default") -> Any:
        """Call *method* with *params* and return its result.

        Args:
            method: the full XML-RPC method name.
            params: the arguments, already in the SAMP data model.
            timeout: seconds to wait, None for no limit; the default is the caller's.

        Raises:
            SAMPProxyError: the peer answered with a fault.
            SAMPHubConnectError: the peer could not be reached.
            SAMPHubError: the peer answered with an HTTP error.
            SAMPHubProtocolError: the answer was not XML-RPC.
            Timeout: no answer in time.
        """
        limit = call_limit(self.timeout, timeout)
        body = encode_call(method, params)
        try:
            msg = await self._http.post(body, limit)
        except (Timeout, ConnectError, RemoteProtocolError) as exc:
            raise call_failed(method, self.url, limit, exc) from exc
        return call_result(method, msg)

    async def close(self) -> None:
        """Close the kept-alive connections."""
        await self._http.close()
