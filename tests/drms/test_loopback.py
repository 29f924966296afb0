"""Our clients against our emulator over real loopback sockets."""

from __future__ import annotations

import io
import logging
import math
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sciwire.drms import (
    AsyncHttpJsonClient,
    DrmsExportError,
    DrmsHttpError,
    DrmsOperationNotSupported,
    DrmsQueryError,
    HttpJsonClient,
    ServerConfig,
    keyword_columns,
)
from sciwire.drms import _protocol as P
from sciwire.drms._server import JsocEmulator
from sciwire.drms._transfer import Progress
from sciwire.drms._transport import BlockingTransport
from sciwire.errors import ConnectError, RemoteProtocolError, Timeout
from tests.helpers import examples

from .helpers import FakeClock

RS = "hmi.v_45s[2016.04.01_00:00:00_TAI/1h]"
ME = "user@example.com"


def test_listing_and_info(client: HttpJsonClient) -> None:
    names = [s["name"] for s in client.show_series()["names"]]
    assert names == ["hmi.v_45s", "hmi.m_720s", "aia.lev1_euv_12s"]
    assert client.show_series("^aia")["n"] == 1
    assert client.show_series("(")["status"] == 1
    assert client.show_series_wrapper("hmi")["seriesList"] == ["hmi.v_45s", "hmi.m_720s"]
    info = client.show_series_wrapper("m_720", info=True)["seriesList"]
    assert list(info[0]) == ["hmi.m_720s"] and "description" in info[0]["hmi.m_720s"]
    struct = client.series_struct("hmi.v_45s")
    assert struct["status"] == 0 and struct["primekeys"] == ["T_REC", "CAMERA"]
    assert struct["primekeysinfo"][0] == {"name": "T_REC", "slotted": 1, "step": "45s"}
    assert {k["name"] for k in struct["keywords"]} >= {"QUALITY", "DATAMEAN", "T_OBS"}
    assert client.series_struct("hmi.nope")["status"] == 1
    assert repr(client) == "<HttpJsonClient: emulator>"


def test_queries(client: HttpJsonClient) -> None:
    assert client.rs_summary(RS)["count"] == 80
    bad = client.rs_summary("hmi.v_45s[2016.99.01]")
    assert bad["status"] == 1 and "Invalid time" in bad["error"]
    res = client.rs_list(
        RS + "[? QUALITY=0 ?]", key=["T_REC", "QUALITY", "NOPE"], seg="Dopplergram", recinfo=True
    )
    assert res["status"] == 0 and res["count"] == len(res["recinfo"])
    kw = {k["name"]: k["values"] for k in res["keywords"]}
    assert set(kw["QUALITY"]) == {"0x00000000"}
    assert set(kw["NOPE"]) == {"Invalid KeyLink"}
    assert res["segments"][0]["values"][0].endswith("/Dopplergram.fits")
    assert res["recinfo"][0] == {"name": "hmi.v_45s[2016.04.01_00:00:00_TAI][2]", "online": "Y"}
    last = client.rs_list(RS, key="T_REC", n=-2)
    assert last["keywords"][0]["values"] == [
        "2016.04.01_00:58:30_TAI",
        "2016.04.01_00:59:15_TAI",
    ]
    assert client.rs_list("hmi.v_45s[2000.01.01/1h]", key="T_REC") == {
        "count": 0,
        "runtime": 0.001,
        "status": 0,
    }
    links = client.rs_list(RS, link="L", seg="nope", n=1)
    assert links["links"][0]["values"] == ["Invalid_Link"]
    assert links["segments"][0]["values"] == ["InvalidSegName"]
    star = client.rs_list("hmi.v_45s[$]", key="**ALL**")
    assert len(star["keywords"]) == 10


