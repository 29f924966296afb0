"""The sans-I/O core: exact URLs, decoding, status checks, server configs."""

from __future__ import annotations

import json
import math
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sciwire.drms import (
    DrmsError,
    DrmsExportError,
    DrmsOperationNotSupported,
    DrmsQueryError,
    JsocInfoConstants,
    ServerConfig,
    UnknownServerError,
    register_server,
)
from sciwire.drms import _protocol as P
from sciwire.drms.config import get_server
from sciwire.errors import RemoteError, RemoteProtocolError, SciwireError

JSOC = get_server("jsoc")
KIS = get_server("kis")
INFO = "http://jsoc.stanford.edu/cgi-bin/ajax/jsoc_info"
FETCH = "http://jsoc.stanford.edu/cgi-bin/ajax/jsoc_fetch"


def test_show_series_urls() -> None:
    assert P.show_series_url(JSOC) == "http://jsoc.stanford.edu/cgi-bin/ajax/show_series"
    assert (
        P.show_series_url(JSOC, r"hmi\.v_.*")
        == "http://jsoc.stanford.edu/cgi-bin/ajax/show_series?filter=hmi%5C.v_.%2A"
    )
    base = "http://jsoc.stanford.edu/cgi-bin/ajax/showextseries?dbhost=hmidb2"
    assert P.show_series_wrapper_url(JSOC) == base
    assert P.show_series_wrapper_url(JSOC, "aia", info=True) == base + "&filter=aia&info=1"
    assert P.show_series_wrapper_url(JSOC, info=True) == base + "&info=1"


def test_jsoc_info_urls() -> None:
    assert P.series_struct_url(JSOC, "hmi.v_45s") == INFO + "?op=series_struct&ds=hmi.v_45s"
    assert (
        P.rs_summary_url(JSOC, "hmi.v_45s[2016.04.01_00:00:00_TAI/1h]")
        == INFO + "?op=rs_summary&ds=hmi.v_45s%5B2016.04.01_00%3A00%3A00_TAI%2F1h%5D"
    )


@pytest.mark.parametrize(
    ("kwargs", "query"),
    [
        ({"key": "T_REC, QUALITY"}, "&key=T_REC%2CQUALITY"),
        ({"key": ["T_REC", "QUALITY"]}, "&key=T_REC%2CQUALITY"),
        ({"key": [JsocInfoConstants.recnum]}, "&key=%2Arecnum%2A"),
        ({"seg": "image"}, "&seg=image"),
        ({"link": "a b"}, "&link=a%2Cb"),
        ({"key": "A", "seg": "s", "link": "l"}, "&key=A&seg=s&link=l"),
        ({"key": "A", "recinfo": True}, "&key=A&R=1"),
        ({"key": "A", "n": -5}, "&key=A&n=-5"),
        ({"key": "A", "n": 3.0}, "&key=A&n=3"),
        ({"key": "A", "uid": "abc"}, "&key=A&userhandle=abc"),
        (
            {"key": "A", "seg": "s", "recinfo": True, "n": 2, "uid": "u"},
            "&key=A&seg=s&R=1&n=2&userhandle=u",
        ),
    ],
)
def test_rs_list_urls(kwargs: dict[str, object], query: str) -> None:
    url = P.rs_list_url(JSOC, "hmi.v_45s[$]", **kwargs)  # type: ignore[arg-type]
    assert url == INFO + "?op=rs_list&ds=hmi.v_45s%5B%24%5D" + query


def test_rs_list_needs_something() -> None:
    with pytest.raises(ValueError, match="At least one"):
        P.rs_list_url(JSOC, "hmi.v_45s")


def test_check_address_url_double_encodes() -> None:
    url = P.check_address_url(JSOC, "a.b+c@example.com")
    assert url.endswith("checkAddress.sh?address=a.b%252Bc%2540example.com&checkonly=1")


def test_exp_status_url() -> None:
    assert (
        P.exp_status_url(JSOC, "JSOC_20160401_1")
        == FETCH + "?op=exp_status&requestid=JSOC_20160401_1"
    )


EXP_HEAD = FETCH + "?op=exp_request&format=json&ds=hmi.v_45s%5B%24%5D&notify=me%40x.org"


