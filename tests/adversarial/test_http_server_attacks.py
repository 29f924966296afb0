"""Attacks on sciwire's HTTP server (a CommandServer in its own process), each scaled
down to run in seconds: malformed and smuggling requests, slowloris, stalled bodies,
oversized heads. Each asserts a clear answer or a closed connection, bounded memory
and descriptors, and legitimate calls answered during and after."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

import pytest

from sciwire.command import CommandClient
from tests.adversarial.helpers import Served, read_until_closed, statuses
from tests.core.test_http_differential import VECTORS, check
from tests.helpers import scale

MiB = 1024 * 1024

#: the table's requests that h11 and llhttp both refuse
REFUSED = [(name, data) for name, data in VECTORS if check(data) == "both reject"]


def _client(served: Served) -> CommandClient:
    return CommandClient("command", "127.0.0.1", served.port, timeout=scale(20), retries=1)


def _connect(served: Served) -> socket.socket:
    return socket.create_connection(("127.0.0.1", served.port), timeout=scale(10))


@pytest.fixture(params=[False, True], ids=["asyncio", "uvloop"])
def server(request: pytest.FixtureRequest, serve: Callable[..., Served]) -> Served:
    """The server with test-sized limits, on asyncio's loop and on uvloop."""
    return serve(
        uvloop=request.param,
        head_timeout=1.0,
        body_timeout=2.0,
        max_connections=40,
        max_inflight_body=16 * MiB,
        max_body=64 * MiB,
    )


def test_refused_requests_get_400_and_a_closed_connection(server: Served) -> None:
    assert len(REFUSED) >= 40
    for name, data in REFUSED:
        with _connect(server) as sock:
            sock.sendall(data)
            answer, closed = read_until_closed(sock, scale(5))
        assert closed, name
        assert statuses(answer) == [400], (name, answer[:80])
    with _client(server) as cli:
        assert cli.echo("after") == "after"


def test_bare_lf_smuggling_gets_one_answer_or_none(server: Served) -> None:
    smuggle = (
        b"POST /api HTTP/1.1\r\nHost: a\r\nX: a\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 38\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    with _connect(server) as sock:
        sock.sendall(smuggle)
        answer, closed = read_until_closed(sock, scale(5))
    assert closed and statuses(answer) == [400]
    # the classic CL.TE form too: refused whole, the smuggled request never read
    with _connect(server) as sock:
        sock.sendall(smuggle.replace(b"X: a\n", b""))
        answer, closed = read_until_closed(sock, scale(5))
    assert closed and statuses(answer) == [400]


def test_a_valid_request_before_garbage_is_answered_once_then_400(server: Served) -> None:
    call = b'{"jsonrpc": "2.0", "method": "echo", "params": ["once"], "id": 1}'
    data = b"POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (len(call), call)
    with _connect(server) as sock:
        sock.sendall(data + b"G@T / HTTP/1.1\r\n\r\n")
        answer, closed = read_until_closed(sock, scale(5))
    assert closed and statuses(answer) == [200, 400]
    with _client(server) as cli:
        assert cli.history().count("once") == 1  # run once, not lost, not twice


def test_slowloris_is_cut_off_by_the_head_deadline_and_the_connection_cap(
    server: Served,
) -> None:
    """60 connections (the cap is 40) each send a request head one byte at a time:
    the head deadline (1 s) closes them, the cap keeps descriptors bounded, and
    legitimate calls are answered during the attack."""
    attackers: list[socket.socket] = []
    stop = threading.Event()
    for _ in range(60):
        sock = _connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nX: ")
        attackers.append(sock)

    def drip() -> None:
        while not stop.is_set():
            for sock in attackers:
                with contextlib.suppress(OSError):  # closed by the server, as it should
                    sock.send(b"a")
            stop.wait(0.2)

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        most_fds = 0
        with _client(server) as cli:
            for i in range(10):  # during the attack
                assert cli.echo(i) == i
                # (sampled once a call was answered: connections accepted in one burst
                # are over the cap until the loop has run their evictions' callbacks)
                most_fds = max(most_fds, server.fds())
        # every attacker is answered 408 (or dropped at the cap) and closed, in
        # about the deadline: a few seconds, not minutes
        deadline = time.monotonic() + scale(10)
        for sock in attackers:
            answer, closed = read_until_closed(sock, max(0.1, deadline - time.monotonic()))
            assert closed
            assert answer == b"" or answer.startswith((b"HTTP/1.1 408 ", b"HTTP/1.1 503 "))
    finally:
        stop.set()
        dripper.join(timeout=scale(5))
        for sock in attackers:
            sock.close()
    assert most_fds <= 40 + 20  # the cap, plus the process's own descriptors
    with _client(server) as cli:
        assert cli.echo("after") == "after"


def test_stalled_bodies_are_held_to_the_in_flight_budget(server: Served) -> None:
    """4 connections each announce a 60 MiB body, send 24 MiB of it and stall: the
    total in-flight budget (16 MiB) answers 503 and closes; the server's memory grows
    by less than 48 MiB (the budget plus buffers and slack; 96 MiB arrived)."""
    before = server.rss_kb()
    socks = [_connect(server) for _ in range(4)]
    head = b"POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (60 * MiB)
    chunk = b"x" * MiB
    refused = 0
    try:
        for sock in socks:
            sock.sendall(head)

        def push(sock: socket.socket) -> None:
            try:
                for _ in range(24):
                    sock.sendall(chunk)
            except OSError:
                pass  # the server closed it: over budget

        pushers = [threading.Thread(target=push, args=(s,)) for s in socks]
        for t in pushers:
            t.start()
        for t in pushers:
            t.join(timeout=scale(30))
        with _client(server) as cli:
            assert cli.echo("during") == "during"
        for sock in socks:
            answer, closed = read_until_closed(sock, scale(0.5))
            if closed:
                assert answer == b"" or answer.startswith(b"HTTP/1.1 503 ")
                refused += 1
        growth_mib = (server.peak_kb() - before) / 1024
    finally:
        for sock in socks:
            sock.close()
    assert refused >= 2
    assert growth_mib < 48, f"server grew by {growth_mib:.0f} MiB"


def test_stalled_body_is_cut_off_by_the_body_deadline(server: Served) -> None:
    with _connect(server) as sock:
        sock.sendall(b"POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{")
        answer, closed = read_until_closed(sock, scale(10))
    assert closed and answer.startswith(b"HTTP/1.1 408 ")


def test_oversized_head_gets_431(server: Served) -> None:
    with _connect(server) as sock:
        with contextlib.suppress(OSError):  # closed while we were still sending
            sock.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * (100 * 1024) + b"\r\n\r\n")
        answer, closed = read_until_closed(sock, scale(5))
    assert closed and answer.startswith(b"HTTP/1.1 431 ")
    with _client(server) as cli:
        assert cli.echo("after") == "after"
