"""Fixtures for the attacks: our real servers in subprocesses (measured from outside
through /proc), hostile servers on loopback threads, all closed by finalizers."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sciwire.core.http.codec import ResponseParser
from tests.conftest import scale

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    """A server process: its port and what /proc says about it."""

    proc: subprocess.Popen[str]
    port: int

    def rss_kb(self) -> int:
        return _status_kb(self.proc.pid, "VmRSS")

    def peak_kb(self) -> int:
        return _status_kb(self.proc.pid, "VmHWM")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """``serve(head_timeout=1, ...)``: a CommandServer process with those limits."""
    procs: list[subprocess.Popen[str]] = []

    def start(**cfg: Any) -> Served:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.adversarial._serve", json.dumps(cfg)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], scale(30))
        assert ready, "server process did not start"
        return Served(proc, int(proc.stdout.readline()))

    yield start
    for proc in procs:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=scale(10))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def hostile() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """``hostile(behave)``: a loopback server that runs ``behave(conn)`` on a thread
    for each connection it accepts; returns its port."""
    stop = threading.Event()
    socks: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(behave: Callable[[socket.socket], None]) -> int:
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(16)
        lsock.settimeout(0.2)
        socks.append(lsock)

        def accept() -> None:
            while not stop.is_set():
                try:
                    conn, _ = lsock.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                conn.settimeout(scale(10))
                socks.append(conn)
                t = threading.Thread(target=_guarded, args=(behave, conn), daemon=True)
                threads.append(t)
                t.start()

        t = threading.Thread(target=accept, daemon=True)
        threads.append(t)
        t.start()
        return int(lsock.getsockname()[1])

    yield start
    stop.set()
    for s in socks:
        s.close()
    for t in threads:
        t.join(timeout=scale(10))


def _guarded(behave: Callable[[socket.socket], None], conn: socket.socket) -> None:
    try:
        with conn:
            behave(conn)
    except OSError:
        pass  # the client hung up: what the attack expects


def run_client(kind: str, port: int, env: dict[str, str]) -> dict[str, Any]:
    """One call of a sciwire client in a subprocess (see _client.py)."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.adversarial._client", kind, str(port)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=scale(60),
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def read_until_closed(sock: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (True) or *seconds* pass (False)."""
    sock.settimeout(seconds)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except TimeoutError:
        return data, False
    except ConnectionResetError:
        return data, True


def statuses(data: bytes) -> list[int]:
    """The status of every response in *data* (parsed, not searched for)."""
    found = []
    while data:
        parser = ResponseParser(pipelined=True)
        resp = parser.feed(data)
        if resp is None:
            resp = parser.feed_eof()
        found.append(resp.status)
        data = parser.extra
    return found
