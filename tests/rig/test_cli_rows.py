"""The ``sciwire rig`` rows of issue #14: the URI scheme, --json, signals, taken ports."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Callable

import pytest

from tests.clirun import run, running, taken_port


def test_send_unknown_scheme_names_it() -> None:
    result = run("rig", "send", "foo://x", "EXPINIT").clean(1)
    assert result.err.strip() == "error: foo://x: the scheme 'foo' is not one of udp/tcp/ws/wss"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_exits_0_on_signals_and_send_json(signum: int) -> None:
    with running("rig", "serve", "udp://127.0.0.1:0", "--reply") as job:
        uri = job.wait_line("listening on").split()[-1]
        result = run("rig", "send", uri, "EXPSTATUS", "7", "--json", "--wait-reply", "10")
        lines = [json.loads(line) for line in result.clean(0).out.splitlines()]
        assert lines[0] == {"confirmed": "EXPSTATUS", "data": [7]}
        assert len(lines) == 2 and lines[1]["reply"] == "EXPSTATUS"  # the rig's own status
        job.wait_line("EXPSTATUS [7]")
        job.signal(signum).clean(0)


@pytest.mark.parametrize("scheme", ["udp://", ""])  # without one, udp is the default
def test_serve_on_a_taken_port_is_one_line(scheme: str) -> None:
    with taken_port(socket.SOCK_DGRAM) as port:
        result = run("rig", "serve", f"{scheme}127.0.0.1:{port}").clean(1)
    assert f"cannot listen on 127.0.0.1:{port}" in result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.slow
def test_send_with_nobody_listening_is_one_line() -> None:
    with taken_port(socket.SOCK_DGRAM) as port:
        pass  # closed: nobody echoes
    result = run("rig", "send", f"udp://127.0.0.1:{port}", "EXPINIT", "--timeout", "0.5")
    result.clean(1)
    assert len(result.err.strip().splitlines()) == 1 and f"127.0.0.1:{port}" in result.err


@pytest.mark.slow
def test_serve_json_lines() -> None:
    with running("rig", "serve", "tcp://127.0.0.1:0", "--json", "--count", "1") as job:
        uri = job.wait_line("listening on").split()[-1]
        run("rig", "send", uri, "EXPINIT", '{"subject": "mouse"}').clean(0)
        result = job.wait().clean(0)
    record = json.loads(result.out.splitlines()[-1])
    assert record["event"] == "EXPINIT" and record["data"] == [{"subject": "mouse"}]
    assert record["from"].startswith("127.0.0.1:")


def _echo_or_close(sock: socket.socket, size: int) -> bytes:
    """Up to *size* bytes of echo, fewer when the server closes the connection first."""
    got = b""
    while len(got) < size:
        try:
            chunk = sock.recv(size - len(got))
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    return got


def test_serve_max_total_buffer_closes_the_connection_that_passes_it(
    scaled: Callable[[float], float],
) -> None:
    with running("rig", "serve", "tcp://127.0.0.1:0", "--max-total-buffer", "1500") as job:
        uri = job.wait_line("listening on").split()[-1]
        host, port = uri.removeprefix("tcp://").rsplit(":", 1)
        head = b'[1, "'
        socks = [socket.create_connection((host, int(port)), scaled(10)) for _ in range(2)]
        try:
            for sock, fill in zip(socks, (b"x", b"y"), strict=True):
                sock.sendall(head + fill * 1000)  # two unfinished messages: 2010 bytes held
            line = job.wait_line("max_total_buffer_size", err=True)
            assert "127.0.0.1" in line and "1500" in line
            for sock in socks:
                sock.sendall(b'"]')
            got = [_echo_or_close(sock, 1007) for sock in socks]
        finally:
            for sock in socks:
                sock.close()
        # the one whose bytes passed the limit was closed; the other's message is echoed whole
        assert sorted(len(g) for g in got) == [0, 1007], [len(g) for g in got]
        job.signal().clean(0)
    assert sum("max_total_buffer_size" in ln for ln in job.err) == 1


def test_serve_max_total_buffer_on_udp_is_one_line() -> None:
    result = run("rig", "serve", "udp://127.0.0.1:0", "--max-total-buffer", "10").clean(1)
    assert result.err.strip() == (
        "error: udp://127.0.0.1:0: --max-total-buffer applies to tcp://"
        " (a UDP datagram is never held)"
    )
