"""The shared sans-I/O HTTP/1.1 codec (sciwire.core.http.codec): responses and requests,
framing, pipelining, limits, and fuzzing that only protocol errors escape."""

from __future__ import annotations

import contextlib
import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.core.http import codec as http11
from sciwire.core.http.codec import (
    RequestParser,
    RequestTooLarge,
    ResponseParser,
    decode_gzip,
    encode_request,
    encode_response,
)
from sciwire.errors import RemoteProtocolError
from tests.helpers import examples

# -- HTTP/1.1 response codec ---------------------------------------------------------

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n"
    b"Set-Cookie: a\r\nSet-Cookie: b\r\n\r\n"
    b'{"result": true}\n'
)


def test_response_whole_and_byte_at_a_time() -> None:
    whole = http11.ResponseParser().feed(RESPONSE)
    assert whole is not None
    parser = http11.ResponseParser()
    got = None
    for i in range(len(RESPONSE)):
        assert got is None
        got = parser.feed(RESPONSE[i : i + 1])
    assert got == whole
    assert got.status == 200 and got.reason == "OK"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["set-cookie"] == "a, b"
    assert got.body == b'{"result": true}\n'
    assert got.keep_alive


def test_chunked_body_and_interim_response() -> None:
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    parser = http11.ResponseParser()
    got = None
    for i in range(len(data)):
        got = parser.feed(data[i : i + 1]) or got
    assert got is not None and got.body == b"hello world"


def test_close_delimited_body_and_http10() -> None:
    parser = http11.ResponseParser()
    assert parser.feed(b"HTTP/1.0 200 OK\r\n\r\npartial ") is None
    assert parser.feed(b"body") is None
    got = parser.feed_eof()
    assert got.body == b"partial body" and not got.keep_alive


def test_connection_close_and_head() -> None:
    got = http11.ResponseParser().feed(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
    assert got is not None and not got.keep_alive and got.body == b""
    got = http11.ResponseParser(head=True).feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
    assert got is not None and got.body == b""


@pytest.mark.parametrize(
    "data",
    [
        b"HTTPS 200 OK\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab",
    ],
)
def test_malformed_responses(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        http11.ResponseParser().feed(data)


def test_eof_before_complete_response() -> None:
    parser = http11.ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(RemoteProtocolError):
        parser.feed_eof()
    with pytest.raises(RemoteProtocolError):
        http11.ResponseParser().feed_eof()


def test_head_too_large() -> None:
    with pytest.raises(RemoteProtocolError, match="too large"):
        http11.ResponseParser().feed(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20000)


@settings(max_examples=examples(400), deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_response_parser_only_raises_protocol_errors(data: bytes, step: int) -> None:
    parser = http11.ResponseParser()
    try:
        for i in range(0, len(data), step):
            parser.feed(data[i : i + step])
        parser.feed_eof()
    except RemoteProtocolError:
        pass


@settings(max_examples=examples(200), deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["length", "chunked"]), st.integers(1, 64))
def test_response_body_roundtrip(body: bytes, framing: str, step: int) -> None:
    if framing == "length":
        data = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    else:
        data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        for i in range(0, len(body), 7):
            part = body[i : i + 7]
            data += b"%x\r\n" % len(part) + part + b"\r\n"
        data += b"0\r\n\r\n"
    parser = http11.ResponseParser()
    got = None
    for i in range(0, len(data), step):
        got = parser.feed(data[i : i + step]) or got
    assert got is not None and got.body == body


def test_encode_request_single_buffer() -> None:
    data = http11.encode_request("POST", "/api", "h:1", {"A": "b"}, b"{}")
    assert data == b"POST /api HTTP/1.1\r\nHost: h:1\r\nA: b\r\nContent-Length: 2\r\n\r\n{}"
    with pytest.raises(ValueError):
        http11.encode_request("GET", "/", "h", {"A": "b\r\nX: y"}, None)


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.binary(max_size=50), min_size=1, max_size=4), st.integers(1, 64))
def test_pipelined_responses_split_anywhere(bodies: list[bytes], step: int) -> None:
    data = b"".join(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body for body in bodies
    )
    got: list[bytes] = []
    parser = http11.ResponseParser(pipelined=True)
    for i in range(0, len(data), step):
        chunk = data[i : i + step]
        while chunk:
            resp = parser.feed(chunk)
            if resp is None:
                break
            got.append(resp.body)
            chunk = parser.extra
            parser = http11.ResponseParser(pipelined=True)
    assert got == bodies


header_names = st.sampled_from(
    ["Content-Type", "X-A", "content-length", "CONNECTION", "Date", "Server", "x-b"]
)


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(st.tuples(header_names, st.text("abc:;, 019", max_size=12)), max_size=6),
    st.binary(max_size=40),
    st.sampled_from([200, 201, 404, 500]),
)
def test_fast_path_agrees_with_the_general_parser(
    headers: list[tuple[str, str]], body: bytes, status: int
) -> None:
    head = f"HTTP/1.1 {status} Reason here\r\n".encode()
    for name, value in headers:
        if name.lower() != "content-length":
            head += f"{name}: {value}\r\n".encode()
    data = head + b"Content-Length: %d\r\n\r\n" % len(body) + body

    def parse(step: int) -> object:
        parser = http11.ResponseParser()
        try:
            got = None
            for i in range(0, len(data), step):
                got = parser.feed(data[i : i + step]) or got
            return (got.status, got.reason, got.body, got.keep_alive, got.headers) if got else None
        except RemoteProtocolError as exc:
            return type(exc)

    assert parse(len(data)) == parse(1)  # whole (fast path) vs byte at a time (general)


