"""The asyncio integrated client: hub proxy and client application in one object.

:class:`AsyncSAMPIntegratedClient` has the methods of astropy's
``SAMPIntegratedClient``, returning coroutines to await (``receive_*``,
``bind/unbind_receive_response`` and the ``get_*`` id accessors stay plain methods
where no network is involved). Its hub methods (:mod:`sciwire.samp._ahubmethods`)
are the source the blocking client's are generated from; the network-free ones live
in :mod:`sciwire.samp._common`::

    async with AsyncSAMPIntegratedClient(name="script") as cli:
        await cli.enotify_all("table.load.votable", url="file:///tmp/t.xml")
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any

from sciwire.samp._aclient import AsyncSAMPClient, Receiver, Runner
from sciwire.samp._ahubmethods import AsyncHubSide, AsyncSessionSide
from sciwire.samp._aproxy import AsyncSAMPHubProxy
from sciwire.samp._common import (
    Bindings,
    IntegratedSide,
    client_arguments,
    format_easy_msg,
    format_easy_response,
    tls_settings,
)

__all__ = [
    "AsyncSAMPIntegratedClient",
    "format_easy_msg",
    "format_easy_response",
]


class AsyncSAMPIntegratedClient(
    IntegratedSide[AsyncSAMPHubProxy, AsyncSAMPClient],
    AsyncSessionSide,
    AsyncHubSide,
    Bindings[Coroutine[Any, Any, None]],
):
    """A SAMP client (hub proxy plus callable client) for asyncio code.

    Args:
        name, description, metadata, addr, port, https, key_file, cert_file, cert_reqs,
            ca_certs, ssl_version, callable: as for
            :class:`sciwire.samp.SAMPIntegratedClient` (TLS included).
        runner: runs each incoming callback job (see :class:`AsyncSAMPClient`).
        receiver: answers the callbacks (see :class:`AsyncSAMPClient`).
    """

    hub: AsyncSAMPHubProxy
    client: AsyncSAMPClient

    def __init__(
        self,
        name: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        addr: str | None = None,
        port: int = 0,
        https: bool = False,
        key_file: str | None = None,
        cert_file: str | None = None,
        cert_reqs: int = 0,
        ca_certs: str | None = None,
        ssl_version: Any = None,
        callable: bool = True,
        *,
        runner: Runner | None = None,
        receiver: Receiver | None = None,
    ) -> None:
        tls = (https, key_file, cert_file, cert_reqs, ca_certs, ssl_version)
        self._tls, server_ssl = tls_settings(*tls)
        self.hub = AsyncSAMPHubProxy()
        self.client_arguments = client_arguments(name, description, metadata, addr, port, callable)
        self.client = AsyncSAMPClient(
            self.hub,
            **self.client_arguments,
            runner=runner,
            receiver=receiver,
            ssl_context=server_ssl,
        )

    async def __aenter__(self) -> AsyncSAMPIntegratedClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    # -- connect, disconnect (AsyncSessionSide), hub: ping, get_*, notify*, call*, reply
    #    and the e* forms (AsyncHubSide), all in _ahubmethods.py -------------------

    # -- client: receive_*, bind_*, unbind_*, declare_*, get_* (common.py) ---------

    @property
    def _core_client(self) -> AsyncSAMPClient:
        return self.client

    def _drive(self, coro: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None]:
        return coro  # awaited by the caller
