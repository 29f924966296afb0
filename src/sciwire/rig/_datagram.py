"""A lean UDP transport: drain the socket on each wake-up, send with one system call.

asyncio's datagram transport reads one datagram per readiness callback and wraps
every send in checks and buffer bookkeeping. :class:`DatagramLink` does the same job
for :class:`~sciwire.rig._client.EchoProtocol` with less Python per datagram: on each
readiness wake-up it calls ``recvfrom`` until the socket is empty (up to a bound, so
other callbacks still run) -- unless the last drain found a single datagram: then the
next few wake-ups read one datagram each, sparing one-at-a-time traffic (round trips)
the read that finds the socket empty -- and ``sendto`` goes straight to the socket
unless a previous send is still buffered. Lifecycle matches asyncio's transport: the
protocol's ``connection_made``, ``datagram_received``, ``error_received`` (any
``OSError`` of a send or receive, e.g. ICMP port unreachable) and, after
:meth:`DatagramLink.close` has flushed the buffer, ``connection_lost`` on the next
loop iteration, then the socket is closed.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import socket
from typing import Any, Protocol

__all__ = [
    "MAX_BATCH",
    "MAX_SEND_BUFFER",
    "PROBE_EVERY",
    "DatagramLink",
    "datagram_socket",
    "open_datagram",
]

logger = logging.getLogger(__name__)

#: Receive buffer: the largest UDP payload (IPv4 or IPv6) fits without truncation.
RECV_SIZE = 65536
#: Datagrams read per wake-up before yielding to other callbacks (the selector is
#: level-triggered, so whatever is left wakes us again).
MAX_BATCH = 64
#: After a drain that found at most one datagram, the wake-ups that read just one
#: datagram before the next drain. Draining ends with a read that finds the socket
#: empty (a system call and an exception); in one-at-a-time traffic (round trips)
#: that read is pure cost, so it is made on one wake-up in PROBE_EVERY + 1. A burst
#: is then drained within PROBE_EVERY loop iterations, each reading one datagram.
PROBE_EVERY = 8
#: Bytes of datagrams held while the socket refuses sends; past it a datagram is
#: dropped and reported to the protocol's ``error_received`` (UDP may drop anyway).
MAX_SEND_BUFFER = 1 << 20

_Addr = tuple[Any, ...]


class _DatagramProtocol(Protocol):
    def connection_made(self, transport: Any) -> None: ...
    def datagram_received(self, data: bytes, addr: tuple[Any, int]) -> None: ...
    def error_received(self, exc: Exception) -> None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...


class DatagramLink:
    """A UDP transport bound to one protocol (the subset of DatagramTransport we use)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: _DatagramProtocol,
        peer: _Addr | None,
    ) -> None:
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._connected = peer is not None
        self._closing = False
        self._skips = 0  # wake-ups left reading one datagram each (see PROBE_EVERY)
        self._buffer: collections.deque[tuple[bytes, _Addr | None]] = collections.deque()
        self._buffered = 0  # bytes in _buffer, held under MAX_SEND_BUFFER
        self._extra = {"socket": sock, "sockname": sock.getsockname(), "peername": peer}
        loop.add_reader(self._fd, self._read_ready)  # NotImplementedError on Proactor
        protocol.connection_made(self)

    # -- transport API ----------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``socket``, ``sockname`` or ``peername`` (None unless connected)."""
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing

    def get_write_buffer_size(self) -> int:
        """Bytes waiting for the socket to accept them."""
        return self._buffered

    def sendto(self, data: bytes, addr: _Addr | None = None) -> None:
        """Send one datagram now, or queue it behind datagrams the socket refused."""
        sock = self._sock
        if sock is None or self._closing:
            return  # as asyncio: sends after close are ignored (callers check first)
        if not self._buffer:
            try:
                if addr is None or self._connected:
                    sock.send(data)
                else:
                    sock.sendto(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self._loop.add_writer(self._fd, self._write_ready)
            except OSError as exc:
                self._protocol.error_received(exc)
                return
        if self._buffered + len(data) > MAX_SEND_BUFFER:
            self._protocol.error_received(
                OSError(errno.ENOBUFS, f"UDP send buffer full ({MAX_SEND_BUFFER} bytes): dropped")
            )
            return
        self._buffer.append((bytes(data), addr))
        self._buffered += len(data)

    def close(self) -> None:
        """Stop reading; once the send buffer is flushed, call connection_lost."""
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if not self._buffer:
            self._loop.call_soon(self._connection_lost, None)

    def abort(self) -> None:
        """Close now, dropping any buffered datagrams."""
        self._buffer.clear()
        self._buffered = 0
        self._loop.remove_writer(self._fd)
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        self._loop.call_soon(self._connection_lost, None)

    # -- event loop callbacks ----------------------------------------------------------

    def _read_ready(self) -> None:
        sock = self._sock
        if sock is None:
            return
        recvfrom = sock.recvfrom
        protocol = self._protocol
        skips = self._skips
        if skips:  # one-at-a-time mode: no probing read that would find the socket empty
            self._skips = skips - 1
            batch = 1
        else:
            batch = MAX_BATCH
        count = 0
        for _ in range(batch):
            if self._closing:
                return
            try:
                data, addr = recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                protocol.error_received(exc)
                continue
            count += 1
            try:
                protocol.datagram_received(data, addr)
            except Exception:
                logger.exception("datagram_received failed; datagram from %s lost", addr)
        if batch > 1 and count < 2:
            # The drain found one datagram (or none): traffic is one at a time (a round
            # trip). Read one per wake-up for the next PROBE_EVERY wake-ups, then drain
            # again; the selector is level-triggered, so nothing waiting is missed.
            self._skips = PROBE_EVERY

    def _write_ready(self) -> None:
        sock = self._sock
        while self._buffer and sock is not None:
            data, addr = self._buffer[0]
            try:
                if addr is None or self._connected:
                    sock.send(data)
                else:
                    sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._buffer.popleft()
                self._buffered -= len(data)
                self._protocol.error_received(exc)
                continue
            self._buffer.popleft()
            self._buffered -= len(data)
        self._loop.remove_writer(self._fd)
        if self._closing:
            self._loop.call_soon(self._connection_lost, None)

    def _connection_lost(self, exc: Exception | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


async def open_datagram(
    protocol: _DatagramProtocol,
    *,
    sock: socket.socket | None = None,
    **options: Any,
) -> DatagramLink:
    """Run *protocol* on a UDP socket: *sock*, or one :func:`datagram_socket` opens.

    Takes the keyword arguments of ``loop.create_datagram_endpoint`` that apply to
    a unicast socket (see :func:`datagram_socket`); a given *sock* stays the
    caller's to close if this fails.

    Raises:
        OSError: no address could be resolved, bound or connected.
        NotImplementedError: the loop cannot watch sockets (a Windows Proactor loop).
    """
    loop = asyncio.get_running_loop()
    owned = sock is None
    if sock is None:
        sock = await datagram_socket(**options)
    else:
        sock.setblocking(False)
    try:
        try:
            peer: _Addr | None = sock.getpeername()
        except OSError:
            peer = None
        return DatagramLink(loop, sock, protocol, peer)
    except BaseException:
        if owned:
            sock.close()
        raise


async def datagram_socket(
    *,
    local_addr: tuple[str, int] | None = None,
    remote_addr: tuple[str, int] | None = None,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
    reuse_port: bool | None = None,
    allow_broadcast: bool | None = None,
) -> socket.socket:
    """A non-blocking UDP socket bound to *local_addr* and/or connected to *remote_addr*.

    Takes the keyword arguments of ``loop.create_datagram_endpoint`` that apply to
    a unicast socket; anything else is a TypeError, as there.

    Raises:
        OSError: no address could be resolved, bound or connected.
    """
    loop = asyncio.get_running_loop()
    target = remote_addr if remote_addr is not None else local_addr
    if target is None:
        raise ValueError("local_addr or remote_addr is required")
    host, port = target
    try:  # numeric hosts (parse_uri resolves names) need no resolver thread
        infos = socket.getaddrinfo(
            host, port, family, socket.SOCK_DGRAM, proto, flags | socket.AI_NUMERICHOST
        )
    except socket.gaierror:
        infos = await loop.getaddrinfo(
            host, port, family=family, type=socket.SOCK_DGRAM, proto=proto, flags=flags
        )
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned an empty list")
    error: OSError | None = None
    for fam, kind, prot, _, address in infos:
        candidate = socket.socket(fam, kind, prot)
        try:
            candidate.setblocking(False)
            if reuse_port:
                candidate.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if allow_broadcast:
                candidate.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if local_addr is not None and remote_addr is not None:
                candidate.bind(local_addr)
            if remote_addr is not None:
                candidate.connect(address)
            else:
                candidate.bind(address)
        except OSError as exc:
            candidate.close()
            error = exc
            continue
        return candidate
    assert error is not None
    raise error
