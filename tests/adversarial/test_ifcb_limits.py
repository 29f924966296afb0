"""`sciwire ifcb sim` in a subprocess under attack on loopback: an oversized WebSocket
message and a SignalR record that never ends must not grow the server's memory (RSS read
from /proc/<pid>/status), must close the attacker's connection with one log line naming
the peer and the limit, and must leave legitimate clients served. Then the fault test:
the simulator is killed and restarted, and our client reconnects, re-registers once and
calls each handler once per message."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import re
import socket
import struct
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sciwire.ifcb import IFCBClient
from tests.adversarial.helpers import status_kb
from tests.clirun import Running, running
from tests.helpers import scale

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/status"), reason="RSS is read from /proc (Linux)"
)

SERIAL = "111-111-111"
MiB = 1024 * 1024
#: what an attack may add to the server's RSS; without the caps it adds at least ATTACK
GROWTH_BOUND = 24 * MiB
ATTACK = 64 * MiB
SIM_ARGS = ("ifcb", "sim", "--host", "127.0.0.1", "--heartbeat", "0", "--rate", "0")
URL_LINE = re.compile(r"http://127\.0\.0\.1:(\d+)/ifcbHub")


class SimProcess:
    """`sciwire ifcb sim` on 127.0.0.1, run by :func:`tests.clirun.running`."""

    def __init__(self, job: Running) -> None:
        self.job = job
        match = URL_LINE.search(job.wait_line("/ifcbHub", timeout=30))
        assert match, job.out
        self.port = int(match.group(1))

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ifcbHub"

    def rss(self) -> int:
        """The server's resident set size in bytes."""
        return status_kb(self.job.proc.pid, "VmRSS") * 1024

    def push(self, text: str, timeout: float) -> int:
        """Relay one host message through the control route; returns the client count."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/sim/push", data=text.encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return int(json.load(reply)["clients"])

    def kill(self) -> None:
        self.job.proc.kill()
        self.job.proc.wait()


@pytest.fixture
def spawn() -> Iterator[Callable[[int], SimProcess]]:
    with contextlib.ExitStack() as stack:

        def start(port: int = 0) -> SimProcess:
            job = stack.enter_context(running(*SIM_ARGS, "--port", str(port)))
            return SimProcess(job)

        yield start


@pytest.fixture
def clients() -> Iterator[list[IFCBClient]]:
    made: list[IFCBClient] = []
    yield made
    for client in made:
        client.disconnect()


# -- a bare WebSocket attacker -------------------------------------------------------------


def _upgrade(port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ifcbHub HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "server closed during the upgrade"
        head += chunk
        assert len(head) < 65536
    assert head.startswith(b"HTTP/1.1 101"), head[:200]
    return sock


def _frame_head(size: int, fin: bool = True) -> bytes:
    # a masked text frame (clients must mask, RFC 6455 5.3) with an all-zero key, so the
    # payload bytes go out as they are
    return struct.pack("!BBQ", (0x80 if fin else 0) | 0x1, 0x80 | 127, size) + b"\0\0\0\0"


def _stream(sock: socket.socket, chunks: Iterator[bytes]) -> int:
    """Send until the server stops reading us; returns the bytes it took."""
    sent = 0
    for chunk in chunks:
        try:
            sock.sendall(chunk)
        except OSError:  # reset or broken pipe: the server closed on us
            break
        sent += len(chunk)
    return sent


def _serve_legitimately(sim: SimProcess, clients: list[IFCBClient], timeout: float) -> None:
    client = IFCBClient(sim.ws_url, SERIAL, reconnect=False)
    clients.append(client)
    paused: queue.Queue[bool] = queue.Queue()
    client.on(("valuechanged", "pausestate"), lambda _, __, value: paused.put(value))
    client.connect()
    assert paused.get(timeout=timeout) is False
    client.disconnect()


def _assert_refused(
    sim: SimProcess, clients: list[IFCBClient], before: int, sent: int, limit: str, timeout: float
) -> None:
    """After an attack of *sent* bytes: memory stayed bounded, the connection was dropped
    early, the drop was logged once naming *limit* and the client, and the simulator
    still serves a legitimate client."""
    growth = sim.rss() - before
    assert growth < GROWTH_BOUND, f"RSS grew {growth / MiB:.0f} MiB after {sent} bytes"
    # the connection was dropped, not read to the end (what got through sat in socket buffers)
    assert sent < ATTACK // 2, f"the server took {sent / MiB:.0f} MiB"
    sim.job.wait_line(limit, err=True, timeout=timeout)
    _serve_legitimately(sim, clients, scale(timeout))
    [line] = [line for line in sim.job.err if limit in line]
    assert "127.0.0.1:" in line


def test_oversized_message_is_refused_with_bounded_memory(
    spawn: Callable[[int], SimProcess],
    clients: list[IFCBClient],
    scaled: Callable[[float], float],
) -> None:
    sim = spawn(0)
    _serve_legitimately(sim, clients, scaled(20))  # warm: every code path imported
    before = sim.rss()
    sock = _upgrade(sim.port, scaled(10))
    try:
        # one 256 MiB message announced; up to ATTACK bytes of it actually sent
        body = b"a" * MiB
        sent = _stream(sock, iter([_frame_head(256 * MiB)] + [body] * (ATTACK // MiB)))
    finally:
        sock.close()
    _assert_refused(sim, clients, before, sent, "max_message_size", 20)


def test_endless_record_is_refused_with_bounded_memory(
    spawn: Callable[[int], SimProcess],
    clients: list[IFCBClient],
    scaled: Callable[[float], float],
) -> None:
    sim = spawn(0)
    _serve_legitimately(sim, clients, scaled(20))
    before = sim.rss()
    sock = _upgrade(sim.port, scaled(10))
    try:
        handshake = b'{"protocol":"json","version":1}\x1e'
        sock.sendall(_frame_head(len(handshake)) + handshake)
        # 1 MiB frames (each under the message cap), never a 0x1E
        body = b"b" * MiB
        sent = _stream(sock, iter([_frame_head(MiB) + body] * (ATTACK // MiB)))
    finally:
        sock.close()
    _assert_refused(sim, clients, before, sent, "max_record_size", 20)


# -- the fault test ----------------------------------------------------------------------


def test_client_survives_a_killed_and_restarted_simulator(
    spawn: Callable[[int], SimProcess],
    clients: list[IFCBClient],
    scaled: Callable[[float], float],
) -> None:
    sim = spawn(0)
    client = IFCBClient(sim.ws_url, SERIAL, reconnect_delays=(0.05, 0.1, 0.2))
    clients.append(client)
    got: queue.Queue[tuple[Any, ...]] = queue.Queue()
    any_seen: list[str] = []
    relayed: list[str] = []
    reconnected = threading.Event()
    client.on(("syringetrack",), lambda *f: got.put(f))
    client.on(("reportevent",), lambda *f: got.put(f))
    client.on_any_message(lambda response: any_seen.append(response[3]))
    client.hub_connection.on("messageRelayed", lambda response: relayed.append(response[3]))
    client.on_reconnect(reconnected.set)
    client.connect()
    client.wait_started(scaled(10))

    def exchange(value: str) -> None:
        assert sim_now[0].push(f"syringetrack:{value}", scaled(10)) == 1  # one registration
        sim_now[0].push(f"reportevent:after {value}", scaled(10))
        calls = []
        while not calls or calls[-1][0] != "reportevent":
            calls.append(got.get(timeout=scaled(10)))
        assert calls == [("syringetrack", float(value)), ("reportevent", f"after {value}")]
        assert any_seen.count(f"syringetrack:{value}") == 1
        assert relayed.count(f"syringetrack:{value}") == 1

    sim_now = [sim]
    exchange("1.5")
    port = sim.port
    sim.kill()
    sim_now[0] = spawn(port)
    assert reconnected.wait(scaled(20))
    client.wait_started(scaled(10))
    exchange("2.5")
    assert len(client.handlers) == 2