@pytest.mark.parametrize(
    ("kwargs", "tail"),
    [
        ({}, "&method=url_quick&protocol=as-is&process%3Dn=0&requestor=me"),
        (
            {"protocol": "fits"},
            "&method=url&protocol=fits&process%3Dn=0&requestor=me",
        ),
        (
            {"method": "URL-TAR", "protocol": "FITS", "n": 3, "requestor": False},
            "&method=url-tar&protocol=fits&process%3Dn=3",
        ),
        (
            {"method": "url", "filenamefmt": "{seriesname}.{T_REC:A}", "requestor": "bob"},
            "&method=url&protocol=as-is&filenamefmt=%7Bseriesname%7D.%7BT_REC%3AA%7D"
            "&process%3Dn=0&requestor=bob",
        ),
        (
            {"protocol": "jpg"},
            "&method=url&protocol=jpg%2CCT%3Dgrey.sao%2Cscaling%3DMINMAX%2Csize%3D1"
            "&process%3Dn=0&requestor=me",
        ),
        (
            {
                "protocol": "mp4",
                "protocol_args": {"CT": "aia_171.lut", "size": "2", "min": 0, "max": 1.5e3},
            },
            "&method=url&protocol=mp4%2CCT%3Daia_171.lut%2Cscaling%3DMINMAX%2Csize%3D2"
            "%2Cmin%3D0%2Cmax%3D1500&process%3Dn=0&requestor=me",
        ),
        (
            {"method": "url", "process": {"rebin": {"method": "boxcar", "scale": 0.25}}},
            "&method=url&protocol=as-is&process%3Dn=0%7Crebin%2Cmethod%3Dboxcar%2Cscale%3D0.25"
            "&requestor=me",
        ),
        ({"method": "ftp-tar"}, "&method=ftp-tar&protocol=as-is&process%3Dn=0&requestor=me"),
    ],
)
def test_exp_request_urls(kwargs: dict[str, object], tail: str) -> None:
    assert P.exp_request_url(JSOC, "hmi.v_45s[$]", "me@x.org", **kwargs) == EXP_HEAD + tail  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "scp"},
        {"protocol": "png"},
        {"protocol": "fits", "protocol_args": {"ct": "x"}},
        {"protocol": "jpg", "protocol_args": {"colour": "x"}},
        {"process": {"nope": {}}},
    ],
)
def test_exp_request_rejects(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        P.exp_request_url(JSOC, "hmi.v_45s", "me@x.org", **kwargs)  # type: ignore[arg-type]


def test_kis_does_not_export() -> None:
    assert KIS.check_supported("series") and KIS.check_supported("query")
    assert not KIS.check_supported("export") and not KIS.check_supported("email")
    with pytest.raises(DrmsOperationNotSupported):
        P.exp_request_url(KIS, "hmi.v_45s", "me@x.org")
    with pytest.raises(DrmsOperationNotSupported):
        P.check_address_url(KIS, "me@x.org")
    with pytest.raises(DrmsOperationNotSupported):
        P.show_series_wrapper_url(KIS)
    assert P.show_series_url(KIS) == "http://drms.leibniz-kis.de/cgi-bin/show_series"
    with pytest.raises(ValueError, match="Unknown operation"):
        KIS.check_supported("dance")


def test_server_config_rules() -> None:
    cfg = ServerConfig(name="x", cgi_baseurl="http://h/cgi/", cgi_jsoc_info="info")
    assert cfg.url_jsoc_info == "http://h/cgi/info"
    assert cfg.encoding == "latin1"
    assert cfg.url_jsoc_fetch is None
    assert cfg.to_dict()["url_jsoc_info"] == "http://h/cgi/info"
    given_url = ServerConfig(
        name="y", cgi_baseurl="http://h/", cgi_jsoc_info="i", url_jsoc_info="u"
    )
    assert given_url.url_jsoc_info == "u"
    copy = cfg.copy()
    copy.encoding = "utf-8"
    assert cfg.encoding == "latin1" and copy.encoding == "utf-8"
    with pytest.raises(ValueError, match="must be a string"):
        cfg.encoding = 5  # type: ignore[assignment]
    with pytest.raises(ValueError, match="Invalid server config key"):
        ServerConfig(name="x", colour="red")
    with pytest.raises(ValueError, match='"name" is missing'):
        ServerConfig(cgi_baseurl="http://h/")
    with pytest.raises(AttributeError):
        _ = cfg.nope
    assert repr(cfg) == "<ServerConfig: x>"


def test_registry() -> None:
    assert get_server("JSOC") is JSOC
    assert JSOC.url_check_address == "http://jsoc.stanford.edu/cgi-bin/ajax/checkAddress.sh"
    assert JSOC.http_download_baseurl == "http://jsoc.stanford.edu/"
    with pytest.raises(RuntimeError, match="already registered"):
        register_server(ServerConfig(name="jsoc"))
    with pytest.raises(UnknownServerError) as info:
        get_server("nowhere")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert "nowhere" in str(info.value)
    with pytest.raises(TypeError):
        get_server(42)  # type: ignore[arg-type]
    name = "sciwire-test-registry"
    register_server(ServerConfig(name=name.upper()))
    assert get_server(name).name == name.upper()


def test_decode_json() -> None:
    assert P.decode_json(b'{"status": 0, "n": "\xe9"}') == {"status": 0, "n": "\xe9"}
    assert P.decode_json('{"n": "é"}'.encode(), "utf-8") == {"n": "é"}
    for bad in (b"{", b"[1, 2]", b"", b"<html>500</html>"):
        with pytest.raises(RemoteProtocolError):
            P.decode_json(bad)
    with pytest.raises(RemoteProtocolError):
        P.decode_json(b'{"a": "\xff"}', "ascii")


@given(st.binary(max_size=200))
def test_decode_json_only_raises_protocol_errors(body: bytes) -> None:
    try:
        result = P.decode_json(body)
    except RemoteProtocolError as exc:
        assert exc.data is not None or body == b""
    else:
        assert isinstance(result, dict)


def test_query_status() -> None:
    ok = {"status": 0, "count": 3}
    assert P.check_query_status(ok) is ok
    with pytest.raises(DrmsQueryError, match=r"Unknown series: x \[status=1\]") as info:
        P.check_query_status({"status": 1, "error": "Unknown series: x"})
    assert info.value.code == 1
    assert isinstance(info.value, DrmsError | RemoteError | RuntimeError | SciwireError)
    with pytest.raises(DrmsQueryError, match="bad filter"):
        P.check_query_status({"status": 1, "errmsg": "bad filter"})
    with pytest.raises(DrmsQueryError, match="DRMS Query failed"):
        P.check_query_status({"runtime": 0})


@pytest.mark.parametrize("status", [0, 1, 2, 12, 6, "0", "2"])
def test_export_status_ok(status: object) -> None:
    assert P.check_export_status({"status": status}) == int(status)  # type: ignore[call-overload]


@pytest.mark.parametrize("status", [3, 4, 5, 7, 99, None, "x"])
def test_export_status_fails(status: object) -> None:
    with pytest.raises(DrmsExportError, match="status="):
        P.check_export_status({"status": status, "error": "nope"})


def test_download_urls() -> None:
    finished = {
        "status": "0",
        "dir": "/SUM1/D2/S00000",
        "data": [{"record": "a", "filename": "a.fits"}, {"record": "b", "filename": "NoDataFile"}],
    }
    assert P.download_urls(JSOC, finished) == [
        ("a.fits", "http://jsoc.stanford.edu/SUM1/D2/S00000/a.fits")
    ]
    quick = {
        "dir": "",
        "data": [
            {"record": "aia.lev1[2016-04-01T00:00:00Z][171]{image}", "filename": "/S1/image.fits"},
            {"record": "?", "filename": "/S2/image.fits"},
            {"record": "?", "filename": "/S3/image.fits"},
        ],
    }
    assert P.download_urls(JSOC, quick) == [
        ("aia.lev1.20160401T000000Z.171.image.fits", "http://jsoc.stanford.edu/S1/image.fits"),
        ("image.fits", "http://jsoc.stanford.edu/S2/image.fits"),
        ("image.fits.1", "http://jsoc.stanford.edu/S3/image.fits"),
    ]
    assert P.record_filename("hmi.m_720s[$]", "x") == "hmi.m_720s.$"
    assert P.record_filename("", "x.fits") is None
    tar = {**finished, "tarfile": "/SUM1/D2/S00000/JSOC_1.tar"}
    assert P.download_urls(JSOC, tar) == [
        ("JSOC_1.tar", "http://jsoc.stanford.edu/SUM1/D2/S00000/JSOC_1.tar")
    ]
    with pytest.raises(DrmsExportError, match="http_download_baseurl"):
        P.download_urls(KIS, finished)


def test_keyword_columns() -> None:
    d = {
        "keywords": [
            {"name": "QUALITY", "values": ["0x00000400", "0", "MISSING"]},
            {"name": "DATAMEAN", "values": ["1.5", "MISSING", "nan"]},
            {"name": "T_REC", "values": ["2016.04.01_00:00:00_TAI", "MISSING", "x"]},
            {"name": "*recnum*", "values": ["1", "2", "3"]},
            {"name": "EXPTIME", "values": ["0.1", "0.2", "0.3"]},
        ],
        "count": 3,
        "status": 0,
    }
    types = {"QUALITY": "int", "DATAMEAN": "double", "T_REC": "time", "EXPTIME": "float"}
    cols = P.keyword_columns(json.loads(json.dumps(d)), types)
    assert cols["QUALITY"][:2] == [1024, 0] and math.isnan(cols["QUALITY"][2])
    assert cols["DATAMEAN"][0] == 1.5 and all(math.isnan(v) for v in cols["DATAMEAN"][1:])
    assert cols["T_REC"] == ["2016.04.01_00:00:00_TAI", "MISSING", "x"]
    assert cols["*recnum*"] == [1, 2, 3]
    assert cols["EXPTIME"] == [0.1, 0.2, 0.3]
    raw = json.loads(json.dumps(d))
    untyped = P.keyword_columns(raw, consume=False)
    assert untyped["QUALITY"] == ["0x00000400", "0", "MISSING"]
    assert raw["keywords"][0]["values"] is not None
    assert P.keyword_columns({"count": 0, "status": 0}) == {}


@given(
    st.text(min_size=1, max_size=40),
    st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=4),
    st.booleans(),
    st.one_of(st.none(), st.integers(-1000, 1000)),
)
def test_rs_list_url_round_trips(ds: str, keys: list[str], recinfo: bool, n: int | None) -> None:
    url = P.rs_list_url(JSOC, ds, key=keys, recinfo=recinfo, n=n)
    q = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    assert q["op"] == "rs_list" and q["ds"] == ds
    assert q["key"] == ",".join(keys)
    assert ("R" in q) == recinfo
    assert q.get("n") == (None if n is None else str(n))


