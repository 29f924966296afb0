"""drms's module tree under sciwire.drms: utils, json, main, version, the package face."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import sciwire.drms as drms
from sciwire.drms import json as djson
from sciwire.drms import utils
from sciwire.drms._server import JsocEmulator
from sciwire.drms.config import config_from_url, get_server
from sciwire.drms.main import main, parse_args


def test_package_face() -> None:
    for name in ("client", "config", "exceptions", "json", "main", "utils", "version", "Path"):
        assert name in dir(drms)
    assert drms.version.version == drms.__version__ and drms.version.major >= 0
    assert "Glogowski2019" in drms.__citation__ and drms.__bibtex__ is drms.__citation__
    assert drms.const.all == "**ALL**" and drms.JsocInfoConstants.recnum == "*recnum*"
    assert drms.logger.name == "sciwire.drms"
    assert drms.client.Client is drms.Client and drms.json.HttpJsonClient is drms.HttpJsonClient


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2010.05.01_TAI", pd.Timestamp("2010-05-01")),
        ("2013.12.21_23:32:34_TAI", pd.Timestamp("2013-12-21 23:32:34")),
        ("2013-12-21T23:32:34Z", pd.Timestamp("2013-12-21 23:32:34")),
    ],
)
def test_to_datetime_scalars(text: str, expected: pd.Timestamp) -> None:
    assert drms.to_datetime(text) == expected


def test_to_datetime_corner_cases() -> None:
    assert pd.isna(drms.to_datetime("1600"))  # outside datetime64[ns], on pandas 2 and 3
    assert pd.isna(drms.to_datetime("2300.01.01_TAI"))
    assert pd.isna(drms.to_datetime("foo")) and pd.isna(drms.to_datetime(""))
    assert drms.to_datetime("2013.12.21_23:32:34_UTC", force=True) == pd.Timestamp(
        "2013-12-21 23:32:34"
    )
    empty = drms.to_datetime([])
    assert isinstance(empty, pd.Series) and empty.empty
    many = drms.to_datetime(np.array(["2010.05.01_TAI", "1600", "2010.05.01_01:00_TAI"]))
    assert list(pd.isna(many)) == [False, True, False]
    expected = pd.Series([pd.Timestamp("2010-05-01"), pd.Timestamp("2010-05-01 01:00")])
    assert drms.to_datetime(("2010.05.01_TAI", "2010.05.01_01:00_TAI")).equals(expected)
    mixed = drms.to_datetime(["2010-05-01T00:00Z", "2010-05-01T01:00+01:00"])
    assert list(mixed) == [pd.Timestamp("2010-05-01"), pd.Timestamp("2010-05-01")]


def test_utils_helpers() -> None:
    assert utils._split_arg(" a,b  c,\td ") == ["a", "b", "c", "d"]
    assert utils._split_arg(("x", "y")) == ["x", "y"] and utils._split_arg("") == []
    assert utils._extract_series_name("hmi.v_45s[2010.05.01_TAI]{x}") == "hmi.v_45s"
    assert utils._extract_series_name("[") is None
    assert utils._pd_to_numeric_coerce(pd.Series(["1", "x"])).isna().tolist() == [False, True]
    assert utils._pd_to_datetime_coerce(pd.Series(["2016-04-01 06:00:00"]))[0].hour == 6
    req = utils.create_request_with_header("http://127.0.0.1/x")
    agent = req.get_header("User-agent")
    assert "drms/" in agent and "python/" in agent and req.full_url == "http://127.0.0.1/x"


def test_http_json_request(emulator: JsocEmulator) -> None:
    url = emulator.url + "cgi-bin/ajax/jsoc_info?op=rs_summary&ds=hmi.v_45s[2016.04.01/1h]"
    req = djson.HttpJsonRequest(url, "latin1")
    assert req.url == url and repr(req) == f"<HttpJsonRequest: {url}>"
    assert req.data == {"count": 80, "runtime": req.data["runtime"], "status": 0}
    assert req.raw_data.startswith(b"{")
    opened = djson.urlopen(url, timeout=10)
    assert b'"count"' in opened.read()
    with pytest.raises(drms.DrmsHttpError):
        djson.HttpJsonRequest(emulator.url + "nothing", "latin1")


def test_server_given_as_url(emulator: JsocEmulator) -> None:
    for url in (emulator.url, emulator.url.rstrip("/"), emulator.url + "cgi-bin/ajax/jsoc_info"):
        cfg = get_server(url)
        assert cfg.url_jsoc_info == emulator.url + "cgi-bin/ajax/jsoc_info"
        assert cfg.http_download_baseurl == emulator.url
    with drms.HttpJsonClient(emulator.url, timeout=10) as c:
        assert c.rs_summary("hmi.v_45s[2016.04.01/1h]")["count"] == 80
    with pytest.raises(ValueError, match="Not a server URL"):
        config_from_url("http:///nohost")
    with pytest.raises(drms.UnknownServerError):
        get_server("nowhere")


def test_server_config_attributes() -> None:
    cfg = drms.ServerConfig(name="T")
    assert "_d" in dir(cfg) and "url_jsoc_info" in dir(cfg)
    with pytest.raises(AttributeError, match="'ServerConfig' object has no attribute 'x'"):
        _ = cfg.x


def test_exceptions_raise_bare() -> None:
    for cls in (drms.DrmsError, drms.DrmsQueryError, drms.DrmsExportError):
        with pytest.raises(RuntimeError):
            raise cls
    assert str(drms.DrmsQueryError()) == ""


def test_main(caplog: pytest.LogCaptureFixture) -> None:
    assert parse_args([]).server == "jsoc" and parse_args([]).email is None
    assert parse_args(["--email", "a@b.c", "kis"]).email == "a@b.c"
    with pytest.raises(SystemExit):
        parse_args(["--version"])
    with caplog.at_level(logging.INFO, logger="sciwire.drms"):
        main(["kis"])
    assert "client: <Client: KIS>" in caplog.text


def test_python_dash_m() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sciwire.drms", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == f"sciwire.drms v{drms.__version__}"


def test_without_pandas_the_error_names_the_extra() -> None:
    # a fresh interpreter where pandas cannot be imported
    code = textwrap.dedent(
        """
        import sys
        sys.modules["pandas"] = None
        import sciwire.drms as drms
        from sciwire.drms._pandas import MissingExtraError
        assert "pandas" not in [m for m in sys.modules if sys.modules[m] is not None]
        drms.HttpJsonClient("jsoc").close()
        try:
            drms.to_datetime("2010.05.01_TAI")
        except MissingExtraError as exc:
            assert isinstance(exc, ImportError)
            print(exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "sciwire[drms]" in out.stdout and "pandas" in out.stdout


def test_demo_without_pandas_passes_and_says_what_it_skipped() -> None:
    # a base install (no drms extra): the drms demo row still checks the CGI client
    code = textwrap.dedent(
        """
        import sys
        sys.modules["pandas"] = None
        from sciwire.drms.demo import run
        row = run()
        print(row.ok, row.checked)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.startswith("True ")
    assert "Client.query skipped" in out.stdout and "sciwire[drms]" in out.stdout
