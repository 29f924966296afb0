"""samp's XML-RPC servers close every connection they accepted when they stop.

Issue #13: a hub delivery that raced a client's disconnect left one accepted
connection of the client's callback server open after ``stop()`` returned: asyncio
builds an accepted socket's transport a loop turn after the accept, and a server
closed in between cannot take it (the socket leaked when the loop closed). The hub's
Standard Profile server had the same race. These tests connect real sockets and call
``stop()`` at each loop turn of the accept (before it, between the kernel's accept and
the transport, between the transport and ``connection_made``, after), then check from
the peer's side, without giving the loop another turn, that the server's end is
already closed.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import xmlrpc.client
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sciwire.samp import AsyncSAMPHub, AsyncSAMPIntegratedClient
from sciwire.samp._rpc import CallbackServer
from tests.samp.tlskit import make_cert

CALL = xmlrpc.client.dumps(("k", "s", {"samp.mtype": "a.b", "samp.params": {}}), "m").encode()
POST = f"POST /xmlrpc HTTP/1.1\r\nHost: x\r\nContent-Length: {len(CALL)}\r\n\r\n".encode() + CALL

#: loop turns to let pass between the connect and stop(): covers every step of the accept
TURNS = range(6)
ROUNDS = 5


@pytest.fixture
def peers() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for sock in made:
        sock.close()


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    """Whether the server's end of *sock* is closed (EOF or reset), reading past any
    answer. The loop does not run meanwhile, so only what stop() did counts."""
    while True:
        readable, _, _ = select.select([sock], [], [], wait)
        if not readable:
            return False
        try:
            if not sock.recv(65536):
                return True
        except ConnectionError:
            return True


def connect(port: int, send: bytes, peers: list[socket.socket]) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    peers.append(sock)
    if send:
        sock.sendall(send)
    return sock


@pytest.mark.parametrize("send", [b"", POST], ids=["idle", "delivery"])
async def test_stop_closes_connections_accepted_at_any_turn(
    send: bytes, peers: list[socket.socket], scaled: Callable[[float], float]
) -> None:
    calls: list[Any] = []
    for _ in range(ROUNDS):
        for turns in TURNS:
            server = CallbackServer(lambda method, params: calls.append(method))
            await server.start()
            try:
                sock = connect(server.port, send, peers)
                for _ in range(turns):
                    await asyncio.sleep(0)
            finally:
                await server.stop()
            # no await from here on: the loop must not get a turn to finish the job
            assert closed_by_server(sock, scaled(5.0)), f"left open ({turns} turns)"


async def test_stop_closes_a_burst_of_connections(
    peers: list[socket.socket], scaled: Callable[[float], float]
) -> None:
    server = CallbackServer(lambda method, params: None)
    await server.start()
    try:
        socks = [connect(server.port, POST if i % 2 else b"", peers) for i in range(20)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    finally:
        await server.stop()
    assert all(closed_by_server(sock, scaled(5.0)) for sock in socks)


WEB_POST = b"POST /xmlrpc HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize(
    ("profile", "send"),
    [("standard", b""), ("standard", POST), ("web", b""), ("web", WEB_POST)],
    ids=["standard-idle", "standard-call", "web-idle", "web-call"],
)
async def test_hub_stop_closes_connections_accepted_at_any_turn(
    profile: str, send: bytes, peers: list[socket.socket], scaled: Callable[[float], float]
) -> None:
    # the hub's Standard and Web Profile servers had the same accept/stop race
    for _ in range(ROUNDS):
        for turns in TURNS:
            hub = AsyncSAMPHub(web_profile=profile == "web", web_port=0, write_lockfile=False)
            await hub.start()
            try:
                port = hub.web.port if hub.web is not None else hub.port
                sock = connect(port, send, peers)
                for _ in range(turns):
                    await asyncio.sleep(0)
            finally:
                await hub.stop()
            assert closed_by_server(sock, scaled(5.0)), f"left open ({turns} turns)"


async def test_deliveries_racing_a_disconnect_end_cleanly_on_both_sides() -> None:
    # A sender notifies a client over and over while that client disconnects: the
    # client's stop closes every connection the hub opened (a leak would fail the test
    # as an unraisable ResourceWarning), and the hub counts the client gone and serves on.
    hub = AsyncSAMPHub(web_profile=False, write_lockfile=False)
    await hub.start()
    sender = AsyncSAMPIntegratedClient(name="sender")
    try:
        await sender.connect(hub_params=hub.params)
        for _ in range(ROUNDS * 2):
            target = AsyncSAMPIntegratedClient(name="target")
            await target.connect(hub_params=hub.params)
            await target.bind_receive_notification("test.race", lambda *args: None)
            target_id = target.get_public_id()
            assert target_id is not None

            async def flood(target_id: str = target_id) -> None:
                for _ in range(50):
                    try:
                        await sender.enotify(target_id, "test.race", n="1")
                    except Exception:  # the hub no longer knows it: the race is over
                        return
                    await asyncio.sleep(0)

            task = asyncio.create_task(flood())
            await asyncio.sleep(0)
            await target.disconnect()
            await task
            assert not target.is_connected
            assert target_id not in await sender.get_registered_clients()
        assert await sender.ping() is not None
    finally:
        await sender.disconnect()
        await hub.stop()


async def test_tls_connection_made_after_the_hub_stopped_is_closed(
    tmp_path: Path, peers: list[socket.socket], scaled: Callable[[float], float]
) -> None:
    # A TLS connection is known to the server only once its handshake is done (a
    # failed handshake never reaches it); one accepted before the stop and finished
    # after it must be closed when made, not served by a stopped hub.
    cert = make_cert(tmp_path)
    hub = AsyncSAMPHub(
        web_profile=False,
        write_lockfile=False,
        https=True,
        key_file=cert.key,
        cert_file=cert.cert,
    )
    await hub.start()
    try:
        raw = connect(hub.port, b"", peers)
        for _ in range(3):  # accepted, its TLS transport built, waiting for the hello
            await asyncio.sleep(0)
    finally:
        await hub.stop()
    context = ssl.create_default_context(cafile=cert.cert)

    def handshake_then_read() -> bool:
        try:
            tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
        except (ssl.SSLError, OSError):
            return True  # refused during the handshake: closed too
        peers.append(tls)
        tls.sendall(POST)
        return closed_by_server(tls, scaled(5.0))

    # the loop runs meanwhile, so the handshake can end and connection_made run
    assert await asyncio.to_thread(handshake_then_read)
