"""The rig TCP server under a memory attack: many connections, each an unterminated message.

Each connection may hold ``max_buffer_size`` (1 MiB) of an incomplete message, so
without a total budget N connections hold N MiB. The server runs in a subprocess
so that its peak resident memory (``VmHWM`` in ``/proc/<pid>/status``) can be read;
counts are scaled down (a 4 MiB budget, 60 connections of 900 KiB) to run in a few
seconds, and a legitimate client must be served during and after the attack.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sciwire.rig import EchoProtocol
from tests.adversarial.helpers import status_kb

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads /proc/<pid>/status (Linux)"
)

BUDGET = 4 << 20
ATTACKERS = 60
PAYLOAD = b'[1, "' + b"x" * (900 << 10)  # an unterminated string: never a whole message
#: the most the peak may grow: the budget plus transient copies of one read per
#: connection being parsed, far below the ATTACKERS x PAYLOAD (53 MiB) held without one
RSS_GROWTH_LIMIT = 24 << 20

SERVER = """
import asyncio, logging, sys
from sciwire.rig import EchoProtocol

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

async def main():
    EchoProtocol.max_total_buffer_size = int(sys.argv[1])
    com = await EchoProtocol.server("tcp://127.0.0.1:0", name="victim")
    print(com.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
    await com.wait_closed()

asyncio.run(main())
"""


async def closed(reader: asyncio.StreamReader) -> bool:
    """Wait until the server closes this connection (EOF or reset)."""
    try:
        return await reader.read() == b""
    except ConnectionResetError:  # closed with our unread data still queued
        return True


@pytest.fixture
async def victim(scaled: Callable[[float], float]) -> AsyncIterator[Any]:
    """The rig server in a subprocess, with the scaled-down budget; stopped at the end."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER,
        str(BUDGET),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), scaled(30))
        proc.port = int(line)  # type: ignore[attr-defined]
        yield proc
    finally:
        if proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), scaled(10))
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def test_total_buffer_budget_bounds_memory_and_serves_others(
    victim: Any, scaled: Callable[[float], float]
) -> None:
    uri = f"tcp://127.0.0.1:{victim.port}"
    client = await EchoProtocol.client(uri, name="legit")
    client.default_echo_timeout = scaled(10)
    writers: list[asyncio.StreamWriter] = []
    background: asyncio.Task[int] | None = None
    try:
        for i in range(20):  # warm up, then take the baseline
            await client.init(i)
        baseline = status_kb(victim.pid, "VmRSS")

        stop = asyncio.Event()

        async def keep_talking() -> int:
            done = 0
            while not stop.is_set():
                await client.init(done)  # raises (failing the test) if not served
                done += 1
            return done

        background = asyncio.ensure_future(keep_talking())
        streams = [
            await asyncio.open_connection("127.0.0.1", victim.port) for _ in range(ATTACKERS)
        ]
        writers = [w for _, w in streams]
        for w in writers:
            w.write(PAYLOAD)
        await asyncio.gather(*(w.drain() for w in writers))

        # Every connection beyond what the budget holds is closed by the server.
        held = BUDGET // len(PAYLOAD)
        reads = {asyncio.ensure_future(closed(r)) for r, _ in streams}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scaled(30)
        shut = 0
        while shut < ATTACKERS - held and reads and loop.time() < deadline:
            done, reads = await asyncio.wait(
                reads, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
            shut += sum(t.result() for t in done)
        for t in reads:
            t.cancel()
        assert shut >= ATTACKERS - held
        assert reads  # the budget holds some connections: not everything is refused

        stop.set()
        assert await background > 0  # served while the attack was being taken apart
        background = None
        for i in range(10):  # served during: the held attackers are still connected
            await client.init(i)
        peak = status_kb(victim.pid, "VmHWM")
        assert (peak - baseline) << 10 < RSS_GROWTH_LIMIT, (baseline, peak)

        for w in writers:
            w.close()
        writers = []
        for i in range(10):  # and after
            await client.init(i)
    finally:
        if background is not None:
            background.cancel()
        for w in writers:
            w.close()
        await client.wait_closed()

    assert victim.stdin is not None
    victim.stdin.close()
    await asyncio.wait_for(victim.wait(), scaled(10))
    assert victim.stderr is not None
    log = (await victim.stderr.read()).decode()
    budget_lines = [ln for ln in log.splitlines() if "max_total_buffer_size" in ln]
    assert ATTACKERS - held <= len(budget_lines) < ATTACKERS
    peers = {ln.split("closing connection from ")[1].split(":")[0] for ln in budget_lines}
    assert len(peers) == len(budget_lines)  # logged once per closed connection
    assert all("127.0.0.1" in p for p in peers)
