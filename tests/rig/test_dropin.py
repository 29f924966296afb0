"""iblutil's public face: the app and base modules, and the behaviour iblutil users rely on.

The one test that reads iblutil itself imports it and is marked ``interop``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any
from unittest import mock

import pytest

from sciwire.core.http.codec import ParsedRequest, encode_response
from sciwire.core.http.server import HttpServer
from sciwire.errors import ConnectError, ConnectionClosed
from sciwire.rig import (
    EchoMismatchError,
    EchoTimeoutError,
    RigValueError,
    UnsupportedTransportError,
    app,
    base,
)
from sciwire.rig._framing import BufferBudget
from tests.rig.helpers import Factory

Scaled = Callable[[float], float]


def public(module: Any) -> set[str]:
    return {n for n in vars(module) if not n.startswith("_")}


@pytest.mark.interop
def test_modules_have_iblutils_public_names() -> None:
    from iblutil.io.net import app as ibl_app
    from iblutil.io.net import base as ibl_base

    ibl_names = {
        n
        for n in public(ibl_base)
        if getattr(getattr(ibl_base, n), "__module__", "") == ibl_base.__name__
    }
    ibl_names |= {"LISTEN_PORT", "PROTOCOL_VERSION"}
    assert ibl_names <= public(base)
    for name in ("EchoProtocol", "Services", "main"):
        assert name in public(app) and name in public(ibl_app)
    assert app.asyncio is asyncio and app.socket is socket  # what suites patch and read
    assert base.LISTEN_PORT == ibl_base.LISTEN_PORT
    assert base.PROTOCOL_VERSION == ibl_base.PROTOCOL_VERSION


def test_name_is_visible_on_the_class() -> None:
    assert hasattr(app.EchoProtocol, "name") and hasattr(base.Service, "name")
    double = mock.AsyncMock(spec=app.EchoProtocol)
    assert isinstance(double.name, mock.MagicMock)


# -- base ----------------------------------------------------------------------------------


class _IpServer(HttpServer):
    """Answers every GET with a fixed text, as ident.me answers with the caller's address."""

    def __init__(self, answer: bytes, status: int = 200) -> None:
        super().__init__(
            host="127.0.0.1", port=0, ssl_context=None, max_body=1024, shutdown_timeout=1.0
        )
        self.answer = answer
        self.status = status
        self.seen: list[str] = []

    def respond(self, req: ParsedRequest, remote: str | None) -> bytes:
        self.seen.append(req.target)
        return encode_response(self.status, self.answer)


@pytest.fixture
async def ip_server() -> AsyncIterator[Callable[..., Any]]:
    made: list[_IpServer] = []

    async def start(answer: bytes, status: int = 200) -> _IpServer:
        server = _IpServer(answer, status)
        await server.start()
        made.append(server)
        return server

    try:
        yield start
    finally:
        for server in made:
            await server.stop()


