"""The per-call shortcuts of the blocking client give the general code's results: URL
builders with their query written inline, ServerConfig.require with the usual check
inline, and decode_json."""

from __future__ import annotations

import itertools
import json
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.drms import DrmsOperationNotSupported, ServerConfig
from sciwire.drms import _protocol as P
from sciwire.drms.config import _OPERATIONS, get_server
from sciwire.errors import RemoteProtocolError
from tests.helpers import examples

JSOC = get_server("jsoc")


@settings(max_examples=examples(300), deadline=None)
@given(st.text())
def test_single_parameter_urls_are_urlencode_byte_for_byte(ds: str) -> None:
    info = JSOC.url_jsoc_info
    fetch = JSOC.url_jsoc_fetch
    assert P.rs_summary_url(JSOC, ds) == info + "?" + urlencode({"op": "rs_summary", "ds": ds})
    assert P.series_struct_url(JSOC, ds) == info + "?" + urlencode(
        {"op": "series_struct", "ds": ds}
    )
    assert P.exp_status_url(JSOC, ds) == fetch + "?" + urlencode(
        {"op": "exp_status", "requestid": ds}
    )


def _reference_require(cfg: ServerConfig, op: str, url_key: str) -> str | None:
    url = cfg.to_dict().get(url_key)
    if url is None or (op in _OPERATIONS and not cfg.check_supported(op)):
        return None
    return str(url)


_CGI = ["cgi_jsoc_info", "cgi_jsoc_fetch", "cgi_show_series", "cgi_check_address"]
_KEYS = ["url_jsoc_info", "url_jsoc_fetch", "url_show_series", "url_check_address"]


@pytest.mark.parametrize("present", list(itertools.product([False, True], repeat=4)))
def test_require_matches_check_supported(present: tuple[bool, ...]) -> None:
    entries = {"name": "t", **{k: "x" for k, on in zip(_CGI, present, strict=True) if on}}
    entries.update({k: f"http://h/{k}" for k in _KEYS[:3]})
    cfg = ServerConfig(entries)
    for op in [*_OPERATIONS, "other"]:
        for key in _KEYS:
            want = _reference_require(cfg, op, key)
            if want is None:
                with pytest.raises(DrmsOperationNotSupported):
                    cfg.require(op, key)
            else:
                assert cfg.require(op, key) == want


@pytest.mark.parametrize(
    "body, encoding",
    [
        (b'{"count": 1}', "latin1"),
        (b'  {"a": "\xe9"} \n', "latin1"),
        ('{"a": "\u00e9"}'.encode(), "utf-8"),
    ],
)
def test_decode_json_matches_json_loads(body: bytes, encoding: str) -> None:
    assert P.decode_json(body, encoding) == json.loads(body.decode(encoding))


@pytest.mark.parametrize(
    "body, encoding",
    [(b"[1]", "latin1"), (b"{", "latin1"), (b'{"a": 1} x', "latin1"), (b"{}", "nope")],
)
def test_decode_json_errors(body: bytes, encoding: str) -> None:
    with pytest.raises(RemoteProtocolError):
        P.decode_json(body, encoding)
