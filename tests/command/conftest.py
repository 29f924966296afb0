"""Fixtures for the command tests: a service to expose, servers, clients, a scripted
raw HTTP server for misbehaving-peer cases. Everything started is closed by a finalizer.
The classes and functions behind them are in tests/command/helpers.py."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sciwire.command import CommandClient, CommandServer
from tests.command.helpers import ScriptedServer, Service, scripted_servers, start_server


@pytest.fixture
def service() -> Iterator[Service]:
    svc = Service()
    yield svc
    svc.gate.set()


@pytest.fixture
def make_server(service: Service) -> Iterator[Callable[..., CommandServer]]:
    started: list[CommandServer] = []

    def make(**kwargs: Any) -> CommandServer:
        srv = start_server(service, **kwargs)
        started.append(srv)
        return srv

    yield make
    service.gate.set()
    for srv in started:
        srv.stop_background()


@pytest.fixture
def server(make_server: Callable[..., CommandServer]) -> CommandServer:
    return make_server()


@pytest.fixture
def make_client(scaled: Callable[[float], float]) -> Iterator[Callable[..., CommandClient]]:
    made: list[CommandClient] = []

    def make(port: int, host: str = "127.0.0.1", **kwargs: Any) -> CommandClient:
        kwargs.setdefault("timeout", scaled(10))
        kwargs.setdefault("retries", 1)
        kwargs.setdefault("retry_seconds", 0)
        client = CommandClient(host=host, port=port, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(server: CommandServer, make_client: Callable[..., CommandClient]) -> CommandClient:
    return make_client(server.port)


@pytest.fixture
def scripted() -> Iterator[Callable[[list[str | bytes]], ScriptedServer]]:
    yield from scripted_servers()


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 (made with openssl)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
