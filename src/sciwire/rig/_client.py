"""EchoProtocol: the asyncio rig communicator, client or server, over UDP or TCP.

Wire-identical to iblutil's ``EchoProtocol`` over UDP. Over TCP (``tcp://``, and
``ws://``/``wss://`` as iblutil spells plain TCP) every connection has its own
stream splitter, link and echo state, so many clients work at once and glued or
split messages survive.

What is echoed: a message that is not an awaited echo is echoed back byte for byte
before any callback runs IF it is a valid message (a JSON list of two or more items
starting with an event code or name). Error reports (code 0) are never echoed, as
upstream. Everything else (empty, oversized, invalid UTF-8, not JSON, wrong shape,
unknown event) is logged, counted in :attr:`EchoProtocol.dropped` and NOT echoed:
an echo tells the sender "received and accepted", which would be false.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, cast

from sciwire.core.streams import ReadIntoProtocol
from sciwire.rig._communicator import Addr
from sciwire.rig._errors import (
    ConnectionClosed,
    EchoMismatchError,
    EchoTimeoutError,
    MessageTooLargeError,
    RigTypeError,
    RigValueError,
)
from sciwire.rig._factories import (
    bind_datagram,
    check_scheme,
    check_socket,
    connect_datagram,
    connect_errors,
    connect_stream,
    serve_stream,
)
from sciwire.rig._framing import (
    DEFAULT_MAX_BUFFER,
    DEFAULT_MAX_TOTAL_BUFFER,
    BufferBudget,
    BufferOverflowError,
    StreamSplitter,
)
from sciwire.rig._links import StreamLink
from sciwire.rig._protocol import (
    NOT_JSON,
    EchoState,
    EchoVerdict,
    ErrorReport,
    LastSentView,
    Message,
    Rejected,
    classify,
    parse_message,
)
from sciwire.rig._steps import ConfirmedSteps
from sciwire.rig._uri import STREAM_SCHEMES, format_uri, parse_uri
from sciwire.rig._watchdog import Pending, Watchdog

__all__ = ["EchoProtocol"]

_UNPARSED = object()
_UDP_LIMIT = {socket.AF_INET: 65507, socket.AF_INET6: 65527}
#: asyncio's own wait_for (see confirmed_send: a replaced one is called instead)
_WAIT_FOR = asyncio.wait_for


class EchoProtocol(ConfirmedSteps, asyncio.DatagramProtocol, ReadIntoProtocol):
    """A rig communicator: every message is confirmed by its byte-for-byte echo.

    Create with :meth:`server` (listens on a local address, talks to many peers,
    ``addr`` required) or :meth:`client` (talks to one remote rig).

    Attributes:
        Server: the asyncio server in the TCP server role, else None.
        default_echo_timeout: seconds to wait for an echo (1.0).
        max_message_size: the largest message accepted (65535, UDP's maximum).
        max_buffer_size: the most bytes a TCP connection may hold for one message
            (1 MiB); a connection over it is closed.
        max_total_buffer_size: the most bytes of incomplete messages a TCP server
            holds across all its connections (32 MiB); the connection whose data
            passes it is closed and that is logged once, naming the peer and the limit.
        close_on_failure: close after an echo timeout or mismatch (iblutil does; True in
            the client role, False in the server role so one bad peer cannot cut the others).
        dropped: counts of messages dropped unechoed, by reason.
    """

    default_echo_timeout = 1.0
    max_buffer_size = DEFAULT_MAX_BUFFER
    max_total_buffer_size = DEFAULT_MAX_TOTAL_BUFFER

    def __init__(
        self, server_uri: Any, role: str, name: str | None = None, logger: Any = None
    ) -> None:
        super().__init__(server_uri, name=name, logger=logger)
        self._role: str | None = None
        self.role = role
        self._transport: Any = None
        self._socket: socket.socket | None = None
        check_scheme(self.protocol)
        self._stream = self.protocol in STREAM_SCHEMES
        self._server: asyncio.AbstractServer | None = None
        self._peer: Addr = (self.hostname, self.port)
        self._echo: EchoState[Pending] = EchoState(self.max_message_size)
        #: iblutil's ``{addr: (payload, echo_future)}`` of the echoes awaited (a live view)
        self._last_sent = LastSentView(self._echo)
        self._closed = False
        self._links: dict[Addr, StreamLink] = {}
        self._splitter = StreamSplitter(self.max_buffer_size)
        self._budget = BufferBudget()
        self._udp_limit = _UDP_LIMIT[socket.AF_INET6 if ":" in self.hostname else socket.AF_INET]
        self.close_on_failure = self.role == "client"
        self._server_role = self.role == "server"
        loop = self._loop = asyncio.get_running_loop()
        self._watchdog = Watchdog(loop, self._echo, self._expire)
        self.on_connection_lost: asyncio.Future[Any] = loop.create_future()
        self.on_error_received: asyncio.Future[Any] = loop.create_future()
        self.on_eof_received: asyncio.Future[Any] = loop.create_future()

    # -- state -------------------------------------------------------------------------

    @property
    def role(self) -> str:
        """``"client"`` or ``"server"``; set once."""
        return self._role or ""

    @role.setter
    def role(self, value: str) -> None:
        if self._role is not None:
            raise AttributeError("can't set attribute")
        role = (value or "").strip().lower()
        if role not in ("server", "client"):
            raise RigValueError('role must be either "server" or "client"')
        self._role = role

    @property
    def Server(self) -> asyncio.AbstractServer | None:
        """The asyncio server in the TCP server role, else None."""
        return self._server

    @Server.setter
    def Server(self, server: asyncio.AbstractServer | None) -> None:
        self._server = server
        sockets = getattr(server, "sockets", None)  # asyncio.Server's; not AbstractServer's
        if sockets:  # the listening socket (iblutil's shows the last accepted connection's)
            self._socket = sockets[0]

    @property
    def is_connected(self) -> bool:
        """True while the transport (or the TCP server) is open."""
        if self.Server is not None:
            return self.Server.is_serving()
        return self._transport is not None and not self._transport.is_closing()

    def awaiting_response(self, addr: Addr | None = None) -> bool:
        """True while an echo is awaited (from *addr*, or from anyone)."""
        if not self._echo.awaiting():
            return False
        if addr is None:
            return any(not fut.done() for _, (fut, _) in self._echo.pending().values())
        entry = self._echo.get((addr[0], addr[1]))
        return entry is not None and not entry[1][0].done()

    @property
    def clients(self) -> list[Addr]:
        """Addresses of the connected TCP peers (server role)."""
        return list(self._links)

    # -- sending ------------------------------------------------------------------------

    def send(self, data: Any, addr: Addr | None = None) -> None:
        """Serialise *data* and send it, without awaiting an echo.

        A TCP client given another peer's address logs a warning and sends nothing,
        as iblutil does.

        Raises:
            ConnectionClosed: the transport (or that TCP peer's connection) is gone.
            MessageTooLargeError: more than one UDP datagram can carry (also ValueError).
            RigTypeError: server role with several peers and no *addr*.
            RigValueError: a UDP client given another peer's address.
        """
        payload = self.encode(data)
        if not self._server_role and addr is not None and (addr[0], addr[1]) != self._peer:
            if not self._stream:
                raise RigValueError(f"Unexpected remote address {addr}")
            self.logger.warning("Message not sent: unexpected address %s", addr)
            return
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("Send %.120r to %s://%s", payload, self.protocol, addr or self._peer)
        self._send_raw(payload, addr)

    def _closing(self, transport: Any) -> bool:
        # `is True`: only a real transport's answer counts (a test double's is a mock).
        return self._closed or transport is None or transport.is_closing() is True

    def _send_raw(self, payload: bytes, addr: Addr | None) -> None:
        if self._stream:
            if self._server_role:
                self._link_for(addr).write(payload)
                return
            if addr is not None and (addr[0], addr[1]) != self._peer:
                raise RigValueError(f"Unexpected remote address {addr}")
            transport = self._transport
            if self._closing(transport):
                raise ConnectionClosed(f"{self.name}: connection is closed")
            transport.write(payload)
            return
        transport = self._transport
        if self._closing(transport):
            raise ConnectionClosed(f"{self.name}: transport is closed")
        if len(payload) > self._udp_limit:
            raise MessageTooLargeError(
                f"{len(payload)} bytes do not fit one UDP datagram (max {self._udp_limit})"
            )
        if not self._server_role:
            transport.sendto(payload)  # connected socket
        elif addr is None:
            raise RigTypeError("a server needs the peer address: send(data, addr)")
        else:
            transport.sendto(payload, addr)

    def _link_for(self, addr: Addr | None) -> asyncio.Transport:
        if addr is None:
            if len(self._links) != 1:
                raise RigTypeError("a TCP server with several peers needs addr")
            link = next(iter(self._links.values()))
        else:
            found = self._links.get((addr[0], addr[1]))
            if found is None:
                raise ConnectionClosed(f"{self.name}: no TCP connection from {addr}")
            link = found
        transport = link.transport
        if transport is None or transport.is_closing():
            raise ConnectionClosed(f"{self.name}: connection from {addr} is closed")
        return transport

    def _target(self, addr: Addr | None) -> Addr:
        if self._server_role:
            if not addr:
                raise RigTypeError("confirmed_send missing 1 required argument: 'addr'")
            return (addr[0], addr[1])
        if addr and (addr[0], addr[1]) != self._peer:
            raise RigValueError("Unexpected remote address")
        return self._peer

    async def confirmed_send(
        self, data: Any, addr: Addr | None = None, timeout: float | None = None
    ) -> None:
        """Send a message and wait for its byte-for-byte echo.

        Confirmed sends to the same address queue up (iblutil lets a second one
        overwrite the first, which then times out). The echo is awaited under the
        communicator's one deadline timer (see :mod:`sciwire.rig._watchdog`);
        ``asyncio.wait_for``, with its own timer and an extra loop pass per call, is
        used only when it has been replaced, so that tests which patch it to
        simulate a timeout (as iblutil's own suite does) keep working.

        Args:
            data: the message (serialised with :meth:`encode`).
            addr: the peer; required in the server role, optional in the client role.
            timeout: seconds to wait; default :attr:`default_echo_timeout`.

        Raises:
            EchoTimeoutError: no echo in time (also TimeoutError).
            EchoMismatchError: the echo differed (also RuntimeError).
            RigValueError: non-positive timeout, or a client given another address.
            RigTypeError: server role without *addr*.
            ConnectionClosed: the transport closed while waiting.
        """
        target = self._target(addr)
        timeout = timeout or self.default_echo_timeout
        if not (isinstance(timeout, int | float) and timeout > 0):
            raise RigValueError("Timeout must be non-zero number")
        payload = self.encode(data)
        while (entry := self._echo.get(target)) is not None:  # queue behind the one in flight
            previous = entry[1][0]
            if previous.done():  # defensive: a settled entry must not block the queue
                self._echo.forget(target, late=False)
                break
            await asyncio.wait([previous])
        fut: asyncio.Future[bool] = self._loop.create_future()
        wait_for = asyncio.wait_for
        replaced = wait_for is not _WAIT_FOR
        try:
            self._confirm(payload, target, None if replaced else timeout, fut)
        except ConnectionClosed as exc:
            # reported through the echo's future, so that the one wait below decides
            fut.set_exception(exc)
        try:
            if replaced:
                await wait_for(fut, timeout=timeout)
            else:
                await fut
        except asyncio.CancelledError:
            self._abandon(target)
            raise
        except (ConnectionClosed, EchoMismatchError, EchoTimeoutError):
            self._fail(target, fut)
            raise
        except (TimeoutError, asyncio.TimeoutError) as exc:  # distinct on 3.10
            self._fail(target, fut)
            raise self._timeout_error(target) from exc
        except RuntimeError as exc:
            self._fail(target, fut)
            raise EchoMismatchError("Unexpected response from server", b"") from exc

    def _fail(self, target: Addr, fut: asyncio.Future[bool]) -> None:
        """After a failed confirmed send: stop awaiting it and close if so configured."""
        entry = self._echo.get(target)
        if entry is not None and entry[1][0] is fut:
            self._abandon(target)
        if self.close_on_failure:
            self.close()

    def _abandon(self, target: Addr) -> None:
        """Stop awaiting *target*'s echo (kept as a possible late echo)."""
        pending = self._echo.get(target)
        self._echo.forget(target, late=True)
        if pending is not None:
            pending[1][0].cancel()

    def _confirm(
        self,
        payload: bytes,
        target: Addr,
        timeout: float | None,
        fut: asyncio.Future[bool] | None = None,
    ) -> asyncio.Future[bool]:
        """Send *payload* now and return the future its echo resolves (no task needed).

        The caller must make sure no echo from *target* is awaited already; it may
        pass the (pending) future to resolve. With a *timeout* the future fails with
        :class:`EchoTimeoutError` at the deadline; without, the caller bounds the wait.
        """
        loop = self._loop
        if fut is None:
            fut = loop.create_future()
        self._send_raw(payload, target)
        if timeout is None:
            self._echo.expect(target, payload, (fut, float("inf")))
            return fut
        deadline = loop.time() + timeout
        self._echo.expect(target, payload, (fut, deadline))
        self._watchdog.arm(deadline)
        return fut

    def _expire(self, target: Addr, fut: asyncio.Future[bool]) -> None:
        if fut.done():
            return
        self._echo.forget(target, late=True)
        fut.set_exception(self._timeout_error(target))

    def _timeout_error(self, target: Addr) -> EchoTimeoutError:
        return EchoTimeoutError(
            f"Failed to receive client response in time ({self.name}: "
            f"{self.server_uri}, peer {target[0]}:{target[1]})"
        )

    # -- receiving ----------------------------------------------------------------------

    def _receive(self, data: bytes, addr: Addr, value: Any = _UNPARSED) -> None:
        """Handle one whole message from *addr*: echo check, echo, dispatch. Never raises."""
        try:
            self._handle(data, addr, value)
        except Exception:
            self.dropped["internal"] += 1
            self.logger.exception("%s: failed handling a message from %s", self.name, addr)

    def _handle(self, data: bytes, addr: Addr, value: Any) -> None:
        verdict, token = self._echo.receive(addr, data, self.max_message_size)
        if verdict is EchoVerdict.NEW:
            logger = self.logger
            if logger.isEnabledFor(logging.INFO):  # iblutil logs every message at INFO
                text = data.decode("utf-8", "replace")
                logger.info("Received %r from %s://%s:%s", text, self.protocol, *addr[:2])
            if value is _UNPARSED:
                parsed = parse_message(data, self.max_message_size)
            else:
                parsed = classify(value, data)
            if type(parsed) is Message:
                self._send_raw(data, addr)  # the echo, before any callback runs
                self._dispatch(parsed.event, parsed.data, addr)
            elif type(parsed) is ErrorReport:
                self._error_report(parsed, addr)
            else:
                self._rejected(cast(Rejected, parsed), addr)
            return
        if verdict is EchoVerdict.LATE:
            self.logger.warning("%s: late echo from %s swallowed", self.name, addr)
            return
        assert token is not None
        fut = token[0]
        if fut.done():
            return
        if verdict is EchoVerdict.MISMATCH:
            self.logger.error("Expected echo from %s, got %.120r", addr, data)
            fut.set_exception(EchoMismatchError("Unexpected response from server", data))
            return
        if verdict is EchoVerdict.TRUNCATED:
            self.logger.warning(
                "Received truncated echo from %s; original message > %i bytes",
                addr,
                self.max_message_size,
            )
        fut.set_result(True)

    def _stream_data(
        self,
        splitter: StreamSplitter,
        data: bytes,
        addr: Addr,
        transport: asyncio.BaseTransport | None,
    ) -> None:
        before = splitter.buffered
        try:
            items = splitter.feed(data)
        except BufferOverflowError as exc:
            self._close_over_limit(addr, transport, "overflow", "max_buffer_size", str(exc))
            return
        after = splitter.buffered
        # the common whole-message chunk (nothing held before or after) skips the budget
        budget = self._budget
        if (before or after) and budget.update(addr, before, after) > self.max_total_buffer_size:
            held = budget.total
            splitter.discard()
            self._close_over_limit(
                addr,
                transport,
                "budget",
                "max_total_buffer_size",
                f"{self.max_total_buffer_size} bytes across connections reached with {held}"
                " bytes held",
            )
            return
        for raw, value in items:
            if value is NOT_JSON:
                self._receive(raw, addr)  # parse_message names the reason (utf8, json)
            else:
                self._receive(raw, addr, value)

    def _close_over_limit(
        self,
        addr: Addr,
        transport: asyncio.BaseTransport | None,
        counter: str,
        limit: str,
        detail: str,
    ) -> None:
        """Close the connection from *addr* that passed *limit*: counted, logged once."""
        self._budget.release(addr)
        self.dropped[counter] += 1
        self.logger.warning(
            "%s: closing connection from %s: %s: %s", self.name, addr, limit, detail
        )
        if transport is not None:
            transport.close()

    # -- the TCP server's links (see sciwire.rig._links.LinkOwner) ---------------------

    def link_made(self, link: StreamLink) -> None:
        """Register an accepted TCP connection (server role)."""
        self._links[link.addr] = link
        self.logger.debug("TCP connection from %s", link.addr)

    def link_data(self, link: StreamLink, data: bytes) -> None:
        """Handle one read of an accepted TCP connection."""
        self._stream_data(link.splitter, data, link.addr, link.transport)

    def link_lost(self, link: StreamLink, exc: Exception | None) -> None:
        """Unregister a closed TCP connection and fail its awaited echo."""
        if self._links.get(link.addr) is link:
            del self._links[link.addr]
        self._peer_gone(link.addr, exc)

    def _peer_gone(self, addr: Addr, exc: Exception | None) -> None:
        self._budget.release(addr)
        pending = self._echo.get(addr)
        self._echo.forget(addr, late=False)
        if pending is not None:
            fut = pending[1][0]
            if not fut.done():
                fut.set_exception(ConnectionClosed(f"{self.name}: connection to {addr} lost"))
        self.logger.debug("connection from %s closed (%s)", addr, exc)

    # -- asyncio protocol callbacks ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Called by the event loop when the socket is ready.

        Raises:
            UnsupportedTransportError: the socket's type does not match the URI's
                scheme (UDP for ``udp``, TCP for ``tcp``/``ws``/``wss``); also RuntimeError.
        """
        sock = transport.get_extra_info("socket")
        check_socket(sock, self._stream)
        self._transport = transport
        self._socket = sock
        self.logger.debug("Connected with socket %s", sock)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """Called by the UDP transport for each datagram."""
        host = addr[0]
        if host != self._host and not self._server_role:
            self.dropped["foreign"] += 1
            self.logger.warning("Ignoring UDP packet from unexpected host %s:%s", host, addr[1])
            return
        self._receive(data, (host, addr[1]))

    def data_received(self, data: bytes) -> None:
        """Called by the TCP transport (client role) for each chunk read."""
        self._stream_data(self._splitter, data, self._peer, self._transport)

    def error_received(self, exc: Exception) -> None:
        """Called by the UDP transport on a send or receive error (e.g. ICMP unreachable)."""
        self.dropped["socket_error"] += 1
        self.logger.error("Error received: %s", exc)
        if not self.on_error_received.done():
            self.on_error_received.set_result(exc)

    def eof_received(self) -> bool | None:
        """Called by the TCP transport when the peer closed its side."""
        self.logger.debug("EOF received")
        if not self.on_eof_received.done():
            self.on_eof_received.set_result(True)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Called by the event loop when the transport closed."""
        self.logger.debug("%s: connection closed (%s)", self.name, exc)
        if self.role == "client":
            self._closed = True
            self._peer_gone(self._peer, exc)
        if not self.on_connection_lost.done():
            self.on_connection_lost.set_result(exc)

    # -- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the transport(s), de-register callbacks and cancel waiting futures."""
        self._closed = True
        if self._transport is not None:
            self._transport.close()
        if self.Server is not None:
            self.Server.close()
        for link in list(self._links.values()):
            if link.transport is not None:
                link.transport.close()
        super().close()
        self._watchdog.cancel()
        for fut, _ in self._echo.clear():
            if not fut.done():
                fut.cancel("Close called on communicator")
        for task in list(self._tasks):
            task.cancel()
        for fut in (self.on_error_received, self.on_eof_received):
            if not fut.done():
                fut.cancel("Close called on communicator")
        if not self.on_connection_lost.done():
            self.on_connection_lost.set_result("Close called on communicator")

    async def wait_closed(self) -> None:
        """Close, then wait until the sockets are released."""
        self.close()
        if self.Server is not None:
            await self.Server.wait_closed()
        await asyncio.sleep(0)  # let the transports run connection_lost

    # -- factories ---------------------------------------------------------------------

    @staticmethod
    async def server(
        server_uri: Any, name: str | None = None, log: logging.Logger | None = None, **kwargs: Any
    ) -> EchoProtocol:
        """Listen on a local address (port 0 binds a free port; ``server_uri`` shows it).

        Args:
            server_uri: local address, e.g. ``udp://127.0.0.1:11001``, ``tcp://[::1]:0``.
            name: a label; default the URI.
            log: a logger; default ``logging.getLogger(name or uri)``.
            kwargs: for UDP, the ``create_datagram_endpoint`` options that apply (``family``,
                ``proto``, ``flags``, ``reuse_port``, ``allow_broadcast``, ``sock``); for TCP,
                passed to ``create_server``.

        Raises:
            ConnectError: the address cannot be bound (also OSError).
        """
        proc, host, port = parse_uri(server_uri, allow_port_zero=True)
        check_scheme(proc)

        def make(bound: int) -> EchoProtocol:  # made with the port actually bound
            return EchoProtocol(format_uri(proc, host, bound), "server", name=name, logger=log)

        with connect_errors(f"cannot listen on {server_uri}"):
            if proc in STREAM_SCHEMES:
                protocol = await serve_stream(make, host, port, **kwargs)
            else:
                protocol = await bind_datagram(make, host, port, **kwargs)
        protocol.logger.info("Listening on %s", protocol.server_uri)
        return protocol

    @staticmethod
    async def client(
        server_uri: Any, name: str | None = None, log: logging.Logger | None = None, **kwargs: Any
    ) -> EchoProtocol:
        """Connect to a remote rig (UDP by default, TCP for ``tcp://``/``ws://``).

        Args:
            server_uri: the remote rig, e.g. ``udp://127.0.0.1:11001``.
            name: a label; default the URI.
            log: a logger; default ``logging.getLogger(name or uri)``.
            kwargs: for UDP, ``local_addr`` and the other ``create_datagram_endpoint``
                options that apply; for TCP, passed to ``create_connection``.

        Raises:
            ConnectError: the TCP connection failed (also OSError).
        """
        proc, host, port = parse_uri(server_uri)
        check_scheme(proc)
        protocol = EchoProtocol(format_uri(proc, host, port), "client", name=name, logger=log)
        with connect_errors(f"cannot connect to {protocol.server_uri}"):
            if proc in STREAM_SCHEMES:
                await connect_stream(protocol, host, port, **kwargs)
            else:
                await connect_datagram(protocol, remote_addr=(host, port), **kwargs)
        return protocol
