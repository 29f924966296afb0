"""The sans-I/O SAMP core: data model, mtypes, messages, lockfile, XML-RPC codec."""

from __future__ import annotations

import contextlib
import os
import stat
import xmlrpc.client
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.errors import ProtocolError, RemoteError, SciwireError
from sciwire.samp import _hublock as L
from sciwire.samp import _protocol as P
from sciwire.samp.errors import (
    SAMPClientError,
    SAMPDataError,
    SAMPHubError,
    SAMPProxyError,
    SAMPWarning,
)
from tests.helpers import examples

# -- exceptions -----------------------------------------------------------------------


def test_exception_tree_keeps_astropy_names_and_sciwire_roots() -> None:
    assert issubclass(SAMPHubError, SciwireError)
    assert issubclass(SAMPClientError, SciwireError)
    assert issubclass(SAMPProxyError, RemoteError)
    assert issubclass(SAMPProxyError, xmlrpc.client.Fault)
    assert issubclass(SAMPWarning, UserWarning)
    assert issubclass(SAMPDataError, ProtocolError)
    assert issubclass(SAMPDataError, ValueError)
    err = SAMPProxyError(5, "no such key")
    assert (err.faultCode, err.faultString) == (5, "no such key")
    assert (err.code, err.message) == (5, "no such key")
    assert str(err) == "no such key"


# -- data model -------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "abc", "tab\there", "a\r\nb", "~!@#$%^&*()\x7f"])
def test_legal_strings(text: str) -> None:
    assert P.is_samp_string(text)
    assert P.check_value(text) == text


@pytest.mark.parametrize("text", ["\x00", "bell\x07", "caf\u00e9", "\x1b[0m", "\u2603"])
def test_illegal_characters_are_refused(text: str) -> None:
    assert not P.is_samp_string(text)
    with pytest.raises(SAMPDataError, match="illegal character"):
        P.check_value({"k": [text]})


def test_check_value_accepts_nested_lists_and_maps() -> None:
    value = {"a": ["1", {"b": []}], "c": {}}
    assert P.check_value(value) is value


@pytest.mark.parametrize("bad", [1, 1.5, True, None, b"x", object()])
def test_check_value_refuses_other_types(bad: object) -> None:
    with pytest.raises(SAMPDataError, match="not a SAMP type"):
        P.check_value({"k": bad})


def test_check_value_refuses_non_string_keys() -> None:
    with pytest.raises(SAMPDataError, match="map key"):
        P.check_value({1: "x"})


def test_coerce_turns_numbers_and_bools_into_strings() -> None:
    assert P.check_value({"n": 3, "f": 0.5, "t": True, "l": (False, 2)}, coerce=True) == {
        "n": "3",
        "f": "0.5",
        "t": "1",
        "l": ["0", "2"],
    }


def test_stringify() -> None:
    assert P.stringify({"a": 1, "b": [True, 2.5, "x"], 3: "k"}) == {
        "a": "1",
        "b": ["1", "2.5", "x"],
        "3": "k",
    }
    with pytest.raises(SAMPDataError):
        P.stringify(float("nan"))
    with pytest.raises(SAMPDataError):
        P.stringify({"a": None})


@pytest.mark.parametrize(
    "mtype", ["samp.app.ping", "table.load.votable", "x-a_b.c1", "coord.pointAt.sky"]
)
def test_good_mtypes(mtype: str) -> None:
    assert P.check_mtype(mtype) == mtype


@pytest.mark.parametrize("mtype", ["", ".a", "a.", "a..b", "a b", "a.*", "*", "a/b", 5])
def test_bad_mtypes(mtype: object) -> None:
    with pytest.raises(SAMPDataError):
        P.check_mtype(mtype)


def test_strict_mtype_refuses_upper_case() -> None:
    with pytest.raises(SAMPDataError):
        P.check_mtype("coord.pointAt.sky", strict=True)
    assert P.check_mtype("coord.point-at.sky", strict=True)


@pytest.mark.parametrize("pattern", ["*", "samp.*", "samp.app.*", "samp.app.ping"])
def test_good_patterns(pattern: str) -> None:
    assert P.check_mtype_pattern(pattern) == pattern


@pytest.mark.parametrize("pattern", ["", "*.samp", "samp.*.ping", "samp*", ".*", 3])
def test_bad_patterns(pattern: object) -> None:
    with pytest.raises(SAMPDataError):
        P.check_mtype_pattern(pattern)