def test_hex_and_missing_columns(client: HttpJsonClient) -> None:
    ds = "hmi.v_45s[2016.04.01_00:00:00_TAI/1d]"
    types = {k["name"]: k["type"] for k in client.series_struct("hmi.v_45s")["keywords"]}
    cols = keyword_columns(client.rs_list(ds, key="QUALITY,DATAMEAN,T_OBS"), types)
    assert {0, 0x400, 0x80000000} <= set(cols["QUALITY"])
    missing = [i for i, q in enumerate(cols["QUALITY"]) if q == 0x80000000]
    assert missing and all(math.isnan(cols["DATAMEAN"][i]) for i in missing)
    assert all(cols["T_OBS"][i] == "MISSING" for i in missing)


def test_rs_list_columns(client: HttpJsonClient, emulator: JsocEmulator) -> None:
    ds = "hmi.v_45s[2016.04.01_00:00:00_TAI/1d]"
    cols = client.rs_list_columns(ds, "T_REC,QUALITY,DATAMEAN,TELESCOP")
    assert len(cols["T_REC"]) == 1920 and {0, 0x400, 0x80000000} <= set(cols["QUALITY"])
    assert any(math.isnan(v) for v in cols["DATAMEAN"])
    assert set(cols["TELESCOP"]) == {"SDO/HMI"}
    before = len(emulator.requests)
    assert client.rs_list_columns(ds, ["QUALITY"], n=2)["QUALITY"] == [0, 0]
    assert len(emulator.requests) == before + 1  # keyword types are cached
    with pytest.raises(DrmsQueryError, match="Unknown series"):
        client.rs_list_columns("hmi.nope[$]", "T_REC", types={})
    with pytest.raises(DrmsQueryError):
        client.rs_list_columns("hmi.nope[$]", "T_REC")


def test_check_address(client: HttpJsonClient, emulator: JsocEmulator) -> None:
    assert client.check_address(ME)["status"] == 2
    assert client.check_address("new+tag@example.com")["status"] == 4
    assert client.check_address("not an address")["status"] == -2
    assert any("address=new%252Btag%2540example.com" in r for r in emulator.requests)


def test_export_lifecycle(client: HttpJsonClient, clock: FakeClock, tmp_path: Path) -> None:
    req = client.exp_request("hmi.m_720s[2016.04.01/1h]", ME, method="url", protocol="fits")
    assert req["status"] == 2 and req["rcount"] == 5
    rid = req["requestid"]
    assert client.exp_status(rid)["status"] == 2
    # one pending export per user: JSOC answers status 7
    again = client.exp_request("hmi.m_720s[2016.04.01/1h]", ME, method="url")
    assert again["status"] == 7 and "pending" in again["error"]
    clock.advance(15)
    assert client.exp_status(rid)["status"] == 1
    with pytest.raises(Timeout):
        client.wait_for_export(rid, timeout=0.05, poll=0.01)
    clock.advance(15)
    done = client.wait_for_export(rid, timeout=5)
    assert done["status"] == "0" and len(done["data"]) == 5
    paths = client.download(done, tmp_path / "out", progress=False)
    assert [p.name for p in paths] == [d["filename"] for d in done["data"]]
    assert all(p.read_bytes()[:6] == b"SIMPLE" and p.stat().st_size == 5760 for p in paths)
    clock.advance(1000)
    with pytest.raises(DrmsExportError, match="expired") as info:
        client.wait_for_export(rid, timeout=5)
    assert info.value.code == 5
    with pytest.raises(DrmsExportError, match="not found"):
        client.wait_for_export("JSOC_20000101_99", retries_notfound=1, poll=0.0)


