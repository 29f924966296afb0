"""How the hub carries callbacks to Standard Profile clients.

One keep-alive connection pool per callback URL, on the shared HTTP/1.1 client pool (via
:mod:`sciwire.samp._http`; a general HTTP client costs more per message than the XML
itself), over TLS for ``https`` callback URLs; nothing here uses aiohttp. A message
sent to many clients is encoded once, each recipient only getting its own private key
spliced in.
"""

from __future__ import annotations

import logging
import ssl
import urllib.parse
from typing import Any

from sciwire.samp import _protocol as P
from sciwire.samp._http import HttpClientPool
from sciwire.samp._hubstate import Delivery
from sciwire.samp.errors import SAMPDataError

__all__ = ["Courier"]

logger = logging.getLogger(__name__)


class Courier:
    """Encodes and posts deliveries; one instance per hub.

    Args:
        pool_size: idle keep-alive connections kept per client endpoint.
        max_body: the largest reply body accepted.
    """

    def __init__(self, pool_size: int = 20, max_body: int = P.MAX_BODY_BYTES) -> None:
        self.pool_size = pool_size
        self.max_body = max_body
        self._pools: dict[str, HttpClientPool] = {}
        #: TLS settings for ``https`` callback endpoints (None: the system's defaults)
        self.ssl_context: ssl.SSLContext | None = None

    @staticmethod
    def encode(delivery: Delivery, cache: dict[int, bytes] | None = None) -> bytes:
        """The XML-RPC body of *delivery*; *cache* shares the encoding of shared args."""
        tail = None if cache is None else cache.get(id(delivery.args))
        if tail is None:
            tail = P.encode_params(delivery.args)
            if cache is not None:
                cache[id(delivery.args)] = tail
        method = f"samp.client.{delivery.method}"
        return P.encode_keyed_call(method, delivery.recipient.private_key, tail)

    async def post(self, url: str, body: bytes) -> Any:
        """POST *body* to a client's callback URL; a fault in the reply raises.

        Client callbacks return nothing the hub uses, so a reply without a fault is
        not decoded (None is returned).

        Raises:
            ConnectError: the client cannot be reached (it is gone).
            SAMPProxyError: the client answered with a fault.
            SAMPDataError, sciwire.errors.Timeout, RemoteProtocolError: any other failure
                (a URL that is not http(s) too: the hub refuses those at
                ``setXmlrpcCallback``, so none should get here).
        """
        pool = self._pools.get(url)
        if pool is None:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https"):
                raise SAMPDataError(f"callback URL is not http(s): {url[:80]!r}")
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            tls = parts.scheme == "https"
            pool = HttpClientPool(
                parts.hostname or "127.0.0.1",
                parts.port or (443 if tls else 80),
                target,
                max_idle=self.pool_size,
                max_body=self.max_body,
                ssl_context=(self.ssl_context or ssl.create_default_context()) if tls else None,
            )
            self._pools[url] = pool
        reply = await pool.post(body)
        if reply.start[1] != "200":
            raise SAMPDataError(f"HTTP {reply.start[1]} from the callback endpoint")
        if b"<fault>" not in reply.body:
            return None  # callbacks return nothing useful: only a fault matters
        return P.decode_response(reply.body, max_size=self.max_body)

    async def drop(self, url: str | None) -> None:
        """Close the connections to a departed client."""
        pool = self._pools.pop(url, None) if url is not None else None
        if pool is not None:
            await pool.close()

    async def close(self) -> None:
        """Close every connection."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.close()
