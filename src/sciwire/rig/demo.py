"""Demo row: a main rig driving two remote rigs through an experiment, over UDP and TCP."""

from __future__ import annotations

import asyncio
from typing import Any

from sciwire.demo import DemoRow
from sciwire.rig._client import EchoProtocol
from sciwire.rig._protocol import ExpMessage, ExpStatus
from sciwire.rig._server import RemoteRig
from sciwire.rig._services import Services

EXP_REF = "2024-01-01_1_demo"


async def _session(scheme: str) -> list[str]:
    """Run one experiment over *scheme*; return the failed checks."""
    rigs = [
        RemoteRig(await EchoProtocol.server(f"{scheme}://127.0.0.1:0", name=n))
        for n in ("camera", "ephys")
    ]
    clients: list[EchoProtocol] = []
    failures: list[str] = []
    try:
        for rig in rigs:
            clients.append(await EchoProtocol.client(rig.com.server_uri, name=rig.com.name))
        services = Services(clients, timeout=2.0)

        def check(what: str, got: dict[str, Any], want: list[Any]) -> None:
            if got != {"camera": want, "ephys": want}:
                failures.append(f"{scheme} {what}: {got}")

        info = await services.info(ExpStatus.CONNECTED, {"subject": "demo"})
        if [v[0] for v in info.values()] != [0, 0]:
            failures.append(f"{scheme} EXPINFO: {info}")
        check("EXPINIT", await services.init({"exp_ref": EXP_REF}), [{"exp_ref": EXP_REF}])
        check("EXPSTART", await services.start(EXP_REF), [EXP_REF, None])
        check("EXPSTATUS", await services.status(ExpStatus.RUNNING), [ExpStatus.RUNNING])
        check("EXPEND", await services.stop({"trials": 3}), [{"trials": 3}])
        for rig in rigs:
            events = [e for e, _, _ in rig.received]
            want = [
                ExpMessage.EXPINFO,
                ExpMessage.EXPINIT,
                ExpMessage.EXPSTART,
                ExpMessage.EXPSTATUS,
                ExpMessage.EXPEND,
            ]
            if events != want or rig.status is not ExpStatus.STOPPED:
                failures.append(f"{scheme} {rig.com.name} saw {events}")
    finally:
        for com in clients:
            await com.wait_closed()
        for rig in rigs:
            rig.close()
            await rig.com.wait_closed()
    return failures


async def _main() -> list[str]:
    return [*await _session("udp"), *await _session("tcp")]


def run() -> DemoRow:
    """Main rig + 2 remote rigs over UDP and TCP; check every reply and each rig's log."""
    failures = asyncio.run(_main())
    return DemoRow(
        "rig",
        "main rig + 2 remote rigs (camera, ephys), UDP then TCP, on 127.0.0.1",
        "EXPINFO, EXPINIT, EXPSTART, EXPSTATUS, EXPEND: echoes, replies, rig states"
        + (f"; FAILED {failures}" if failures else ""),
        ok=not failures,
    )
