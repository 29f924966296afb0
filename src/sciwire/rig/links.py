"""One accepted TCP connection of a rig server: its transport, address and splitter."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sciwire.core.streams import ReadIntoProtocol
from sciwire.rig.framing import StreamSplitter

if TYPE_CHECKING:
    from sciwire.rig.client import EchoProtocol
    from sciwire.rig.communicator import Addr

__all__ = ["StreamLink"]


class StreamLink(ReadIntoProtocol):
    """One accepted TCP connection of a server: its transport and stream splitter
    (reads land in a reused buffer: see :mod:`sciwire.core.streams`)."""

    def __init__(self, owner: EchoProtocol) -> None:
        self.owner = owner
        self.splitter = StreamSplitter(owner.max_buffer_size)
        self.transport: asyncio.Transport | None = None
        self.addr: Addr = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # (uvloop's: no asyncio.Transport)
        peer = transport.get_extra_info("peername")
        self.addr = (peer[0], peer[1])
        self.owner._links[self.addr] = self
        self.owner.logger.debug("TCP connection from %s", self.addr)

    def data_received(self, data: bytes) -> None:
        self.owner._stream_data(self.splitter, data, self.addr, self.transport)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.owner._links.get(self.addr) is self:
            del self.owner._links[self.addr]
        self.owner._peer_gone(self.addr, exc)
