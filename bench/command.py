"""sciwire.command vs cryosparc-tools' CommandClient, side by side in one run.

Servers run in their own processes so client figures do not share a GIL with them:
our CommandServer (the simulated command_core, ``sciwire command serve``) and, for the
server comparison, a stdlib ``ThreadingHTTPServer`` JSON-RPC server (HTTP/1.1
keep-alive, a thread per connection). Every workload calls ``hello_world``. Async
rounds connect and warm their connections up before the timed burst; blocking clients
are created once (the peer opens a connection per call anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import textwrap

from cryosparc.command import CommandClient as PeerClient

from bench.harness import Workload, best_rate, placements, rate
from sciwire.command import AsyncCommandClient, CommandClient
from sciwire.core.portal import Portal

SEQUENTIAL = 1500  # calls per round, blocking clients (portal comparison)
CHUNK = 25  # sequential calls per timed chunk (batches: see bench/harness.py)
IN_FLIGHT = 32
ASYNC_CALLS = 3000  # calls per round, async client

STDLIB_SERVER = textwrap.dedent(
    """
    import json, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    PROCS = {"hello_world": lambda: {"hello": "world"}}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if req["method"] == "system.describe":
                result = {"procs": [{"name": n} for n in PROCS]}
            else:
                result = PROCS[req["method"]]()
            body = json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": result}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)


def _spawn(
    stack: contextlib.ExitStack, argv: list[str], pattern: str, stream: str
) -> tuple[int, int]:
    """Start a server process; (its port, its pid)."""
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE if stream == "stdout" else subprocess.DEVNULL,
        stderr=subprocess.PIPE if stream == "stderr" else subprocess.DEVNULL,
        text=True,
    )

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    stack.callback(stop)
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    assert pipe is not None
    for _ in range(10):
        line = pipe.readline()
        found = re.search(pattern, line)
        if found:
            return int(found.group(1)), proc.pid
    raise RuntimeError(f"server did not start: {argv}")


def _async_rate(port: int, calls: int = ASYNC_CALLS, **options: int) -> float:
    """One round: connect, warm the connections up, then time a burst of calls made by
    IN_FLIGHT coroutines, each awaiting its share of the calls one after another (so
    exactly IN_FLIGHT calls are in flight, and the figure measures the client rather
    than a semaphore and thousands of tasks in the harness)."""

    async def main() -> float:
        async with AsyncCommandClient(host="127.0.0.1", port=port, retries=1, **options) as cli:

            async def worker(n: int) -> None:
                for _ in range(n):
                    await cli.hello_world()

            await asyncio.gather(*(worker(2) for _ in range(IN_FLIGHT)))  # open connections
            each = calls // IN_FLIGHT
            loop = asyncio.get_running_loop()
            start = loop.time()
            await asyncio.gather(*(worker(each) for _ in range(IN_FLIGHT)))
            return each * IN_FLIGHT / (loop.time() - start)

    return asyncio.run(main())


def workloads(stack: contextlib.ExitStack) -> list[Workload]:
    """Start the servers (one process each) and return the command workloads."""
    ours, ours_pid = _spawn(
        stack,
        [sys.executable, "-m", "sciwire", "command", "serve", "--port", "0", "--fast"],
        r"command_core listening on http://127\.0\.0\.1:(\d+)",
        "stderr",
    )
    stdlib, _ = _spawn(stack, [sys.executable, "-c", STDLIB_SERVER], r"^(\d+)", "stdout")

    client = CommandClient(host="127.0.0.1", port=ours, retries=1)
    stack.callback(client.close)
    peer = PeerClient(host="127.0.0.1", port=ours)

    def ours_chunk() -> None:
        for _ in range(CHUNK):
            client.hello_world()

    def peer_chunk() -> None:
        for _ in range(CHUNK):
            peer.hello_world()

    def ours_sequential() -> float:
        return rate(SEQUENTIAL, lambda: [client.hello_world() for _ in range(SEQUENTIAL)])

    # The alternative design for the blocking API: each call hops onto a portal loop
    # running AsyncCommandClient. Measured here to justify the lean transport.
    portal = Portal("bench-command")
    portal.start()
    stack.callback(portal.stop)
    aclient = portal.call(AsyncCommandClient(host="127.0.0.1", port=ours, retries=1).connect())
    stack.callback(lambda: portal.call(aclient.close()))

    def portal_sequential() -> float:
        return rate(
            SEQUENTIAL,
            lambda: [portal.call(aclient.hello_world()) for _ in range(SEQUENTIAL)],
        )

    # sequential calls: left to the scheduler (the target) and pinned both ways, in
    # batches (see bench/harness.py)
    sequential = [
        Workload(
            "sequential blocking calls, same server" + ("" if place is None else f", {where}"),
            "calls/s",
            best_rate(ours_chunk, CHUNK, place, (ours_pid,)),
            best_rate(peer_chunk, CHUNK, place, (ours_pid,)),
            peer_name="cryosparc-tools",
            target=3.0 if place is None else None,
            notes="left to the scheduler" if place is None else "both processes pinned",
        )
        for where, place in placements().items()
    ]
    peer_sequential = sequential[0].peer
    assert peer_sequential is not None
    return [
        *sequential,
        Workload(
            f"async {IN_FLIGHT} in flight vs peer sequential",
            "calls/s",
            lambda: _async_rate(ours),
            peer_sequential,
            peer_name="cryosparc-tools seq.",
            target=10.0,
        ),
        Workload(
            f"async {IN_FLIGHT} in flight, pipelined 4 conns x 8",
            "calls/s",
            lambda: _async_rate(ours, limit=4, pipeline=8),
            peer_sequential,
            peer_name="cryosparc-tools seq.",
            target=10.0,
            notes="opt-in pipelining (AsyncCommandClient(limit=4, pipeline=8))",
        ),
        Workload(
            f"server req/s (our async client, {IN_FLIGHT} in flight)",
            "req/s",
            lambda: _async_rate(ours),
            lambda: _async_rate(stdlib),
            peer_name="ThreadingHTTPServer",
        ),
        Workload(
            "blocking design: lean transport vs portal hop",
            "calls/s",
            ours_sequential,
            portal_sequential,
            peer_name="portal hop",
            notes="why the blocking client does not hop through the portal",
        ),
    ]
