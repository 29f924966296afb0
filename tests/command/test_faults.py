"""A command server killed in the middle of calls: no POST is ever run twice.

The server runs in its own process, so the test can kill it for real (SIGKILL: no
goodbye on any connection); every procedure prints ``ran <id>`` before doing anything,
so the test counts executions from what the processes printed. A second server is
started on the same port at once: a client that re-sent a call after the drop would
reach it, and the count would show it.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sciwire.command import AsyncCommandClient, CommandClient, CommandConnectionClosed

SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from sciwire.command import CommandServer

    class Jobs:
        async def enqueue_job(self, call_id):
            print("ran", call_id, flush=True)
            await asyncio.Event().wait()  # never done: the test kills us mid-call

        def quick(self, call_id):
            print("ran", call_id, flush=True)
            return call_id

    async def main(port):
        srv = CommandServer(Jobs(), host="127.0.0.1", port=port)
        await srv.start()
        print("port", srv.port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main(int(sys.argv[1])))
    """
)

IN_FLIGHT = 6


class Server:
    """One server process and what it printed."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.ran: list[str] = []

    async def expect_runs(self, count: int, timeout: float) -> None:
        """Read ``ran`` lines until *count* more arrived."""
        want = len(self.ran) + count
        while len(self.ran) < want:
            assert self.proc.stdout is not None
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            assert line, "server ended early"
            self.ran.append(line.decode().split()[1])

    async def kill(self) -> None:
        """SIGKILL, then collect whatever it printed before dying."""
        if self.proc.returncode is None:
            self.proc.kill()
        assert self.proc.stdout is not None
        rest = await self.proc.stdout.read()
        await self.proc.wait()
        self.ran += [line.split()[1] for line in rest.decode().splitlines() if line]


@pytest.fixture
async def spawn(
    tmp_path: Path, scaled: Callable[[float], float]
) -> AsyncIterator[Callable[[int], Awaitable[Server]]]:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    started: list[Server] = []

    async def start(port: int) -> Server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(script), str(port), stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), scaled(30))
        if not line.startswith(b"port "):
            proc.kill()
            await proc.wait()
            raise AssertionError(f"server did not start: {line!r}")
        server = Server(proc, int(line.split()[1]))
        started.append(server)
        return server

    yield start
    for server in started:
        await server.kill()


class Blocking:
    """The blocking client driven from the test's loop (one thread per call)."""

    def __init__(self, cli: CommandClient) -> None:
        self.cli = cli

    async def call(self, name: str, *args: Any) -> Any:
        return await asyncio.to_thread(getattr(self.cli, name), *args)

    async def close(self) -> None:
        self.cli.close()


class Async:
    def __init__(self, cli: AsyncCommandClient) -> None:
        self.cli = cli

    async def call(self, name: str, *args: Any) -> Any:
        return await getattr(self.cli, name)(*args)

    async def close(self) -> None:
        await self.cli.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["async", "blocking"])
async def test_a_server_killed_mid_call_runs_no_call_twice(
    kind: str, spawn: Callable[[int], Awaitable[Server]], scaled: Callable[[float], float]
) -> None:
    first = await spawn(0)
    # generous retries: a client that wrongly retried after the drop would keep trying
    # until the second server is up, and run the call there
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": first.port,
        "timeout": scaled(60),
        "retries": 100,
        "retry_seconds": 0.05,
    }
    client: Async | Blocking
    if kind == "async":
        client = Async(await AsyncCommandClient(**options).connect())
    else:
        client = Blocking(await asyncio.to_thread(CommandClient, **options))
    second: Server | None = None
    try:
        assert await client.call("quick", "warm") == "warm"
        await first.expect_runs(1, scaled(30))
        calls = [
            asyncio.ensure_future(client.call("enqueue_job", f"job-{i}")) for i in range(IN_FLIGHT)
        ]
        await first.expect_runs(IN_FLIGHT, scaled(30))  # every call is running on the server
        await first.kill()
        second = await spawn(first.port)  # the same port, at once
        done = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), scaled(60))
        for outcome in done:
            assert isinstance(outcome, CommandConnectionClosed), outcome
            assert "not re-sent" in str(outcome)
        # the client goes on with the new server: its dead kept connections are dropped
        # and the next call runs there, once
        assert await client.call("quick", "after") == "after"
        await second.expect_runs(1, scaled(30))
    finally:
        await client.close()
    await second.kill()
    runs = collections.Counter(first.ran + second.ran)
    assert runs == collections.Counter(["warm", "after", *(f"job-{i}" for i in range(IN_FLIGHT))])
    assert not any(r.startswith("job-") for r in second.ran)
