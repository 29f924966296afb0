"""Our blocking client against our server (and scripted misbehaving peers) on loopback."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from sciwire.command import (
    CommandClient,
    CommandConnectError,
    CommandConnectionClosed,
    CommandError,
    CommandServer,
    CommandTimeout,
    make_json_request,
    make_request,
)
from sciwire.errors import ConnectError, RemoteError, Timeout
from tests.command.helpers import ScriptedServer, Service, free_port, http_reply

MakeClient = Callable[..., CommandClient]
MakeServer = Callable[..., CommandServer]


def test_discovery_methods_docs_and_attributes(
    server: CommandServer, client: CommandClient
) -> None:
    assert client.service == "command"
    assert client.Error is CommandError
    assert client._url == f"http://127.0.0.1:{server.port}"
    assert client.hello_world() == {"hello": "world"}
    assert client.add.__doc__.startswith("Add two values.")
    assert list(inspect.signature(client.add).parameters) == ["a", "b"]
    assert client.add.__name__ == "add"


def test_list_and_dict_params(client: CommandClient) -> None:
    assert client.add(1, 2) == 3
    assert client.add(a="x", b="y") == "xy"
    assert client.echo([1, {"a": None}]) == [1, {"a": None}]


def test_mixing_params_is_refused_before_sending(client: CommandClient, service: Service) -> None:
    before = len(service.calls())
    with pytest.raises(TypeError, match="positional or keyword"):
        client.add(1, b=2)
    assert len(service.calls()) == before


def test_remote_exception_carries_name_message_and_traceback(client: CommandClient) -> None:
    with pytest.raises(CommandError) as info:
        client.boom("kaput")
    err = info.value
    assert isinstance(err, RemoteError)
    assert err.code == -32000
    assert "ValueError: kaput" in err.data["traceback"]
    assert 'Encountered ValueError from JSONRPC function "boom"' in str(err)
    assert "kaput" in str(err)


def test_unknown_method_and_bad_params(client: CommandClient) -> None:
    with pytest.raises(CommandError) as info:
        client._call("no_such_method", (), {})
    assert info.value.code == -32601
    with pytest.raises(CommandError) as info:
        client.add(1, 2, 3)
    assert info.value.code == -32602


def test_http_error_on_wrong_prefix_like_a_v5_server(
    make_server: MakeServer, make_client: MakeClient
) -> None:
    srv = make_server(url="/v2")
    with pytest.raises(CommandError) as info:
        make_client(srv.port)
    assert info.value.code == 404
    assert info.value.data["error"]["name"] == "NotFound"
    assert make_client(srv.port, url="/v2").hello_world() == {"hello": "world"}


def test_license_check(make_server: MakeServer, make_client: MakeClient) -> None:
    lic = "12345678-1234-1234-1234-123456789abc"
    srv = make_server(license_id=lic)
    with pytest.raises(CommandError) as info:
        make_client(srv.port)
    assert info.value.code == 401
    assert info.value.data["error"]["message"] == "License-ID header required"
    with pytest.raises(CommandError) as info:
        make_client(srv.port, headers={"License-ID": "0" * 36})
    assert info.value.code == 403
    assert make_client(srv.port, headers={"License-ID": lic}).hello_world() == {"hello": "world"}


def test_timeout_does_not_resend(
    server: CommandServer,
    make_client: MakeClient,
    service: Service,
    scaled: Callable[[float], float],
) -> None:
    cli = make_client(server.port, retries=3, retry_seconds=0, timeout=scaled(0.5))
    with pytest.raises(CommandTimeout) as info:
        cli.stall()
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, Timeout)
    service.gate.set()
    assert cli.calls().count("stall") == 1


def test_dropped_connection_is_not_resent(
    scripted: Callable[[list[str | bytes]], ScriptedServer], make_client: MakeClient
) -> None:
    srv = scripted(["close"])
    cli = make_client(srv.port, retries=3, retry_seconds=0)
    with pytest.raises(CommandConnectionClosed) as info:
        cli.add(1, 2)
    assert isinstance(info.value, CommandError)
    assert sum(b'"add"' in r for r in srv.requests) == 1


def test_slow_body_times_out(
    scripted: Callable[[list[str | bytes]], ScriptedServer],
    make_client: MakeClient,
    scaled: Callable[[float], float],
) -> None:
    srv = scripted(["partial"])
    cli = make_client(srv.port, timeout=scaled(0.5), retries=3)
    with pytest.raises(CommandTimeout):
        cli.add(1, 2)
    assert sum(b'"add"' in r for r in srv.requests) == 1


def test_trickling_body_is_bounded_by_the_timeout(
    scripted: Callable[[list[str | bytes]], ScriptedServer],
    make_client: MakeClient,
    scaled: Callable[[float], float],
) -> None:
    srv = scripted(["trickle"])
    cli = make_client(srv.port, timeout=scaled(0.5), retries=3)
    with pytest.raises(CommandTimeout):
        cli.add(1, 2)
    assert sum(b'"add"' in r for r in srv.requests) == 1


def test_garbage_reply_is_a_command_error(
    scripted: Callable[[list[str | bytes]], ScriptedServer], make_client: MakeClient
) -> None:
    srv = scripted(["garbage", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno"])
    cli = make_client(srv.port)
    with pytest.raises(CommandError, match="invalid HTTP response"):
        cli.add(1, 2)
    with pytest.raises(CommandError, match="Invalid JSON response"):
        cli.add(1, 2)


def test_connect_refused_counts_attempts_and_honours_module_defaults(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sciwire.command

    # the original's module-level settings, changed the way a user changes them
    monkeypatch.setattr(sciwire.command, "MAX_ATTEMPTS", 2)
    monkeypatch.setattr(sciwire.command, "RETRY_INTERVAL", 0)
    caplog.set_level(logging.WARNING, logger="sciwire.command._transport")
    with pytest.raises(CommandConnectError) as info:
        CommandClient(host="127.0.0.1", port=free_port())
    assert isinstance(info.value, OSError)
    assert isinstance(info.value, ConnectError)
    assert "attempt 2 of 2" in str(info.value)
    # one warning between the two attempts, none after the last
    assert len([r for r in caplog.records if "unreachable" in r.message]) == 1


class _Flag(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "unreachable" in record.getMessage():
            self.event.set()


def test_server_restart_mid_session_retries_then_succeeds(
    service: Service, make_client: MakeClient, scaled: Callable[[float], float]
) -> None:
    from tests.command.helpers import start_server

    first = start_server(service)
    port = first.port
    cli = make_client(port, retries=1000, retry_seconds=0.01)
    assert cli.add(1, 2) == 3
    first.stop_background()
    flag = _Flag()
    log = logging.getLogger("sciwire.command._transport")
    log.addHandler(flag)
    second: CommandServer | None = None
    try:
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(cli.add, 2, 3)
            assert flag.event.wait(scaled(10)), "client never saw the server down"
            second = start_server(service, port=port)
            assert future.result(scaled(10)) == 5
    finally:
        log.removeHandler(flag)
        if second is not None:
            second.stop_background()


def test_many_threads_share_one_client(client: CommandClient) -> None:
    def work(k: int) -> list[int]:
        return [client.echo(k * 1000 + i) for i in range(50)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    assert results == [[k * 1000 + i for i in range(50)] for k in range(8)]
    assert 1 <= len(client._transport._idle_raw) <= 8


def test_keep_alive_reuses_one_connection(client: CommandClient) -> None:
    for i in range(20):
        assert client.echo(i) == i
    assert len(client._transport._idle_raw) == 1


def test_numpy_payloads(client: CommandClient) -> None:
    assert client.array_sum(np.arange(10)) == 45.0
    assert client.echo(np.float32(2.5)) == 2.5
    assert client.echo(np.int64(7)) == 7
    big = np.ones(200_000)
    assert client.array_sum(values=big) == 200_000.0


def test_custom_encoder_is_honoured(server: CommandServer, make_client: MakeClient) -> None:
    import json

    class SetEncoder(json.JSONEncoder):
        def default(self, o: object) -> object:
            if isinstance(o, set):
                return sorted(o)
            return super().default(o)

    cli = make_client(server.port, cls=SetEncoder)
    assert cli.echo({3, 1, 2}) == [1, 2, 3]


def test_rediscovery_adds_and_removes_methods(server: CommandServer, client: CommandClient) -> None:
    def fresh(x: int) -> int:
        """A new procedure."""
        return x * 2

    server.expose(fresh)
    server.unexpose("add")
    assert not hasattr(client, "fresh")
    client()
    assert client.fresh(4) == 8
    assert client.fresh.__doc__ == "A new procedure."
    assert not hasattr(client, "add")


def test_make_request_and_make_json_request(client: CommandClient) -> None:
    with make_request(client, method="GET", url="/file", query={"name": "a b"}) as resp:
        assert resp.status == 200
        assert resp.headers.get_content_type() == "application/octet-stream"
        assert resp.read() == b"data:a b"
    with make_json_request(client, "/echo_json", query={"q": "1"}, data={"x": np.int64(1)}) as resp:
        assert resp.status == 200
        assert resp.read() == b'{"got": {"x": 1}, "query": {"q": "1"}}'
    # a partially read response: the connection is dropped, the next call still works
    with make_request(client, method="GET", url="/file", query={"name": "xyz"}) as resp:
        assert resp.read(2) == b"da"
    assert client.hello_world() == {"hello": "world"}


def test_make_request_http_error(client: CommandClient) -> None:
    with pytest.raises(CommandError) as info, make_request(client, url="/missing"):
        pytest.fail("unreachable")
    assert info.value.code == 404
    assert info.value.data["error"]["name"] == "NotFound"


def test_make_request_slow_body_maps_to_command_timeout(
    scripted: Callable[[list[str | bytes]], ScriptedServer],
    make_client: MakeClient,
    scaled: Callable[[float], float],
) -> None:
    srv = scripted(["partial"])
    cli = make_client(srv.port, timeout=scaled(0.5))
    with pytest.raises(CommandTimeout), make_json_request(cli, "/api", data={"a": 1}) as resp:
        resp.read()


def test_make_request_head_has_a_deadline(
    scripted: Callable[[list[str | bytes]], ScriptedServer],
    make_client: MakeClient,
    scaled: Callable[[float], float],
) -> None:
    # each byte comes well within the timeout; the head as a whole does not
    srv = scripted(["trickle-head", http_reply(b'{"result": 1}')])
    cli = make_client(srv.port, timeout=scaled(0.5))
    with pytest.raises(CommandTimeout, match="did not reply"), make_request(cli, url="/x"):
        pytest.fail("unreachable")
    # a body is still read a piece at a time, each piece within the timeout
    with make_request(cli, url="/x") as resp:
        assert resp.read() == b'{"result": 1}'


def test_make_request_reads_an_endless_error_body_only_up_to_its_cap(
    scripted: Callable[[list[str | bytes]], ScriptedServer],
    make_client: MakeClient,
    scaled: Callable[[float], float],
) -> None:
    from sciwire.command._transport import MAX_ERROR_BODY

    chunk = b"x" * 65536
    pieces = b"%X\r\n%s\r\n" % (len(chunk), chunk) * (MAX_ERROR_BODY // len(chunk) + 2)
    endless = (
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + pieces
    )  # and no last chunk: the server then waits, connection open
    srv = scripted([endless, http_reply(b'{"result": {"hello": "world"}}')])
    cli = make_client(srv.port, timeout=scaled(10))
    with pytest.raises(CommandError) as info, make_request(cli, url="/x"):
        pytest.fail("unreachable")
    assert info.value.code == 500
    assert info.value.data == b"x" * MAX_ERROR_BODY
    # the rest was left unread: that connection is not reused
    assert cli.hello_world() == {"hello": "world"}


def test_server_survives_bad_requests(server: CommandServer, client: CommandClient) -> None:
    import socket

    for payload in (b"{", b"[1,2]", b'{"method": 3}', b'{"method": "add", "params": 7}'):
        with make_request(client, url="/api", data=payload) as resp:
            body = resp.read()
        assert b'"error"' in body
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.sendall(b"\x00\x01garbage\r\n\r\n")
        assert b" 400 " in raw.recv(100)
    assert server.errors >= 4
    assert client.add(1, 1) == 2


def test_https(
    tls_files: tuple[Path, Path], make_server: MakeServer, make_client: MakeClient
) -> None:
    import ssl

    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    srv = make_server(ssl_context=server_ctx)
    assert srv.url.startswith("https://")
    client_ctx = ssl.create_default_context(cafile=str(cert))
    cli = CommandClient(host="https://127.0.0.1", port=srv.port, ssl_context=client_ctx, retries=1)
    try:
        assert cli._url.startswith("https://")
        for i in range(5):
            assert cli.add(i, 2) == i + 2
        assert len(srv.connections) == 1  # TLS keep-alive: one connection for every call
        with make_request(cli, method="GET", url="/file", query={"name": "t"}) as resp:
            assert resp.read() == b"data:t"
    finally:
        cli.close()
    with pytest.raises(CommandError):  # an untrusted certificate is refused
        make_client(srv.port, host="https://127.0.0.1")


def test_ipv6_loopback(make_server: MakeServer, make_client: MakeClient) -> None:
    srv = make_server(host="::1")
    assert srv.url == f"http://[::1]:{srv.port}"
    cli = make_client(srv.port, host="::1")
    assert cli._url == f"http://[::1]:{srv.port}"
    assert cli.add(1, 1) == 2
    with make_request(cli, method="GET", url="/file", query={"name": "6"}) as resp:
        assert resp.read() == b"data:6"


def test_a_client_never_closed_leaks_nothing(server: CommandServer) -> None:
    import gc

    cli = CommandClient(host="127.0.0.1", port=server.port, retries=1)
    assert cli.add(1, 2) == 3
    assert len(cli._transport._idle_raw) == 1
    del cli
    gc.collect()  # filterwarnings=error: an unclosed socket would fail the test
