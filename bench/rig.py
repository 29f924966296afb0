"""sciwire.rig vs iblutil.io.net: confirmed round trips and Services round trips.

The remote side of every workload (each rig) runs in its own process with its own
event loop, as a remote rig really does; the driving side runs here, each library
on its own event loop. iblutil gets a quiet logger (its default prints every message).

Placement and batches: see bench/harness.py. The UDP round trip, the serial workload
the issue sets a target for, is measured left to the scheduler (the target row) and
pinned both ways. A bare blocking-socket UDP ping-pong (no asyncio, no library) takes
~15-25 us per round trip with both processes on one vCPU and ~100-140 us across two,
so the pinned rows show how much of the spread between runs is placement alone. On one
vCPU neither library can overlap the work it does after a send with the rig's; across
two, the hypervisor's wake-ups (the same for both) dominate both figures. The Services
workload and the TCP ones are left to the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import Placement, Workload, best_rate, placements

ROOT = Path(__file__).resolve().parent.parent
QUIET = logging.getLogger("bench.rig.quiet")
QUIET.setLevel(logging.ERROR)
QUIET.propagate = False

ROUND_TRIPS = 100  # confirmed sends per chunk
SERVICE_ROUNDS = 25  # Services.init calls per chunk (3 rigs each)
TCP_CLIENTS = 10


def _best_of(
    side: Side,
    make: Callable[[], Any],
    chunk: int,
    placement: Placement = None,
    rigs: tuple[int, ...] = (),
) -> Callable[[], float]:
    return best_rate(lambda: side.run(make()), chunk, placement, rigs)


# -- the remote side, run in a subprocess ---------------------------------------------------


def _free_port(kind: int) -> int:
    import socket

    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _peer(impl: str, scheme: str, count: int, reply: bool) -> None:
    import socket

    uris = []
    keep: list[Any] = []
    for i in range(count):
        if impl == "sciwire":
            from sciwire.rig import EchoProtocol, RemoteRig

            com = await EchoProtocol.server(f"{scheme}://127.0.0.1:0", name=f"rig{i}", log=QUIET)
            if reply:
                keep.append(RemoteRig(com))
        else:
            from iblutil.io.net import app, base

            kind = socket.SOCK_DGRAM if scheme == "udp" else socket.SOCK_STREAM
            uri = f"{scheme}://127.0.0.1:{_free_port(kind)}"
            com = await app.EchoProtocol.server(uri, name=f"rig{i}", log=QUIET)
            if reply:
                tasks: set[Any] = set()

                def answer(
                    data: Any, addr: Any, event: Any, com: Any = com, t: Any = tasks
                ) -> None:
                    task = asyncio.create_task(com.confirmed_send([int(event), *data], addr=addr))
                    t.add(task)
                    task.add_done_callback(t.discard)

                com.assign_callback(base.ExpMessage.any(), answer)
        keep.append(com)
        uris.append(com.server_uri)
    print(json.dumps(uris), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin


def _peer_main() -> None:
    impl, scheme, count, reply = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    asyncio.run(_peer(impl, scheme, count, reply))


def _spawn(
    stack: contextlib.ExitStack, impl: str, scheme: str, count: int, reply: bool
) -> tuple[list[str], int]:
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
        "from bench.rig import _peer_main; _peer_main()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, impl, scheme, str(count), "1" if reply else "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def stop() -> None:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    stack.callback(stop)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{impl} {scheme} peer did not start")
    uris: list[str] = json.loads(line)
    return uris, proc.pid


# -- the driving side ---------------------------------------------------------------------


class Side:
    """One library's driving side: its own event loop and its connected clients."""

    def __init__(self, stack: contextlib.ExitStack, impl: str) -> None:
        self.impl = impl
        self.loop = asyncio.new_event_loop()
        self.clients: dict[str, list[Any]] = {}
        stack.callback(self.close)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def connect(self, key: str, uris: list[str], per_uri: int = 1) -> list[Any]:
        async def make() -> list[Any]:
            out = []
            for uri in uris:
                for j in range(per_uri):
                    name = uri if per_uri == 1 else f"{uri}#{j}"
                    if self.impl == "sciwire":
                        from sciwire.rig import EchoProtocol

                        out.append(await EchoProtocol.client(uri, name=name, log=QUIET))
                    else:
                        from iblutil.io.net import app

                        out.append(await app.EchoProtocol.client(uri, name=name, log=QUIET))
            return out

        self.clients[key] = self.run(make())
        return self.clients[key]

    def close(self) -> None:
        for clients in self.clients.values():
            for client in clients:
                client.close()
        self.loop.run_until_complete(asyncio.sleep(0.01))
        self.loop.close()


