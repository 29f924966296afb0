"""sciwire.drms.Client, SeriesInfo and ExportRequest against the JSOC emulator on loopback."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import sciwire.drms as drms
from sciwire.drms import Client, ExportRequest, SeriesInfo
from sciwire.drms._server import JsocEmulator
from sciwire.drms.config import ServerConfig
from tests.drms.helpers import FakeClock

ME = "user@example.com"
RS = "hmi.v_45s[2016.04.01_00:00:00_TAI/1h]"


@pytest.fixture
def c(emulator: JsocEmulator) -> Iterator[Client]:
    client = Client(emulator.server_config(), email=ME, timeout=10.0)
    try:
        yield client
    finally:
        client.close()


def test_construction_and_repr(emulator: JsocEmulator) -> None:
    assert repr(Client()) == "<Client: JSOC>"
    assert repr(Client("kis")) == "<Client: KIS>"
    assert Client().email is None and isinstance(Client()._server, ServerConfig)
    with Client(emulator.url, verbose=True) as by_url:
        assert by_url.series()[0] == "hmi.v_45s" and by_url.verbose
    with pytest.raises(drms.DrmsOperationNotSupported):
        Client(ServerConfig(name="TEST"), email=ME)
    with pytest.raises(drms.DrmsOperationNotSupported):
        Client(ServerConfig(name="TEST")).query(RS, key="T_REC")


def test_email(c: Client) -> None:
    assert c.email == ME
    assert c.check_email("drms@example.org")
    assert not c.check_email("stranger@example.com")
    with pytest.raises(ValueError, match="not registered"):
        c.email = "stranger@example.com"
    assert c.email == ME
    c.email = None
    with pytest.raises(ValueError, match="email argument is required"):
        c.export(RS)


def test_series(c: Client) -> None:
    assert c.series() == ["hmi.v_45s", "hmi.m_720s", "aia.lev1_euv_12s"]
    assert c.series(r"aia\.") == ["aia.lev1_euv_12s"]
    full = c.series(full=True)
    assert list(full.columns) == ["name", "note"] and len(full) == 3
    assert list(c.series("nothing", full=True).columns) == ["name", "note"]


def test_series_without_wrapper(emulator: JsocEmulator) -> None:
    d = emulator.server_config("plain").to_dict()
    del d["cgi_show_series_wrapper"], d["url_show_series_wrapper"]
    with Client(ServerConfig(d)) as c:
        assert c.series(r"hmi\.m") == ["hmi.m_720s"]
        full = c.series(full=True)
        assert list(full.columns) == ["name", "primekeys", "note"]
        assert full.primekeys[0] == ["T_REC", "CAMERA"]
        assert c.series("nothing") == []


def test_info_keys_pkeys(c: Client, emulator: JsocEmulator) -> None:
    si = c.info("HMI.V_45s[2016.04.01]")
    assert isinstance(si, SeriesInfo) and si.name == "hmi.v_45s"
    assert repr(si) == "<SeriesInfo: hmi.v_45s>"
    assert si.primekeys == ["T_REC", "CAMERA"]
    assert si.keywords.loc["QUALITY"].is_integer and si.keywords.loc["T_REC"].is_time
    assert si.keywords.loc["DATAMEAN"].is_real and si.keywords.loc["DATAMEAN"].is_numeric
    assert not si.keywords.loc["TELESCOP"].is_numeric
    assert list(si.segments.index) == ["Dopplergram"]
    assert list(si.links.columns) == ["target", "kind", "note"]
    emulator.requests.clear()
    assert c.info("hmi.v_45s") is si  # cached: no request
    assert c.keys("hmi.v_45s") == list(si.keywords.index)
    assert c.pkeys("hmi.v_45s[2016.04.01]") == ["T_REC", "CAMERA"]
    assert not emulator.requests
    assert c.pkeys("aia.lev1_euv_12s") == ["T_REC", "WAVELNTH"]
    with pytest.raises(drms.DrmsQueryError, match="status="):
        c.info("hmi.nothing")


def test_series_info_parsers_empty() -> None:
    info = SeriesInfo({"keywords": [], "links": [], "segments": []})
    assert repr(info) == "<SeriesInfo>"
    assert info.keywords.empty and list(info.keywords.columns)[-1] == "is_numeric"
    assert info.links.empty and info.segments.empty


def test_query_typed_columns(c: Client) -> None:
    keys = c.query(RS, key="T_REC,QUALITY,DATAMEAN,*recnum*,TELESCOP")
    assert list(keys.columns) == ["T_REC", "QUALITY", "DATAMEAN", "*recnum*", "TELESCOP"]
    assert len(keys) == 80  # one camera: 80 slots of 45 s
    assert keys.QUALITY.dtype == "int64" and keys["*recnum*"].dtype == "int64"
    assert keys.DATAMEAN.dtype == "float64"
    raw = c.query(RS, key="QUALITY,DATAMEAN", convert_numeric=False)
    assert list(keys.QUALITY) == [int(v, 16) for v in raw.QUALITY]
    missing = raw.DATAMEAN == "MISSING"
    assert missing.any() and keys.DATAMEAN[missing].isna().all()
    assert not keys.DATAMEAN[~missing].isna().any()
    skipped = c.query(RS, key="QUALITY,*recnum*", skip_conversion=["QUALITY", "*recnum*"])
    assert skipped.QUALITY[0].startswith("0x") and isinstance(skipped["*recnum*"][0], str)
    one = c.query(RS, key="QUALITY", skip_conversion="QUALITY")
    assert one.QUALITY[0].startswith("0x")
    # the skipped keyword is skipped for that query only (the series' types are cached)
    again = c.query(RS, key="QUALITY")
    assert again.QUALITY.dtype == "int64"


def test_query_shapes(c: Client) -> None:
    keys, segs = c.query(RS, key="T_REC", seg="Dopplergram", n=-2, rec_index=True)
    assert (
        list(keys.index)
        == list(segs.index)
        == [
            "hmi.v_45s[2016.04.01_00:58:30_TAI][2]",
            "hmi.v_45s[2016.04.01_00:59:15_TAI][2]",
        ]
    )
    assert segs.Dopplergram.str.endswith(".fits").all()
    segs_only = c.query(RS, seg="Dopplergram", n=3)
    assert list(segs_only.columns) == ["Dopplergram"] and len(segs_only) == 3
    pk = c.query(RS, pkeys=True, key="DATAMEAN,CAMERA", n=1)
    assert list(pk.columns) == ["T_REC", "CAMERA", "DATAMEAN"]
    k, s, ln = c.query(RS, key="nothing", seg="nothing", link="nothing", n=2)
    assert list(k.nothing) == ["Invalid KeyLink"] * 2
    assert list(s.nothing) == ["InvalidSegName"] * 2
    assert list(ln.nothing) == ["Invalid_Link"] * 2
    empty = c.query("hmi.v_45s[2030.01.01/1m]", key="T_REC")
    assert isinstance(empty, pd.DataFrame) and empty.empty
    with pytest.raises(ValueError):
        c.query(RS)
    with pytest.raises(drms.DrmsQueryError):
        c.query("hmi.nothing[2016.04.01]", key="T_REC")


def test_export_quick_and_download(c: Client, tmp_path: Path) -> None:
    req = c.export("hmi.v_45s[2016.04.01/3m]{Dopplergram}")
    assert isinstance(req, ExportRequest)
    assert req.status == 0 and req.id is None and req.method == "url_quick"
    assert req.protocol == "as-is"
    assert repr(req) == "<ExportRequest: id=None, status=0>"
    assert req.has_finished() and req.has_succeeded() and not req.has_failed()
    assert req.wait() is True
    assert list(req.data.columns) == ["record", "filename"] and len(req.data) == 4
    assert list(req.urls.columns) == ["record", "filename", "url"]
    assert req.dir is None and req.tarfile is None and req.request_url is None
    got = req.download(tmp_path)
    names = [Path(p).name for p in got.download]
    assert names == [
        f"hmi.v_45s.20160401_{t}_TAI.2.Dopplergram.fits"
        for t in ("000000", "000045", "000130", "000215")
    ]
    assert all(Path(p).read_bytes()[:6] == b"SIMPLE" for p in got.download)
    again = req.download(str(tmp_path), index=1)  # an existing file is never overwritten
    assert [Path(p).name for p in again.download] == [names[1] + ".1"]
    plain = req.download(tmp_path, index=[0], fname_from_rec=False)
    assert [Path(p).name for p in plain.download] == ["Dopplergram.fits"]
    with pytest.raises(OSError, match="does not exist"):
        req.download(tmp_path / "missing")


def test_export_lifecycle(c: Client, clock: FakeClock, tmp_path: Path) -> None:
    req = c.export("hmi.m_720s[2016.04.01_00:00:00_TAI/1h]{magnetogram}", method="url")
    assert req.id.startswith("JSOC_") and req.status == 2
    assert not req.has_finished() and not req.has_succeeded() and not req.has_failed()
    assert req.wait(timeout=0.05, sleep=0.01) is False
    clock.advance(31)
    assert req.wait(sleep=0) is True
    assert req.has_succeeded(skip_update=True)
    assert req.dir and req.request_url.endswith(req.dir.lstrip("/"))
    assert len(req.urls) == 5 and req.keywords == f"{req.dir}/{req.id}.keywords.txt"
    got = req.download(tmp_path, index=[0, 2])
    assert len(got) == 2 and {Path(p).stat().st_size for p in got.download} == {5760}
    same = c.export_from_id(req.id)
    assert same.has_succeeded() and list(same.data.filename) == list(req.data.filename)


@pytest.mark.slow  # download() first waits with drms's default 5 s poll: a real 5 s sleep
def test_export_tar(c: Client, clock: FakeClock, tmp_path: Path) -> None:
    req = c.export("hmi.m_720s[2016.04.01/1h]", method="url-tar", protocol="fits")
    clock.advance(31)
    got = req.download(tmp_path)  # waits first
    assert req.tarfile and len(got) == 1 and str(got.download[0]).endswith(".tar")


def test_export_failures(c: Client, clock: FakeClock) -> None:
    req = c.export("hmi.v_45s[2016.04.01/1h]", email="stranger@example.com", method="url")
    assert req.has_failed()
    with pytest.raises(drms.DrmsExportError, match="not registered"):
        req.wait()
    with pytest.raises(drms.DrmsExportError):
        _ = req.data
    gone = c.export_from_id("JSOC_20000101_99")
    with pytest.raises(drms.DrmsExportError, match="status=6"):
        gone.wait(sleep=0, retries_notfound=1)
    with pytest.raises(drms.DrmsOperationNotSupported):
        Client("kis").export_from_id("KIS_1")


def test_export_request_from_a_dict(c: Client, tmp_path: Path) -> None:
    # a finished export whose file the server does not have: that row downloads as None
    d = {
        "status": 0,
        "requestid": "JSOC_20160401_1",
        "method": "url",
        "protocol": "as-is",
        "dir": "/SUM0/nothing",
        "data": [{"record": "hmi.v_45s[2016.04.01_00:00:00_TAI][2]", "filename": "a.fits"}],
    }
    got = ExportRequest(d, c).download(tmp_path)
    assert list(got.download) == [None] and not list(tmp_path.iterdir())
    ftp = ExportRequest({**d, "method": "ftp"}, c)
    with pytest.raises(drms.DrmsExportError, match="not supported"):
        _ = ftp.urls


@pytest.mark.parametrize("name", ["", ".", "..", "x/", "/etc/passwd", "a/../../b", "..\\x"])
def test_export_refuses_unsafe_names(c: Client, tmp_path: Path, name: str) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    d = {
        "status": 0,
        "requestid": "JSOC_1",
        "method": "url",
        "dir": "/SUM1/D1",
        "data": [{"record": "r", "filename": name}],
    }
    with pytest.raises(drms.DrmsExportError, match="not a plain file name"):
        ExportRequest(d, c).download(dest, fname_from_rec=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    assert not list(dest.iterdir())


def test_generated_filenames(c: Client) -> None:
    assert c._generate_filenamefmt("hmi.v_45s") == "hmi.v_45s.{T_REC:A}.{CAMERA}.{segment}"
    assert c._generate_filenamefmt("hmi.nothing") is None
    rec = "hmi.v_45s[2016.04.01_00:00:45_TAI][2]{Dopplergram}"
    assert (
        c._filename_from_export_record(rec, old_fname="x.fits")
        == "hmi.v_45s.20160401_000045_TAI.2.Dopplergram.fits"
    )
    assert c._filename_from_export_record("hmi.v_45s[1]") is None  # one of two prime keys
    assert c._filename_from_export_record("!!") is None


def test_protocol_args_validation() -> None:
    args = {"ct": "GREY.SAO", "scaling": "minmax"}
    Client._validate_export_protocol_args(args)
    assert args == {"ct": "grey.sao", "scaling": "MINMAX"}
    with pytest.raises(ValueError, match="color table"):
        Client._validate_export_protocol_args({"CT": "rainbow"})
    with pytest.raises(ValueError, match="scaling"):
        Client._validate_export_protocol_args({"scaling": "cubic"})
    Client._validate_export_protocol_args(None)


def test_export_sends_generated_format(c: Client, emulator: JsocEmulator) -> None:
    emulator.requests.clear()
    c.export("hmi.v_45s[2016.04.01/1m]", method="url", requester=False)
    sent = next(r for r in emulator.requests if "exp_request" in r)
    assert "filenamefmt=hmi.v_45s.%7BT_REC%3AA%7D.%7BCAMERA%7D.%7Bsegment%7D" in sent
    assert "requestor" not in sent


def test_verbose_logs_waits(c: Client, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    c.verbose = True
    req = c.export("hmi.m_720s[2016.04.01/1h]", method="url")
    with caplog.at_level(logging.INFO, logger="sciwire.drms.client"):
        assert req.wait(timeout=0.05, sleep=0.01) is False
    assert any("pending" in r.getMessage() for r in caplog.records)
    clock.advance(31)
    assert req.wait(sleep=0)
    assert not math.isnan(float(req.status or 0))


@pytest.mark.parametrize("wait", ["soon", None, 999999])
def test_wait_reads_the_server_pause_safely(c: Client, wait: object) -> None:
    # a pending status whose suggested pause is not a number, missing or huge: the
    # pause is bounded, so a short timeout ends the wait at once (no ValueError, no stall)
    d = {"status": 2, "requestid": "JSOC_20160401_1", "method": "url", "wait": wait}
    assert ExportRequest(d, c).wait(timeout=0.5, sleep=None) is False
