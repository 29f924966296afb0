"""``sciwire command serve|call`` as a user runs them: real processes on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.clirun import Running, run, running, taken_port


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Running, int]]:
    with running("command", "serve", "--port", "0", "--fast") as job:
        line = job.wait_line("command_core listening on", err=True)
        yield job, int(line.rsplit(":", 1)[1].split("/")[0])


def test_serve_names_the_taken_port() -> None:
    # command_core asks for port+0, vis for port+1: hold vis's port so core starts first
    with taken_port() as port:
        result = run("command", "serve", "--port", str(port - 1)).clean(1)
    assert f"command_vis: cannot listen on 127.0.0.1:{port}" in result.err
    assert "already in use" in result.err
    assert len(result.err.strip().splitlines()) == 2  # core's start line, then the error


def test_call_with_nothing_listening_names_host_port_and_method() -> None:
    with taken_port() as port:
        pass  # now closed: nothing listens there
    result = run("command", "call", "get_job", "--host", "127.0.0.1", "--port", str(port))
    result.clean(1)
    assert result.err.strip() == (
        f"error: cannot connect to 127.0.0.1:{port} to call get_job: Connection refused"
    )


@pytest.mark.slow
def test_call_prints_result_and_json(served: tuple[Running, int]) -> None:
    _, port = served
    result = run("command", "call", "hello_world", "--port", str(port)).clean(0)
    assert json.loads(result.out) == {"hello": "world"}
    result = run("command", "call", "hello_world", "--port", str(port), "--json").clean(0)
    lines = result.out.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == {"method": "hello_world", "result": {"hello": "world"}}


@pytest.mark.slow
def test_server_error_is_its_last_line_unless_verbose(served: tuple[Running, int]) -> None:
    _, port = served
    result = run("command", "call", "get_project", "P999", "--port", str(port)).clean(1)
    err = result.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: get_project failed on localhost:")
    assert "P999" in err[0]
    verbose = run("-v", "command", "call", "get_project", "P999", "--port", str(port))
    assert verbose.code == 1
    assert "Traceback" in verbose.err  # the server's traceback, shown on request


def test_bad_arguments_are_a_usage_error(served: tuple[Running, int]) -> None:
    _, port = served
    result = run("command", "call", "hello_world", "1", "x=2", "--port", str(port))
    result.clean(2)
    assert "positional" in result.err or "keyword" in result.err


@pytest.mark.slow
def test_serve_exits_0_on_sigterm_and_sigint() -> None:
    import signal

    for signum in (signal.SIGTERM, signal.SIGINT):
        with running("command", "serve", "--port", "0", "--fast") as job:
            job.wait_line("command_rtp listening on", err=True)
            job.signal(signum).clean(0)
