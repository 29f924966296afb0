"""Helpers for rig tests: communicators that are always closed, raw peers.

The fixtures are re-exported by tests/rig/conftest.py; interop tests import Factory.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sciwire.rig import EchoProtocol, RemoteRig


class Factory:
    """Makes servers, clients and remote rigs, and closes them all at the end."""

    def __init__(self) -> None:
        self.coms: list[EchoProtocol] = []
        self.closers: list[Callable[[], Any]] = []

    async def server(self, uri: str = "udp://127.0.0.1:0", **kw: Any) -> EchoProtocol:
        com = await EchoProtocol.server(uri, **kw)
        self.coms.append(com)
        return com

    async def client(self, uri: str, **kw: Any) -> EchoProtocol:
        com = await EchoProtocol.client(uri, **kw)
        self.coms.append(com)
        return com

    async def rig(self, uri: str = "udp://127.0.0.1:0", **kw: Any) -> RemoteRig:
        rig = RemoteRig(await self.server(uri, **kw))
        self.closers.append(rig.close)
        return rig

    async def pair(
        self, scheme: str = "udp", host: str = "127.0.0.1"
    ) -> tuple[EchoProtocol, EchoProtocol]:
        server = await self.server(f"{scheme}://{host}:0", name="server")
        client = await self.client(server.server_uri, name="client")
        return server, client

    async def aclose(self) -> None:
        for closer in self.closers:
            closer()
        for com in self.coms:
            await com.wait_closed()


@pytest.fixture
async def make() -> AsyncIterator[Factory]:
    factory = Factory()
    try:
        yield factory
    finally:
        await factory.aclose()


class RawUDP(asyncio.DatagramProtocol):
    """A bare UDP socket that queues what it receives."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))

    sock: socket.socket

    def send(self, data: bytes) -> None:
        # straight on the socket: asyncio's sendto silently skips empty datagrams
        self.sock.send(data)

    async def recv(self, timeout: float) -> bytes:
        data, _ = await asyncio.wait_for(self.queue.get(), timeout)
        return data

    @property
    def addr(self) -> tuple[str, int]:
        assert self.transport is not None
        name = self.transport.get_extra_info("sockname")
        return (name[0], name[1])


@pytest.fixture
async def raw_udp() -> AsyncIterator[Callable[[str, int], Any]]:
    made: list[RawUDP] = []

    async def connect(host: str, port: int) -> RawUDP:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect((host, port))
        _, proto = await loop.create_datagram_endpoint(RawUDP, sock=sock)
        proto.sock = sock
        made.append(proto)
        return proto

    try:
        yield connect
    finally:
        for proto in made:
            if proto.transport is not None:
                proto.transport.close()
        await asyncio.sleep(0)


@pytest.fixture
async def raw_tcp() -> AsyncIterator[Callable[[str, int], Any]]:
    made: list[asyncio.StreamWriter] = []

    async def connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(host, port)
        made.append(writer)
        return reader, writer

    try:
        yield connect
    finally:
        for writer in made:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def free_port(kind: socket.SocketKind = socket.SOCK_DGRAM, host: str = "127.0.0.1") -> int:
    """A port free right now (for peers that cannot bind port 0, like iblutil's server)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
