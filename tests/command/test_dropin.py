"""sciwire.command as cryosparc.command: the public surface, the module-level settings, and
a user's test suite that fakes the network with httpretty (as cryosparc-tools' own does).

The tests that read cryosparc-tools itself import it and are marked ``interop``, so the unit
tier (``make check``) runs the rest without the peer installed.
"""

from __future__ import annotations

import functools
import inspect
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpretty
import pytest

import sciwire.command
from sciwire.command import CommandClient, make_json_request, make_request
from sciwire.core.http._foreign import ForeignSocket, is_real

# -- the public surface ------------------------------------------------------------------


def _defined_in(module: Any) -> set[str]:
    """The public names a module defines itself (not the ones it imports)."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or inspect.ismodule(value):
            continue
        home = getattr(value, "__module__", module.__name__)
        if home == module.__name__ or not callable(value):
            names.add(name)
    return names


@pytest.mark.interop
def test_every_public_name_of_the_original_is_here() -> None:
    import cryosparc.command as original

    wanted = _defined_in(original) - {"Optional", "Type"}  # typing names it imports
    assert {"MAX_ATTEMPTS", "RETRY_INTERVAL", "CommandClient", "make_request"} <= wanted
    missing = sorted(n for n in wanted | {"CommandError"} if not hasattr(sciwire.command, n))
    assert missing == []


@pytest.mark.interop
@pytest.mark.parametrize(
    ("ours", "name"),
    [
        (CommandClient.__init__, "CommandClient.__init__"),
        (make_request.__wrapped__, "make_request.__wrapped__"),  # type: ignore[attr-defined]
        (make_json_request, "make_json_request"),
        (sciwire.command.format_server_error, "format_server_error"),
    ],
)
def test_signatures_start_with_the_originals(ours: Callable[..., Any], name: str) -> None:
    import cryosparc.command as original

    theirs = functools.reduce(getattr, name.split("."), original)
    mine = list(inspect.signature(ours).parameters.values())
    them = list(inspect.signature(theirs).parameters.values())
    assert [(p.name, p.kind, p.default) for p in mine[: len(them)]] == [
        (p.name, p.kind, p.default) for p in them
    ]
    # whatever we add comes after, keyword-only
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in mine[len(them) :])


def test_settings_default_as_the_originals() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYOSPARC_COMMAND_")}
    out = _import_and_print(env)
    assert out == [3, 30, "int", "int"]


@pytest.mark.slow
def test_settings_come_from_the_environment_at_import() -> None:
    env = {
        **os.environ,
        "CRYOSPARC_COMMAND_RETRIES": "5",
        "CRYOSPARC_COMMAND_RETRY_SECONDS": "2.5",
    }
    assert _import_and_print(env) == [5, 2.5, "int", "float"]
    env["CRYOSPARC_COMMAND_RETRIES"] = "many"  # the original fails to import; we warn
    assert _import_and_print(env)[0] == 3


def _import_and_print(env: dict[str, str]) -> list[Any]:
    code = (
        "import json, sciwire.command as c; "
        "print(json.dumps([c.MAX_ATTEMPTS, c.RETRY_INTERVAL, "
        "type(c.MAX_ATTEMPTS).__name__, type(c.RETRY_INTERVAL).__name__]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: list[Any] = json.loads(done.stdout)
    return result


def test_a_bad_module_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sciwire.command, "MAX_ATTEMPTS", "three")
    with pytest.raises(TypeError, match="MAX_ATTEMPTS must be an int"):
        CommandClient(host="127.0.0.1", port=1)


# -- under httpretty ---------------------------------------------------------------------

PROCS: dict[str, Any] = {"hello_world": {"hello": "world"}, "get_job": {"uid": "J1"}}


def _rpc(request: Any, uri: str, headers: dict[str, str]) -> list[Any]:
    body = json.loads(request.body)
    procs = {**PROCS, "system.describe": {"procs": [{"name": n} for n in PROCS]}}
    headers["content-type"] = "application/json"
    return [200, headers, json.dumps({"result": procs[body["method"]]})]


def _echo(request: Any, uri: str, headers: dict[str, str]) -> list[Any]:
    return [200, headers, b"got:" + request.body]


@pytest.fixture
def faked() -> Iterator[None]:
    """The network faked the way cryosparc-tools' conftest fakes it (no real sockets)."""
    httpretty.enable(allow_net_connect=False)
    try:
        httpretty.register_uri(httpretty.POST, "http://localhost:39002/api", body=_rpc)
        httpretty.register_uri(httpretty.POST, "http://localhost:39002/upload", body=_echo)
        httpretty.register_uri(httpretty.GET, "http://localhost:39002/file", body="contents")
        yield
    finally:
        httpretty.disable()
        httpretty.reset()


