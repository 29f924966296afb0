"""The blocking and asyncio JSON clients run the same scenarios and must agree.

Each scenario runs twice against a fresh canned raw-socket server (real loopback
sockets): once with HttpJsonClient, once with AsyncHttpJsonClient. The outcome (result
or exception type, code and data), the requests the server saw (byte for byte) and the
connections it accepted must be the same for both. The generated twin is also checked
against its source (tools/unasync.py --check).
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sciwire.drms import AsyncHttpJsonClient, DrmsError, HttpJsonClient, ServerConfig
from sciwire.drms._aiotransport import AsyncTransport
from sciwire.drms._transport import BlockingTransport, RetryPolicy, gunzip
from sciwire.errors import (
    ConnectError,
    ConnectionClosed,
    RemoteProtocolError,
    SciwireError,
    Timeout,
)

from .test_transport import CannedServer, ok

ROOT = Path(__file__).resolve().parents[2]
TWINS = ["blocking", "asyncio"]


class Twin:
    """One client of either kind with a blocking ``call`` (the asyncio one on its own loop)."""

    def __init__(self, kind: str, cfg: ServerConfig, timeout: float, retries: int) -> None:
        self.kind = kind
        self.loop: asyncio.AbstractEventLoop | None = None
        if kind == "asyncio":
            self.loop = asyncio.new_event_loop()
            self.aclient = AsyncHttpJsonClient(cfg, timeout=timeout, retries=retries)
        else:
            self.client = HttpJsonClient(cfg, timeout=timeout, retries=retries)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.loop is None:
            return getattr(self.client, method)(*args, **kwargs)
        return self.loop.run_until_complete(getattr(self.aclient, method)(*args, **kwargs))

    def close(self) -> None:
        if self.loop is None:
            self.client.close()
            return
        try:
            self.loop.run_until_complete(self.aclient.close())
        finally:
            self.loop.close()


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """What a call came to: ("ok", result) or (exception type name, code/data if any)."""
    try:
        return "ok", fn()
    except SciwireError as exc:
        code = getattr(exc, "code", None) if isinstance(exc, DrmsError) else None
        return type(exc).__name__, code


@pytest.fixture
def both() -> Iterator[Callable[..., tuple[Twin, CannedServer]]]:
    """Makes (twin, server) pairs, each on a fresh canned server; closes them all."""
    made: list[tuple[Twin, CannedServer]] = []

    def make(kind: str, timeout: float = 5.0, retries: int = 1) -> tuple[Twin, CannedServer]:
        server = CannedServer()
        cfg = ServerConfig(
            name="canned",
            cgi_baseurl=server.url("/cgi/"),
            cgi_jsoc_info="jsoc_info",
            http_download_baseurl=server.url("/"),
        )
        try:
            twin = Twin(kind, cfg, timeout, retries)
        except BaseException:
            server.close()
            raise
        made.append((twin, server))
        return twin, server

    try:
        yield make
    finally:
        for twin, server in made:
            twin.close()
            server.close()


BODY = b'{"count": 3, "status": 0}'
DROPPED = b""  # close the connection without a reply

# name -> (replies, then the outcome both twins must reach)
SCENARIOS: dict[str, list[tuple[bytes, bool]]] = {
    "plain": [(ok(BODY), False)],
    "gzip": [(ok(gzip.compress(BODY), "Content-Encoding: gzip"), False)],
    "chunked": [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(BODY):x}\r\n".encode()
            + BODY
            + b"\r\n0\r\n\r\n",
            False,
        )
    ],
    "dropped once, then answered": [(DROPPED, True), (ok(BODY), False)],
    "dropped twice (retries=1)": [(DROPPED, True), (DROPPED, True), (ok(BODY), False)],
    "short body, then answered": [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{", True),
        (ok(BODY), False),
    ],
    "bad chunk framing (not retried)": [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", True),
        (ok(BODY), False),
    ],
    "not HTTP (not retried)": [(b"SPAM 200 OK\r\n\r\n", True), (ok(BODY), False)],
    "HTTP 500 (not retried)": [
        (b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nboom", False),
        (ok(BODY), False),
    ],
    "not JSON": [(ok(b"<html>"), False)],
}


def _run(both: Callable[..., tuple[Twin, CannedServer]], kind: str, name: str) -> Any:
    twin, server = both(kind)
    server.replies += SCENARIOS[name]
    got = outcome(lambda: twin.call("rs_summary", "hmi.x[1]"))
    return got, list(server.requests), server.connections


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_outcome(both: Callable[..., tuple[Twin, CannedServer]], name: str) -> None:
    blocking = _run(both, "blocking", name)
    asyncio_ = _run(both, "asyncio", name)
    # the request bytes differ only by the port in Host
    strip = [
        (g, [r.split(b"\r\nHost:")[0] for r in reqs], n) for g, reqs, n in (blocking, asyncio_)
    ]
    assert strip[0] == strip[1]
    expected = {
        "dropped twice (retries=1)": ("ConnectionClosed", None),
        "bad chunk framing (not retried)": ("RemoteProtocolError", None),
        "not HTTP (not retried)": ("RemoteProtocolError", None),
        "HTTP 500 (not retried)": ("DrmsHttpError", 500),
        "not JSON": ("RemoteProtocolError", None),
    }.get(name, ("ok", {"count": 3, "status": 0}))
    assert blocking[0] == expected
    assert blocking[1][0].startswith(b"GET /cgi/jsoc_info?op=rs_summary&ds=hmi.x%5B1%5D HTTP/1.1")


@pytest.mark.parametrize("kind", TWINS)
def test_timeout_is_not_retried(both: Callable[..., tuple[Twin, CannedServer]], kind: str) -> None:
    twin, server = both(kind, timeout=0.3, retries=3)
    with pytest.raises(Timeout, match="JSOC did not answer in time"):
        twin.call("rs_summary", "x")  # nothing queued: the server never answers
    assert len(server.requests) == 1 and server.connections == 1


@pytest.mark.parametrize("kind", TWINS)
def test_refused_is_retried_then_connect_error(kind: str, scaled: Callable[[float], float]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    cfg = ServerConfig(name="dead", cgi_baseurl=f"http://127.0.0.1:{port}/", cgi_jsoc_info="i")
    twin = Twin(kind, cfg, scaled(5), 2)
    try:
        with pytest.raises(ConnectError, match=r"cannot connect for http://127\.0\.0\.1"):
            twin.call("rs_summary", "x")
    finally:
        twin.close()


def test_retry_policy_table() -> None:
    policy = RetryPolicy(2)
    closed, refused = ConnectionClosed("c"), ConnectError("r")
    table = [
        (closed, 1, True),
        (closed, 2, True),
        (closed, 3, False),
        (refused, 1, True),
        (Timeout("t"), 1, False),
        (RemoteProtocolError("p"), 1, False),
        (DrmsError("http", code=500), 1, False),
        (ValueError("v"), 1, False),
    ]
    assert [policy.again(exc, attempt) for exc, attempt, _ in table] == [w for *_, w in table]
    assert not RetryPolicy(0).again(closed, 1) and RetryPolicy(-3).retries == 0


def _body_with_cap(kind: str, url: str, cap: int) -> tuple[str, Any]:
    if kind == "blocking":
        t = BlockingTransport(timeout=5, retries=1, max_body=cap)
        try:
            return outcome(lambda: t.get_body(url))
        finally:
            t.close()

    async def run() -> tuple[str, Any]:
        a = AsyncTransport(timeout=5, retries=1, max_body=cap)
        try:
            try:
                return "ok", await a.get_body(url)
            except SciwireError as exc:
                return type(exc).__name__, None
        finally:
            await a.close()

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("reply", "want"),
    [
        (ok(b"x" * 100), ("ok", b"x" * 100)),
        (ok(b"x" * 101), ("RemoteProtocolError", None)),
        # mtime=0: the test ids hold these bytes, and pytest-xdist's workers must agree on them
        (ok(gzip.compress(b"y" * 100, mtime=0), "Content-Encoding: gzip"), ("ok", b"y" * 100)),
        # a small answer that unpacks past the cap
        (
            ok(gzip.compress(b"\0" * 5000, mtime=0), "Content-Encoding: gzip"),
            ("RemoteProtocolError", None),
        ),
    ],
)
@pytest.mark.parametrize("kind", TWINS)
def test_answer_cap(kind: str, reply: bytes, want: tuple[str, Any]) -> None:
    server = CannedServer()
    try:
        server.replies.append((reply, False))
        assert _body_with_cap(kind, server.url("/cgi?op=x"), 100) == want
        assert len(server.requests) == 1  # a bad answer is not asked again
    finally:
        server.close()


def test_gunzip() -> None:
    one, two = gzip.compress(b"ab"), gzip.compress(b"cd")
    assert gunzip(one, 2) == b"ab" and gunzip(one + two + b"\0\0", 4) == b"abcd"
    for bad, limit in [(one[:-3], 10), (b"plain", 10), (one, 1), (one + two, 3), (one + b"x", 9)]:
        with pytest.raises(RemoteProtocolError):
            gunzip(bad, limit)


def _finished(*names: str) -> dict[str, Any]:
    return {
        "status": "0",
        "requestid": "JSOC_1",
        "method": "url",
        "dir": "/SUM1/D1",
        "data": [{"record": f"hmi.x[{i}]", "filename": n} for i, n in enumerate(names)],
    }


def _partial(start: int, data: bytes, total: int) -> bytes:
    end = start + len(data) - 1
    return (
        f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{end}/{total}\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


# name -> (.part content before, replies, expected file content or error name)
DOWNLOADS: dict[str, tuple[bytes | None, list[tuple[bytes, bool]], str]] = {
    "fresh": (None, [(ok(b"0123456789"), False)], "0123456789"),
    "resumed from .part": (b"0123", [(_partial(4, b"456789", 10), False)], "0123456789"),
    "dropped mid-body, resumed by the retry": (
        None,
        [
            (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123", True),
            (_partial(4, b"456789", 10), False),
        ],
        "0123456789",
    ),
    "Range ignored: written anew": (b"xx", [(ok(b"0123456789"), False)], "0123456789"),
    "already complete (416)": (
        b"0123456789",
        [
            (
                b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */10\r\n"
                b"Content-Length: 0\r\n\r\n",
                False,
            )
        ],
        "0123456789",
    ),
    "wrong range twice: no resume": (
        b"0123",
        [(_partial(0, b"0123456789", 10), False), (_partial(5, b"56789", 10), False)],
        "DrmsExportError",
    ),
    "size mismatch keeps the partial file": (
        b"abc",
        [(_partial(3, b"def", 10), False)],
        "DrmsExportError",
    ),
    "404": (
        None,
        [(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", False)],
        "DrmsHttpError",
    ),
}


def _download(
    both: Callable[..., tuple[Twin, CannedServer]], kind: str, name: str, dest: Path
) -> tuple[str, bytes | None, bytes | None, list[bytes]]:
    part, replies, _ = DOWNLOADS[name]
    twin, server = both(kind)
    dest.mkdir()
    if part is not None:
        (dest / "f.fits.part").write_bytes(part)
    server.replies += replies
    got, _ = outcome(lambda: twin.call("download", _finished("f.fits"), dest, progress=False))
    final = dest / "f.fits"
    left = dest / "f.fits.part"
    return (
        got,
        final.read_bytes() if final.exists() else None,
        left.read_bytes() if left.exists() else None,
        [
            r.split(b"\r\nHost:")[0]
            + b"|"
            + (r.split(b"Range: ")[1][:12] if b"Range" in r else b"")
            for r in server.requests
        ],
    )


@pytest.mark.parametrize("name", list(DOWNLOADS))
def test_same_download(
    both: Callable[..., tuple[Twin, CannedServer]], name: str, tmp_path: Path
) -> None:
    blocking = _download(both, "blocking", name, tmp_path / "b")
    asyncio_ = _download(both, "asyncio", name, tmp_path / "a")
    assert blocking == asyncio_
    want = DOWNLOADS[name][2]
    if want.startswith("Drms"):
        assert blocking[0] == want
    else:
        assert blocking[0] == "ok" and blocking[1] == want.encode() and blocking[2] is None
    if name == "size mismatch keeps the partial file":
        assert blocking[2] == b"abcdef"


def test_generated_twins_are_current() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "unasync.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr


_ROUTES = [
    (
        "http://h:8080/cgi-bin/jsoc_info?op=rs_summary&ds=a",
        0,
        b"h:8080\r\n",
        "/cgi-bin/jsoc_info?op=rs_summary&ds=a",
    ),
    ("http://h:8080/cgi-bin/jsoc_info?op=x#frag", 0, b"h:8080\r\n", "/cgi-bin/jsoc_info?op=x"),
    ("http://h:8080/cgi-bin/show_series", 0, b"h:8080\r\n", "/cgi-bin/show_series"),
    ("http://h:8080", 0, b"h:8080\r\n", "/"),
    ("https://h/x?y=1", 1, b"h\r\n", "/x?y=1"),
    ("http://other/x", 2, b"other\r\n", "/x"),
    ("http://[::1]:9/x?q", 3, b"[::1]:9\r\n", "/x?q"),
]


def _routes(transport: BlockingTransport | AsyncTransport) -> list[tuple[int, bytes, str]]:
    pools: list[object] = []
    out = []
    for url, *_ in _ROUTES:
        pool, host, target = transport._target(url)
        if pool not in pools:
            pools.append(pool)
        out.append((pools.index(pool), host, target))
    for n in range(300):  # more bases than kept: still the same pool per endpoint
        assert transport._target(f"http://h:8080/p{n}?a")[0] is transport._target(_ROUTES[0][0])[0]
    assert len(transport._targets) <= 256
    return out


def test_both_transports_route_urls_alike() -> None:
    """The one pool per endpoint and the request target for a URL, the same on both
    twins: a table, without I/O (no pool connects until it sends)."""
    want = [tuple(row[1:]) for row in _ROUTES]
    blocking = BlockingTransport(timeout=5)
    try:
        assert _routes(blocking) == want
        assert [p.retry for p, _ in blocking._pools.values()] == ["idempotent"] * 4
    finally:
        blocking.close()

    async def run() -> list[tuple[int, bytes, str]]:
        a = AsyncTransport(timeout=5)
        try:
            got = _routes(a)
            assert [p.retry for p, _ in a._pools.values()] == [
                "idempotent"
            ] * 4  # one rule for both twins
            return got
        finally:
            await a.close()

    assert asyncio.run(run()) == want
    with pytest.raises(ValueError, match="Not an http"):
        BlockingTransport(timeout=5)._target("ftp://h/x")
