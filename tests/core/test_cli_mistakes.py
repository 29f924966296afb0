"""Ordinary mistakes on every command: a usage error (2) or one error line (1), never a
traceback. Runs in-process through the root command, so its error rule applies."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sciwire.cli import main
from tests.clirun import taken_port


def closed_port() -> str:
    with taken_port() as port:
        pass  # closed again: connections are refused
    return str(port)


#: stands for a port just closed again, chosen when the test runs (a value chosen at
#: collection would differ between xdist workers, which must collect the same ids)
CLOSED = "{closed}"

MISTAKES = [
    (2, ["drms", "series", "-s", "notaurl"], "Unknown DRMS server 'notaurl'"),
    (2, ["drms", "query", "-n", "abc", "x"], "'abc' is not a valid integer"),
    (1, ["drms", "query", "x", "-s", "http://127.0.0.1:{closed}/"], "cannot connect"),
    (2, ["drms", "emulate", "--port", "99999"], "not in the range"),
    (1, ["rig", "send", "udp://127.0.0.1:99999", "EXPINIT"], "Invalid port number"),
    (1, ["rig", "serve", "tcp://127.0.0.1:abc"], "Invalid port number: abc"),
    (1, ["rig", "send", "udp://127.0.0.1:9", "EXPINIT", "--timeout", "0.1"], "no echo within"),
    (2, ["rig", "send", "udp://127.0.0.1:9", "NOSUCHEVENT"], "EVENT"),
    (1, ["ifcb", "monitor", "ws://127.0.0.1:99999/ifcbHub", "x"], "has a bad port"),
    (1, ["ifcb", "monitor", "ws://127.0.0.1:{closed}/ifcbHub", "x"], "cannot connect to ws://"),
    (2, ["ifcb", "sim", "--port", "-1"], "not in the range"),
    (2, ["command", "serve", "--port", "70000"], "not in the range"),
    (1, ["command", "call", "x", "--host", "127.0.0.1", "--port", CLOSED], "cannot connect to"),
    (1, ["samp", "send", "x", "--lockfile", "/nonexistent/samp"], "cannot read lockfile"),
    (2, ["samp", "send", "x", "novalue"], "'novalue' is not key=value"),
    (1, ["samp", "snoop", "--lockfile", "/nonexistent/samp"], "cannot read lockfile"),
    (2, ["demo", "--only", "nope"], "'nope' is not one of"),
    (2, ["--log-level", "loud", "demo"], "'loud' is not one of"),
]


@pytest.mark.parametrize(("code", "args", "says"), MISTAKES, ids=[" ".join(m[1]) for m in MISTAKES])
def test_mistake_is_reported_cleanly(code: int, args: list[str], says: str) -> None:
    if any(CLOSED in arg for arg in args):
        port = closed_port()
        args = [arg.replace(CLOSED, port) for arg in args]
    result = CliRunner().invoke(main, args)
    assert isinstance(result.exception, SystemExit), result.exception  # nothing escaped
    assert result.exit_code == code, result.output
    assert says in result.output
    assert "Traceback" not in result.output
    if code == 1:
        assert result.output.strip().splitlines()[-1].startswith("error: ")
        assert len(result.output.strip().splitlines()) == 1
