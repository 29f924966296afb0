"""The blocking facade, the CLI (serve in a subprocess, send in-process) and the demo row."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from sciwire.core.portal import Portal
from sciwire.rig import BlockingEchoProtocol, BlockingServices, ExpMessage, RemoteRig
from sciwire.rig.cli import group

Scaled = Callable[[float], float]


@pytest.fixture
def portal() -> Iterator[Portal]:
    with Portal("test-rig-portal") as p:
        yield p


@pytest.fixture
def coms(portal: Portal) -> Iterator[list[BlockingEchoProtocol]]:
    made: list[BlockingEchoProtocol] = []
    yield made
    for com in made:
        com.close()


def test_blocking_client_and_server(
    portal: Portal, coms: list[BlockingEchoProtocol], scaled: Scaled
) -> None:
    server = BlockingEchoProtocol.server("udp://127.0.0.1:0", name="srv", portal=portal)
    coms.append(server)
    client = BlockingEchoProtocol.client(server.server_uri, name="cli", portal=portal)
    coms.append(client)
    assert server.role == "server" and client.is_connected
    seen: list[Any] = []
    server.assign_callback("EXPINIT", lambda d, a: seen.append(d))
    client.init({"a": 1})
    client.confirmed_send([4, "x"], timeout=scaled(2))
    assert seen == [[{"a": 1}]]
    assert server.clear_callbacks("EXPINIT") == 1
    with pytest.raises(TimeoutError):
        client.on_event("EXPEND", timeout=scaled(0.1))


def test_blocking_services(
    portal: Portal, coms: list[BlockingEchoProtocol], scaled: Scaled
) -> None:
    rigs = []
    for name in ("a", "b"):
        server = BlockingEchoProtocol.server("tcp://127.0.0.1:0", name=name, portal=portal)
        coms.append(server)
        rigs.append(server)

    async def attach(com: Any) -> RemoteRig:
        return RemoteRig(com)

    for server in rigs:
        portal.call(attach(server.com))
    clients = [BlockingEchoProtocol.client(r.server_uri, name=r.name, portal=portal) for r in rigs]
    coms.extend(clients)
    with BlockingServices(clients, timeout=scaled(2)) as services:
        assert services.is_connected
        assert services.init({"x": 1}) == {"a": [{"x": 1}], "b": [{"x": 1}]}
        assert services.start("2024-01-01_1_m") == {n: ["2024-01-01_1_m", None] for n in "ab"}
        assert services.status(20) == {"a": [20], "b": [20]}
        assert services.stop(immediately=True) == {"a": [None], "b": [None]}
        assert services.cleanup() == {"a": [None], "b": [None]}


def test_cli_send_to_serve_subprocess(scaled: Scaled) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sciwire",
            "rig",
            "serve",
            "udp://127.0.0.1:0",
            "--reply",
            "--count",
            "2",
            "--name",
            "cam",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("listening on udp://127.0.0.1:")
        uri = first.split()[-1]
        runner = CliRunner()
        result = runner.invoke(
            group,
            ["send", uri, "expstart", "2024-01-01_1_m", '{"a": 1}', "--wait-reply", str(scaled(3))],
        )
        assert result.exit_code == 0, result.output
        assert 'confirmed EXPSTART ["2024-01-01_1_m", {"a": 1}]' in result.output
        assert 'reply EXPSTART ["2024-01-01_1_m", {"a": 1}]' in result.output
        result = runner.invoke(group, ["send", uri, "32", "20"])
        assert result.exit_code == 0, result.output
        out, _ = proc.communicate(timeout=scaled(10))
        assert proc.returncode == 0
        lines = out.splitlines()
        assert lines[0].startswith('EXPSTART ["2024-01-01_1_m", {"a": 1}] 127.0.0.1:')
        assert lines[1].startswith("EXPSTATUS [20] 127.0.0.1:")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_cli_send_errors(scaled: Scaled) -> None:
    import socket

    runner = CliRunner()
    result = runner.invoke(group, ["send", "udp://127.0.0.1:9", "bogus"])
    assert result.exit_code == 2 and "Unrecognized" in result.output
    result = runner.invoke(group, ["send", "udp://127.0.0.1:9", "0"])
    assert result.exit_code == 2 and "error report" in result.output
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute:
        mute.bind(("127.0.0.1", 0))
        uri = f"udp://127.0.0.1:{mute.getsockname()[1]}"
        result = runner.invoke(group, ["send", uri, "expinit", "--timeout", str(scaled(0.2))])
    assert result.exit_code == 1 and "no echo within" in result.output
    result = runner.invoke(group, ["serve", "udp://127.0.0.1:99999"])
    assert result.exit_code == 1 and "Invalid port" in result.output


def test_demo_row() -> None:
    from sciwire.rig.demo import run

    row = run()
    assert row.ok, row.checked
    assert row.package == "rig"
    assert ExpMessage.EXPSTATUS.name in row.checked
