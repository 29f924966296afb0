"""``sciwire fleet demo`` and the fleet row of ``sciwire demo``.

Starts a nats-server from the wheel, three IFCB simulators, two remote rigs, a bridge
and a watcher, all on loopback; drives the instruments through the fleet's command
subjects; checks that every event reached the watcher once and in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

from sciwire.demo import DemoRow

__all__ = ["run", "run_async"]


async def run_async(report: list[str] | None = None) -> DemoRow:
    """Run the demo; append one line per instrument to *report*."""
    from sciwire.fleet import AsyncFleet, Bridge, BridgeConfig, IfcbSpec, NatsSpec, RigSpec
    from sciwire.fleet._server import NatsServer
    from sciwire.ifcb import IFCBSimulator
    from sciwire.rig import EchoProtocol, ExpMessage, RemoteRig

    server = await asyncio.to_thread(NatsServer("demo").start)
    sims: list[Any] = []
    rigs: list[Any] = []
    bridge: Bridge | None = None
    watcher = AsyncFleet(server.url, name="demo-watcher")
    try:
        for i in range(3):
            sim = IFCBSimulator(f"ifcb-{i + 1}", rate=0, triggers=20, heartbeat_interval=0)
            await sim.start()
            sims.append(sim)
        for name in ("cam", "ephys"):
            rigs.append(RemoteRig(await EchoProtocol.server("udp://127.0.0.1:0", name=name)))
        config = BridgeConfig(
            name="demo",
            nats=NatsSpec(servers=[server.url]),
            ifcb=[
                IfcbSpec(s.serial, f"ws://127.0.0.1:{s.port}/ifcbHub", commands=["routine:"])
                for s in sims
            ],
            rigs=[
                RigSpec(r.com.name, r.com.server_uri, commands=["init", "start", "stop"])
                for r in rigs
            ],
        )
        bridge = Bridge(config)
        await bridge.start()
        await watcher.connect()
        seen: dict[str, list[int]] = defaultdict(list)
        triggers: dict[str, int] = defaultdict(int)

        def on_any(event: Any) -> None:
            seen[event.instrument].append(event.seq)
            if event.name == "triggercontent":
                triggers[event.instrument] += 1

        watcher.on((None,), on_any)
        watcher.on(ExpMessage.any(), on_any)
        await watcher.replay("all")
        for _ in range(200):  # instruments connect in the background
            if bridge.health()["connected"] == len(bridge.instruments):
                break
            await asyncio.sleep(0.05)
        for sim in sims:
            await watcher.relay_message_to_host(sim.serial, "routine:runsample")
        exp = "2026-01-01_1_demo"
        for rig in rigs:
            await watcher.rig(rig.com.name, "init", {"exp_ref": exp})
            await watcher.rig(rig.com.name, "start", exp)
            await watcher.rig(rig.com.name, "stop")

        def done() -> bool:
            return all(triggers[s.serial] >= 20 for s in sims) and all(
                len(seen[r.com.name]) >= 3 for r in rigs
            )

        await watcher.wait_for(done, 30)
        assert bridge.publisher is not None
        await bridge.publisher.flush(10)
        info = await watcher.stream_info()
        await watcher.wait_for(lambda: watcher.delivered >= info["messages"], 10)
        ok = True
        for name in sorted(seen):
            seqs = seen[name]
            in_order = seqs == list(range(1, len(seqs) + 1))
            ok = ok and in_order
            if report is not None:
                report.append(
                    f"{name:8} {len(seqs):4} events  {triggers.get(name, 0):3} triggers  "
                    f"{'once, in order' if in_order else 'GAPS OR REPEATS'}"
                )
        health = bridge.health()
        ok = ok and health["dropped"] == 0 and watcher.malformed == 0
        return DemoRow(
            "fleet",
            "nats-server (wheel), 3 IFCB sims + 2 rigs -> bridge -> JetStream -> watcher",
            f"{info['messages']} events stored and delivered once in order; "
            f"relay and rig init/start/stop sent through NATS",
            ok,
        )
    finally:
        with contextlib.suppress(Exception):
            await watcher.close()
        if bridge is not None:
            await bridge.stop()
        for sim in sims:
            await sim.stop()
        for rig in rigs:
            rig.close()
        server.close()


def run() -> DemoRow:
    """The ``sciwire demo`` row."""
    return asyncio.run(run_async())