def test_safe_mtypes_and_mostly_harmless_annotation() -> None:
    assert P.is_safe_mtype("table.load.votable")
    assert P.is_safe_mtype("samp.app.ping")
    assert not P.is_safe_mtype("script.aladin.send")
    assert P.is_safe_mtype("script.aladin.send", {"samp.mostly-harmless": "1"})
    assert P.is_safe_mtype("script.x", {"x-samp.mostly-harmless": "1"})
    assert not P.is_safe_mtype("table.load.votable", {"samp.mostly-harmless": "0"})


# -- messages and responses ---------------------------------------------------------------


def test_builders() -> None:
    msg = P.make_message("a.b", {"x": "1"}, **{"test.wait": "5"})
    assert msg == {"samp.mtype": "a.b", "samp.params": {"x": "1"}, "test.wait": "5"}
    assert P.make_ok_response() == {"samp.status": "samp.ok", "samp.result": {}}
    err = P.make_error_response("boom", usertxt="oops", code="7", extra="y")
    assert err["samp.status"] == P.SAMP_STATUS_ERROR
    assert err["samp.error"] == {
        "samp.errortxt": "boom",
        "samp.usertxt": "oops",
        "samp.code": "7",
        "extra": "y",
    }
    assert (P.SAMP_STATUS_OK, P.SAMP_STATUS_WARNING) == ("samp.ok", "samp.warning")


def test_check_message() -> None:
    assert P.check_message({"samp.mtype": "a.b"}) == {"samp.mtype": "a.b"}
    assert P.check_message({"samp.mtype": "a", "samp.params": {"n": 1}}, coerce=True) == {
        "samp.mtype": "a",
        "samp.params": {"n": "1"},
    }
    for bad in ("x", {"samp.params": {}}, {"samp.mtype": "a", "samp.params": []}):
        with pytest.raises(SAMPDataError):
            P.check_message(bad)


def test_check_response() -> None:
    ok = P.make_ok_response({"a": "b"})
    assert P.check_response(ok) == ok
    for bad in ([], {}, {"samp.status": "fine"}, {"samp.status": "samp.ok", "samp.result": "x"}):
        with pytest.raises(SAMPDataError):
            P.check_response(bad)


# -- lockfile -------------------------------------------------------------------------------


def test_lockfile_values_may_contain_equals() -> None:
    text = "# a comment\n\nsamp.secret=ab=cd==\nsamp.hub.xmlrpc.url=http://h:1/x?a=b\nnonsense\n"
    assert P.parse_lockfile(text) == {
        "samp.secret": "ab=cd==",
        "samp.hub.xmlrpc.url": "http://h:1/x?a=b",
    }


def test_lockfile_round_trip_and_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    fields = {"samp.secret": "s=1", "samp.hub.xmlrpc.url": "http://127.0.0.1:1/", "x.y": ""}
    L.write_lockfile(path, fields, "written by a test")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("# written by a test\n")
    assert L.read_lockfile(path) == fields
    assert L.read_lockfile(path.as_uri()) == fields
    L.write_lockfile(path, {"samp.secret": "new"})  # replaces atomically, still 0600
    assert L.read_lockfile(path) == {"samp.secret": "new"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["lock"]  # no temporary left behind


def test_lockfile_refuses_bad_keys_and_values(tmp_path: Path) -> None:
    with pytest.raises(SAMPDataError):
        P.format_lockfile({"bad key": "v"})
    with pytest.raises(SAMPDataError):
        P.format_lockfile({"k": "line\nbreak"})
    with pytest.raises(SAMPDataError):
        L.write_lockfile(tmp_path / "lock", {"k": "caf\u00e9"})
    assert not (tmp_path / "lock").exists()


def test_locate_lockfile(tmp_path: Path) -> None:
    lock = tmp_path / "elsewhere"
    assert L.locate_lockfile({"SAMP_HUB": f"std-lockurl:{lock.as_uri()}"}) == str(lock)
    assert L.locate_lockfile({"SAMP_HUB": "std-lockurl:http://h/lock"}) == "http://h/lock"
    assert L.locate_lockfile({"HOME": str(tmp_path)}) == str(tmp_path / ".samp")
    assert L.locate_lockfile({}, home=tmp_path) == str(tmp_path / ".samp")
    assert P.lockurl_to_path("http://x/") is None
    assert P.lockurl_to_path("file://otherhost/x") is None


# -- XML-RPC codec ------------------------------------------------------------------------------


def test_call_round_trip() -> None:
    body = P.encode_call("samp.hub.notify", ["k", "c1", {"samp.mtype": "a"}])
    assert P.decode_call(body) == ("samp.hub.notify", ("k", "c1", {"samp.mtype": "a"}))


def test_response_and_fault_round_trip() -> None:
    assert P.decode_response(P.encode_response({"a": ["b"]})) == {"a": ["b"]}
    with pytest.raises(SAMPProxyError) as info:
        P.decode_response(P.encode_fault(3, "bad key"))
    assert info.value.faultCode == 3
    assert info.value.faultString == "bad key"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<methodCall><methodName>x</methodName><params>",
        b"<?xml version='1.0'?><methodResponse><params><param><value>x</value></param>"
        b"</params></methodResponse>",
        b"<methodCall><methodName>x</methodName><params><param><value><int>zz</int></value>"
        b"</param></params></methodCall>",
    ],
)
def test_decode_call_refuses_malformed_bodies(body: bytes) -> None:
    with pytest.raises(SAMPDataError):
        P.decode_call(body)