def _round_trips(
    side: Side, client: Any, n: int, placement: Placement = None, rigs: tuple[int, ...] = ()
) -> Callable[[], float]:
    async def go() -> None:
        for i in range(n):
            await client.confirmed_send([1, i])

    return _best_of(side, go, n, placement, rigs)


def _services(side: Side, clients: list[Any], n: int) -> Callable[[], float]:
    if side.impl == "sciwire":
        from sciwire.rig import Services

        services: Any = Services(clients, timeout=10)
    else:
        from iblutil.io.net import app

        services = app.Services(clients, timeout=10)

    async def go() -> None:
        for _ in range(n):
            await services.init()

    return _best_of(side, go, n)


def _many(
    side: Side,
    clients: list[Any],
    n: int,
    placement: Placement = None,
    rigs: tuple[int, ...] = (),
) -> Callable[[], float]:
    per = n // len(clients)

    async def one(client: Any) -> None:
        for i in range(per):
            await client.confirmed_send([1, i])

    async def go() -> None:
        await asyncio.gather(*(one(c) for c in clients))

    return _best_of(side, go, per * len(clients), placement, rigs)


def workloads(stack: contextlib.ExitStack) -> list[Workload]:
    """Start the remote rigs (subprocesses) and connect both libraries' drivers."""
    ours, theirs = Side(stack, "sciwire"), Side(stack, "iblutil")
    result = []

    # UDP confirmed round trips: one client, one echoing rig; left to the scheduler
    # (the target) and pinned both ways (see bench/harness.py)
    our_uris, our_pid = _spawn(stack, "sciwire", "udp", 1, False)
    ibl_uris, ibl_pid = _spawn(stack, "iblutil", "udp", 1, False)
    our_udp = ours.connect("udp", our_uris)[0]
    ibl_udp = theirs.connect("udp", ibl_uris)[0]
    for where, placement in placements().items():
        free = placement is None
        result.append(
            Workload(
                "UDP confirmed round trips" + ("" if free else f", {where}"),
                "msg/s",
                _round_trips(ours, our_udp, ROUND_TRIPS, placement, (our_pid,)),
                _round_trips(theirs, ibl_udp, ROUND_TRIPS, placement, (ibl_pid,)),
                peer_name="iblutil 1.20",
                target=1.5 if free else None,
                notes="left to the scheduler" if free else "both processes pinned, both libraries",
            )
        )

    # Services round trip (send, echo, the rig's reply, its echo) to 3 rigs over UDP,
    # each rig in its own process as each remote device is its own machine in iblrig
    our_uris = [u for _ in range(3) for u in _spawn(stack, "sciwire", "udp", 1, True)[0]]
    ibl_uris = [u for _ in range(3) for u in _spawn(stack, "iblutil", "udp", 1, True)[0]]
    our_rigs = ours.connect("svc", our_uris)
    ibl_rigs = theirs.connect("svc", ibl_uris)
    result.append(
        Workload(
            "Services.init round trip, 3 rigs, UDP",
            "rounds/s",
            _services(ours, our_rigs, SERVICE_ROUNDS),
            _services(theirs, ibl_rigs, SERVICE_ROUNDS),
            peer_name="iblutil 1.20",
            target=2.0,
        )
    )

    # TCP: one client each, then 10 sciwire clients on one server (iblutil cannot)
    our_tcp_uri, _ = _spawn(stack, "sciwire", "tcp", 1, False)
    ibl_tcp_uri, _ = _spawn(stack, "iblutil", "tcp", 1, False)
    our_tcp = ours.connect("tcp", our_tcp_uri)[0]
    ibl_tcp = theirs.connect("tcp", ibl_tcp_uri)[0]
    single = _round_trips(ours, our_tcp, ROUND_TRIPS)
    result.append(
        Workload(
            "TCP confirmed round trips, 1 client",
            "msg/s",
            single,
            _round_trips(theirs, ibl_tcp, ROUND_TRIPS),
            peer_name="iblutil 1.20",
            target=1.0,
        )
    )
    many = ours.connect("tcp10", our_tcp_uri, per_uri=TCP_CLIENTS)
    result.append(
        Workload(
            f"TCP round trips, {TCP_CLIENTS} clients on one server (vs 1 client)",
            "msg/s",
            _many(ours, many, ROUND_TRIPS * TCP_CLIENTS),
            _round_trips(ours, our_tcp, ROUND_TRIPS),
            peer_name="sciwire, 1 client",
            target=1.0,
            notes="iblutil serves only its last TCP client; the peer column is our own "
            "single-client rate on the same server, so the ratio shows the rate is sustained",
        )
    )
    return result
