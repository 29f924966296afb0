"""Opening a communicator's sockets: bind a server or connect a client, UDP or TCP.

``EchoProtocol.server`` and ``EchoProtocol.client`` (in :mod:`sciwire.rig._client`)
call these. They know sockets and asyncio, not the communicator: a server's socket
is bound first and the communicator is made (by the caller's *make*) with the
address actually bound, so nothing here writes into it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from sciwire.rig._datagram import datagram_socket, open_datagram
from sciwire.rig._errors import ConnectError, RigValueError, UnsupportedTransportError
from sciwire.rig._links import LinkOwner, StreamLink
from sciwire.rig._uri import STREAM_SCHEMES

__all__ = [
    "ServerOwner",
    "bind_datagram",
    "check_scheme",
    "check_socket",
    "connect_datagram",
    "connect_errors",
    "connect_stream",
    "serve_stream",
]


class ServerOwner(LinkOwner, Protocol):
    """A TCP server's communicator: it owns the accepted links and the server."""

    Server: asyncio.AbstractServer | None


S = TypeVar("S", bound=ServerOwner)
D = TypeVar("D", bound=asyncio.DatagramProtocol)


def check_scheme(proc: str) -> None:
    """Refuse a scheme that is neither UDP nor one of iblutil's TCP spellings."""
    if proc != "udp" and proc not in STREAM_SCHEMES:
        raise RigValueError(f"Unsupported protocol {proc!r}: use udp, tcp, ws or wss")


def check_socket(sock: Any, stream: bool) -> None:
    """Refuse a socket whose type does not match the scheme (UDP, or TCP if *stream*).

    Raises:
        UnsupportedTransportError: the mismatch (also RuntimeError).
    """
    kind = getattr(sock, "type", None)
    if kind == socket.SOCK_DGRAM:
        if stream:
            raise UnsupportedTransportError("Unsupported transport layer for UDP")
    elif kind == socket.SOCK_STREAM:
        if not stream:
            raise UnsupportedTransportError("Unsupported transport layer for TCP/IP")
    else:
        raise UnsupportedTransportError(f"Unsupported transport layer with socket type {kind!r}")


@contextlib.contextmanager
def connect_errors(what: str) -> Iterator[None]:
    """Report a socket's ``OSError`` as :class:`ConnectError` (also an OSError)."""
    try:
        yield
    except ConnectError:
        raise
    except OSError as exc:
        raise ConnectError(f"{what}: {exc}") from exc


async def serve_stream(make: Callable[[int], S], host: str, port: int, **kwargs: Any) -> S:
    """Listen on TCP *host*:*port*; ``make(bound_port)`` builds the server's communicator.

    Connections are accepted only once the communicator exists and holds the server.
    """
    loop = asyncio.get_running_loop()
    owner: list[S] = []
    kwargs.setdefault("start_serving", False)
    server = await loop.create_server(lambda: StreamLink(owner[0]), host, port, **kwargs)
    try:
        owner.append(make(server.sockets[0].getsockname()[1]))
        owner[0].Server = server
        await server.start_serving()
    except BaseException:
        server.close()
        raise
    return owner[0]


async def bind_datagram(make: Callable[[int], D], host: str, port: int, **kwargs: Any) -> D:
    """Bind UDP *host*:*port* (or take ``sock=``); ``make(bound_port)`` builds the
    communicator run on it."""
    sock: socket.socket | None = kwargs.pop("sock", None)
    owned = sock is None
    if sock is None:
        sock = await datagram_socket(local_addr=(host, port), **kwargs)
    try:
        protocol = make(sock.getsockname()[1])
        await connect_datagram(protocol, sock=sock)
    except BaseException:
        if owned:
            sock.close()
        raise
    return protocol


async def connect_datagram(protocol: D, **kwargs: Any) -> None:
    """Run *protocol* on a UDP socket (``remote_addr=`` or ``sock=``, as
    ``create_datagram_endpoint``): our draining transport, asyncio's on loops that
    cannot watch sockets."""
    try:
        await open_datagram(protocol, **kwargs)
    except NotImplementedError:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: protocol, **kwargs)


async def connect_stream(
    protocol: asyncio.BaseProtocol, host: str, port: int, **kwargs: Any
) -> None:
    """Connect *protocol* to TCP *host*:*port*."""
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: protocol, host, port, **kwargs)