def _history() -> list[tuple[str, str, Any]]:
    out = []
    for req in httpretty.latest_requests():
        body = req.parsed_body if req.body else None
        if isinstance(body, dict) and "id" in body:
            body = {k: v for k, v in body.items() if k != "id"}  # a fresh uuid per call
        out.append((req.method, req.path, body))
    return out


def _session(client_cls: Any, request: Any, json_request: Any) -> list[Any]:
    results: list[Any] = []
    cli = client_cls(host="localhost", port=39002, headers={"License-ID": "x"})
    results.append(cli.hello_world())
    results.append(cli.get_job("P1", "J1"))
    with request(cli, method="GET", url="/file") as resp:
        results.append((resp.status, resp.read()))
    with json_request(cli, "/upload", data={"a": 1}) as resp:
        results.append(resp.read())
    with request(cli, url="/upload", data=io.BytesIO(b"file body")) as resp:
        results.append(resp.read())
    with request(cli, url="/upload", data=b"raw") as resp:
        results.append(resp.read())
    return results


@pytest.mark.interop
def test_a_faked_session_runs_as_on_the_original(faked: None) -> None:
    import cryosparc.command as original

    theirs = _session(original.CommandClient, original.make_request, original.make_json_request)
    their_history = _history()
    httpretty.reset()
    httpretty.register_uri(httpretty.POST, "http://localhost:39002/api", body=_rpc)
    httpretty.register_uri(httpretty.POST, "http://localhost:39002/upload", body=_echo)
    httpretty.register_uri(httpretty.GET, "http://localhost:39002/file", body="contents")
    ours = _session(CommandClient, make_request, make_json_request)
    assert ours == theirs
    assert theirs[0] == {"hello": "world"} and theirs[2] == (200, b"contents")
    # the fake records what each socket write carried: the same sequence as http.client's
    # (head, then head and body) for every call but the chunked file upload
    mine = _history()
    assert [h for h in mine if h[1] != "/upload"] == [h for h in their_history if h[1] != "/upload"]


def test_a_faked_generator_upload_is_chunked(faked: None) -> None:
    cli = CommandClient(host="localhost", port=39002)
    with make_request(cli, url="/upload", data=iter([b"ab", b"", b"cd"])) as resp:
        got = resp.read()
    # httpretty keeps the chunked framing in the body it records: the pieces and sizes
    assert got.startswith(b"got:") and b"ab" in got and b"cd" in got
    assert httpretty.last_request().headers["Transfer-Encoding"] == "chunked"


def test_an_https_url_under_the_fake(faked: None) -> None:
    httpretty.register_uri(httpretty.POST, "https://localhost:39002/api", body=_rpc)
    cli = CommandClient(host="https://localhost", port=39002)
    assert cli.get_job("P1", "J1") == {"uid": "J1"}
    assert httpretty.last_request().headers["Host"] == "localhost:39002"


# -- the socket double seam ----------------------------------------------------------------


def test_is_real_tells_sockets_from_doubles() -> None:
    a, b = socket.socketpair()
    try:
        assert is_real(a)
        assert not is_real(ForeignSocket(a, None))
        assert not is_real(object())
    finally:
        a.close()
        b.close()


