"""Helpers for the adversarial tests: a served process and its memory, a client run in a
subprocess, reading a connection to its end. The fixtures built on them are in conftest.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sciwire.core.http.codec import ResponseParser
from tests.helpers import scale

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    """A server process: its port and what /proc says about it."""

    proc: subprocess.Popen[str]
    port: int

    def rss_kb(self) -> int:
        return status_kb(self.proc.pid, "VmRSS")

    def peak_kb(self) -> int:
        return status_kb(self.proc.pid, "VmHWM")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status``, e.g. VmRSS or VmHWM."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


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