def test_export_unregistered_and_quick(client: HttpJsonClient, tmp_path: Path) -> None:
    denied = client.exp_request(RS, "stranger@example.com", method="url")
    assert denied["status"] == 4 and "not registered" in denied["error"]
    with pytest.raises(DrmsExportError):
        client.download(denied, tmp_path)
    quick = client.exp_request("hmi.v_45s[2016.04.01/3m]{Dopplergram}", ME)
    assert quick["status"] == 0 and quick["requestid"] == "" and quick["count"] == 4
    paths = client.download(quick, tmp_path, concurrency=2, progress=False)
    # url_quick files all share a server name (Dopplergram.fits): local names come
    # from the records, as drms does
    assert [p.name for p in paths] == [
        f"hmi.v_45s.20160401_{t}_TAI.2.Dopplergram.fits"
        for t in ("000000", "000045", "000130", "000215")
    ]
    assert all(p.stat().st_size == 5760 for p in paths)


def test_tar_export_download(client: HttpJsonClient, clock: FakeClock, tmp_path: Path) -> None:
    req = client.exp_request("hmi.m_720s[2016.04.01/1h]", ME, method="url-tar", requestor="tar")
    clock.advance(31)
    paths = client.download(req, tmp_path, progress=False)  # pending: waits first
    assert [p.suffix for p in paths] == [".tar"]


def test_download_resume(
    client: HttpJsonClient, clock: FakeClock, emulator: JsocEmulator, tmp_path: Path
) -> None:
    req = client.exp_request("hmi.m_720s[2016.04.01/1h]", ME, method="url", requestor="r")
    clock.advance(31)
    done = client.exp_status(req["requestid"])
    first, second = done["data"][0]["filename"], done["data"][1]["filename"]
    full = client.download(done, tmp_path / "ref", progress=False)
    dest = tmp_path / "resume"
    dest.mkdir()
    (dest / (first + ".part")).write_bytes(full[0].read_bytes()[:1000])
    (dest / (second + ".part")).write_bytes(b"x" * 9000)  # longer than the file: restart
    (dest / done["data"][2]["filename"]).write_bytes(full[2].read_bytes())  # already there
    emulator.requests.clear()
    paths = client.download(done, dest, progress=False)
    for got, ref in zip(paths, full, strict=True):
        assert got.read_bytes() == ref.read_bytes()
    assert not list(dest.glob("*.part"))
    assert sum(first in r for r in emulator.requests) == 1
    assert sum(second in r for r in emulator.requests) == 2  # 416, then a fresh GET
    assert not any(done["data"][2]["filename"] in r for r in emulator.requests)


def test_progress_line() -> None:
    out = io.StringIO()
    bar = Progress(2, enabled=True, stream=out)
    bar.add(1500)
    bar.file_done()
    bar.file_done()
    bar.close()
    assert "2/2 files" in out.getvalue() and out.getvalue().endswith("\n")
    quiet = io.StringIO()
    auto = Progress(1, stream=quiet)  # StringIO is not a terminal
    auto.file_done()
    auto.close()
    assert quiet.getvalue() == ""


def test_errors_are_typed(emulator: JsocEmulator, scaled: Callable[[float], float]) -> None:
    with HttpJsonClient(emulator.server_config(), timeout=scaled(0.3)) as c:
        emulator.faults[:] = ["badjson"]
        with pytest.raises(RemoteProtocolError):
            c.rs_summary(RS)
        emulator.faults[:] = ["http500"]
        with pytest.raises(DrmsHttpError) as info:
            c.rs_summary(RS)
        assert info.value.code == 500
        emulator.faults[:] = ["hang"]
        with pytest.raises(Timeout) as timeout:
            c.rs_summary(RS)
        assert isinstance(timeout.value, TimeoutError)
        assert c.rs_summary(RS)["count"] == 80  # recovers on a fresh connection


def test_connection_errors_are_retried(client: HttpJsonClient, emulator: JsocEmulator) -> None:
    emulator.faults[:] = ["close"]
    emulator.requests.clear()
    assert client.rs_summary(RS)["count"] == 80
    assert len(emulator.requests) == 2


def test_connect_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ServerConfig(name="dead", cgi_baseurl=f"http://127.0.0.1:{port}/", cgi_jsoc_info="i")
    with pytest.raises(ConnectError) as info, HttpJsonClient(cfg, retries=1) as c:
        c.rs_summary(RS)
    assert isinstance(info.value, OSError)


