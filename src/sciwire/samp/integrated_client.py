"""The blocking integrated client, drop-in for astropy's ``SAMPIntegratedClient``."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from sciwire.samp._client import SAMPClient, SAMPHubProxy
from sciwire.samp._common import (
    Bindings,
    IntegratedSide,
    client_arguments,
    tls_settings,
)
from sciwire.samp._hubmethods import BlockingHubSide, BlockingSessionSide

__all__ = ["SAMPIntegratedClient"]


class SAMPIntegratedClient(
    IntegratedSide[SAMPHubProxy, SAMPClient], BlockingSessionSide, BlockingHubSide, Bindings[None]
):
    """A SAMP client: hub proxy and callable client in one object.

    Handlers bound with ``bind_receive_*`` run on background worker threads and may
    call any method of this client. Bindings made before :meth:`connect` are kept and
    declared at registration, and survive a disconnect/connect cycle.

    Args:
        name, description, metadata, addr, port, https, key_file, cert_file, cert_reqs,
            ca_certs, ssl_version, callable: as for :class:`SAMPClient`, which this
            makes with its own :class:`SAMPHubProxy` (kept in ``client_arguments``).
            The TLS arguments also apply to calling an ``https`` hub.
    """

    hub: SAMPHubProxy
    client: SAMPClient

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
    ) -> None:
        tls = (https, key_file, cert_file, cert_reqs, ca_certs, ssl_version)
        self._tls, _ = tls_settings(*tls)  # checks the arguments before anything starts
        self.hub = SAMPHubProxy()
        self.client_arguments = client_arguments(name, description, metadata, addr, port, callable)
        self.client = SAMPClient(
            self.hub,
            **self.client_arguments,
            https=https,
            key_file=key_file,
            cert_file=cert_file,
            cert_reqs=cert_reqs,
            ca_certs=ca_certs,
            ssl_version=ssl_version,
        )

    def __enter__(self) -> SAMPIntegratedClient:
        if not self.is_connected:
            self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    # -- connect, disconnect, hub: ping, get_*, notify*, call*, reply and the e* forms
    #    (_hubmethods.py, generated from _ahubmethods.py) ----------------------------

    # -- client: receive_*, bind_*, unbind_*, declare_*, get_* (common.py) ---------

    # The binding methods go through self.client (astropy's way), so a client
    # subclass that keeps astropy's own attribute state works here too.

    def _forward(self, name: str, *args: Any) -> None:
        getattr(self.client, name)(*args)