def _same(a: dict[str, list[object]], b: dict[str, list[object]]) -> bool:
    def norm(v: object) -> object:
        return "NaN" if isinstance(v, float) and math.isnan(v) else v

    return a.keys() == b.keys() and all(
        [norm(x) for x in a[k]] == [norm(x) for x in b[k]] for k in a
    )


VALUES = st.one_of(
    st.sampled_from(["MISSING", "0x00000400", "nan", "1.5", "-3", "SDO/HMI", ""]),
    st.text(max_size=6),
    st.integers().map(str),
    st.floats(allow_nan=False).map(repr),
)


@given(
    st.dictionaries(
        st.sampled_from(["QUALITY", "DATAMEAN", "T_REC", "TELESCOP", "*recnum*", "X"]),
        st.lists(VALUES, max_size=80),
        max_size=5,
    ),
    st.sampled_from([None, 1, 2]),
    st.booleans(),
)
def test_rs_list_columns_equals_general_path(
    cols: dict[str, list[str]], indent: int | None, segments: bool
) -> None:
    doc: dict[str, object] = {"keywords": [{"name": k, "values": v} for k, v in cols.items()]}
    if segments:
        doc["segments"] = [{"name": "image", "values": ["/a"]}]
    doc.update(count=3, runtime=0.1, status=0)
    body = json.dumps(doc, indent=indent).encode("latin1", "backslashreplace")
    types = {"QUALITY": "int", "DATAMEAN": "double", "T_REC": "time", "TELESCOP": "string"}
    fast = P.rs_list_columns(body, types)
    slow = P.keyword_columns(P.decode_json(body), types)
    assert _same(fast, slow)