def test_gzip_and_keepalive(emulator: JsocEmulator) -> None:
    t = BlockingTransport(timeout=10)
    try:
        url = emulator.server_config().url_jsoc_info + "?op=rs_list&ds=hmi.v_45s[2016.04.01/1d]"
        resp = t.get(url + "&key=T_REC")
        assert resp.headers.get("content-encoding") == "gzip"
        assert resp.body.startswith(b'{"keywords"')
        assert len(t._pools) == 1
        pool = next(iter(t._pools.values()))[0]
        assert len(pool._idle_raw) == 1  # kept alive
        sock = pool._idle_raw[0]
        t.get(url + "&key=QUALITY")
        assert pool._idle_raw == [sock]  # and reused
        with pytest.raises(ValueError):
            t.get("ftp://example.org/x")
    finally:
        t.close()


def test_debug_logs_urls(client: HttpJsonClient, caplog: pytest.LogCaptureFixture) -> None:
    client.debug = True
    with caplog.at_level(logging.INFO, logger="sciwire.drms.json"):
        client.rs_summary(RS)
    assert any("op=rs_summary" in r.getMessage() for r in caplog.records)


def test_unsupported_on_kis() -> None:
    c = HttpJsonClient("kis")
    with pytest.raises(DrmsOperationNotSupported):
        c.exp_status("JSOC_1")
    with pytest.raises(DrmsOperationNotSupported):
        c.show_series_wrapper()


def test_requester_alias(client: HttpJsonClient, emulator: JsocEmulator) -> None:
    client.exp_request(RS, ME, method="url", requester="alias")
    assert emulator.requests[-1].endswith("&requestor=alias")


async def test_async_client(clock: FakeClock, tmp_path: Path) -> None:
    async with (
        JsocEmulator(clock=clock, queue_time=1, processing_time=1) as emu,
        AsyncHttpJsonClient(emu.server_config(), timeout=10) as c,
    ):
        assert len((await c.show_series())["names"]) == 3
        assert (await c.show_series_wrapper("aia"))["seriesList"] == ["aia.lev1_euv_12s"]
        assert (await c.series_struct("aia.lev1_euv_12s"))["primekeys"][1] == "WAVELNTH"
        assert (await c.rs_summary(RS))["count"] == 80
        res = await c.rs_list(RS, key="QUALITY", seg="Dopplergram", recinfo=True, n=2, uid="u")
        assert res["count"] == 2 and "recinfo" in res
        assert (await c.check_address(ME))["status"] == 2
        cols = await c.rs_list_columns(RS, "QUALITY,EXPTIME", n=3)
        assert cols["QUALITY"] == [0, 0, 0] and isinstance(cols["EXPTIME"][0], float)
        req = await c.exp_request("hmi.m_720s[2016.04.01/1h]", ME, method="url")
        assert (await c.exp_status(req["requestid"]))["status"] == 2
        clock.advance(5)
        done = await c.wait_for_export(req["requestid"], timeout=5)
        paths = await c.download(done, tmp_path, progress=False)
        assert len(paths) == 5 and all(p.stat().st_size == 5760 for p in paths)
        part = tmp_path / "b" / (paths[0].name + ".part")
        part.parent.mkdir()
        part.write_bytes(paths[0].read_bytes()[:2880])
        again = await c.download(done, tmp_path / "b", progress=False)
        assert again[0].read_bytes() == paths[0].read_bytes()
        with pytest.raises(Timeout):
            await c.wait_for_export(
                (await c.exp_request("hmi.v_45s[$]", ME, method="url", requestor="z"))["requestid"],
                timeout=0.05,
                poll=0.01,
            )
        emu.faults[:] = ["badjson", "http500"]
        with pytest.raises(RemoteProtocolError):
            await c.rs_summary(RS)
        with pytest.raises(DrmsHttpError):
            await c.rs_summary(RS)


