"""The limits are named settings, checked when made, and a limit that is hit is logged
with its name and the peer's address: at WARNING once per limit and peer."""

from __future__ import annotations

import logging
import socket

import pytest

from sciwire.core.http import Endpoint, HttpPool
from sciwire.core.http.codec import encode_request
from sciwire.core.http.limits import ServerLimits, limit_hit
from sciwire.core.http.server import HttpServer
from sciwire.errors import RemoteProtocolError
from tests.helpers import scale


def test_limits_have_defaults_and_refuse_nonsense() -> None:
    limits = ServerLimits()
    assert limits.max_head == 64 * 1024 and limits.head_timeout == 10.0
    assert limits.max_connections == 1024 and limits.max_inflight_body == 512 * 1024 * 1024
    with pytest.raises(ValueError, match="head_timeout"):
        ServerLimits(head_timeout=0)
    with pytest.raises(ValueError, match="max_connections"):
        ServerLimits(max_connections=0)


def test_a_limit_hit_warns_once_per_peer_then_logs_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("tests.limits")
    with caplog.at_level(logging.DEBUG, logger="tests.limits"):
        for _ in range(3):
            limit_hit(log, "max_widgets", "192.0.2.7", "3 widgets")
        limit_hit(log, "max_widgets", "192.0.2.8")
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert levels == [
        (logging.WARNING, "limit max_widgets hit by 192.0.2.7: 3 widgets"),
        (logging.DEBUG, "limit max_widgets hit by 192.0.2.7: 3 widgets"),
        (logging.DEBUG, "limit max_widgets hit by 192.0.2.7: 3 widgets"),
        (logging.WARNING, "limit max_widgets hit by 192.0.2.8"),
    ]


class _Echo(HttpServer):
    def respond(self, req: object, remote: str | None) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def test_the_server_names_the_limit_and_the_peer(caplog: pytest.LogCaptureFixture) -> None:
    server = _Echo(
        host="127.0.0.1",
        port=0,
        ssl_context=None,
        max_body=1024,
        shutdown_timeout=1.0,
        limits=ServerLimits(max_head=256),
    )
    # (DEBUG too: an earlier test may have had 127.0.0.1 hit max_head already)
    with caplog.at_level(logging.DEBUG, logger="sciwire.core.http.server"), server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=scale(5)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * 1000 + b"\r\n\r\n")
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 431 ")
    assert any("limit max_head hit by 127.0.0.1" in r.getMessage() for r in caplog.records), (
        caplog.records
    )


def test_a_pool_names_the_response_body_limit_and_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = _Echo(host="127.0.0.1", port=0, ssl_context=None, max_body=1024, shutdown_timeout=1.0)
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100
    server.respond = lambda req, remote: big  # type: ignore[method-assign]
    with caplog.at_level(logging.DEBUG, logger="sciwire.core.http.client"), server:
        pool = HttpPool(Endpoint("http", "127.0.0.1", server.port), timeout=scale(5), max_body=10)
        try:
            with pytest.raises(RemoteProtocolError, match="too large"):
                pool.exchange(encode_request("GET", "/", "127.0.0.1", {}, None), "/")
        finally:
            pool.close()
    origin = f"http://127.0.0.1:{server.port}"
    assert any(
        f"limit max_body (response) hit by {origin}" in r.getMessage() for r in caplog.records
    ), caplog.records
