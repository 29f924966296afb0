"""Fixtures for the fleet tests: real nats-server processes, IFCB simulators, remote
rigs and bridges on loopback, every one closed by its fixture's finalizer."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sciwire.fleet import (
    AsyncFleet,
    Bridge,
    BridgeConfig,
    NatsServer,
)
from sciwire.ifcb import IFCBSimulator
from sciwire.rig import EchoProtocol, RemoteRig
from tests.fleet.helpers import wait_connected
from tests.helpers import scale


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    server = NatsServer("test").start()
    yield server
    server.close()


@pytest.fixture
async def sims() -> AsyncIterator[list[IFCBSimulator]]:
    started = []
    for i in range(3):
        sim = IFCBSimulator(f"111-111-{i:03d}", rate=0, triggers=10, heartbeat_interval=0, seed=i)
        await sim.start()
        started.append(sim)
    yield started
    for sim in started:
        await sim.stop()


@pytest.fixture
async def rigs() -> AsyncIterator[list[RemoteRig]]:
    started = [
        RemoteRig(await EchoProtocol.server("udp://127.0.0.1:0", name=name))
        for name in ("cam", "ephys")
    ]
    yield started
    for rig in started:
        rig.close()


@pytest.fixture
async def make_bridge() -> AsyncIterator[Callable[..., Any]]:
    bridges: list[Bridge] = []

    async def make(config: BridgeConfig, wait: bool = True) -> Bridge:
        bridge = Bridge(config)
        bridges.append(bridge)
        await bridge.start(timeout=scale(30))
        if wait:
            await wait_connected(bridge)
        return bridge

    yield make
    for bridge in bridges:
        await bridge.stop()


@pytest.fixture
async def make_fleet() -> AsyncIterator[Callable[..., Any]]:
    fleets: list[AsyncFleet] = []

    async def make(*args: Any, **kwargs: Any) -> AsyncFleet:
        fleet = AsyncFleet(*args, **kwargs)
        fleets.append(fleet)
        await fleet.connect()
        return fleet

    yield make
    for fleet in fleets:
        await fleet.close()


class CliProcess:
    """A `sciwire fleet ...` subprocess whose stdout lines are collected by a thread."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sciwire", "fleet", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=Path(__file__).parent,
        )
        self.lines: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for raw in stream:
            with self._changed:
                into.append(raw.decode().rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_lines(self, predicate: Callable[[list[str]], bool], timeout: float) -> None:
        """Block until *predicate(lines)* holds (stdout, or stderr's lines for stderr)."""
        with self._changed:
            ok = self._changed.wait_for(
                lambda: predicate(self.lines) or self.proc.poll() is not None, scale(timeout)
            )
        if not predicate(self.lines):
            raise AssertionError(
                f"{self.proc.args[3:]}: {'exited' if ok else 'timed out'}; "
                f"{len(self.lines)} lines; stderr: {self.err[-10:]}"
            )

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end and its output to be read; its exit code."""
        code = self.proc.wait(scale(timeout))
        for thread in self._threads:
            thread.join(scale(5))
        return code

    async def await_lines(self, predicate: Callable[[list[str]], bool], timeout: float) -> None:
        """:meth:`wait_lines` without blocking the event loop."""
        await asyncio.to_thread(self.wait_lines, predicate, timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(scale(15))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for thread in self._threads:
            thread.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def cli() -> Iterator[Callable[..., CliProcess]]:
    procs: list[CliProcess] = []

    def start(*args: str) -> CliProcess:
        proc = CliProcess(*args)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.close()