def test_decode_refuses_doctype_and_entities() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        b"<methodCall><methodName>&lol2;</methodName></methodCall>"
    )
    with pytest.raises(SAMPDataError, match="DOCTYPE"):
        P.decode_call(bomb)
    with pytest.raises(SAMPDataError, match="DOCTYPE"):
        P.decode_response(bomb)


def test_decode_refuses_huge_bodies() -> None:
    body = P.encode_call("samp.hub.ping", ["x" * 2000])
    with pytest.raises(SAMPDataError, match="exceeds"):
        P.decode_call(body, max_size=1000)


def test_encode_refuses_unencodable_values() -> None:
    with pytest.raises(SAMPDataError):
        P.encode_call("m", [None])
    with pytest.raises(SAMPDataError):
        P.encode_response(object())


_samp_text = st.text(alphabet=st.sampled_from([chr(c) for c in range(0x20, 0x7F)] + ["\t", "\n"]))
_samp_values = st.recursive(
    _samp_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_samp_text, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=examples(150), deadline=None)
@given(_samp_values)
def test_samp_values_survive_the_codec(value: object) -> None:
    method, params = P.decode_call(P.encode_call("samp.hub.x", [value]))
    assert method == "samp.hub.x"
    assert P.check_value(params[0]) == value


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=400))
def test_decode_call_never_raises_anything_but_data_errors(body: bytes) -> None:
    with contextlib.suppress(SAMPDataError):
        P.decode_call(body)


@settings(max_examples=examples(200), deadline=None)
@given(st.text(max_size=300))
def test_decode_call_on_mangled_xmlrpc(noise: str) -> None:
    good = P.encode_call("samp.hub.ping", ["abc", {"k": ["v"]}]).decode()
    cut = len(noise) % max(1, len(good))
    body = (good[:cut] + noise + good[cut:]).encode("utf-8", "replace")
    try:
        method, params = P.decode_call(body)
    except SAMPDataError:
        return
    assert isinstance(method, str)
    assert isinstance(params, tuple)


def test_lockfile_write_never_world_readable_even_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        L.write_lockfile(tmp_path / "lock", {"samp.secret": "x"})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "lock").stat().st_mode) == 0o600


def test_faults_escape_characters_xml_cannot_carry() -> None:
    with pytest.raises(SAMPProxyError) as info:
        P.decode_response(P.encode_fault(1, "bad \x00 input \u00e9"))
    assert info.value.faultString == "bad \\x00 input \\xe9"
    assert P.samp_text("plain\ttext\n") == "plain\ttext\n"


def test_client_env_response(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIWIRE_SAMP_ENV_TEST", "here")
    monkeypatch.delenv("SCIWIRE_SAMP_ENV_UNSET", raising=False)
    assert P.client_env_response("SCIWIRE_SAMP_ENV_TEST") == {
        "samp.status": "samp.ok",
        "samp.result": {"value": "here"},
    }
    missing = {
        "samp.status": "samp.warning",
        "samp.result": {"value": ""},
        "samp.error": {"samp.errortxt": "Environment variable not defined."},
    }
    assert P.client_env_response("SCIWIRE_SAMP_ENV_UNSET") == missing
    assert P.client_env_response(None) == missing
