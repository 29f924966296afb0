"""Hostile servers against sciwire's HTTP clients (each client call in a process of its
own, its peak memory read from /proc): a response body that never ends must stop at
the response-body cap with a clear error, memory bounded by the cap."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from sciwire.core.http import AsyncHttpPool, Endpoint, HttpPool
from sciwire.core.http.limits import MAX_RESPONSE_BODY
from tests.adversarial.helpers import run_client
from tests.helpers import scale

MiB = 1024 * 1024
CAP = 8 * MiB


def _read_head(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("client left")
        data += chunk


def endless_chunked(conn: socket.socket) -> None:
    """Answer with chunks of 64 KiB for as long as the client reads (at most 20 s)."""
    _read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    conn.sendall(b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"10000\r\n" + b"[" * 0x10000 + b"\r\n"
    stop = time.monotonic() + scale(20)
    while time.monotonic() < stop:
        conn.sendall(piece)


def endless_close_delimited(conn: socket.socket) -> None:
    """A body with no length that the server never ends."""
    _read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
    stop = time.monotonic() + scale(20)
    while time.monotonic() < stop:
        conn.sendall(b"[" * 0x10000)


@pytest.mark.parametrize("kind", ["command", "drms", "drms-async"])
@pytest.mark.parametrize("behave", [endless_chunked, endless_close_delimited])
def test_endless_response_body_stops_at_the_cap(
    kind: str,
    behave: Callable[[socket.socket], None],
    hostile: Callable[[Callable[[socket.socket], None]], int],
) -> None:
    port = hostile(behave)
    result = run_client(kind, port, {"SCIWIRE_MAX_RESPONSE_BODY": str(CAP)})
    error = result["error"]
    assert error is not None, "the call must fail"
    assert "SciwireError" in error["mro"], error
    assert "too large" in error["message"], error
    growth_mib = (result["peak_kb"] - result["base_kb"]) / 1024
    # the cap, its copy as the parser hands it over, and interpreter slack
    assert growth_mib < 3 * CAP / MiB + 24, f"client grew by {growth_mib:.0f} MiB"


def test_pools_cap_response_bodies_by_default() -> None:
    endpoint = Endpoint("http", "127.0.0.1", 9)
    assert 256 * MiB == MAX_RESPONSE_BODY
    assert HttpPool(endpoint, timeout=1).max_body == MAX_RESPONSE_BODY
    assert AsyncHttpPool(endpoint, timeout=1).max_body == MAX_RESPONSE_BODY
    assert HttpPool(endpoint, timeout=1, max_body=None).max_body is None  # asked for
