"""Fixtures for the attacks: our real servers in subprocesses (measured from outside
through /proc), hostile servers on loopback threads, all closed by finalizers."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.adversarial.helpers import (
    ROOT,
    Served,
)
from tests.helpers import scale


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