def test_a_double_is_used_only_through_http_clients_calls() -> None:
    class Double:
        """Only what http.client uses: sendall, makefile, settimeout, close."""

        def __init__(self) -> None:
            self.sent: list[bytes] = []
            self.timeouts: list[float | None] = []
            self.closed = False

        def sendall(self, data: bytes) -> None:
            self.sent.append(data)

        def makefile(self, mode: str) -> io.BufferedReader:
            assert mode == "rb"
            return io.BufferedReader(io.BytesIO(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"))

        def settimeout(self, value: float | None) -> None:
            self.timeouts.append(value)

        def close(self) -> None:
            self.closed = True

    double = Double()
    sock = ForeignSocket(double, 5.0)
    assert sock.gettimeout() == 5.0
    sock.settimeout(2.0)
    assert sock.gettimeout() == 2.0 and double.timeouts == [2.0]
    sock.sendall(b"POST /api HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
    assert double.sent == [b"POST /api HTTP/1.1\r\nContent-Length: 2\r\n\r\n", b"{}"]
    got = b""
    while chunk := sock.recv(7):
        got += chunk
    assert got.endswith(b"\n\nok")
    assert sock.fileno() == -1  # no fileno(): the pool then treats it as closed
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # ignored
    assert sock.makefile("rb").read() == b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"
    sock.close()
    assert double.closed


# -- the response make_request yields --------------------------------------------------------


def test_the_response_has_every_public_name_of_http_clients() -> None:
    import http.client

    from sciwire.command import Response

    wanted = {n for n in dir(http.client.HTTPResponse) if not n.startswith("_")} - {"begin"}
    assert sorted(n for n in wanted if not hasattr(Response, n)) == []


def test_the_response_reads_as_a_binary_file(
    server: sciwire.command.CommandServer, make_client: Callable[..., CommandClient]
) -> None:
    import shutil

    cli = make_client(server.port)
    with make_request(cli, method="GET", url="/file", query={"name": "abc"}) as resp:
        assert resp.getcode() == resp.code == resp.status == 200
        assert resp.geturl().endswith("/file?name=abc")
        assert resp.info()["Content-Length"] == "8" and resp.length == 8
        assert resp.version == 11 and resp.readable() and not resp.closed
        assert resp.peek(1)[:1] in (b"", b"d")
        buf = bytearray(3)
        assert resp.readinto(buf) == 3 and bytes(buf) == b"dat"
        assert resp.read1(2) == b"a:"
        sink = io.BytesIO()
        shutil.copyfileobj(resp, sink)
        assert sink.getvalue() == b"abc"
        assert resp.isclosed()
    assert cli.add(1, 2) == 3


def test_closing_a_response_early_does_not_spoil_the_connection(
    server: sciwire.command.CommandServer, make_client: Callable[..., CommandClient]
) -> None:
    cli = make_client(server.port)
    for _ in range(3):
        with make_request(cli, method="GET", url="/file", query={"name": "x" * 5000}) as resp:
            assert resp.read(4) == b"data"
            resp.close()
            assert resp.closed and resp.failed
        # the unread rest was not taken for the next response
        with make_request(cli, method="GET", url="/file", query={"name": "y"}) as resp:
            assert resp.read() == b"data:y"


def test_a_double_after_a_makefile_read_splits_the_next_request() -> None:
    class Minimal:
        """No settimeout and no fileno: only sendall, makefile and close."""

        def __init__(self) -> None:
            self.sent: list[bytes] = []

        def sendall(self, data: bytes) -> None:
            self.sent.append(data)

        def makefile(self, mode: str) -> io.BytesIO:
            return io.BytesIO(b"HTTP/1.1 204 No Content\n\n")

        def close(self) -> None:
            pass

    double = Minimal()
    sock = ForeignSocket(double, None)
    sock.settimeout(1.0)  # the double has none: kept here only
    assert sock.gettimeout() == 1.0
    sock.sendall(b"POST /a HTTP/1.1\r\n\r\nbody")
    sock.sendall(b"more body")  # the rest of a streamed body: as it comes
    sock.makefile("rb").read()  # http.client reads the response
    sock.sendall(b"POST /b HTTP/1.1\r\n\r\nnext")
    assert double.sent == [
        b"POST /a HTTP/1.1\r\n\r\n",
        b"body",
        b"more body",
        b"POST /b HTTP/1.1\r\n\r\n",
        b"next",
    ]
