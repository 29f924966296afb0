"""Building communicators: bind a server or connect a client, UDP or TCP.

Kept apart from :mod:`sciwire.rig._client` (which calls these from
``EchoProtocol.server`` and ``EchoProtocol.client``) so each module stays small.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from sciwire.rig._datagram import open_datagram
from sciwire.rig._errors import ConnectError, RigValueError
from sciwire.rig._links import StreamLink
from sciwire.rig._uri import STREAM_SCHEMES, format_uri, parse_uri

if TYPE_CHECKING:
    from sciwire.rig._client import EchoProtocol

__all__ = ["open_client", "open_server"]


async def open_server(
    cls: type[EchoProtocol],
    server_uri: Any,
    name: str | None,
    log: logging.Logger | None,
    **kwargs: Any,
) -> EchoProtocol:
    """``EchoProtocol.server``: bind *server_uri* (port 0: any free port)."""
    proc, host, port = parse_uri(server_uri, allow_port_zero=True)
    _check_scheme(proc)
    loop = asyncio.get_running_loop()
    uri = format_uri(proc, host, port or 1)  # validated with a stand-in port until bound
    try:
        if proc in STREAM_SCHEMES:
            protocol = cls(uri, "server", name=name, logger=log)
            tcp_server = await loop.create_server(
                lambda: StreamLink(protocol), host, port, **kwargs
            )
            protocol.Server = tcp_server
            # the listening socket (iblutil's shows the last accepted connection's)
            protocol._socket = tcp_server.sockets[0]
            bound = tcp_server.sockets[0].getsockname()
        else:
            protocol = cls(uri, "server", name=name, logger=log)
            await _open_udp(protocol, local_addr=(host, port), **kwargs)
            bound = protocol._transport.get_extra_info("sockname")
    except OSError as exc:
        raise ConnectError(f"cannot listen on {server_uri}: {exc}") from exc
    protocol.server_uri = format_uri(proc, host, bound[1])
    protocol._peer = (host, bound[1])
    if name is None:
        protocol.name = protocol.server_uri
        if log is None:  # named after the bound address, as iblutil names it
            protocol.logger = logging.getLogger(protocol.name)
    protocol.logger.info("Listening on %s", protocol.server_uri)
    return protocol


async def open_client(
    cls: type[EchoProtocol],
    server_uri: Any,
    name: str | None,
    log: logging.Logger | None,
    **kwargs: Any,
) -> EchoProtocol:
    """``EchoProtocol.client``: connect to *server_uri*."""
    proc, host, port = parse_uri(server_uri)
    _check_scheme(proc)
    uri = format_uri(proc, host, port)
    loop = asyncio.get_running_loop()

    def factory() -> EchoProtocol:
        return cls(uri, "client", name=name, logger=log)

    try:
        if proc in STREAM_SCHEMES:
            _, protocol = await loop.create_connection(factory, host, port, **kwargs)
        else:
            protocol = factory()
            await _open_udp(protocol, remote_addr=(host, port), **kwargs)
    except OSError as exc:
        raise ConnectError(f"cannot connect to {uri}: {exc}") from exc
    return protocol


async def _open_udp(protocol: EchoProtocol, **kwargs: Any) -> None:
    """Give *protocol* a draining UDP transport (asyncio's on loops without add_reader)."""
    try:
        await open_datagram(protocol, **kwargs)
    except NotImplementedError:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: protocol, **kwargs)


def _check_scheme(proc: str) -> None:
    if proc != "udp" and proc not in STREAM_SCHEMES:
        raise RigValueError(f"Unsupported protocol {proc!r}: use udp, tcp, ws or wss")
