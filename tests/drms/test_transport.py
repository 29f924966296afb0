"""The blocking transport against a raw socket server sending canned HTTP answers."""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sciwire.drms import DrmsExportError, DrmsHttpError
from sciwire.drms._downloads import download_blocking
from sciwire.drms._transfer import MAX_POLL, MIN_POLL, poll_interval
from sciwire.drms._transport import BlockingTransport
from sciwire.errors import ConnectionClosed, RemoteProtocolError, Timeout


class CannedServer:
    """Accepts connections; answers each request with the next canned reply.

    A reply is bytes to send, optionally followed by closing the connection.
    """

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.replies: list[tuple[bytes, bool]] = []
        self.requests: list[bytes] = []
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def url(self, path: str = "/x") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                self.requests.append(head)
                if not self.replies:  # nothing to say: hold the line until stopped
                    self._stop.wait()
                    return
                data, close = self.replies.pop(0)
                try:
                    conn.sendall(data)
                except OSError:
                    return
                if close:
                    return

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.sock.close()
        self._thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[CannedServer]:
    s = CannedServer()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def transport() -> Iterator[BlockingTransport]:
    t = BlockingTransport(timeout=5, retries=1)
    try:
        yield t
    finally:
        t.close()


def ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_content_length_keepalive_and_request(
    server: CannedServer, transport: BlockingTransport
) -> None:
    server.replies += [(ok(b'{"a":1}'), False), (ok(b'{"a":2}'), False)]
    assert transport.get(server.url("/p?q=1")).body == b'{"a":1}'
    assert transport.get(server.url("/p?q=2"), {"X-Test": "y"}).body == b'{"a":2}'
    assert server.connections == 1
    first = server.requests[0].decode()
    assert first.startswith("GET /p?q=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}" in first and "Accept-Encoding: gzip" in first
    assert "User-Agent: sciwire-drms/" in first
    assert "X-Test: y" in server.requests[1].decode()
    with pytest.raises(ValueError):
        transport.get(server.url(), {"X": "a\r\nInjected: 1"})


def test_a_given_header_replaces_the_default_in_any_case(server: CannedServer) -> None:
    # urllib's Request spells "User-agent": drms.json.urlopen must not send two
    from sciwire.drms.json import urlopen

    server.replies.append((ok(b"{}"), True))
    assert urlopen(server.url("/u"), timeout=5).read() == b"{}"
    head = server.requests[0].decode().lower()
    assert head.count("user-agent:") == 1 and "user-agent: sciwire-drms/" in head


def test_chunked_and_gzip(server: CannedServer, transport: BlockingTransport) -> None:
    packed = gzip.compress(b'{"status": 0}')
    chunked = b"".join(
        f"{len(part):x};ext=1\r\n".encode() + part + b"\r\n" for part in (packed[:5], packed[5:])
    )
    server.replies.append(
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
            + chunked
            + b"0\r\nTrailer: x\r\n\r\n",
            False,
        )
    )
    server.replies.append((ok(b"second"), False))
    assert transport.get(server.url()).body == b'{"status": 0}'
    assert transport.get(server.url()).body == b"second"
    assert server.connections == 1


def test_read_until_close(server: CannedServer, transport: BlockingTransport) -> None:
    server.replies.append((b"HTTP/1.0 200 OK\r\n\r\nall of it", True))
    server.replies.append((ok(b"fresh", "Connection: close"), True))
    server.replies.append((ok(b"third"), False))
    assert transport.get(server.url()).body == b"all of it"
    assert transport.get(server.url()).body == b"fresh"
    assert transport.get(server.url()).body == b"third"
    assert server.connections == 3


def test_stale_connection_is_retried(server: CannedServer, transport: BlockingTransport) -> None:
    server.replies.append((ok(b"one"), True))  # answers, then drops the kept connection
    server.replies.append((ok(b"two"), False))
    assert transport.get(server.url()).body == b"one"
    assert transport.get(server.url()).body == b"two"
    assert server.connections == 2


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", ConnectionClosed),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", ConnectionClosed),
        (b"SPAM 200 OK\r\n\r\n", RemoteProtocolError),
        (b"HTTP/1.1 abc OK\r\n\r\n", RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000, RemoteProtocolError),
        (ok(b"not gzip", "Content-Encoding: gzip"), RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-", ConnectionClosed),
    ],
)
@pytest.mark.parametrize("body_only", [False, True])
def test_bad_answers(
    server: CannedServer,
    transport: BlockingTransport,
    reply: bytes,
    error: type[Exception],
    body_only: bool,
) -> None:
    # each reply twice: a retry after a dropped connection meets the same answer
    server.replies += [(reply, True), (reply, True)]
    with pytest.raises(error):
        if body_only:
            transport.get_body(server.url())
        else:
            transport.get(server.url())


