"""CallCore, the sans-I/O half both command clients ask: tables of what it decides
(no sockets: errors are made as the two pools make them)."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from sciwire.command._calls import CLOSED_REASON, NOT_CONNECTED_REASON, CallCore
from sciwire.command._errors import (
    CommandConnectError,
    CommandConnectionClosed,
    CommandError,
    CommandTimeout,
    command_error,
)
from sciwire.command._protocol import ProcInfo
from sciwire.core.http.codec import ParsedResponse
from sciwire.errors import ConnectError, ConnectionClosed, RemoteProtocolError, Timeout

URL = "http://127.0.0.1:39002/api"


def _core(opened: bool = True) -> CallCore:
    return CallCore("command", "127.0.0.1", 39002, "", None, 300, {}, 1, 0.0, opened=opened)


def _pool_error(kind: type[Exception], message: str, cause: BaseException | None) -> CommandError:
    err = command_error(kind, message, URL, None)
    err.__cause__ = cause
    assert isinstance(err, CommandError)
    return err


# (what the blocking pool raises, what the asyncio pool raises) for the same failure
_SAME_FAILURE: list[tuple[str, CommandError, CommandError]] = [
    (
        "refused",
        _pool_error(
            ConnectError,
            "URL Error Connection refused (attempt 3 of 3)",
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
        ),
        _pool_error(
            ConnectError,
            "URL Error Connect call failed ('127.0.0.1', 39002) (attempt 3 of 3)",
            ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 39002)"),
        ),
    ),
    (
        "closed without a reply",
        _pool_error(
            ConnectionClosed,
            "server closed the connection without replying "
            "(request not re-sent: it may have been processed)",
            None,
        ),
        _pool_error(
            ConnectionClosed,
            "closed without a reply before a complete response; "
            "request not re-sent: it may have been processed",
            None,
        ),
    ),
    (
        "cut short by a close",
        _pool_error(
            ConnectionClosed,
            "connection closed before a complete response",
            RemoteProtocolError("connection closed before a complete response", b"{"),
        ),
        # (the asyncio pool reports a cut-short reply as a closed connection too)
        _pool_error(
            ConnectionClosed,
            "connection closed before a complete response; "
            "request not re-sent: it may have been processed",
            None,
        ),
    ),
    (
        "reset mid-reply",
        _pool_error(
            ConnectionClosed,
            "connection failed before a complete response (ConnectionResetError: [Errno 104] "
            "Connection reset by peer); request not re-sent: it may have been processed",
            ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        ),
        _pool_error(
            ConnectionClosed,
            "connection lost: [Errno 104] Connection reset by peer before a complete "
            "response; request not re-sent: it may have been processed",
            None,
        ),
    ),
]


@pytest.mark.parametrize(
    ("case", "blocking", "aio"), _SAME_FAILURE, ids=[c[0] for c in _SAME_FAILURE]
)
def test_one_failure_reads_the_same_from_both_pools(
    case: str, blocking: CommandError, aio: CommandError
) -> None:
    core = _core()
    a = core.failed("add", (1, 2), blocking)
    b = core.failed("add", (1, 2), aio)
    assert (type(a), str(a), a.code, a.data) == (type(b), str(b), b.code, b.data)
    assert str(a).startswith(
        '*** (http://127.0.0.1:39002, code 500) Encountered error from JSONRPC function "add" '
        "with params (1, 2): "
    )


@pytest.mark.parametrize(
    ("kind", "message", "expected"),
    [
        (ConnectError, "URL Error x (attempt 1 of 1)", CommandConnectError),
        (Timeout, "command server did not reply within timeout of 1 seconds", CommandTimeout),
        (ConnectionClosed, "connection closed", CommandConnectionClosed),
        (RemoteProtocolError, "invalid HTTP response: junk", CommandError),
    ],
)
def test_failures_keep_their_kind_and_cause(
    kind: type[Exception], message: str, expected: type[CommandError]
) -> None:
    err = _pool_error(kind, message, None)
    out = _core().failed("m", [], err)
    assert type(out) is expected
    if kind is not ConnectionClosed:
        assert out.reason.endswith(message)


def _reply(status: int, body: bytes, ctype: str = "application/json") -> ParsedResponse:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\n".encode()
    return ParsedResponse(status, "X", body, raw_head=head, _headers={"content-type": ctype})


# what a reply reads as on both clients (each hands every response to CallCore.result);
# a CommandError's code is 500 unless the server gave one, as the original's
_REPLIES: list[tuple[str, ParsedResponse, tuple[Any, ...]]] = [
    ("result", _reply(200, b'{"jsonrpc": "2.0", "id": "1", "result": [1, 2]}'), ("ok", [1, 2])),
    ("null result", _reply(200, b'{"result": null}'), ("ok", None)),
    ("no body", _reply(200, b""), ("CommandError", "JSON response not received", 500)),
    ("not JSON", _reply(200, b"<html>"), ("CommandError", "Invalid JSON response", 500)),
    (
        "JSON-RPC error",
        _reply(200, b'{"error": {"name": "KeyError", "code": 7, "message": "m"}}'),
        ("CommandError", "Encountered KeyError", 7),
    ),
    (
        "HTTP error, JSON body",
        _reply(500, b'{"error": "boom"}'),
        ("CommandError", "with params (1, 2): HTTP Error 500 X", 500),
    ),
    (
        "HTTP error, text body",
        _reply(404, b"not here", "text/plain"),
        ("CommandError", "with params (1, 2): HTTP Error 404 X", 404),
    ),
]


@pytest.mark.parametrize(("case", "resp", "want"), _REPLIES, ids=[c[0] for c in _REPLIES])
def test_reply_table(case: str, resp: ParsedResponse, want: tuple[Any, ...]) -> None:
    try:
        got: tuple[Any, ...] = ("ok", _core().result("add", (1, 2), resp))
    except CommandError as exc:
        assert "add" in str(exc) and "(1, 2)" in str(exc)
        got = (type(exc).__name__, want[1] if want[1] in str(exc) else str(exc), exc.code)
    assert got == want


def test_open_and_closed() -> None:
    new = _core(opened=False)
    with pytest.raises(CommandError, match="not connected") as info:
        new.request("add", (1,), {})
    assert info.value.reason.endswith(NOT_CONNECTED_REASON)
    new.open()
    new.request("add", (1,), {})
    new.close()
    new.close()
    assert new.closed
    with pytest.raises(CommandError) as info:
        new.request("add", (1,), {})
    assert info.value.reason == (
        f'Encountered error from JSONRPC function "add" with params (1,): {CLOSED_REASON}'
    )
    with pytest.raises(CommandError, match=CLOSED_REASON):
        new.open()  # closing is final
    with pytest.raises(CommandError, match=CLOSED_REASON):
        new.ensure_open()


class _Host:
    def _get_callable(self, key: str, info: ProcInfo | None = None) -> Any:
        return lambda: key


def _procs(*names: str) -> dict[str, Any]:
    return {"procs": [{"name": n} for n in names]}


def test_discovery_answers_apply_in_the_order_asked() -> None:
    core, host = _core(), _Host()
    first, _ = core.describe_request()
    second, _ = core.describe_request()
    core.install(second, _procs("a", "b"), host)
    core.install(first, _procs("a"), host)  # older answer, arriving last: dropped
    assert sorted(core.procs) == ["a", "b"] and hasattr(host, "b")
    third, _ = core.describe_request()
    core.install(third, _procs("a", "c"), host)
    assert sorted(core.procs) == ["a", "c"]
    assert not hasattr(host, "b") and vars(host)["c"]() == "c"


def test_a_procedure_never_shadows_the_client() -> None:
    core, host = _core(), _Host()
    ticket, method = core.describe_request()
    assert method == "system.describe"
    core.install(ticket, _procs("_get_callable", "__init__", "ok"), host)
    assert "_get_callable" not in vars(host) and "__init__" not in vars(host)
    assert vars(host)["ok"]() == "ok"
