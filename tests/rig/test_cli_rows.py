"""The ``sciwire rig`` rows of issue #14: the URI scheme, --json, signals, taken ports."""

from __future__ import annotations

import json
import signal
import socket

import pytest

from tests.clirun import run, running, taken_port


def test_send_unknown_scheme_names_it() -> None:
    result = run("rig", "send", "foo://x", "EXPINIT").clean(1)
    assert result.err.strip() == "error: foo://x: the scheme 'foo' is not one of udp/tcp/ws/wss"


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


def test_serve_on_a_taken_port_is_one_line() -> None:
    with taken_port(socket.SOCK_DGRAM) as port:
        result = run("rig", "serve", f"udp://127.0.0.1:{port}").clean(1)
    assert f"cannot listen on 127.0.0.1:{port}" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_send_with_nobody_listening_is_one_line() -> None:
    with taken_port(socket.SOCK_DGRAM) as port:
        pass  # closed: nobody echoes
    result = run("rig", "send", f"udp://127.0.0.1:{port}", "EXPINIT", "--timeout", "0.5")
    result.clean(1)
    assert len(result.err.strip().splitlines()) == 1 and f"127.0.0.1:{port}" in result.err


def test_serve_json_lines() -> None:
    with running("rig", "serve", "tcp://127.0.0.1:0", "--json", "--count", "1") as job:
        uri = job.wait_line("listening on").split()[-1]
        run("rig", "send", uri, "EXPINIT", '{"subject": "mouse"}').clean(0)
        result = job.wait().clean(0)
    record = json.loads(result.out.splitlines()[-1])
    assert record["event"] == "EXPINIT" and record["data"] == [{"subject": "mouse"}]
    assert record["from"].startswith("127.0.0.1:")
