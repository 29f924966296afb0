"""The hub's Standard Profile HTTP server: XML-RPC POSTs on the shared HTTP/1.1 layer.

Every hub method but ``callAndWait`` completes without waiting, so it is answered
straight from ``data_received`` with no task; ``callAndWait`` runs as a task. Responses
leave in request order on each keep-alive connection (HTTP/1.1 pipelining rules).
Framing, limits and ordering come from :mod:`sciwire.core.http` (through
:class:`sciwire.samp._http.XmlRpcHost`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Union

from sciwire.core.http.server import HttpConnection
from sciwire.samp._http import XmlRpcHost

__all__ = ["Handler", "StdConnection"]

logger = logging.getLogger(__name__)

#: Turns a request body into a response body, now or later.
Handler = Callable[[bytes], Union[bytes, Awaitable[bytes]]]  # noqa: UP007


class StdConnection(HttpConnection):
    """One client connection to the Standard Profile endpoint.

    Args:
        handle: the hub's request handler.
        max_body: the largest request body accepted (413 beyond).
        connections: the server's set of live connections (for closing at stop).
        on_bad: called for each malformed request (counted by the hub).
    """

    def __init__(
        self,
        handle: Handler,
        max_body: int,
        connections: set[StdConnection],
        on_bad: Callable[[], None],
    ) -> None:
        super().__init__(
            XmlRpcHost(handle, max_body, on_bad, connections, b"SAMP hub: POST XML-RPC")
        )

    def close(self) -> None:
        """Close the connection and cancel what it still runs."""
        for task in list(self.pending):
            task.cancel()
        if self.transport is not None:
            self.transport.close()
