"""The one-read fast paths of the blocking client side give the general code's results:
the one-pass response parse (headers, keep-alive, errors), decode_gzip without the
header dict, and HttpPool.exchange's inline pooled-connection path on real sockets."""

from __future__ import annotations

import gzip
import select
import signal
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.core.http import Endpoint, HttpPool, _response
from sciwire.core.http.codec import ParsedResponse, ResponseParser, decode_gzip, whole_response
from sciwire.errors import ConnectionClosed, RemoteProtocolError, Timeout
from tests.helpers import examples


def _parse(data: bytes, step: int) -> object:
    """(status, reason, body, keep_alive, headers) or the exception type."""
    parser = ResponseParser()
    try:
        got = None
        for i in range(0, len(data), step):
            got = parser.feed(data[i : i + step]) or got
        if got is None:
            return None
        return (got.status, got.reason, got.body, got.keep_alive, got.headers, decode_gzip(got))
    except (RemoteProtocolError, ValueError) as exc:
        return type(exc)


def _agree(data: bytes) -> object:
    whole = _parse(data, len(data))  # the fast path when it applies
    assert whole == _parse(data, len(data))  # again, with what it learnt of the head kept
    assert whole == _parse(data, 1)  # the general parser, byte at a time
    return whole


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nX-A: 1",
        b"HTTP/1.1 200 OK\r\nX-A : 1",  # blank before the colon
        b"HTTP/1.1 200 OK\r\nX-A\t: 1",
        b"HTTP/1.1 200 OK\r\n X-A: 1",  # folded line
        b"HTTP/1.1 200 OK\r\nX-A\x85: 1",  # latin-1 space str.strip() removes
        b"HTTP/1.1 200 OK\r\n\xa0X-A: 1",
        b"HTTP/1.1 200 OK\r\nX-A\x1f: 1",
        b"HTTP/1.1 200 OK\r\n: 1",  # no name
        b"HTTP/1.1 200 OK\r\nX-A 1",  # no colon
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: close",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: keep-alive",
        b"HTTP/1.1 200 OK\r\nCONNECTION: Keep-Alive, Close",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip",
        b"HTTP/1.1 200 OK\r\ncontent-encoding: identity",
        b"HTTP/1.1 200",
        b"HTTP/1.1 200 ",
        b"HTTP/1.1 200\rX",  # a lone CR after the code is no end of line
        b"HTTP/1.1 20\xb2 OK",  # superscript two: isdigit() but not an int
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.0 200 OK",
        b"HTTP/1.1 204 No Content",
    ],
)
def test_fast_and_general_parse_agree(head: bytes) -> None:
    body = gzip.compress(b"hi") if b"gzip" in head else b"hi"
    result = _agree(head + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert result is not ValueError  # only RemoteProtocolError may escape


@pytest.mark.parametrize("value", [b"\xb2", b"1\xb3", b" 2 ", b"2, 2", b"-1", b""])
def test_odd_content_lengths_agree_and_raise_only_protocol_errors(value: bytes) -> None:
    result = _agree(b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\nhi")
    assert result is not ValueError


_name = st.text(st.sampled_from("Xa-: \t\x85\xa0\x1c"), min_size=0, max_size=5)
_value = st.text(st.sampled_from("abc:, 019\t\x85close"), max_size=8)


@settings(max_examples=examples(400), deadline=None)
@given(
    st.lists(st.tuples(_name, _value), max_size=5),
    st.sampled_from(["Connection", "Content-Encoding", "X"]),
    st.sampled_from(["close", "keep-alive", "gzip", "x"]),
    st.binary(max_size=20),
)
def test_fast_parse_matches_the_general_one(
    headers: list[tuple[str, str]], special: str, value: str, body: bytes
) -> None:
    lines = [f"{n}: {v}" if ":" not in n else f"{n}{v}" for n, v in headers]
    lines.append(f"{special}: {value}")
    head = "HTTP/1.1 200 OK\r\n" + "\r\n".join(lines)
    data = head.encode("latin-1") + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    _agree(data)


def test_fast_headers_never_fail_later() -> None:
    # every header line was checked: the lazily built dict cannot raise
    fast = whole_response(b"HTTP/1.1 200 OK\r\nA: 1\r\nA: 2\r\nContent-Length: 0\r\n\r\n", False)
    assert fast is not None
    resp, rest = fast
    assert rest == b"" and resp._headers is None
    assert resp.headers == {"a": "1, 2", "content-length": "0"}
    assert whole_response(b"HTTP/1.1 200 OK\r\nA : 1\r\nContent-Length: 0\r\n\r\n", False) is None


def test_a_head_seen_before_reads_as_a_new_one() -> None:
    # what whole_response keeps per head is the head's own reading: the same result
    # whether the head is new or known, with the body, the pipelined rest and the
    # one-read rule still judged per call
    _response._HEADS.clear()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
    first = whole_response(head + b"ab", False)
    assert first is not None and list(_response._HEADS) == [head[:-4]]
    again = whole_response(head + b"cd", False)
    assert again is not None and again[0].body == b"cd" and not again[0].keep_alive
    assert (first[0].status, first[0].reason) == (again[0].status, again[0].reason) == (200, "OK")
    assert whole_response(head + b"c", False) is None  # short: the general parser waits
    assert whole_response(head + b"cdHTTP", False) is None  # extra bytes, not pipelined
    assert whole_response(head + b"cdHTTP", True) == (again[0], b"HTTP")
    refused = b"HTTP/1.1 200 OK\r\nX : 1\r\nContent-Length: 0\r\n\r\n"
    assert whole_response(refused, False) is None
    assert _response._HEADS[refused[:-4]] is None  # a refusal is kept too
    assert whole_response(refused, False) is None


def test_the_kept_heads_are_bounded() -> None:
    _response._HEADS.clear()
    for n in range(3 * _response._HEADS_MAX):
        data = b"HTTP/1.1 200 OK\r\nX-N: %d\r\nContent-Length: 0\r\n\r\n" % n
        assert whole_response(data, False) is not None
        assert len(_response._HEADS) <= _response._HEADS_MAX
    big = b"HTTP/1.1 200 OK\r\nX: " + b"x" * _response._HEAD_KEPT + b"\r\nContent-Length: 0\r\n\r\n"
    before = dict(_response._HEADS)
    assert whole_response(big, False) is not None
    assert before == _response._HEADS  # a long head is read, not kept


def test_decode_gzip_without_and_with_the_header_dict() -> None:
    packed = gzip.compress(b"hello")
    for name in (b"Content-Encoding", b"CONTENT-ENCODING", b"content-encoding"):
        data = b"HTTP/1.1 200 OK\r\n%s: GZip\r\nContent-Length: %d\r\n\r\n" % (name, len(packed))
        fast = whole_response(data + packed, False)
        assert fast is not None and fast[0]._headers is None
        assert decode_gzip(fast[0]) == b"hello"
    # the name inside another header's value is not the header
    data = b"HTTP/1.1 200 OK\r\nX: a Content-Encoding: gzip\r\nContent-Length: 2\r\n\r\nhi"
    fast = whole_response(data, False)
    assert fast is not None and decode_gzip(fast[0]) == b"hi"
    # (after a bare LF it is a header, as http.client reads it: left to the general parser)
    assert whole_response(data.replace(b"a C", b"a\nC"), False) is None
    built = ParsedResponse(200, "OK", packed, raw_head=b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip")
    assert decode_gzip(built) == b"hello"
    assert decode_gzip(ParsedResponse(200, "OK", b"plain")) == b"plain"


# -- HttpPool.exchange's inline path, on real sockets --------------------------------------


class Peer:
    """A loopback server whose connections the test drives by hand."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []

    def accept(self) -> socket.socket:
        self.listener.settimeout(10)
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        self.conns.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.listener.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    return data


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.close()


@pytest.fixture
def pool_for(peer: Peer) -> Iterator[Callable[..., HttpPool]]:
    made: list[HttpPool] = []

    def make(**kw: object) -> HttpPool:
        kw.setdefault("timeout", 10.0)
        made.append(HttpPool(Endpoint("http", "127.0.0.1", peer.port), **kw))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for pool in made:
        pool.shutdown()


def _serve(peer: Peer, *connections: list[bytes]) -> threading.Thread:
    """Accept one connection per list, in turn, and answer its requests with the list's
    answers in order (b"" closes the connection instead)."""

    def run() -> None:
        for answers in connections:
            conn = peer.accept()
            for answer in answers:
                if not _read_request(conn):
                    break
                if not answer:
                    conn.close()
                    break
                conn.sendall(answer)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _ok(body: bytes, *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (
        b"".join(e + b"\r\n" for e in extra),
        len(body),
        body,
    )


def test_kept_connection_big_and_chunked_answers(
    peer: Peer, pool_for: Callable[..., HttpPool]
) -> None:
    big = bytes(range(256)) * 1024  # several reads: the first one is not the whole
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
    thread = _serve(peer, [_ok(b"one"), _ok(big), chunked, _ok(b"last")])
    pool = pool_for()
    get = pool.get_request
    assert pool.exchange(get("/1", b"\r\n"), "/1").body == b"one"
    assert pool.exchange(get("/2", b"\r\n"), "/2").body == big
    assert pool.exchange(get("/3", b"\r\n"), "/3").body == b"ab"
    assert pool.exchange(get("/4", b"\r\n"), "/4", timeout=5.0).body == b"last"
    assert len(peer.conns) == 1  # every answer kept the connection
    thread.join(10)


def test_fast_answer_over_max_body_is_a_protocol_error(
    peer: Peer, pool_for: Callable[..., HttpPool]
) -> None:
    thread = _serve(peer, [_ok(b"0123456789")])
    pool = pool_for(max_body=4)
    with pytest.raises(RemoteProtocolError):
        pool.exchange(pool.get_request("/", b"\r\n"), "/")
    thread.join(10)


def test_connection_close_answer_is_not_kept(peer: Peer, pool_for: Callable[..., HttpPool]) -> None:
    thread = _serve(peer, [_ok(b"bye", b"Connection: close")])
    pool = pool_for()
    assert pool.exchange(pool.get_request("/", b"\r\n"), "/").body == b"bye"
    assert pool._idle_raw == []
    thread.join(10)


def test_unsent_policy_probes_a_kept_connection_the_server_closed(
    peer: Peer, pool_for: Callable[..., HttpPool]
) -> None:
    first = _serve(peer, [_ok(b"one")])
    pool = pool_for(retry="unsent")
    assert pool.exchange(pool.get_request("/", b"\r\n"), "/").body == b"one"
    first.join(10)
    # the server drops the idle connection; wait until its end reached us
    peer.conns[0].close()
    readable, _, _ = select.select([pool._idle_raw[0]], [], [], 10)
    assert readable
    second = _serve(peer, [_ok(b"two")])
    assert pool.exchange(pool.get_request("/", b"\r\n"), "/").body == b"two"
    assert len(peer.conns) == 2
    second.join(10)


@pytest.mark.parametrize("retries", [3, 2])
def test_idempotent_retries_count_the_kept_connection_attempt(
    peer: Peer, pool_for: Callable[..., HttpPool], retries: int
) -> None:
    # The kept connection drops the second request, a fresh one drops it too; the
    # third attempt answers when retries=3, and retries=2 fails after those two.
    pool = pool_for(retry="idempotent", retries=retries)
    last = [[_ok(b"third")]] if retries == 3 else []
    thread = _serve(peer, [_ok(b"one"), b""], [b""], *last)
    assert pool.exchange(pool.get_request("/", b"\r\n"), "/").body == b"one"
    if retries == 3:
        assert pool.exchange(pool.get_request("/", b"\r\n"), "/").body == b"third"
    else:
        with pytest.raises(ConnectionClosed):
            pool.exchange(pool.get_request("/", b"\r\n"), "/")
    thread.join(10)
    assert len(peer.conns) == 2 + len(last)


# -- timeouts ------------------------------------------------------------------------


def test_connections_wait_with_the_pools_timeout(
    peer: Peer, pool_for: Callable[..., HttpPool]
) -> None:
    thread = _serve(peer, [_ok(b"one")])
    pool = pool_for(timeout=7.25)
    assert pool.exchange(pool.get_request("/", b"\r\n"), "/").body == b"one"
    thread.join(10)
    (sock,) = pool._idle_raw
    assert sock.gettimeout() == 7.25


def _slow(
    peer: Peer, answers: list[tuple[float, bytes]], stop: threading.Event
) -> threading.Thread:
    """One connection; each answer is sent after its delay (b"": never answer)."""

    def run() -> None:
        conn = peer.accept()
        for delay, answer in answers:
            if not _read_request(conn):
                return
            if not answer or stop.wait(delay):
                stop.wait(30)
                return
            conn.sendall(answer)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_per_call_timeouts_on_a_kept_connection(
    peer: Peer, pool_for: Callable[..., HttpPool], scaled: Callable[[float], float]
) -> None:
    stop = threading.Event()
    short = scaled(0.2)
    thread = _slow(peer, [(0, _ok(b"one")), (3 * short, _ok(b"late")), (0, b"")], stop)
    pool = pool_for(timeout=short, retry="idempotent", retries=3)
    get = pool.get_request("/", b"\r\n")
    try:
        assert pool.exchange(get, "/").body == b"one"
        # no limit for this call: the answer after three pool timeouts still arrives
        assert pool.exchange(get, "/", timeout=None).body == b"late"
        assert len(peer.conns) == 1
        # and the pool's own timeout is back on that connection (timeouts not retried)
        with pytest.raises(Timeout):
            pool.exchange(get, "/")
        assert len(peer.conns) == 1
    finally:
        stop.set()
        thread.join(10)


def test_shorter_per_call_timeout_and_stream_timeout(
    peer: Peer, pool_for: Callable[..., HttpPool], scaled: Callable[[float], float]
) -> None:
    stop = threading.Event()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    thread = _slow(peer, [(0, _ok(b"one")), (0, head)], stop)
    pool = pool_for(timeout=scaled(0.3))
    try:
        assert pool.exchange(pool.get_request("/", b"\r\n"), "/").body == b"one"
        with pytest.raises(Timeout), pool.stream("GET", "/s", {}) as body:
            assert body.read(3) == b"abc"
            body.read()  # the rest of the body never comes: Timeout, not ConnectionClosed
    finally:
        stop.set()
        thread.join(10)
    stop2 = threading.Event()
    peer2 = Peer()
    try:
        thread2 = _slow(peer2, [(0, b"")], stop2)
        pool2 = HttpPool(Endpoint("http", "127.0.0.1", peer2.port), timeout=30.0)
        with pytest.raises(Timeout):  # a per-call timeout below the pool's
            pool2.exchange(pool2.get_request("/", b"\r\n"), "/", timeout=scaled(0.2))
        pool2.shutdown()
    finally:
        stop2.set()
        peer2.close()
        thread2.join(10)


def test_timeout_holds_while_signals_interrupt_the_wait(
    peer: Peer, pool_for: Callable[..., HttpPool], scaled: Callable[[float], float]
) -> None:
    # A handled signal interrupts the wait every 50 ms. Python's timeout resumes with
    # what is left; a kernel SO_RCVTIMEO would restart in full each time and never end.
    stop = threading.Event()
    thread = _slow(peer, [(0, b"")], stop)  # never answers
    pool = pool_for(timeout=scaled(0.5))
    hits: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: hits.append(1))
    main = threading.get_ident()

    def tick() -> None:
        while not stop.wait(0.05):
            signal.pthread_kill(main, signal.SIGUSR1)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        with pytest.raises(Timeout):
            pool.exchange(pool.get_request("/", b"\r\n"), "/")
    finally:
        stop.set()
        ticker.join(10)
        signal.signal(signal.SIGUSR1, previous)
        thread.join(10)
    assert hits  # the wait was interrupted


def test_big_request_body_on_a_kept_connection(
    peer: Peer, pool_for: Callable[..., HttpPool]
) -> None:
    big = bytes(range(256)) * 2048  # 512 KiB: more than one send

    def run() -> None:
        conn = peer.accept()
        for _ in range(2):
            data = _read_request(conn)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(rest) < length:
                rest += conn.recv(65536)
            conn.sendall(_ok(b"%d" % len(rest)))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    pool = pool_for()
    assert pool.call("POST", "/", big, {}).body == b"%d" % len(big)
    assert pool.call("POST", "/", big, {}).body == b"%d" % len(big)  # on the kept one
    thread.join(10)
