"""The sans-I/O SignalR core: framing, message types, handshake, timers, negotiate."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sciwire.errors import LocalProtocolError, RemoteProtocolError, Timeout
from sciwire.ifcb._signalr import (
    PING_RECORD,
    RS,
    CancelInvocation,
    Close,
    Completion,
    HandshakeError,
    HandshakeRequest,
    HandshakeResponse,
    Invocation,
    NegotiateError,
    Ping,
    RecordBuffer,
    ServerTimeout,
    SignalRConnection,
    StreamInvocation,
    StreamItem,
    decode_message,
    encode_message,
    negotiate_response,
    parse_negotiate,
    split_invocation,
)


def _receive(conn: SignalRConnection, data: str | bytes, now: float) -> list[Any]:
    """``receive_frame`` as messages: a canonical invocation read in place becomes its
    Invocation, and a trailing peer error is raised (what the old door did)."""
    items = conn.receive_frame(data, now)
    if items and isinstance(items[-1], Exception):
        raise items[-1]
    return [Invocation(*item) if type(item) is tuple else item for item in items]


ALL_MESSAGES = [
    Invocation("messageRelayed", ["111", "host", 1, "syringetrack:1.5"]),
    Invocation("startAsClient", ["111"], "7"),
    Invocation("upload", [], "8", ["s1"], {"k": "v"}),
    StreamItem("3", {"x": 1}),
    Completion("4", 42, None, True),
    Completion("5", None, "boom"),
    Completion("6", None, None, True),
    StreamInvocation("9", "counter", [10], ["s2"]),
    CancelInvocation("9"),
    Ping(),
    Close(),
    Close("bad things", True),
]


@pytest.mark.parametrize("msg", ALL_MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_type_round_trips(msg: object) -> None:
    record = encode_message(msg)  # type: ignore[arg-type]
    assert record.endswith(RS) and record.count(RS) == 1
    assert decode_message(record[:-1]) == msg


def test_wire_shapes_follow_the_spec() -> None:
    assert json.loads(encode_message(Invocation("t", [1]))[:-1]) == {
        "type": 1,
        "target": "t",
        "arguments": [1],
    }
    assert json.loads(encode_message(Completion("2", None, "e"))[:-1]) == {
        "type": 3,
        "invocationId": "2",
        "error": "e",
    }
    assert encode_message(Ping()) == PING_RECORD == '{"type":6}\x1e'
    assert json.loads(encode_message(Close("x", False))[:-1]) == {
        "type": 7,
        "error": "x",
        "allowReconnect": False,
    }


def test_ack_sequence_and_unknown_types_are_ignored() -> None:
    assert decode_message('{"type":8,"sequenceId":3}') is None
    assert decode_message('{"type":9,"sequenceId":3}') is None
    assert decode_message('{"type":99}') is None


@pytest.mark.parametrize(
    "record",
    [
        "not json",
        "[1,2]",
        '{"no":"type"}',
        '{"type":"1"}',
        '{"type":1,"arguments":[]}',
        '{"type":1,"target":"t","arguments":{}}',
        '{"type":3}',
        '{"type":1,"target":5}',
        '{"type":7,"error":5}',
    ],
)
def test_malformed_records_raise_remote_protocol_error(record: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_message(record)


def test_record_buffer_byte_at_a_time_and_several_per_frame() -> None:
    records = [encode_message(m) for m in ALL_MESSAGES]
    wire = "".join(records).encode() + "é✓".encode() + b'{"type":6}\x1e'
    buf = RecordBuffer()
    out: list[str] = []
    for i in range(len(wire)):
        out.extend(buf.feed(wire[i : i + 1]))
    assert len(out) == len(records) + 1
    assert [decode_message(r) for r in out[:-1]] == ALL_MESSAGES
    assert out[-1] == 'é✓{"type":6}'
    assert buf.pending == 0
    # the same as one text frame
    assert RecordBuffer().feed("".join(records)) == [r[:-1] for r in records]


def test_record_buffer_rejects_bad_utf8() -> None:
    with pytest.raises(RemoteProtocolError):
        RecordBuffer().feed(b"\xff\xfe\x1e")


@given(st.lists(st.sampled_from(ALL_MESSAGES), max_size=12), st.data())
def test_framing_any_split_gives_the_same_messages(msgs: list[object], data: st.DataObject) -> None:
    wire = "".join(encode_message(m) for m in msgs).encode()  # type: ignore[arg-type]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    buf = RecordBuffer()
    out: list[str] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        out.extend(buf.feed(wire[start:cut]))
        start = cut
    assert [decode_message(r) for r in out] == msgs


@given(st.binary(max_size=200))
def test_framing_garbage_never_crashes(blob: bytes) -> None:
    conn = SignalRConnection("server")
    try:
        _receive(conn, blob, 0.0)
        _receive(conn, b"\x1e", 0.0)
    except RemoteProtocolError:
        pass


def _open_pair() -> tuple[SignalRConnection, SignalRConnection]:
    client, server = SignalRConnection("client"), SignalRConnection("server")
    request = client.handshake_request(0.0)
    assert _receive(server, request, 0.0) == [HandshakeRequest("json", 1)]
    reply = server.accept_handshake(0.0)
    assert _receive(client, reply, 0.0) == [HandshakeResponse(None, {})]
    assert client.state == server.state == "open"
    return client, server


def test_handshake_reply_may_share_a_frame_with_messages() -> None:
    client = SignalRConnection("client")
    client.handshake_request(0.0)
    frame = "{}" + RS + encode_message(Invocation("heartbeat", [])) + PING_RECORD
    assert _receive(client, frame, 1.0) == [
        HandshakeResponse(None, {}),
        Invocation("heartbeat", []),
        Ping(),
    ]


def test_handshake_error_reply_raises() -> None:
    client = SignalRConnection("client")
    client.handshake_request(0.0)
    with pytest.raises(HandshakeError, match="nope"):
        _receive(client, '{"error":"nope"}' + RS, 0.0)
    assert client.state == "closed"


def test_server_sees_version_zero_and_can_reject() -> None:
    server = SignalRConnection("server")
    assert _receive(server, '{"protocol":"json","version":0}\x1e', 0.0) == [
        HandshakeRequest("json", 0)
    ]
    assert json.loads(server.reject_handshake("no", 0.0)[:-1]) == {"error": "no"}
    assert server.state == "closed"


def test_invoke_matches_completion_and_send_does_not_expect_one() -> None:
    client, server = _open_pair()
    record = client.send_invocation("relayMessageToHost", ["1", "refresh"], 1.0)
    assert _receive(server, record, 1.0) == [Invocation("relayMessageToHost", ["1", "refresh"])]
    invocation_id, record = client.invoke("startAsClient", ["1"], 1.0)
    [call] = _receive(server, record, 1.0)
    assert isinstance(call, Invocation) and call.invocation_id == invocation_id
    assert client.pending == {invocation_id}
    reply = server.send(Completion(invocation_id, "ok", None, True), 1.0)
    assert _receive(client, reply, 1.0) == [Completion(invocation_id, "ok", None, True)]
    assert client.pending == set()
    # a Completion nobody waits for is dropped and counted
    assert _receive(client, server.send(Completion("999", 1, None, True), 1.0), 1.0) == []
    assert client.dropped == 1


def test_keep_alive_ping_after_idle_interval() -> None:
    client, _ = _open_pair()
    assert client.next_deadline() == 15.0
    assert client.tick(14.9) == ""
    assert client.tick(15.0) == PING_RECORD
    assert client.tick(20.0) == ""
    _receive(client, PING_RECORD, 25.0)
    client.send_invocation("x", [], 25.0)
    assert client.tick(39.9) == ""
    assert client.tick(40.0) == PING_RECORD


def test_server_timeout_after_silence_and_configurable() -> None:
    client, _ = _open_pair()
    _receive(client, PING_RECORD, 10.0)
    client.tick(39.0)
    with pytest.raises(ServerTimeout):
        client.tick(40.0)
    assert client.state == "closed"
    fast = SignalRConnection("client", keep_alive_interval=0.5, server_timeout=1.0)
    fast.handshake_request(0.0)
    _receive(fast, "{}\x1e", 0.0)
    assert fast.tick(0.5) == PING_RECORD
    with pytest.raises(Timeout):
        fast.tick(1.0)


def test_handshake_timeout() -> None:
    server = SignalRConnection("server", handshake_timeout=2.0)
    server.tick(1.9)
    with pytest.raises(Timeout):
        server.tick(2.0)


def test_close_message_closes_and_carries_the_error() -> None:
    client, server = _open_pair()
    record = server.close(1.0, "shutting down", allow_reconnect=True)
    assert _receive(client, record, 1.0) == [Close("shutting down", True)]
    assert client.state == "closed" and client.close_error == "shutting down"
    with pytest.raises(LocalProtocolError):
        client.send_invocation("x", [], 2.0)


def test_wrong_role_or_state_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        SignalRConnection("client").accept_handshake(0.0)
    with pytest.raises(LocalProtocolError):
        SignalRConnection("server").handshake_request(0.0)
    with pytest.raises(ValueError):
        SignalRConnection("peer")  # type: ignore[arg-type]


def test_negotiate_versions_redirect_and_error() -> None:
    v1 = parse_negotiate(negotiate_response("cid", "tok", 1))
    assert (v1.connection_id, v1.ws_id, v1.negotiate_version) == ("cid", "tok", 1)
    assert (
        negotiate_response("cid", "tok", 1)["availableTransports"][0]["transferFormats"][0]
        == "Text"
    )
    v0 = parse_negotiate(negotiate_response("cid", "tok", 0))
    assert (v0.ws_id, v0.connection_token) == ("cid", None)
    redirect = parse_negotiate({"url": "http://elsewhere/hub", "accessToken": "abc"})
    assert redirect.is_redirect and redirect.access_token == "abc"
    with pytest.raises(NegotiateError, match="denied"):
        parse_negotiate({"error": "denied"})
    with pytest.raises(NegotiateError):
        parse_negotiate(
            {"connectionId": "c", "availableTransports": [{"transport": "LongPolling"}]}
        )
    for bad in ([], {"negotiateVersion": 1, "connectionId": "c"}, {"url": 5}):
        with pytest.raises(RemoteProtocolError):
            parse_negotiate(bad)


def test_server_holds_records_that_share_the_handshake_frame_until_accepted() -> None:
    server = SignalRConnection("server")
    frame = '{"protocol":"json","version":1}' + RS + encode_message(Invocation("a", [1]))
    assert _receive(server, frame, 0.0) == [HandshakeRequest("json", 1)]
    assert _receive(server, encode_message(Invocation("b", [])), 0.0) == []
    server.accept_handshake(0.0)
    assert _receive(server, b"", 0.0) == [Invocation("a", [1]), Invocation("b", [])]


def test_malformed_handshake_can_still_be_answered_with_an_error() -> None:
    server = SignalRConnection("server")
    with pytest.raises(RemoteProtocolError):
        _receive(server, "{nope" + RS, 0.0)
    assert json.loads(server.reject_handshake("bad handshake", 0.0)[:-1]) == {
        "error": "bad handshake"
    }


# -- the receive fast path ------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        '{"type":1,"target":"messageRelayed","arguments":["1","h",3,"syringetrack:1.5"]}',
        '{"type":1,"target":"heartbeat","arguments":[]}',
        '{"type":1,"target":"t","arguments":["\\u00e9\\"\\\\ :"]}',
        '{"type":1,"target":"","arguments":[1,2.5,null,true,{"a":[1]}]}',
    ],
)
def test_split_invocation_agrees_with_decode_message(record: str) -> None:
    msg = decode_message(record)
    assert isinstance(msg, Invocation)
    assert split_invocation(record) == (msg.target, msg.arguments)


@pytest.mark.parametrize(
    "record",
    [
        '{"type":1,"target":"x","arguments":[],"invocationId":"1"}',  # expects a reply
        '{"type":1,"target":"x","arguments":[] }',
        '{"type":1,"target":"x","arguments":{}}',
        '{"type":1,"target":"x","arguments":[1,]}',
        '{"type":1,"target":"a\\"b","arguments":[]}',  # escaped target: the exact path
        '{"type":1,"target":"x","arguments":["\x01"]}',  # control character: not JSON
        '{"type":1,"target":"x","arguments":[]',
        '{"type":1, "target":"x","arguments":[]}',
        '{"type":1,"target":"x"}',
        '{"type":6}',
        "",
    ],
)
def test_split_invocation_leaves_every_other_shape_to_decode_message(record: str) -> None:
    assert split_invocation(record) is None


@given(st.text(max_size=40), st.lists(st.text(max_size=10) | st.integers(), max_size=4))
def test_split_invocation_any_target_and_arguments(target: str, args: list[object]) -> None:
    record = encode_message(Invocation(target, args))[:-1]
    got = split_invocation(record)
    assert got is None or got == (target, args)
    if "\\" not in record[:-1].split('"arguments"')[0]:
        assert got == (target, args)


def test_receive_frame_keeps_the_bookkeeping() -> None:
    client, server = _open_pair()
    invocation_id, _ = client.invoke("startAsClient", ["1"], 1.0)
    frame = (
        server.send(Invocation("a", [1]), 2.0)
        + server.send(Completion(invocation_id, "ok", None, True), 2.0)
        + server.send(Completion("999", 1, None, True), 2.0)
        + '{"type":8,"sequenceId":1}'
        + RS
        + server.close(2.0, "bye")
        + PING_RECORD
        + '{"type":1,"target":"late"'
    )
    got = client.receive_frame(frame, 5.0)
    assert client.next_deadline() == min(1.0 + 15.0, 5.0 + 30.0)
    # the canonical invocation comes read in place; the Completion nobody waits for,
    # the ignored type and the Ping after the Close are dropped and counted
    assert got == [("a", [1]), Completion(invocation_id, "ok", None, True), Close("bye")]
    assert client.pending == set() and client.dropped == 3 and client.state == "closed"
    # the unfinished record, now ended, is one more record after the Close
    assert client.receive_frame(PING_RECORD, 6.0) == [] and client.dropped == 4


def test_receive_frame_returns_what_came_before_a_bad_record_then_the_error() -> None:
    client, server = _open_pair()
    good = server.send(Invocation("a", [1]), 1.0)
    items = client.receive_frame(good + "{nope" + RS + good, 2.0)
    assert items[0] == ("a", [1]) and len(items) == 2
    assert isinstance(items[1], RemoteProtocolError) and "not valid JSON" in str(items[1])
    # the same over bytes and across frames (the buffered path)
    client, server = _open_pair()
    assert client.receive_frame((good + "{no").encode(), 2.0) == [("a", [1])]
    [error] = client.receive_frame(b"pe" + RS.encode(), 2.0)
    assert isinstance(error, RemoteProtocolError)


def test_receive_frame_reports_a_handshake_error_as_its_item() -> None:
    client = SignalRConnection("client")
    client.handshake_request(0.0)
    [error] = client.receive_frame('{"error":"nope"}' + RS + PING_RECORD, 0.0)
    assert isinstance(error, HandshakeError) and client.state == "closed"


def test_receive_frame_holds_records_before_the_handshake_is_accepted() -> None:
    client = SignalRConnection("client")
    client.handshake_request(0.0)
    assert client.receive_frame("{", 0.0) == []  # unfinished
    assert client.receive_frame("}" + RS + PING_RECORD, 0.0) == [
        HandshakeResponse(None, {}),
        Ping(),
    ]
    server = SignalRConnection("server")
    items = server.receive_frame('{"protocol":"json","version":1}' + RS + PING_RECORD, 0.0)
    assert items == [HandshakeRequest("json", 1)]
    server.accept_handshake(0.0)
    assert server.receive_frame(PING_RECORD, 0.0) == [Ping(), Ping()]  # the held one first
    assert server.receive_frame("", 0.0) == []


def test_receive_frame_reads_whole_text_frames_and_buffers_the_rest_alike() -> None:
    client, server = _open_pair()
    record = server.send(Invocation("a", [1]), 1.0)
    assert client.receive_frame(record, 3.0) == [("a", [1])]
    assert client.next_deadline() == min(0.0 + 15.0, 3.0 + 30.0)
    assert client.receive_frame("", 4.0) == []  # an empty frame holds no record
    assert client.receive_frame(record + record, 4.0) == [("a", [1])] * 2
    assert client.receive_frame(record.encode(), 4.0) == [("a", [1])]
    assert client.receive_frame(record[:5], 4.0) == []  # unfinished: buffered
    assert client.receive_frame(record[5:] + record, 4.0) == [("a", [1])] * 2
    assert client._buffer.pending == 0


def test_nesting_past_the_json_scanner_depth_is_a_protocol_error() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    record = '{"type":1,"target":"a","arguments":' + deep + "}"
    assert split_invocation(record) is None
    with pytest.raises(RemoteProtocolError, match="not valid JSON"):
        decode_message(record)
    client, _ = _open_pair()
    [error] = client.receive_frame(record + RS, 1.0)
    assert isinstance(error, RemoteProtocolError)
    server = SignalRConnection("server")
    [error] = server.receive_frame(deep + RS, 0.0)
    assert isinstance(error, RemoteProtocolError) and "handshake" in str(error)


def test_a_forgotten_invocation_is_dropped_when_its_completion_comes_late() -> None:
    client, server = _open_pair()
    invocation_id, _ = client.invoke("slow", [], 1.0)
    client.forget(invocation_id)
    assert client.pending == set()
    late = server.send(Completion(invocation_id, 1, None, True), 2.0)
    assert client.receive_frame(late, 2.0) == [] and client.dropped == 1
