"""The sans-I/O core: JSON-RPC encoding/parsing (the HTTP codec is tested in tests/core)."""

from __future__ import annotations

import contextlib
import json
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.command import CommandError, NumpyEncoder
from sciwire.command._protocol import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    ProcInfo,
    RpcFault,
    decode_call,
    describe_result,
    encode_error,
    encode_request,
    encode_result,
    format_server_error,
    http_error,
    make_params,
    parse_describe,
    parse_response,
)
from sciwire.errors import RemoteError
from tests.helpers import examples

# -- requests -----------------------------------------------------------------------


def test_params_positional_and_keyword() -> None:
    assert make_params((1, "a"), {}) == [1, "a"]
    assert make_params((), {"x": 1}) == {"x": 1}
    assert make_params((), {}) == []


def test_mixing_positional_and_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="either positional or keyword"):
        make_params((1,), {"x": 2})


def test_request_shape_and_uuid4_id() -> None:
    body = json.loads(encode_request("get_job", ["P1", "J1"]))
    assert body["jsonrpc"] == "2.0"
    assert body["method"] == "get_job"
    assert body["params"] == ["P1", "J1"]
    assert isinstance(body["id"], str)
    assert uuid.UUID(body["id"]).version == 4
    assert uuid.UUID(body["id"]).variant == uuid.RFC_4122
    assert str(uuid.UUID(body["id"])) == body["id"]
    again = json.loads(encode_request("get_job", ["P1", "J1"]))
    assert again["id"] != body["id"]


def test_new_ids_are_uuid4_and_distinct() -> None:
    from sciwire.command._protocol import new_id

    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)


def test_request_with_numpy_encoder() -> None:
    params = {"a": np.arange(3), "s": np.float32(1.5), "i": np.int64(7)}
    body = json.loads(encode_request("m", params, cls=NumpyEncoder))
    assert body["params"] == {"a": [0, 1, 2], "s": 1.5, "i": 7}


def test_numpy_encoder_still_refuses_unknown_objects() -> None:
    with pytest.raises(TypeError):
        encode_request("m", [object()], cls=NumpyEncoder)


# -- responses ----------------------------------------------------------------------


def test_result_alone_is_accepted() -> None:
    assert parse_response(b'{"result": {"hello": "world"}}', "hello_world", []) == {
        "hello": "world"
    }
    assert parse_response(b'{"result": null}', "m", []) is None


def test_error_with_name_message_code_and_traceback() -> None:
    body = json.dumps(
        {
            "error": {
                "name": "ValueError",
                "message": "bad job",
                "code": -32000,
                "data": {"traceback": "Traceback...\nValueError: bad job"},
            }
        }
    )
    with pytest.raises(CommandError) as info:
        parse_response(body.encode(), "get_job", ["P1"], "http://h:1")
    err = info.value
    assert isinstance(err, RemoteError)
    assert err.code == -32000
    assert err.data == {"traceback": "Traceback...\nValueError: bad job"}
    text = str(err)
    for part in ("ValueError", "get_job", "['P1']", "bad job", "Traceback...", "http://h:1"):
        assert part in text


def test_jsonrpc2_error_without_name() -> None:
    body = b'{"jsonrpc": "2.0", "id": "1", "error": {"code": -32601, "message": "no such"}}'
    with pytest.raises(CommandError, match="Encountered Error") as info:
        parse_response(body, "nope", [])
    assert info.value.code == -32601


@pytest.mark.parametrize("body", [b"", None, b"null", b"{}", b"[]", b"0"])
def test_empty_reply(body: bytes | None) -> None:
    with pytest.raises(CommandError, match="JSON response not received"):
        parse_response(body, "m", [])


@pytest.mark.parametrize("body", [b"{", b"<html>", b'"text"', b"[1]", b'{"id": 1}', b"\xff\xfe"])
def test_malformed_reply(body: bytes) -> None:
    with pytest.raises(CommandError):
        parse_response(body, "m", [])


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=200))
def test_parse_response_never_raises_anything_else_bytes(body: bytes) -> None:
    with contextlib.suppress(CommandError):
        parse_response(body, "m", [])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=examples(300), deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["result", "error", "id", "jsonrpc", "name"]), json_values, max_size=4
    )
)
def test_parse_response_never_raises_anything_else_json(doc: dict[str, object]) -> None:
    with contextlib.suppress(CommandError):
        parse_response(json.dumps(doc).encode(), "m", [])


def test_format_server_error_shapes() -> None:
    assert format_server_error({"message": "m"}) == "m"
    assert format_server_error({"message": "m", "data": {"traceback": "tb"}}) == "m\ntb"
    assert format_server_error({"message": "m", "data": [1]}) == "m\n[1]"
    assert format_server_error("plain") == "plain"


def test_http_error_parses_json_body() -> None:
    err = http_error(
        404, "Not Found", b'{"detail": "gone"}', "application/json; charset=utf-8", "u"
    )
    assert err.code == 404
    assert err.data == {"detail": "gone"}
    assert "HTTP Error 404 Not Found" in str(err)
    raw = http_error(500, "Oops", b"<html>", "text/html", "u")
    assert raw.data == b"<html>"


# -- describe -----------------------------------------------------------------------


def test_describe_roundtrip() -> None:
    procs = [ProcInfo("get_job", ("project_uid", "job_uid"), "Get a job.\nMore."), ProcInfo("x")]
    parsed = parse_describe(json.loads(json.dumps(describe_result("core", procs))))
    assert parsed == procs


def test_describe_accepts_names_only_and_string_params() -> None:
    parsed = parse_describe({"procs": [{"name": "a"}, {"name": "b", "params": ["x", 3]}]})
    assert parsed == [ProcInfo("a"), ProcInfo("b", ("x",))]


@pytest.mark.parametrize(
    "bad", [None, [], {"procs": None}, {"procs": [{"params": []}]}, {"procs": [1]}]
)
def test_describe_rejects_bad_shapes(bad: object) -> None:
    with pytest.raises(CommandError):
        parse_describe(bad)


# -- server side --------------------------------------------------------------------


def test_decode_call_forms() -> None:
    c = decode_call(b'{"method": "m", "params": [1], "id": "a"}')
    assert (c.method, c.args, c.kwargs, c.request_id) == ("m", [1], {}, "a")
    c = decode_call(b'{"method": "m", "params": {"x": 1}, "id": 2}')
    assert (c.args, c.kwargs) == ([], {"x": 1})
    assert decode_call(b'{"method": "m"}').args == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", PARSE_ERROR),
        (b"[]", INVALID_REQUEST),
        (b'{"params": []}', INVALID_REQUEST),
        (b'{"method": "m", "params": 3, "id": 9}', INVALID_PARAMS),
    ],
)
def test_decode_call_faults(body: bytes, code: int) -> None:
    with pytest.raises(RpcFault) as info:
        decode_call(body)
    assert info.value.code == code


@settings(max_examples=examples(200), deadline=None)
@given(st.binary(max_size=100))
def test_decode_call_only_raises_rpcfault(body: bytes) -> None:
    with contextlib.suppress(RpcFault):
        decode_call(body)


def test_reply_encoders_parse_back() -> None:
    assert parse_response(encode_result("1", [1, 2]), "m", []) == [1, 2]
    with pytest.raises(CommandError) as info:
        parse_response(encode_error("1", -32000, "KeyError", "'x'", "TB"), "m", [])
    assert info.value.code == -32000
    assert info.value.data == {"traceback": "TB"}
