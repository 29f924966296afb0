"""The emulator's catalog, record-set parser, FITS writer and export book (no sockets).

The FITS files are read back with astropy (a peer): those tests import it and are marked
``interop``, so the unit tier (``make check``) runs without it.
"""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sciwire.drms._catalog import (
    CATALOG,
    QueryError,
    format_time,
    parse_recordset,
    parse_time,
)
from sciwire.drms._exports import ExportBook
from sciwire.drms._fits import BLOCK, fits_image

V45 = CATALOG["hmi.v_45s"]


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("hmi.v_45s[2016.04.01_00:00:00_TAI/1h]", 80),
        ("hmi.v_45s[2016.04.01_00:00:00_TAI/1h][2]", 80),
        ("hmi.v_45s[2016.04.01_00:00:00_TAI/1h][3]", 0),
        ("hmi.v_45s[2016.04.01_00:00:00_TAI/1h@3m]", 20),
        ("hmi.v_45s[2016.04.01_00:00:00_TAI-2016.04.01_00:10:00_TAI]", 14),
        ("hmi.v_45s[2016.04.01_00:00:00_TAI]", 1),
        ("hmi.v_45s[2016.04.01_00:00:10_TAI]", 1),
        ("hmi.v_45s[T_REC=2016.04.01_00:00:00_TAI/1d]", 1920),
        ("hmi.v_45s[$]", 1),
        ("hmi.v_45s[^]", 1),
        ("HMI.V_45S[2016.04.01/1h]{Dopplergram}", 80),
        ("hmi.m_720s[2016.04.01_00:00:00_TAI/1d]", 120),
        ("aia.lev1_euv_12s[2016.04.01_00:00:00_TAI/1m]", 35),
        ("aia.lev1_euv_12s[2016.04.01_00:00:00_TAI/1m][171,193]", 10),
        ("aia.lev1_euv_12s[2016.04.01_00:00:00_TAI/1m][100-200]", 15),
        ("aia.lev1_euv_12s[2016.04.01_00:00:00_TAI/1m][WAVELNTH=304]", 5),
        ("hmi.v_45s[2000.01.01_00:00:00_TAI/1h]", 0),
    ],
)
def test_recordset_counts(query: str, count: int) -> None:
    assert len(parse_recordset(query).records) == count


def test_where_clause_and_quality() -> None:
    rs = parse_recordset("hmi.v_45s[2016.04.01_00:00:00_TAI/1d]")
    quality = V45.values("QUALITY", rs.records)
    assert {"0x00000000", "0x00000400", "0x80000000"} <= set(quality)
    good = parse_recordset("hmi.v_45s[2016.04.01_00:00:00_TAI/1d][? QUALITY=0 ?]")
    assert len(good.records) == quality.count("0x00000000")
    flagged = parse_recordset("hmi.v_45s[2016.04.01_00:00:00_TAI/1d][?QUALITY >= 0x80000000?]")
    values = V45.values("DATAMEAN", flagged.records)
    assert values and set(values) == {"MISSING"}
    assert set(V45.values("T_OBS", flagged.records)) == {"MISSING"}
    both = parse_recordset("hmi.v_45s[2016.04.01_00:00:00_TAI/1d][? QUALITY=0 and DATAMEAN > 0 ?]")
    assert 0 < len(both.records) < len(good.records)
    tel = parse_recordset("hmi.v_45s[2016.04.01_00:00:00_TAI/1h][? TELESCOP='SDO/HMI' ?]")
    assert len(tel.records) == 80


@pytest.mark.parametrize(
    "query",
    [
        "nope",
        "hmi.nothing[$]",
        "hmi.v_45s[2016.13.01_00:00:00_TAI]",
        "hmi.v_45s[2016.04.01/1y]",
        "hmi.v_45s[$",
        "hmi.v_45s[? QUALITY=0",
        "hmi.v_45s[$]{image",
        "hmi.v_45s[$][2][3]",
        "hmi.v_45s[$] junk",
        "hmi.v_45s[$][? NOPE=1 ?]",
        "hmi.v_45s[$][? QUALITY ~ 1 ?]",
        "aia.lev1_euv_12s[2016.04.01/1d][x]",
    ],
)
def test_recordset_errors(query: str) -> None:
    with pytest.raises(QueryError):
        parse_recordset(query)


def test_recordset_limit() -> None:
    with pytest.raises(QueryError, match="Too many"):
        parse_recordset("aia.lev1_euv_12s[2016.04.01/1d]", limit=1000)
    assert len(parse_recordset("hmi.v_45s", limit=10).records) == V45.nrecords


def test_times_round_trip() -> None:
    t = parse_time("2016.04.01_12:34:56_TAI")
    assert format_time(t) == "2016.04.01_12:34:56_TAI"
    assert parse_time("2016-04-01T12:34:56Z") == t
    assert parse_time("2016.04.01") == parse_time("2016.04.01_00:00_TAI")