async def test_async_timeout_and_refused(scaled: Callable[[float], float]) -> None:
    async with JsocEmulator() as emu, AsyncHttpJsonClient(emu.server_config(), timeout=0.3) as c:
        emu.faults[:] = ["hang"]
        with pytest.raises(Timeout):
            await c.rs_summary(RS)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ServerConfig(name="dead", cgi_baseurl=f"http://127.0.0.1:{port}/", cgi_jsoc_info="i")
    async with AsyncHttpJsonClient(cfg, retries=0, timeout=scaled(5)) as dead:
        with pytest.raises(ConnectError):
            await dead.rs_summary(RS)


def test_emulator_bind_failure_is_clean(emulator: JsocEmulator) -> None:
    clash = JsocEmulator(port=emulator.port)
    with pytest.raises(OSError):
        clash.start_background()
    clash.stop_background()  # nothing left running; idempotent
    assert clash._portal is None


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    op=st.sampled_from(["rs_summary", "rs_list", "series_struct", "nope"]),
    ds=st.text(alphabet="hmi.v_45s[]{}?$^/@-:,=_0123456789TAI QUALITY<>x'", max_size=40),
    n=st.one_of(st.none(), st.integers(), st.text(max_size=3)),
)
def test_emulator_answers_garbage_with_status(
    emulator: JsocEmulator, op: str, ds: str, n: object
) -> None:
    params = {"op": op, "ds": ds, "key": "T_REC,QUALITY", "seg": "Dopplergram"}
    if n is not None:
        params["n"] = str(n)
    url = emulator.server_config().url_jsoc_info + "?" + urlencode(params)
    t = BlockingTransport(timeout=10)
    try:
        d = P.decode_json(t.get(url).body)  # never an HTTP 500
    finally:
        t.close()
    assert d["status"] in (0, 1)
    if d["status"] == 1:
        assert d["error"]


async def test_async_retries_dropped_connections() -> None:
    async with JsocEmulator() as emu, AsyncHttpJsonClient(emu.server_config(), timeout=10) as c:
        assert (await c.rs_summary(RS))["count"] == 80  # opens the kept connection
        emu.faults[:] = ["close"]
        emu.requests.clear()
        assert (await c.rs_summary(RS))["count"] == 80
        assert len(emu.requests) == 2


def test_download_progress_on_request(
    client: HttpJsonClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quick = client.exp_request("hmi.v_45s[2016.04.01/2m]{Dopplergram}", ME)
    client.download(quick, tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "3/3 files" in err and "17.3k/17.3k" in err  # tqdm: SI units, rate and ETA


UNSAFE_NAMES = ["", ".", "..", "x/", "/etc/passwd", "a/../../b", "..\\b", "nul\x00"]


def _finished(filename: str) -> dict[str, object]:
    return {
        "status": "0",
        "requestid": "JSOC_1",
        "method": "url",
        "dir": "/SUM1/D1",
        "data": [{"record": "hmi.v_45s[2016.04.01_00:00:00_TAI][2]", "filename": filename}],
    }


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_download_refuses_unsafe_names(
    client: HttpJsonClient, tmp_path: Path, name: str, overwrite: bool
) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(DrmsExportError, match="not a plain file name"):
        client.download(_finished(name), dest, progress=False, overwrite=overwrite)
    assert not list(tmp_path.iterdir())  # not even dest, and never dest.part beside it


@pytest.mark.parametrize("name", UNSAFE_NAMES)
async def test_async_download_refuses_unsafe_names(
    emulator: JsocEmulator, tmp_path: Path, name: str
) -> None:
    async with AsyncHttpJsonClient(emulator.server_config(), timeout=10) as c:
        with pytest.raises(DrmsExportError, match="not a plain file name"):
            await c.download(_finished(name), tmp_path / "dest", progress=False, overwrite=True)
    assert not list(tmp_path.iterdir())
