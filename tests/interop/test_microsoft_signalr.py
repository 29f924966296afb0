"""The official JavaScript client ``@microsoft/signalr`` (under node) against our simulator.

The npm package is installed by ``make node-deps`` into tests/interop/node/node_modules.
The official package is a client only; there is no peer server to point our client at.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sciwire.ifcb import IFCBSimulator, parse_message
from sciwire.ifcb._hub import HubConnection

pytestmark = pytest.mark.interop

NODE_DIR = Path(__file__).parent / "node"
SCRIPT = NODE_DIR / "ifcb_client.js"
SERIAL = "111-111-111"


@pytest.fixture
async def sim() -> AsyncIterator[tuple[IFCBSimulator, list[int | None]]]:
    versions: list[int | None] = []

    class Recording(IFCBSimulator):
        def on_connected(self, conn: HubConnection) -> None:
            versions.append(conn.proto.protocol_version)

    simulator = Recording(SERIAL, rate=0, heartbeat_interval=0)
    await simulator.start()
    yield simulator, versions
    await simulator.stop()


async def run_node(url: str, count: int, timeout: float) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node, "node is required for this interop test"
    assert (NODE_DIR / "node_modules" / "@microsoft" / "signalr").is_dir(), (
        "run `make node-deps` to install @microsoft/signalr"
    )
    proc = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        url,
        SERIAL,
        str(count),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]


async def test_official_js_client_negotiates_and_receives(
    sim: tuple[IFCBSimulator, list[int | None]], scaled: Callable[[float], float]
) -> None:
    simulator, versions = sim
    events = await run_node(simulator.url, 95, scaled(30))
    kinds = [e["event"] for e in events]
    assert kinds[0] == "connected" and kinds[-1] == "stopped"
    assert "error" not in kinds
    assert {"event": "startedAsClient", "args": [SERIAL]} in events
    assert {"event": "invoked", "result": None} in events  # invoke() got its Completion
    relayed = [e["args"] for e in events if e["event"] == "messageRelayed"]
    assert len(relayed) >= 95
    assert all(a[0] == SERIAL and a[1] == "host" and isinstance(a[2], int) for a in relayed)
    assert [a[2] for a in relayed] == sorted(a[2] for a in relayed)
    parsed = [parse_message(a[3]) for a in relayed]
    assert ["valuechanged", "hostversion", "sciwire-sim 1.0"] in parsed
    assert simulator.commands == ["refresh"]
    assert versions == [1]