def test_rs_list_columns_errors() -> None:
    with pytest.raises(DrmsQueryError, match="bad ds"):
        P.rs_list_columns(b'{"status": 1, "error": "bad ds"}')
    with pytest.raises(DrmsQueryError):
        P.rs_list_columns(b'{"keywords": [], "status": 1}')
    assert P.rs_list_columns(b'{"count": 0, "runtime": 0, "status": 0}') == {}
    assert P.rs_list_columns(b'{"keywords": [], "status": 0}') == {}
    assert P.rs_list_columns(b'{"status": 0, "keywords": [{"name": "A", "values": ["1"]}]}') == {
        "A": ["1"]
    }
    for bad in (
        b'{"keywords": [{"name": "A", "values": ["1"]} "x"]}',
        b'{"keywords": [{"name": "A"}], "status": 0}',
        b'{"keywords": [{"name": 1, "values": []}], "status": 0}',
        b'{"keywords": [{"name": "A", "values": ["1"]}',
        b'{"keywords": [{"name": "A", "values": ["1"]}] junk',
        b'{"keywords": [{"name": "A", "values": ["1"]}], "status": 0',
        b'{"keywords": [7], "status": 0}',
    ):
        with pytest.raises(RemoteProtocolError):
            P.rs_list_columns(bad)
    with pytest.raises(RemoteProtocolError):
        P.rs_list_columns(b"\xff", encoding="ascii")


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=5))
def test_query_encoding_equals_urlencode(params: dict[str, str]) -> None:
    from urllib.parse import urlencode

    assert P._q(params) == "?" + urlencode(params)


def test_server_config_copies_and_pickles() -> None:
    import copy
    import pickle

    cfg = ServerConfig(name="p", cgi_baseurl="http://h/", cgi_jsoc_info="i")
    for clone in (copy.deepcopy(cfg), pickle.loads(pickle.dumps(cfg))):
        assert clone == cfg and clone.url_jsoc_info == "http://h/i"
