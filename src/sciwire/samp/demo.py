"""The SAMP row of ``sciwire demo``: a hub, two clients, a table notify, a sync call."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from sciwire.demo import DemoRow

__all__ = ["run"]

TIMEOUT = 5.0


def run() -> DemoRow:
    """Start a hub on 127.0.0.1 with a temporary lockfile, exchange messages, check them."""
    from sciwire.samp.constants import SAMP_STATUS_OK
    from sciwire.samp.hub import SAMPHubServer
    from sciwire.samp.integrated_client import SAMPIntegratedClient

    checks: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sciwire-samp-demo-") as tmp:
        lockfile = Path(tmp) / "samp.lock"
        hub = SAMPHubServer(web_profile=False, lockfile=lockfile)
        hub.start()
        viewer = SAMPIntegratedClient(name="viewer", description="loads tables")
        script = SAMPIntegratedClient(name="script")
        try:
            viewer.connect(hub=hub)
            script.connect(hub=hub)
            tables: list[dict[str, Any]] = []
            events: list[str] = []
            got_table = threading.Event()
            saw_register = threading.Event()

            def on_table(key: str, sender: str, mtype: str, params: Any, extra: Any) -> None:
                tables.append(params)
                got_table.set()

            def on_event(key: str, sender: str, mtype: str, params: Any, extra: Any) -> None:
                events.append(mtype)
                if mtype == "samp.hub.event.register":
                    saw_register.set()

            def on_coord(
                key: str, sender: str, msg_id: str, mtype: str, params: Any, x: Any
            ) -> None:
                ra, dec = float(params["ra"]), float(params["dec"])
                viewer.ereply(msg_id, SAMP_STATUS_OK, result={"sum": repr(ra + dec)})

            viewer.bind_receive_notification("table.load.votable", on_table)
            viewer.bind_receive_notification("samp.hub.event.*", on_event)
            viewer.bind_receive_call("coord.pointAt.sky", on_coord)

            late = SAMPIntegratedClient(name="late")
            late.connect(hub=hub)
            late.disconnect()
            if saw_register.wait(TIMEOUT):
                checks.append("register event")

            to = script.enotify_all(
                "table.load.votable", url="file:///tmp/demo.vot", name="demo", rows=3
            )
            expected = {"url": "file:///tmp/demo.vot", "name": "demo", "rows": 3}  # as sent
            if to == [viewer.get_public_id()] and got_table.wait(TIMEOUT) and tables == [expected]:
                checks.append("table notify")
            answer = script.ecall_and_wait(
                viewer.get_public_id() or "", "coord.pointAt.sky", TIMEOUT, ra=10.5, dec=-1.25
            )
            if answer.get("samp.status") == SAMP_STATUS_OK and answer["samp.result"] == {
                "sum": "9.25"
            }:
                checks.append("sync call answered")
            meta = script.get_metadata(viewer.get_public_id() or "")
            if meta.get("samp.description.text") == "loads tables":
                checks.append("metadata")
        finally:
            script.disconnect()
            viewer.disconnect()
            hub.stop()
        if not lockfile.exists():
            checks.append("lockfile removed")
    wanted = 5
    return DemoRow(
        package="samp",
        ran="SAMPHubServer + 3 SAMPIntegratedClients over XML-RPC/HTTP",
        checked=", ".join(checks) + f" ({len(checks)}/{wanted})",
        ok=len(checks) == wanted,
    )
