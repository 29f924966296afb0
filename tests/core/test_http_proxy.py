"""The clients honour http_proxy / https_proxy / no_proxy as urllib does, through a
small forwarding proxy on loopback: absolute-form requests for http, CONNECT tunnels
for https, credentials from the proxy URL, no_proxy matched by urllib's own rules."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sciwire.command import CommandClient, CommandServer
from sciwire.core.http import AsyncHttpPool, Endpoint, HttpPool
from sciwire.core.http.codec import ResponseParser
from sciwire.errors import ConnectError
from tests.helpers import scale


def _read_head(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes]:
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    end = buf.index(b"\r\n\r\n")
    return buf[:end], buf[end + 4 :]


class ForwardingProxy:
    """An HTTP proxy for the tests: CONNECT tunnels, and absolute-form requests
    forwarded one by one in origin form. Records every request line and any
    Proxy-Authorization it was sent; ``refuse`` answers CONNECT with 407."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.lines: list[str] = []
        self.auth: list[str] = []
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = int(self.lsock.getsockname()[1])
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            buf = b""
            while True:
                head, buf = _read_head(conn, buf)
                lines = head.split(b"\r\n")
                self.lines.append(lines[0].decode())
                fields = []
                for line in lines[1:]:
                    if line.lower().startswith(b"proxy-authorization:"):
                        self.auth.append(line.split(b":", 1)[1].strip().decode())
                    else:
                        fields.append(line)
                method, target, version = lines[0].split(b" ")
                if method == b"CONNECT":
                    if self.refuse:
                        conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                        return
                    host, port = target.decode().rsplit(":", 1)
                    upstream = socket.create_connection((host, int(port)))
                    self.conns.append(upstream)
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    self._pipe(conn, upstream, buf)
                    return
                url = urlsplit(target.decode())
                if upstream is None:
                    upstream = socket.create_connection((url.hostname, url.port))
                    self.conns.append(upstream)
                length = 0
                for line in fields:
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                while len(buf) < length:
                    buf += conn.recv(65536)
                body, buf = buf[:length], buf[length:]
                origin = (url.path or "/") + (f"?{url.query}" if url.query else "")
                request_line = b" ".join((method, origin.encode(), version))
                upstream.sendall(b"\r\n".join([request_line, *fields]) + b"\r\n\r\n" + body)
                parser = ResponseParser(head=method == b"HEAD")
                raw = b""
                while parser.response is None:
                    chunk = upstream.recv(65536)
                    if not chunk:
                        parser.feed_eof()
                        break
                    raw += chunk
                    parser.feed(chunk)
                conn.sendall(raw)
        except (OSError, ValueError):
            pass  # a side hung up
        finally:
            conn.close()
            if upstream is not None:
                upstream.close()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket, early: bytes) -> None:
        if early:
            b.sendall(early)

        def one_way(src: socket.socket, dst: socket.socket) -> None:
            try:
                while chunk := src.recv(65536):
                    dst.sendall(chunk)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        t = threading.Thread(target=one_way, args=(b, a), daemon=True)
        t.start()
        one_way(a, b)
        t.join(timeout=scale(10))

    def close(self) -> None:
        self.lsock.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def proxy() -> Iterator[ForwardingProxy]:
    p = ForwardingProxy()
    yield p
    p.close()


@pytest.fixture
def server() -> Iterator[CommandServer]:
    srv = CommandServer(host="127.0.0.1", port=0)
    srv.expose(lambda a, b: a + b, name="add")
    with srv:
        yield srv


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) TLS contexts around a self-signed certificate for 127.0.0.1."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    return server_ctx, ssl.create_default_context(cafile=str(cert))


def _clear(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_http_requests_go_through_http_proxy_in_absolute_form(
    proxy: ForwardingProxy, server: CommandServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    with CommandClient("command", "127.0.0.1", server.port, retries=1) as cli:
        assert cli.add(2, 3) == 5
        assert cli.add(4, 3) == 7
    origin = f"http://127.0.0.1:{server.port}"
    assert proxy.lines[:2] == [f"POST {origin}/api HTTP/1.1"] * 2
    assert proxy.auth == []


def test_no_proxy_reaches_the_server_directly(
    proxy: ForwardingProxy, server: CommandServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    with CommandClient("command", "127.0.0.1", server.port, retries=1) as cli:
        assert cli.add(2, 3) == 5
    assert proxy.lines == []


def test_proxy_credentials_are_sent(
    proxy: ForwardingProxy, server: CommandServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("http_proxy", f"http://us%40er:p%3Ass@127.0.0.1:{proxy.port}")
    pool = HttpPool(Endpoint("http", "127.0.0.1", server.port), timeout=scale(10))
    try:
        assert pool.call("GET", "/nothing", None, {}).status == 404
    finally:
        pool.close()
    assert proxy.auth == ["Basic dXNAZXI6cDpzcw=="]  # "us@er:p:ss"


def test_https_goes_through_a_connect_tunnel(
    proxy: ForwardingProxy,
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{proxy.port}")
    srv = CommandServer(host="127.0.0.1", port=0, ssl_context=tls[0])
    srv.expose(lambda a, b: a + b, name="add")
    with (
        srv,
        CommandClient(
            host="https://127.0.0.1", port=srv.port, ssl_context=tls[1], retries=1
        ) as cli,
    ):
        assert cli.add(2, 3) == 5
        assert cli.add(1, 1) == 2
    assert proxy.lines == [f"CONNECT 127.0.0.1:{srv.port} HTTP/1.1"]  # one kept tunnel


async def test_asyncio_pool_uses_the_proxy_for_http_and_https(
    proxy: ForwardingProxy,
    server: CommandServer,
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{proxy.port}")
    pool = AsyncHttpPool(Endpoint("http", "127.0.0.1", server.port), timeout=scale(10))
    try:
        assert (await pool.call("GET", "/x", None, {})).status == 404
    finally:
        await pool.close()
    assert proxy.lines == [f"GET http://127.0.0.1:{server.port}/x HTTP/1.1"]
    secure = CommandServer(host="127.0.0.1", port=0, ssl_context=tls[0])
    await secure.start()
    try:
        pool = AsyncHttpPool(
            Endpoint("https", "127.0.0.1", secure.port), timeout=scale(10), ssl_context=tls[1]
        )
        try:
            assert (await pool.call("GET", "/y", None, {})).status == 404
        finally:
            await pool.close()
    finally:
        await secure.stop()
    assert proxy.lines[-1] == f"CONNECT 127.0.0.1:{secure.port} HTTP/1.1"


def test_a_refused_tunnel_is_a_connect_error(
    tls: tuple[ssl.SSLContext, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing = ForwardingProxy(refuse=True)
    try:
        _clear(monkeypatch)
        monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{refusing.port}")
        pool = HttpPool(Endpoint("https", "127.0.0.1", 9), timeout=scale(10))
        with pytest.raises(ConnectError, match="407"):
            pool.call("GET", "/", None, {})
        pool.close()
    finally:
        refusing.close()


async def test_drms_async_client_uses_the_proxy(
    proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sciwire.drms import AsyncHttpJsonClient, JsocEmulator

    _clear(monkeypatch)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    with JsocEmulator() as emu:
        async with AsyncHttpJsonClient(emu.server_config()) as client:
            names = [s["name"] for s in (await client.show_series())["names"]]
    assert names
    assert proxy.lines and proxy.lines[0].startswith("GET http://127.0.0.1:")
