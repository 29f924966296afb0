"""The IFCB row of ``sciwire demo``: simulator up, client connects, a sample routine runs."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Mapping
from typing import Any

from sciwire.core.portal import Portal
from sciwire.demo import DemoRow
from sciwire.ifcb._codec import RoiImage
from sciwire.ifcb._server import IFCBSimulator
from sciwire.ifcb.ifcbclient import IFCBClient

SERIAL = "111-111-111"
TRIGGERS = 12


def run() -> DemoRow:
    """Start the simulator on 127.0.0.1:0, run ``routine:runsample`` through the client."""
    triggers: list[int] = []
    images: list[bytes] = []
    problems: list[str] = []
    state: dict[str, Any] = {}
    stopped = threading.Event()

    def on_content(name: str, daq: Mapping[str, float], rois: list[Any]) -> None:
        if not all(isinstance(v, float) for v in daq.values()) or len(daq) != 14:
            problems.append("DAQ values not 14 floats")
        for top, left, image in rois:
            if not (isinstance(top, int) and isinstance(left, int) and isinstance(image, RoiImage)):
                problems.append("ROI fields not typed")
            images.append(image.data)

    def on_trigger(name: str, number: int, kind: str, *counts: int) -> None:
        if not isinstance(number, int) or not all(isinstance(c, int) for c in counts):
            problems.append("trigger fields not ints")
        triggers.append(number)

    def on_graph(*fields: Any) -> None:
        if not isinstance(fields[-1], datetime.datetime):
            problems.append("graph time not a datetime")

    with Portal("ifcb-demo") as portal:
        sim = IFCBSimulator(SERIAL, rate=200, triggers=TRIGGERS, heartbeat_interval=1)
        portal.call(sim.start(), 5)
        client = IFCBClient(sim.url.replace("http", "ws"), SERIAL, timeout=5)
        try:
            client.on(("triggercontent",), on_content)
            client.on(("triggerchanged", None, "processed"), on_trigger)
            client.on(("graphchanged",), on_graph)
            client.on(("valuechanged", "pausestate"), lambda *f: state.update(pause=f[2]))
            client.on(("valuechanged", "acquisition", "stopped"), lambda *f: stopped.set())
            client.connect()
            client.wait_started(5)
            client.relay_message_to_host("routine:runsample")
            finished = stopped.wait(5)
        finally:
            client.disconnect()
            portal.call(sim.stop(), 5)
    pngs = sum(1 for img in images if img.startswith(b"\x89PNG\r\n\x1a\n"))
    ok = (
        finished
        and triggers == list(range(1, TRIGGERS + 1))
        and pngs == len(images) > 0
        and state.get("pause") is False
        and not problems
    )
    return DemoRow(
        "ifcb",
        "IFCBSimulator (aiohttp SignalR hub) <- IFCBClient (negotiate, handshake, startAsClient)",
        f"routine:runsample: {len(triggers)} triggers, {pngs}/{len(images)} PNG ROI images, "
        f"typed DAQ/ROI/graph fields, pausestate is a real False"
        + (f"; problems: {sorted(set(problems))}" if problems else ""),
        ok=ok,
    )
