"""The per-call fast paths give the generic code's bytes and values: CallCore's cached
request body head, the server's reply assembly, and the JSON reader."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.command._calls import CallCore
from sciwire.command._errors import CommandError
from sciwire.command._protocol import (
    NumpyEncoder,
    _loads,
    decode_call,
    encode_request,
    encode_result,
    make_params,
    parse_response,
)
from sciwire.command._server import CommandServer
from tests.helpers import examples

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


def _core(cls: type[json.JSONEncoder] | None) -> CallCore:
    return CallCore("command", "127.0.0.1", 39002, "", cls, 300, {}, 1, 0.0)


def _body(core: CallCore, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    data, _ = core.request(method, args, kwargs)
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.endswith(b"Content-Length: %d" % len(body))
    return body


def _expected(core: CallCore, method: str, body: bytes, args: Any, kwargs: Any) -> bytes:
    rid = json.loads(body)["id"]
    return encode_request(method, make_params(args, kwargs), request_id=rid, encoder=core._json)


@pytest.mark.parametrize("cls", [None, json.JSONEncoder, NumpyEncoder])
@settings(max_examples=examples(60), deadline=None)
@given(method=st.text(min_size=1), args=st.lists(_json, max_size=3), use_kwargs=st.booleans())
def test_request_body_matches_the_generic_encoder(
    cls: type[json.JSONEncoder] | None, method: str, args: list[Any], use_kwargs: bool
) -> None:
    core = _core(cls)
    kwargs = {f"k{i}": v for i, v in enumerate(args)} if use_kwargs else {}
    pos = () if use_kwargs else tuple(args)
    for _ in range(2):  # the head is cached after the first call
        body = _body(core, method, pos, kwargs)
        assert body == _expected(core, method, body, pos, kwargs)


def test_numpy_params_and_custom_encoders() -> None:
    core = _core(None)
    body = _body(core, "m", (np.arange(3), np.float32(1.5)), {})
    assert json.loads(body)["params"] == [[0, 1, 2], 1.5]

    class Compact(json.JSONEncoder):
        def __init__(self) -> None:
            super().__init__(separators=(",", ":"))

    compact = _core(Compact)
    body = _body(compact, "m", (1, 2), {})
    assert body.startswith(b'{"jsonrpc":"2.0","method":"m","params":[1,2],"id":')


def test_unencodable_params_raise_type_error() -> None:
    with pytest.raises(TypeError):
        _body(_core(None), "m", (object(),), {})


def test_head_cache_is_bounded() -> None:
    core = _core(None)
    for i in range(1100):
        _body(core, f"m{i}", (), {})
    assert core._heads is not None and len(core._heads) == 1024


@settings(max_examples=examples(80), deadline=None)
@given(rid=st.none() | st.text() | st.integers(), result=_json)
def test_server_reply_matches_encode_result(rid: Any, result: Any) -> None:
    server = CommandServer(port=0)
    server.expose(lambda: result, name="f")
    body = json.dumps({"jsonrpc": "2.0", "method": "f", "params": [], "id": rid}).encode()
    reply = server.dispatch(body)
    assert reply == encode_result(rid, result, encoder=server._json)


def test_server_reply_errors_and_custom_encoder() -> None:
    server = CommandServer(port=0)
    server.expose(lambda: {1, 2}, name="bad")
    reply = server.dispatch(b'{"jsonrpc": "2.0", "method": "bad", "params": [], "id": 7}')
    assert isinstance(reply, bytes)
    assert json.loads(reply)["error"]["message"].startswith("result not JSON-serialisable")

    class Compact(json.JSONEncoder):
        def __init__(self) -> None:
            super().__init__(separators=(",", ":"))

    compact = CommandServer(port=0, cls=Compact)
    compact.expose(lambda: [1, 2], name="f")
    reply = compact.dispatch(b'{"method": "f", "id": 1}')
    assert reply == b'{"jsonrpc":"2.0","id":1,"result":[1,2]}'


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": 1}',
        '{"a": "\u00e9"}'.encode(),
        '{"a": 1}'.encode("utf-16-le"),
        '{"a": 1}'.encode("utf-16"),
        '{"a": 1}'.encode("utf-32-le"),
        b"[1, 2]",
        '{"a": 1}',
    ],
)
def test_loads_matches_json_loads(data: bytes | str) -> None:
    assert _loads(data) == json.loads(data)


@pytest.mark.parametrize("data", [b"{\xff}", b"{", b'{"a": }'])
def test_loads_raises_as_json_loads(data: bytes) -> None:
    with pytest.raises(ValueError) as ours:
        _loads(data)
    with pytest.raises(ValueError) as theirs:
        json.loads(data)
    assert type(ours.value) is type(theirs.value)


def test_decode_call_reads_utf16_bodies() -> None:
    call = decode_call(json.dumps({"method": "m", "params": [1], "id": 2}).encode("utf-16"))
    assert (call.method, call.args, call.request_id) == ("m", [1], 2)


def test_request_ids_are_fresh_uuid4s() -> None:
    core = _core(None)
    ids = [json.loads(_body(core, "m", (), {}))["id"] for _ in range(50)]
    assert len(set(ids)) == 50
    for rid in ids:
        parsed = uuid.UUID(rid)
        assert str(parsed) == rid and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def _outcome(body: bytes) -> tuple[str, Any]:
    try:
        return "result", parse_response(body, "m", [1], "http://x")
    except CommandError as exc:
        return type(exc).__name__, (exc.code, str(exc).split("\n")[0])


_replies = st.one_of(
    st.builds(
        lambda d, tail: json.dumps(d).encode() + tail,
        st.dictionaries(
            st.sampled_from(["result", "error", "id", "jsonrpc"]),
            st.none() | st.integers() | st.text(max_size=5) | st.just({"message": "m"}),
            max_size=4,
        ),
        st.sampled_from([b"", b" ", b"\n", b"x", b"}", b" {}"]),
    ),
    st.binary(max_size=30).map(lambda b: b"{" + b),
)


@settings(max_examples=examples(300), deadline=None)
@given(_replies)
def test_reply_fast_path_agrees_with_the_general_checks(body: bytes) -> None:
    # a leading space keeps the same JSON but skips the one-scan fast path
    assert _outcome(body) == _outcome(b" " + body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"result": 1, "error": null}',
        b'{"result": null}',
        b'{"error": {"message": "boom", "code": 3}, "result": 1}',
        b'{"error": "text"}',
        b"{}",
        b'{"id": 1}',
        b'{"result": 1} trailing',
        b'{"result": 1}\r\n',
        '{"result": "\u00e9"}'.encode(),
        b'{"result": "\xff"}',
        b"[1]",
        b"",
    ],
)
def test_reply_table(body: bytes) -> None:
    if body:
        assert _outcome(body) == _outcome(b" " + body)
    else:
        assert _outcome(body)[0] == "CommandError"


def test_server_reply_encoder_is_reused_safely_after_failures() -> None:
    # The reply encoder is built once per thread; a failed encode leaves container ids
    # in its circular-reference markers, so it must be rebuilt, not reused.
    server = CommandServer(port=0)
    box: dict[str, Any] = {"x": {1, 2}}  # unencodable (a set) until fixed below
    loop: list[Any] = [1]
    loop.append(loop)
    server.expose(lambda: {"outer": [box]}, name="box")
    server.expose(lambda: loop, name="loop")
    server.expose(lambda: {"f": float("nan"), "g": np.float32(1.5), "a": np.arange(3)}, name="np")
    call = b'{"jsonrpc": "2.0", "method": "%s", "params": [], "id": "r"}'
    for name in (b"box", b"loop"):
        reply = server.dispatch(call % name)
        assert isinstance(reply, bytes) and b"result not JSON-serialisable" in reply
    box["x"] = [1, 2]
    loop.pop()
    for name, result in [(b"box", {"outer": [box]}), (b"loop", loop), (b"np", None)]:
        reply = server.dispatch(call % name)
        want = server._json.encode(result) if result is not None else None
        assert isinstance(reply, bytes) and b"error" not in reply
        if want is not None:
            assert json.loads(reply)["result"] == json.loads(want)
            assert reply == encode_result("r", result, encoder=server._json)


def test_server_reply_from_another_thread() -> None:
    server = CommandServer(port=0)
    server.expose(lambda: {"hello": "world"}, name="hello_world")
    body = b'{"jsonrpc": "2.0", "method": "hello_world", "params": [], "id": 3}'
    here = server.dispatch(body)
    with ThreadPoolExecutor(2) as pool:
        there = list(pool.map(lambda _: server.dispatch(body), range(4)))
    assert there == [here] * 4 == [b'{"jsonrpc": "2.0", "id": 3, "result": {"hello": "world"}}'] * 4