@pytest.mark.interop
def test_fits_writer_is_real_fits() -> None:
    from astropy.io import fits

    data = fits_image(
        [[1, 2, 3], [4, 5, -6]],
        [("T_REC", "2016.04.01_00:00:00_TAI", "t"), ("QUALITY", 1024, ""), ("SCALE", 0.5, "")],
    )
    assert len(data) % BLOCK == 0
    with fits.open(io.BytesIO(data)) as hdul:
        hdu = hdul[0]
        assert hdu.header["T_REC"] == "2016.04.01_00:00:00_TAI"
        assert hdu.header["QUALITY"] == 1024
        assert hdu.header["SCALE"] == 0.5
        assert hdu.data.tolist() == [[1, 2, 3], [4, 5, -6]]


def test_fits_writer_refuses_what_it_cannot_write() -> None:
    with pytest.raises(ValueError):
        fits_image([[1]], bitpix=64)
    with pytest.raises(ValueError):
        fits_image([[1]], [("TOOLONGKEY", 1, "")])


@pytest.mark.interop
def test_segment_files_are_fits() -> None:
    from astropy.io import fits

    with fits.open(io.BytesIO(V45.fits(12345))) as hdul:
        assert hdul[0].header["TELESCOP"] == "SDO/HMI"
        assert hdul[0].data.shape == (8, 8)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_export_book_lifecycle() -> None:
    clock = Clock()
    book = ExportBook(
        clock, queue_time=5, processing_time=5, retention=50, pending_limit=1, max_records=1000
    )
    q = {
        "ds": "hmi.m_720s[2016.04.01/1h]",
        "method": "url-tar",
        "protocol": "fits",
        "notify": "a@b.org",
        "requestor": "alice",
        "process=n": "0",
    }
    first = book.request(q, quick_limit=100)
    assert first["status"] == 2 and first["rcount"] == 5
    rid = first["requestid"]
    assert book.request(q, quick_limit=100)["status"] == 7  # alice has one pending
    other = book.request({**q, "requestor": "bob"}, quick_limit=100)
    assert other["status"] == 2
    assert book.status(rid)["status"] == 2
    clock.now = 6
    assert book.status(rid)["status"] == 1
    clock.now = 11
    index = book.status(rid)
    assert index["status"] == "0" and index["count"] == "5"
    tar = book.file(index["tarfile"])
    assert tar is not None
    with tarfile.open(fileobj=io.BytesIO(tar.data())) as tf:
        assert len(tf.getnames()) == 5
    assert book.file(index["dir"] + "/index.json") is not None
    assert book.request(q, quick_limit=100)["status"] == 2  # no longer pending
    clock.now = 100
    assert book.status(rid)["status"] == 5
    assert book.file(index["tarfile"]) is None
    assert book.status("JSOC_19700101_1")["status"] == 6


def test_export_book_requests() -> None:
    book = ExportBook(Clock(), 1, 1, 10, 1, 1000)
    base = {"notify": "a@b.org", "method": "url_quick", "protocol": "as-is"}
    quick = book.request(
        {**base, "ds": "hmi.v_45s[2016.04.01/5m]", "process=n": "-2"}, quick_limit=10
    )
    assert quick["status"] == 0 and quick["requestid"] == "" and quick["count"] == 2
    assert book.file(quick["data"][0]["filename"]) is not None
    bad = [
        {"ds": "nope"},
        {"ds": "hmi.v_45s[2000.01.01/1h]"},
        {"ds": "hmi.v_45s[$]{image}"},
        {"ds": "hmi.v_45s[$]", "process=n": "x"},
    ]
    for q in bad:
        assert book.request({**base, **q}, quick_limit=10)["status"] == 4
    assert book.file("/SUM1/S00000/image.fits") is None
    assert book.file("/etc/passwd") is None


PIECES = st.sampled_from(
    [
        "hmi.v_45s",
        "aia.lev1_euv_12s",
        "[",
        "]",
        "[?",
        "?]",
        "{",
        "}",
        "$",
        "^",
        "/",
        "@",
        "-",
        ",",
        "=",
        "2016.04.01",
        "_00:00:00_TAI",
        "1h",
        "45s",
        "9" * 400,
        "d",
        "QUALITY",
        ">=",
        "0x10",
        "171",
        " and ",
        "T_REC",
        "'x'",
        " ",
    ]
)


@given(st.lists(PIECES, max_size=14).map("".join))
def test_recordset_parser_only_raises_query_errors(text: str) -> None:
    try:
        rs = parse_recordset(text, limit=5000)
    except QueryError:
        return
    assert len(rs.records) >= 0