# -- request codec ------------------------------------------------------------------------


def test_request_roundtrip_pipelined_and_byte_at_a_time() -> None:
    data = encode_request("POST", "/api?x=1", "h", {"A": "b"}, b'{"m": 1}') * 2
    data += b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    parser = RequestParser()
    got = []
    for i in range(len(data)):
        got += parser.feed(data[i : i + 1])
    assert [r.method for r in got] == ["POST", "POST", "GET"]
    assert got[0].target == "/api?x=1" and got[0].body == b'{"m": 1}'
    assert got[0].headers["a"] == "b" and got[0].keep_alive
    assert got[2].keep_alive and got[2].body == b""


def test_chunked_request_and_expect() -> None:
    parser = RequestParser()
    head = b"POST /api HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    assert parser.feed(head) == []
    assert parser.expect_continue
    (req,) = parser.feed(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert req.body == b"abcde"
    assert not parser.expect_continue


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/2\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n",
    ],
)
def test_bad_requests(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        RequestParser().feed(data)


def test_request_limits() -> None:
    with pytest.raises(RequestTooLarge):
        RequestParser(max_body=10).feed(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n")
    with pytest.raises(RequestTooLarge):
        RequestParser(max_body=3).feed(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n"
        )
    with pytest.raises(RequestTooLarge):
        RequestParser().feed(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 20000)


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=300), st.integers(1, 40))
def test_request_parser_only_raises_protocol_errors(data: bytes, step: int) -> None:
    parser = RequestParser(max_body=1000)
    with contextlib.suppress(RemoteProtocolError):
        for i in range(0, len(data), step):
            parser.feed(data[i : i + step])


def _refused_at(pieces: list[bytes]) -> int | None:
    """How many pieces a fresh parser takes before it refuses (None: never); an error
    kept for after the requests before it counts as refused."""
    parser = RequestParser()
    for n, piece in enumerate(pieces):
        try:
            parser.feed(piece)
        except RemoteProtocolError:
            return n
        if parser.error is not None:
            return n
    return None


_HEAD_BYTES = st.lists(
    st.sampled_from(
        [b"G", b"E", b"T", b" ", b"/", b"\r", b"\n", b"\r\n", b":", b"x", b"\x00", b"\t"]
    )
    | st.sampled_from([b"GET / HTTP/1.1\r\n", b"X-A: b\r\n", b"\xe9"]),
    max_size=30,
)


@settings(max_examples=examples(300), deadline=None)
@given(_HEAD_BYTES, st.integers(1, 7))
def test_a_head_in_pieces_is_refused_as_soon_as_its_prefix_is(
    parts: list[bytes], step: int
) -> None:
    # the partial-head check reads only what is new: it must judge each prefix as a
    # parser given that prefix in one piece does
    data = b"".join(parts)
    pieces = [data[i : i + step] for i in range(0, len(data), step)]
    whole = next(
        (n for n in range(len(pieces)) if _refused_at([b"".join(pieces[: n + 1])]) == 0), None
    )
    assert _refused_at(pieces) == whole


def test_encode_response_parses_back() -> None:
    data = encode_response(404, b"{}", keep_alive=False, headers={"X-A": "1"})
    resp = ResponseParser().feed(data)
    assert resp is not None
    assert (resp.status, resp.reason, resp.body, resp.keep_alive) == (
        404,
        "Not Found",
        b"{}",
        False,
    )
    assert resp.headers["x-a"] == "1"
    with pytest.raises(ValueError):
        encode_response(200, b"", headers={"X": "a\r\nb"})


def test_decode_gzip() -> None:
    body = gzip.compress(b"hello")
    data = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)
    resp = ResponseParser().feed(data + body)
    assert resp is not None and decode_gzip(resp) == b"hello"
    plain = ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    assert plain is not None and decode_gzip(plain) == b"hi"
    bad = ResponseParser().feed(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\nhi"
    )
    assert bad is not None
    with pytest.raises(RemoteProtocolError):
        decode_gzip(bad)


# -- request fast path (one whole request in one feed) vs the buffered general path ------

request_lines = st.sampled_from(
    [
        "GET / HTTP/1.1",
        "POST /api HTTP/1.1",
        "GET /a?b=c HTTP/1.0",
        "get /x HTTP/1.1",
        "GET  HTTP/1.1",
        "GET / HTTP/1.2",
        "GET /",
        "GÉT / HTTP/1.1",
        "",
    ]
)
request_headers = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "Host",
                "Content-Length",
                "content-length",
                "Transfer-Encoding",
                "Connection",
                "Expect",
                "X-A",
                " X-B",
                "X-C ",
                "",
                "Bad\x85",
            ]
        ),
        st.sampled_from([":", ": ", ":\t", " ", ""]),
        st.text("ab ,:\t019²\xa0-", max_size=10)
        | st.sampled_from(["close", "keep-alive", "chunked", "gzip", "100-continue", "3"]),
    ),
    max_size=6,
)