def test_import_leaves_the_http_stack_for_external_ip() -> None:
    # a fresh interpreter: sciwire.rig's UDP/TCP import pays nothing for external_ip's HTTP
    code = (
        "import sys, sciwire.rig\n"
        "print(sorted(m for m in sys.modules if m.startswith('sciwire.core.http')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"


async def test_external_ip_asks_the_given_service(ip_server: Any) -> None:
    server = await ip_server(b"203.0.113.7\n")
    url = f"http://127.0.0.1:{server.port}/ip?fmt=text"
    ip = await asyncio.to_thread(base.external_ip, url, 5.0)
    assert ip == ipaddress.ip_address("203.0.113.7")
    assert server.seen == ["/ip?fmt=text"]


async def test_external_ip_refuses_bad_answers(ip_server: Any) -> None:
    server = await ip_server(b"<html>nope</html>")
    with pytest.raises(RigValueError, match="did not answer an IP address"):
        await asyncio.to_thread(base.external_ip, f"http://127.0.0.1:{server.port}/")
    failing = await ip_server(b"busy", status=503)
    with pytest.raises(ValueError, match="503"):
        await asyncio.to_thread(base.external_ip, f"http://127.0.0.1:{failing.port}/")
    with pytest.raises(RigValueError, match="http"):
        base.external_ip("ftp://127.0.0.1/")


def test_base_communicator_receive_runs_callbacks_without_echo() -> None:
    com = _Offline("udp://127.0.0.1:5000", name="offline")
    seen: list[Any] = []
    com.assign_callback("EXPSTART", lambda data, addr: seen.append((data, addr)))
    base.Communicator._receive(com, b'[2, "ref", null]', ("127.0.0.1", 9))
    assert seen == [(["ref", None], ("127.0.0.1", 9))]
    assert com.sent == []  # the base class never echoes
    with pytest.warns(RuntimeWarning, match=r"dropped a message \(shape\)"):
        base.Communicator._receive(com, b'"just text"', ("127.0.0.1", 9))
    assert com.dropped == {"shape": 1}


def test_callbacks_view_lists_each_event() -> None:
    com = _Offline("udp://127.0.0.1:5000")

    def cb(data: Any, addr: Any, event: Any = None) -> None:
        return None

    com.assign_callback(base.ExpMessage.EXPEND | base.ExpMessage.EXPINTERRUPT, cb)
    com.assign_callback(0, cb)
    view = com._callbacks
    assert view[base.ExpMessage.EXPEND] == [(cb, True)]
    assert view[base.ExpMessage.EXPINTERRUPT] == [(cb, True)]
    assert view[base.ExpMessage(0)] == [(cb, False)]
    assert view[base.ExpMessage.EXPINIT] == []
    com.close()
    assert not any(com._callbacks.values())


def test_decode_warns_like_iblutil() -> None:
    with pytest.warns(UserWarning, match="Failed to decode as JSON"):
        assert base.Communicator.decode(b"[1, 2]x") == "[1, 2]x"


class _Offline(base.Communicator):
    """A communicator with no transport: records what it would send."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[Any] = []

    @property
    def is_connected(self) -> bool:
        return False

    def send(self, data: Any, addr: Any = None) -> None:
        self.sent.append((data, addr))


# -- loggers, warnings, validation -----------------------------------------------------------


async def test_loggers_are_named_after_the_communicator(make: Factory) -> None:
    server = await make.server("udp://127.0.0.1:0", name="cam")
    client = await make.client(server.server_uri)
    assert server.logger is logging.getLogger("cam")
    assert client.logger is logging.getLogger(client.server_uri)
    anonymous = await make.server("udp://127.0.0.1:0")
    assert anonymous.logger.name == anonymous.server_uri  # the bound port, not 0
    assert not server.logger.handlers  # nothing prints unless the application says so


async def test_received_message_is_logged_at_info(make: Factory, caplog: Any) -> None:
    _server, client = await make.pair()
    with caplog.at_level(logging.INFO, logger="server"):
        await client.init(7)
    assert any("Received '[1, 7]'" in r.getMessage() for r in caplog.records)


async def test_connection_made_checks_the_socket_type(make: Factory) -> None:
    _, client = await make.pair()
    transport = mock.MagicMock()
    transport.get_extra_info.return_value.type = socket.SOCK_STREAM
    with pytest.raises(UnsupportedTransportError, match="TCP/IP"):
        client.connection_made(transport)
    transport.get_extra_info.return_value.type = "carrier pigeon"
    with pytest.raises(RuntimeError, match="Unsupported transport layer"):
        client.connection_made(transport)
    assert client._transport is not transport  # the real transport is kept
    await client.init()
    _, tcp_client = await make.pair("tcp")
    transport.get_extra_info.return_value.type = socket.SOCK_DGRAM
    with pytest.raises(UnsupportedTransportError, match="for UDP"):
        tcp_client.connection_made(transport)


async def test_error_received_logs_an_error(make: Factory, caplog: Any) -> None:
    _, client = await make.pair()
    exc = OSError("port unreachable")
    with caplog.at_level(logging.ERROR, logger="client"):
        client.error_received(exc)
    assert caplog.records[-1].levelno == logging.ERROR
    assert client.on_error_received.result() is exc


async def test_tcp_client_send_to_another_address_warns(make: Factory, caplog: Any) -> None:
    _, client = await make.pair("tcp")
    with caplog.at_level(logging.WARNING, logger="client"):
        client.send([1, None], addr=("127.0.0.2", 1))
    assert "Message not sent: unexpected address" in caplog.records[-1].getMessage()
    _, udp = await make.pair()
    with pytest.raises(RigValueError):
        udp.send([1, None], addr=("127.0.0.2", 1))


# -- echo bookkeeping ---------------------------------------------------------------------------


async def test_last_sent_view_and_awaiting_response(make: Factory) -> None:
    server, client = await make.pair()
    addr = (server.hostname, server.port)
    assert not client.awaiting_response() and dict(client._last_sent) == {}
    fut = asyncio.get_running_loop().create_future()
    client._last_sent[addr] = (b"[1, 2]", fut)
    assert client._last_sent[addr] == (b"[1, 2]", fut) and len(client._last_sent) == 1
    assert client.awaiting_response() and client.awaiting_response(addr)
    assert not client.awaiting_response(("127.0.0.1", 1))
    fut.cancel()
    assert not client.awaiting_response()  # a settled future awaits nothing
    del client._last_sent[addr]
    del client._last_sent[addr]  # already gone: no error
    assert list(client._last_sent) == []


async def test_confirmed_send_times_out_through_wait_for(make: Factory, scaled: Scaled) -> None:
    server, client = await make.pair()
    server.close()  # nobody echoes
    with (
        mock.patch.object(app.asyncio, "wait_for", wraps=asyncio.wait_for) as waited,
        pytest.raises(EchoTimeoutError),
    ):
        await client.confirmed_send([1, None], timeout=0.05)
    waited.assert_awaited_once_with(mock.ANY, timeout=0.05)
    assert not client.is_connected  # a client closes after a timeout, as iblutil's
    with pytest.raises(ConnectionClosed):
        await client.confirmed_send([1, None], timeout=scaled(1))


async def test_wait_for_failure_becomes_a_mismatch(make: Factory) -> None:
    _, client = await make.pair()
    with (
        mock.patch.object(app.asyncio, "wait_for", side_effect=RuntimeError),
        pytest.raises(EchoMismatchError, match="Unexpected response"),
    ):
        await client.confirmed_send([1, None])
    assert not client.awaiting_response() and not client.is_connected


# -- Services ---------------------------------------------------------------------------------


async def test_services_is_a_read_only_mapping(make: Factory) -> None:
    _, c1 = await make.pair()
    c2 = await make.client(c1.server_uri, name="second")
    services = app.Services([c1, c2])
    assert dict(services) == {"client": c1, "second": c2}
    assert services["client"] is c1 and "second" in services and len(services) == 2
    assert list(services.keys()) == ["client", "second"] and services.get("x") is None
    for mutate in (
        lambda: services.__setitem__("x", c1),
        lambda: services.__delitem__("client"),
        lambda: services.pop("client"),
        services.popitem,
        services.clear,
        lambda: services.update({"x": c1}),
        lambda: services.setdefault("x", c1),
    ):
        with pytest.raises(TypeError, match="read-only"):
            mutate()
    assert len(services) == 2


async def test_services_wait_on_other_services_through_on_event() -> None:
    rigs = [mock.AsyncMock(spec=app.EchoProtocol) for _ in range(2)]
    for i, rig in enumerate(rigs):
        rig.name = f"rig{i}"
        rig.on_event.return_value = ([i], ("127.0.0.1", 1))
    services = app.Services(rigs)
    assert await services.init("x") == {"rig0": [0], "rig1": [1]}
    assert await services.stop(immediately=True, concurrent=False) == {"rig0": [0], "rig1": [1]}
    for rig in rigs:
        rig.init.assert_awaited_once_with(data="x")
        rig.on_event.assert_any_await(base.ExpMessage.EXPINIT)
        rig.on_event.assert_any_await(base.ExpMessage.EXPINTERRUPT)


# -- app.main -----------------------------------------------------------------------------------


async def test_main_serves_and_sends(make: Factory, scaled: Scaled) -> None:
    server = await make.server("udp://127.0.0.1:0", name="main-peer")
    started = asyncio.ensure_future(server.on_event("EXPSTART"))
    await app.main("client", server.server_uri, name="main-client")
    data, _ = await asyncio.wait_for(started, scaled(5))
    assert data == ["2022-01-01_1_subject", None]
    await asyncio.wait_for(app.main("server", "udp://127.0.0.1:0", duration=0.01), scaled(5))
    with pytest.raises(ValueError, match="Unknown role"):
        await app.main("observer", "udp://127.0.0.1:0")
    with pytest.raises(ConnectError):
        await app.main("client", "tcp://127.0.0.1:1")


def test_app_runs_as_a_module() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sciwire.rig.app", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "server" in out.stdout and "client" in out.stdout


# -- the total buffer budget ---------------------------------------------------------------------


def test_buffer_budget_accounting() -> None:
    budget = BufferBudget()
    assert budget.update("a", 0, 100) == 100
    assert budget.update("b", 0, 50) == 150
    assert budget.update("a", 100, 0) == 50  # a's message completed
    budget.release("b")
    budget.release("b")  # twice: no change
    assert budget.total == 0


async def test_tcp_budget_closes_the_connection_that_passes_it(
    make: Factory, raw_tcp: Any, scaled: Scaled, caplog: Any
) -> None:
    server = await make.server("tcp://127.0.0.1:0", name="budgeted")
    server.max_total_buffer_size = 1500
    r1, w1 = await raw_tcp(*server._peer)
    w1.write(b'[1, "' + b"x" * 1000)
    await w1.drain()
    client = await make.client(server.server_uri)
    await client.init()  # a round trip: the server has read w1's bytes by now
    r2, w2 = await raw_tcp(*server._peer)
    with caplog.at_level(logging.WARNING, logger="budgeted"):
        w2.write(b'[1, "' + b"y" * 1000)
        await w2.drain()
        assert await asyncio.wait_for(r2.read(), scaled(5)) == b""
    lines = [r.getMessage() for r in caplog.records if "max_total_buffer_size" in r.getMessage()]
    assert len(lines) == 1 and "127.0.0.1" in lines[0]
    assert server.dropped["budget"] == 1
    w1.write(b'"]')  # the held message completes and is echoed: w1 was not closed
    assert await asyncio.wait_for(r1.readexactly(1007), scaled(5)) == b'[1, "' + b"x" * 1000 + b'"]'
    assert server._budget.total == 0
    await client.init()
