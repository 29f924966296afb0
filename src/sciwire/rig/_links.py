"""One accepted TCP connection of a rig server, and what it needs of its server.

A :class:`StreamLink` knows its owner only through :class:`LinkOwner` (as
``core.http.server``'s connections know their server through ``ConnectionHost``):
it says when it is made, hands over what it reads and says when it is gone. The
owner keeps its own books (which links are open, what each holds), so this module
imports nothing of the communicator that owns it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from sciwire.core.streams import ReadIntoProtocol
from sciwire.rig._framing import StreamSplitter

__all__ = ["LinkOwner", "StreamLink"]


class LinkOwner(Protocol):
    """What a :class:`StreamLink` needs from the server that accepted it (an
    ``EchoProtocol`` in the server role)."""

    #: the most bytes the link may hold for one incomplete message
    max_buffer_size: int

    def link_made(self, link: StreamLink) -> None:
        """Register *link* (its transport and address are set)."""

    def link_data(self, link: StreamLink, data: bytes) -> None:
        """Handle the bytes of one read of *link*."""

    def link_lost(self, link: StreamLink, exc: Exception | None) -> None:
        """Unregister *link*: its connection is closed (*exc*: why, or None)."""


class StreamLink(ReadIntoProtocol):
    """One accepted TCP connection of a server: its transport, peer address and stream
    splitter (reads land in a reused buffer: see :mod:`sciwire.core.streams`).

    Args:
        owner: the server it reports to.
    """

    def __init__(self, owner: LinkOwner) -> None:
        self.owner = owner
        self.splitter = StreamSplitter(owner.max_buffer_size)
        self.transport: asyncio.Transport | None = None
        self.addr: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # (uvloop's: no asyncio.Transport)
        peer = transport.get_extra_info("peername")
        self.addr = (peer[0], peer[1])
        self.owner.link_made(self)

    def data_received(self, data: bytes) -> None:
        self.owner.link_data(self, data)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.link_lost(self, exc)
