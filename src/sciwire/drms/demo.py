"""The drms row of ``sciwire demo``: emulator, series list, query, export, download."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sciwire.demo import DemoRow
from sciwire.drms._pandas import EXTRA_HINT, MissingExtraError
from sciwire.drms._protocol import keyword_columns
from sciwire.drms._server import JsocEmulator
from sciwire.drms.client import Client
from sciwire.drms.json import HttpJsonClient

__all__ = ["run"]


def run() -> DemoRow:
    """Start the JSOC emulator on loopback, drive HttpJsonClient against it, check results."""
    checks: list[str] = []
    ok = True

    def check(name: str, cond: bool) -> None:
        nonlocal ok
        checks.append(name if cond else f"{name} FAILED")
        ok = ok and cond

    with (
        JsocEmulator(queue_time=0.2, processing_time=0.3) as emu,
        HttpJsonClient(emu.server_config(), timeout=10) as c,
        tempfile.TemporaryDirectory() as tmp,
    ):
        names = [s["name"] for s in c.show_series()["names"]]
        check("3 series listed", len(names) == 3 and "hmi.v_45s" in names)
        ds = "hmi.v_45s[2016.04.01_00:00:00_TAI/1d]"
        check("rs_summary 1920", c.rs_summary(ds)["count"] == 1920)
        types = {k["name"]: k["type"] for k in c.series_struct("hmi.v_45s")["keywords"]}
        cols = keyword_columns(c.rs_list(ds, key="T_REC,QUALITY,DATAMEAN"), types)
        check("hex QUALITY decoded", 0x400 in cols["QUALITY"])
        check("MISSING -> NaN", any(v != v for v in cols["DATAMEAN"]))
        req = c.exp_request("hmi.m_720s[2016.04.01/2h]", "user@example.com", method="url")
        check("export queued", req["status"] == 2)
        done = c.wait_for_export(req["requestid"], timeout=10, poll=0.1)
        paths = c.download(done, Path(tmp), concurrency=4)
        check(
            "10 FITS files downloaded",
            len(paths) == 10 and all(p.read_bytes()[:6] == b"SIMPLE" for p in paths),
        )
        # drms's high-level API: Client.query into a DataFrame (pandas, the drms extra;
        # without it the row says so rather than failing the checks above)
        try:
            with Client(emu.server_config(), timeout=10) as client:
                frame = client.query(ds, key="T_REC,QUALITY,DATAMEAN", n=100)
        except MissingExtraError:
            checks.append(f"Client.query skipped (needs pandas: {EXTRA_HINT})")
        else:
            check("Client.query DataFrame", len(frame) == 100 and 0x400 in set(frame.QUALITY))
    return DemoRow(
        "drms",
        "JsocEmulator (sciwire asyncio HTTP) + HttpJsonClient (lean keep-alive HTTP/1.1) + Client",
        "; ".join(checks),
        ok,
    )