def test_get_body_is_get_without_the_headers(
    server: CannedServer, transport: BlockingTransport
) -> None:
    packed = gzip.compress(b'{"count": 3}')
    answers = [
        ok(packed, "Content-Encoding: gzip"),
        ok(b"plain", "X-A: 1"),
        b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nboom",
    ]
    paths = ["/cgi?op=a&ds=x%5B1%5D", "/cgi?op=a#frag", "/cgi"]
    got: list[object] = []
    for fetch in (transport.get_body, lambda url: transport.get(url).body):
        server.replies += [(a, False) for a in answers]
        for path in paths:
            try:
                got.append(fetch(server.url(path)))
            except DrmsHttpError as exc:
                got.append((exc.code, exc.data))
    assert got[:3] == got[3:] == [b'{"count": 3}', b"plain", (500, "boom")]
    targets = [r.split(b" ")[1] for r in server.requests]
    assert targets[:3] == targets[3:] == [b"/cgi?op=a&ds=x%5B1%5D", b"/cgi?op=a", b"/cgi"]
    assert server.requests[0] == server.requests[3]  # the same request bytes
    assert server.connections == 1
    with pytest.raises(ValueError):
        transport.get_body(server.url("/cgi?a b"))


def test_http_error_status(server: CannedServer, transport: BlockingTransport) -> None:
    server.replies.append((b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope", False))
    with pytest.raises(DrmsHttpError) as info:
        transport.get(server.url())
    assert info.value.code == 404 and info.value.data == "nope"


def test_timeout(server: CannedServer) -> None:
    t = BlockingTransport(timeout=0.2, retries=3)
    try:
        with pytest.raises(Timeout):
            t.get(server.url())  # no reply queued: the server never answers
        assert server.connections == 1  # timeouts are not retried
    finally:
        t.close()


def test_stream(server: CannedServer, transport: BlockingTransport) -> None:
    server.replies.append((ok(b"0123456789"), False))
    server.replies.append((ok(b"after"), False))
    with transport.stream(server.url(), {"Range": "bytes=0-"}) as (status, headers, body):
        assert status == 200 and headers["content-length"] == "10"
        assert body.read(4) == b"0123"
    # the unread rest was drained: the connection is reused
    assert transport.get(server.url()).body == b"after"
    assert server.connections == 1
    assert b"Range: bytes=0-" in server.requests[0]


def test_download_verifies_sizes_and_keeps_partial(
    server: CannedServer, transport: BlockingTransport, tmp_path: Path
) -> None:
    (tmp_path / "f.fits.part").write_bytes(b"abc")
    # the server claims 10 bytes in all but sends only 3 more: the size check fails
    server.replies.append(
        (
            b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 3-5/10\r\n"
            b"Content-Length: 3\r\n\r\ndef",
            False,
        )
    )
    with pytest.raises(DrmsExportError, match="size mismatch"):
        download_blocking(
            transport,
            [("f.fits", server.url("/f.fits"))],
            tmp_path,
            concurrency=1,
            progress=False,
            overwrite=False,
        )
    assert (tmp_path / "f.fits.part").read_bytes() == b"abcdef"  # kept for a later resume
    assert not (tmp_path / "f.fits").exists()
    assert b"Range: bytes=3-" in server.requests[0]


def test_download_http_error(
    server: CannedServer, transport: BlockingTransport, tmp_path: Path
) -> None:
    server.replies.append((b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", False))
    with pytest.raises(DrmsHttpError) as info:
        download_blocking(
            transport,
            [("g.fits", server.url("/g.fits"))],
            tmp_path,
            concurrency=2,
            progress=False,
            overwrite=False,
        )
    assert info.value.code == 404


def test_poll_interval_bounds() -> None:
    assert poll_interval({"wait": 3}, None) == 3.0
    assert poll_interval({"wait": 0}, None) == MIN_POLL
    assert poll_interval({"wait": 999999}, None) == MAX_POLL
    assert poll_interval({"wait": "soon"}, None) == 1.0
    assert poll_interval({"wait": 3}, 0.25) == 0.25
