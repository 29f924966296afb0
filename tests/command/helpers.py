"""Helpers for the command tests (imported by tests/command and tests/interop): a service to
expose, a server starter, a scripted raw HTTP server for misbehaving-peer cases.

The fixtures built on them live in tests/command/conftest.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from sciwire.command import CommandServer


class Service:
    """What the test servers expose."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.gate = threading.Event()
        self.stall_started = threading.Event()
        self._lock = threading.Lock()

    def _note(self, name: str) -> None:
        with self._lock:
            self.log.append(name)

    def hello_world(self) -> dict[str, str]:
        """Say hello."""
        self._note("hello_world")
        return {"hello": "world"}

    def add(self, a: Any, b: Any) -> Any:
        """Add two values.

        Returns a + b.
        """
        self._note("add")
        return a + b

    def echo(self, value: Any = None) -> Any:
        self._note("echo")
        return value

    def boom(self, message: str = "boom") -> None:
        """Raise ValueError."""
        self._note("boom")
        raise ValueError(message)

    def array_sum(self, values: list[float]) -> float:
        self._note("array_sum")
        return float(np.sum(values))

    def calls(self) -> list[str]:
        with self._lock:
            return list(self.log)

    async def stall(self) -> str:
        """Block until the test opens the gate (a procedure slower than the timeout)."""
        self._note("stall")
        self.stall_started.set()
        await asyncio.to_thread(self.gate.wait, 60)
        return "released"


def start_server(service: Service | None = None, **kwargs: Any) -> CommandServer:
    kwargs.setdefault("port", 0)
    kwargs.setdefault("shutdown_timeout", 1.0)
    srv = CommandServer(service, **kwargs)
    srv.route("GET", "/file", lambda req: ("data:" + req.query.get("name", "")).encode())

    async def echo_json(req: Any) -> Any:
        return {"got": await req.json(), "query": dict(req.query)}

    srv.route("POST", "/echo_json", echo_json)
    return srv.start_background()


DESCRIBE_REPLY = json.dumps(
    {"result": {"procs": [{"name": "hello_world"}, {"name": "add"}]}}
).encode()


def http_reply(body: bytes, status: str = "200 OK") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class ScriptedServer:
    """A raw TCP server answering system.describe properly, then each later request
    with the next scripted action: ``"close"`` (drop the connection), ``"partial"``
    (headers and half a body, then silence), ``"trickle"`` (a body byte every 50 ms),
    ``"trickle-head"`` (a head byte every 50 ms), ``"truncated"`` (half a body, then close),
    ``"garbage"``, or bytes to send."""

    def __init__(self, actions: list[str | bytes]) -> None:
        self.actions = list(actions)
        self.requests: list[bytes] = []
        self.heads: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read_request(self, conn: socket.socket) -> tuple[bytes, bytes] | None:
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            body += chunk
        return head, body

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            while True:
                got = self._read_request(conn)
                if got is None:
                    return
                head, body = got
                self.heads.append(head)
                self.requests.append(body)
                if b"system.describe" in body:
                    conn.sendall(http_reply(DESCRIBE_REPLY))
                    continue
                action = self.actions.pop(0) if self.actions else "close"
                if action == "close":
                    conn.close()
                    return
                if action == "partial":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b'{"result": ')
                    self._stop.wait(60)
                    return
                if action == "trickle":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                    for _ in range(1000):  # one byte per 50 ms: ~50 s for the body
                        if self._stop.wait(0.05):
                            return
                        conn.sendall(b" ")
                    return
                if action == "truncated":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b'{"result": ')
                    conn.close()
                    return
                if action == "trickle-head":
                    for _ in range(4000):  # one head byte per 50 ms: ~200 s for the head
                        if self._stop.wait(0.05):
                            return
                        conn.sendall(b"X")
                    return
                if action == "garbage":
                    conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                    conn.close()
                    return
                assert isinstance(action, bytes)
                conn.sendall(action)
        except OSError:
            return

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()
        for conn in self._conns:
            conn.close()


def scripted_servers() -> Iterator[Callable[[list[str | bytes]], ScriptedServer]]:
    """The body of a ``scripted`` fixture: yields a maker, then closes what it made."""
    made: list[ScriptedServer] = []

    def make(actions: list[str | bytes]) -> ScriptedServer:
        srv = ScriptedServer(actions)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.close()


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
