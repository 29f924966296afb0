"""What the blocking client accepts and sends as ``http.client``/``urllib`` do: response
heads with bare-LF line ends (the server side stays strict), and request bodies given as
files or iterables (streamed, chunked)."""

from __future__ import annotations

import hashlib
import http.client
import io
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.command import (
    AsyncCommandClient,
    CommandClient,
    CommandError,
    CommandServer,
    make_request,
)
from sciwire.core.http.codec import ResponseParser
from tests.command.helpers import ScriptedServer, Service
from tests.helpers import examples

MakeClient = Callable[..., CommandClient]

# -- bare-LF response heads ----------------------------------------------------------------


class _Bytes:
    """What http.client.HTTPResponse reads from (the reference parser, no network)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self._data))


def _reference(data: bytes) -> tuple[int, str, dict[str, str], bytes]:
    resp = http.client.HTTPResponse(_Bytes(data))  # type: ignore[arg-type]
    resp.begin()
    headers: dict[str, str] = {}
    for name, value in resp.getheaders():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return resp.status, resp.reason, headers, resp.read()


def _ours(data: bytes, piece: int) -> tuple[int, str, dict[str, str], bytes]:
    parser = ResponseParser()
    got = None
    for i in range(0, len(data), piece):
        got = parser.feed(data[i : i + piece])
    assert got is not None, "no whole response"
    return got.status, got.reason, dict(got.headers), got.body


HEADS = [
    b"HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 2\n\n{}",
    # httpretty's: LF line ends, then a CRLF empty line
    b"HTTP/1.1 200 OK\ndate: x\ncontent-type: text/plain\ncontent-length: 2\n\r\nok",
    b"HTTP/1.1 201 Created\r\nA: 1\nB: 2\r\nContent-Length: 1\n\nz",
    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\nab\r\n",  # CRLF lines, LF empty line
    b"HTTP/1.1 404 Not Found\ncontent-length: 0\n\n",
    b"HTTP/1.1 100 Continue\n\nHTTP/1.1 200 OK\nContent-Length: 1\n\nx",
    b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\r\nhi\r\n0\r\n\r\n",
    # a body holding CRLF CRLF after a bare-LF head: the head still ends at its empty line
    b"HTTP/1.1 200 OK\nContent-Length: 8\n\nab\r\n\r\ncd",
]


@pytest.mark.parametrize("data", HEADS)
@pytest.mark.parametrize("piece", [1, 3, 1 << 20])
def test_bare_lf_heads_parse_as_http_client_parses_them(data: bytes, piece: int) -> None:
    assert _ours(data, piece) == _reference(data)


_NAMES = st.sampled_from(["Content-Type", "X-A", "Server", "date", "X-Long-Name"])
_VALUES = st.text(alphabet="abcxyz019 ;=/", min_size=1, max_size=12).map(str.strip).filter(bool)


@settings(max_examples=examples(150), deadline=None)
@given(
    headers=st.lists(st.tuples(_NAMES, _VALUES), max_size=6),
    ends=st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=8, max_size=8),
    body=st.binary(max_size=40),
    piece=st.integers(1, 64),
)
def test_any_mix_of_line_ends_parses_as_http_client(
    headers: list[tuple[str, str]], ends: list[bytes], body: bytes, piece: int
) -> None:
    lines = [b"HTTP/1.1 200 OK"]
    lines += [f"{n}: {v}".encode() for n, v in headers]
    lines.append(b"Content-Length: %d" % len(body))
    if b"\r\n" not in ends[: len(lines) + 1] or b"\n" not in ends[: len(lines) + 1]:
        ends = [b"\n", *ends]  # keep at least one bare LF (CRLF-only heads: tested elsewhere)
    head = b"".join(line + ends[i % len(ends)] for i, line in enumerate(lines))
    data = head + ends[-1] + body
    assert _ours(data, piece) == _reference(data)


def test_a_server_answering_with_bare_lf_heads_is_understood(
    scripted: Callable[[list[str | bytes]], ScriptedServer], make_client: MakeClient
) -> None:
    body = b'{"result": 3}'
    srv = scripted(
        [
            b"HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: %d\n\n%s"
            % (len(body), body),
            b"HTTP/1.1 200 OK\ncontent-length: %d\n\r\n%s" % (len(body), body),
        ]
    )
    cli = make_client(srv.port)
    assert cli.add(1, 2) == 3
    assert cli.add(1, 2) == 3  # on the same kept connection


async def test_the_async_client_understands_bare_lf_heads_too(
    scripted: Callable[[list[str | bytes]], ScriptedServer], scaled: Callable[[float], float]
) -> None:
    body = b'{"result": 7}'
    srv = scripted([b"HTTP/1.1 200 OK\ncontent-length: %d\n\r\n%s" % (len(body), body)])
    async with AsyncCommandClient(
        host="127.0.0.1", port=srv.port, timeout=scaled(10), retries=1
    ) as cli:
        assert await cli.add(3, 4) == 7


def test_an_error_status_in_a_bare_lf_head_is_a_command_error(
    scripted: Callable[[list[str | bytes]], ScriptedServer], make_client: MakeClient
) -> None:
    srv = scripted([b"HTTP/1.1 503 Service Unavailable\nContent-Length: 4\n\nbusy"])
    cli = make_client(srv.port)
    with pytest.raises(CommandError) as info:
        cli.add(1, 2)
    assert info.value.code == 503


def test_our_server_still_refuses_bare_lf_requests(
    server: CommandServer, service: Service, scaled: Callable[[float], float]
) -> None:
    body = b'{"jsonrpc": "2.0", "method": "hello_world", "params": [], "id": "1"}'
    request = b"POST /api HTTP/1.1\nHost: x\nContent-Length: %d\n\n%s" % (len(body), body)
    with socket.create_connection(("127.0.0.1", server.port), timeout=scaled(10)) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert not answer.startswith(b"HTTP/1.1 2")
    assert "hello_world" not in service.calls()


# -- request bodies as urllib takes them ---------------------------------------------------


@pytest.fixture
def upload_server(make_server: Callable[..., CommandServer]) -> CommandServer:
    srv = make_server()
    seen: list[dict[str, Any]] = []

    def digest(req: Any) -> dict[str, Any]:
        seen.append({"te": req.headers.get("transfer-encoding"), "size": len(req.body)})
        return {"sha": hashlib.sha256(req.body).hexdigest(), "size": len(req.body)}

    srv.route("POST", "/upload", digest)
    srv.seen = seen  # type: ignore[attr-defined]
    return srv


def _upload(cli: CommandClient, data: Any, **kwargs: Any) -> Any:
    with make_request(cli, url="/upload", data=data, **kwargs) as resp:
        return __import__("json").loads(resp.read())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_file_is_streamed_chunked(upload_server: CommandServer, make_client: MakeClient) -> None:
    payload = bytes(range(256)) * 1000  # several blocks
    cli = make_client(upload_server.port)
    assert _upload(cli, io.BytesIO(payload)) == {"sha": _sha(payload), "size": len(payload)}
    assert upload_server.seen[-1]["te"] == "chunked"  # type: ignore[attr-defined]


def test_a_text_file_is_sent_as_latin_1(
    upload_server: CommandServer, make_client: MakeClient
) -> None:
    cli = make_client(upload_server.port)
    assert _upload(cli, io.StringIO("café"))["sha"] == _sha("café".encode("latin-1"))


def test_an_iterable_is_streamed_and_empty_pieces_are_skipped(
    upload_server: CommandServer, make_client: MakeClient
) -> None:
    pieces = [b"ab", b"", bytearray(b"cd"), memoryview(b"ef"), "gh"]

    def gen() -> Iterator[Any]:
        yield from pieces

    cli = make_client(upload_server.port)
    assert _upload(cli, gen())["sha"] == _sha(b"abcdefgh")
    # the connection is kept and reused afterwards
    assert cli.add(2, 2) == 4


def test_an_iterable_with_a_content_length_goes_as_is(
    upload_server: CommandServer, make_client: MakeClient
) -> None:
    cli = make_client(upload_server.port)
    got = _upload(cli, [b"abc", b"def"], headers={"Content-Length": "6"})
    assert got == {"sha": _sha(b"abcdef"), "size": 6}
    assert upload_server.seen[-1]["te"] is None  # type: ignore[attr-defined]


def test_bytes_like_bodies_have_a_content_length(
    upload_server: CommandServer, make_client: MakeClient
) -> None:
    cli = make_client(upload_server.port)
    for data in (b"xyz", bytearray(b"xyz"), memoryview(b"xyz")):
        assert _upload(cli, data) == {"sha": _sha(b"xyz"), "size": 3}
    assert upload_server.seen[-1]["te"] is None  # type: ignore[attr-defined]


def test_bad_data_is_refused_before_anything_is_sent(
    upload_server: CommandServer, make_client: MakeClient
) -> None:
    cli = make_client(upload_server.port)
    with pytest.raises(TypeError, match="not int"):
        _upload(cli, 5)
    with pytest.raises(TypeError, match="items must be bytes"):
        _upload(cli, [b"ok", 7])
    assert len(upload_server.seen) == 0  # type: ignore[attr-defined]
    assert cli.add(1, 1) == 2


def test_a_failing_body_source_closes_the_request(
    upload_server: CommandServer, make_client: MakeClient
) -> None:
    def gen() -> Iterator[bytes]:
        yield b"part"
        raise RuntimeError("disk gone")

    cli = make_client(upload_server.port)
    with pytest.raises(RuntimeError, match="disk gone"):
        _upload(cli, gen())
    assert len(upload_server.seen) == 0  # type: ignore[attr-defined]  # never completed
    assert cli.add(1, 1) == 2
