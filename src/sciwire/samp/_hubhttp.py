"""The hub's Standard Profile HTTP server: XML-RPC POSTs on the shared HTTP/1.1 layer.

Every hub method but ``callAndWait`` completes without waiting, so it is answered
straight from ``data_received`` with no task; ``callAndWait`` runs as a task. Responses
leave in request order on each keep-alive connection (HTTP/1.1 pipelining rules).
Framing, limits and ordering come from :mod:`sciwire.core.http` (through
:class:`sciwire.samp._http.HttpServerProtocol`, the callback servers' connection too).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Union

from sciwire.samp._http import Accepted, HttpServerProtocol

__all__ = ["Handler", "StdConnection"]

logger = logging.getLogger(__name__)

#: Turns a request body into a response body, now or later.
Handler = Callable[[bytes], Union[bytes, Awaitable[bytes]]]  # noqa: UP007


class StdConnection(HttpServerProtocol):
    """One client connection to the Standard Profile endpoint.

    Args:
        handle: the hub's request handler.
        max_body: the largest request body accepted (413 beyond).
        connections: the server's set of live connections.
        on_bad: called for each malformed request (counted by the hub).
        accepted: the server's connections from accept to close (for its stop).
        early: see :class:`~sciwire.samp._http.HttpServerProtocol` (False for TLS).
    """

    def __init__(
        self,
        handle: Handler,
        max_body: int,
        connections: set[StdConnection],
        on_bad: Callable[[], None],
        accepted: Accepted | None = None,
        early: bool = True,
    ) -> None:
        super().__init__(
            handle,
            max_body,
            on_bad,
            connections,
            accepted=accepted,
            early=early,
            refusal=b"SAMP hub: POST XML-RPC",
        )