@settings(max_examples=examples(500), deadline=None)
@given(
    request_lines,
    request_headers,
    st.binary(max_size=20),
    st.sampled_from(["length", "chunked", "none"]),
    st.integers(0, 3),
)
def test_request_fast_path_agrees_with_the_general_parser(
    line: str, headers: list[tuple[str, str, str]], body: bytes, framing: str, at: int
) -> None:
    fields = [f"{n}{sep}{v}" for n, sep, v in headers]
    if framing == "length":
        fields.insert(min(at, len(fields)), f"Content-Length: {len(body)}")
    elif framing == "chunked":
        fields.insert(min(at, len(fields)), "Transfer-Encoding: chunked")
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    data = "\r\n".join([line, *fields]).encode("latin-1") + b"\r\n\r\n" + body

    def parse(step: int) -> object:
        parser = RequestParser(max_body=64)
        got = []
        error = None
        try:
            for i in range(0, len(data), step):
                got += parser.feed(data[i : i + step])
            parser.feed(b"")  # raises an error kept back behind whole requests
        except RemoteProtocolError as exc:
            # the kind of error, not its excerpt: a head refused while still arriving
            # quotes what had come by then
            error = type(exc), str(exc).split(":")[0]
        return [
            (r.method, r.target, r.headers, r.body, r.keep_alive, r.version) for r in got
        ], error

    assert parse(len(data)) == parse(1)  # whole (fast path) vs byte at a time (general)


def test_request_fast_path_hands_over_partial_and_pipelined_input() -> None:
    one = encode_request("POST", "/api", "h", {}, b"0123456789")
    parser = RequestParser()
    assert parser.feed(one[:-4]) == []  # head whole, body not yet
    (req,) = parser.feed(one[-4:])
    assert req.body == b"0123456789"
    two = parser.feed(one + one[:5])
    assert [r.body for r in two] == [b"0123456789"]
    (last,) = parser.feed(one[5:])
    assert last.body == b"0123456789" and last.headers["host"] == "h"


@pytest.mark.parametrize(
    "lead", [b" \r\n\r\n", b"\n\r\n\r\n", b"\r\n\r\n", b"\t \r\n\r\n", b"\r\n"]
)
def test_blank_lines_before_a_request_are_refused_on_both_paths(lead: bytes) -> None:
    # h11 and llhttp refuse them too (a leading empty line is a known desync vector)
    data = lead + encode_request("GET", "/x", "h", {}, None)
    with pytest.raises(RemoteProtocolError):
        RequestParser().feed(data)  # the fast path's turn
    parser = RequestParser()
    with pytest.raises(RemoteProtocolError):
        for i in range(len(data)):
            parser.feed(data[i : i + 1])


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_request_parser_takes_any_bytes_like(kind: type) -> None:
    one = encode_request("POST", "/api", "h", {}, b"0123456789")
    (req,) = RequestParser().feed(kind(one))
    assert type(req.body) is bytes and req.body == b"0123456789"


def test_non_ascii_content_length_is_a_protocol_error() -> None:
    # "²".isdigit() is true, but int() refuses it: this must not escape as ValueError
    with pytest.raises(RemoteProtocolError, match="bad content-length"):
        RequestParser().feed("POST / HTTP/1.1\r\nContent-Length: ²\r\n\r\n".encode("latin-1"))


def _reference_response(
    status: int,
    body: bytes,
    content_type: str,
    keep_alive: bool,
    headers: dict[str, str] | None,
    head_only: bool,
) -> bytes:
    reasons = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}
    lines = [
        f"HTTP/1.1 {status} {reasons.get(status, 'Unknown')}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
    ]
    if not keep_alive:
        lines.append("Connection: close")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


@pytest.mark.parametrize("status", [200, 404, 500, 299])
@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize("headers", [None, {}, {"Accept-Ranges": "bytes", "X": "y"}])
@pytest.mark.parametrize("head_only", [False, True])
def test_encode_response_bytes(
    status: int, keep_alive: bool, headers: dict[str, str] | None, head_only: bool
) -> None:
    for body, ctype in [(b"", "application/json"), (b"x" * 300, "text/plain; charset=utf-8")]:
        got = encode_response(
            status, body, ctype, keep_alive=keep_alive, headers=headers, head_only=head_only
        )
        want = _reference_response(status, body, ctype, keep_alive, headers, head_only)
        assert got == want
        assert got == encode_response(  # again, from the cached head prefix
            status, body, ctype, keep_alive=keep_alive, headers=headers, head_only=head_only
        )


def test_encode_response_rejects_header_injection() -> None:
    with pytest.raises(ValueError):
        encode_response(200, b"", headers={"X": "a\r\nEvil: 1"})
