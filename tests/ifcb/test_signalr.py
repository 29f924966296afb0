"""The sans-I/O SignalR core: framing, message types, handshake, timers, negotiate."""

from __future__ import annotations

import json

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
        conn.receive(blob, 0.0)
        conn.receive(b"\x1e", 0.0)
    except RemoteProtocolError:
        pass


def _open_pair() -> tuple[SignalRConnection, SignalRConnection]:
    client, server = SignalRConnection("client"), SignalRConnection("server")
    request = client.handshake_request(0.0)
    assert server.receive(request, 0.0) == [HandshakeRequest("json", 1)]
    reply = server.accept_handshake(0.0)
    assert client.receive(reply, 0.0) == [HandshakeResponse(None, {})]
    assert client.state == server.state == "open"
    return client, server


def test_handshake_reply_may_share_a_frame_with_messages() -> None:
    client = SignalRConnection("client")
    client.handshake_request(0.0)
    frame = "{}" + RS + encode_message(Invocation("heartbeat", [])) + PING_RECORD
    assert client.receive(frame, 1.0) == [
        HandshakeResponse(None, {}),
        Invocation("heartbeat", []),
        Ping(),
    ]


def test_handshake_error_reply_raises() -> None:
    client = SignalRConnection("client")
    client.handshake_request(0.0)
    with pytest.raises(HandshakeError, match="nope"):
        client.receive('{"error":"nope"}' + RS, 0.0)
    assert client.state == "closed"


def test_server_sees_version_zero_and_can_reject() -> None:
    server = SignalRConnection("server")
    assert server.receive('{"protocol":"json","version":0}\x1e', 0.0) == [
        HandshakeRequest("json", 0)
    ]
    assert json.loads(server.reject_handshake("no", 0.0)[:-1]) == {"error": "no"}
    assert server.state == "closed"


def test_invoke_matches_completion_and_send_does_not_expect_one() -> None:
    client, server = _open_pair()
    record = client.send_invocation("relayMessageToHost", ["1", "refresh"], 1.0)
    assert server.receive(record, 1.0) == [Invocation("relayMessageToHost", ["1", "refresh"])]
    invocation_id, record = client.invoke("startAsClient", ["1"], 1.0)
    [call] = server.receive(record, 1.0)
    assert isinstance(call, Invocation) and call.invocation_id == invocation_id
    assert client.pending == {invocation_id}
    reply = server.send(Completion(invocation_id, "ok", None, True), 1.0)
    assert client.receive(reply, 1.0) == [Completion(invocation_id, "ok", None, True)]
    assert client.pending == set()
    # a Completion nobody waits for is dropped and counted
    assert client.receive(server.send(Completion("999", 1, None, True), 1.0), 1.0) == []
    assert client.dropped == 1


def test_keep_alive_ping_after_idle_interval() -> None:
    client, _ = _open_pair()
    assert client.next_deadline() == 15.0
    assert client.tick(14.9) == ""
    assert client.tick(15.0) == PING_RECORD
    assert client.tick(20.0) == ""
    client.receive(PING_RECORD, 25.0)
    client.send_invocation("x", [], 25.0)
    assert client.tick(39.9) == ""
    assert client.tick(40.0) == PING_RECORD


def test_server_timeout_after_silence_and_configurable() -> None:
    client, _ = _open_pair()
    client.receive(PING_RECORD, 10.0)
    client.tick(39.0)
    with pytest.raises(ServerTimeout):
        client.tick(40.0)
    assert client.state == "closed"
    fast = SignalRConnection("client", keep_alive_interval=0.5, server_timeout=1.0)
    fast.handshake_request(0.0)
    fast.receive("{}\x1e", 0.0)
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
    assert client.receive(record, 1.0) == [Close("shutting down", True)]
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
    assert server.receive(frame, 0.0) == [HandshakeRequest("json", 1)]
    assert server.receive(encode_message(Invocation("b", [])), 0.0) == []
    server.accept_handshake(0.0)
    assert server.receive(b"", 0.0) == [Invocation("a", [1]), Invocation("b", [])]


def test_malformed_handshake_can_still_be_answered_with_an_error() -> None:
    server = SignalRConnection("server")
    with pytest.raises(RemoteProtocolError):
        server.receive("{nope" + RS, 0.0)
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


def test_open_records_and_receive_record_keep_the_bookkeeping() -> None:
    client, server = _open_pair()
    invocation_id, _ = client.invoke("startAsClient", ["1"], 1.0)
    frame = (
        server.send(Invocation("a", [1]), 2.0)
        + server.send(Completion(invocation_id, "ok", None, True), 2.0)
        + server.send(Completion("999", 1, None, True), 2.0)
        + '{"type":8,"sequenceId":1}'
        + RS
        + server.close(2.0, "bye")
        + '{"type":1,"target":"late"'
    )
    records = client.open_records(frame, 5.0)
    assert records is not None and len(records) == 5
    assert client.next_deadline() == min(1.0 + 15.0, 5.0 + 30.0)
    got = [client.receive_record(r) for r in records]
    assert got == [
        Invocation("a", [1]),
        Completion(invocation_id, "ok", None, True),
        None,
        None,
        Close("bye"),
    ]
    assert client.pending == set() and client.dropped == 2 and client.state == "closed"
    assert client.receive_record('{"type":6}') is None and client.dropped == 3
    # not open any more: the caller must take the general path
    assert client.open_records("x", 6.0) is None


def test_open_records_declines_before_the_handshake_and_while_records_are_held() -> None:
    client = SignalRConnection("client")
    client.handshake_request(0.0)
    assert client.open_records("{}" + RS, 0.0) is None
    server = SignalRConnection("server")
    server.receive('{"protocol":"json","version":1}' + RS + PING_RECORD, 0.0)
    server.accept_handshake(0.0)
    assert server.open_records(PING_RECORD, 0.0) is None  # the held Ping comes first
    assert server.receive("", 0.0) == [Ping()]
    assert server.open_records(PING_RECORD, 0.0) == ['{"type":6}']


def test_open_frame_takes_only_whole_text_frames() -> None:
    client, server = _open_pair()
    record = server.send(Invocation("a", [1]), 1.0)
    assert client.open_frame(record, 3.0)
    assert client.next_deadline() == min(0.0 + 15.0, 3.0 + 30.0)
    assert not client.open_frame("", 4.0)  # an empty frame holds no record
    assert client.open_frame(record + record, 4.0)  # several whole records: in place
    assert not client.open_frame(record.encode(), 4.0)  # bytes: open_records
    assert not client.open_frame(record[:5], 4.0)  # unfinished
    assert client.open_records(record[:5], 4.0) == []
    assert not client.open_frame(record, 4.0)  # something is buffered
    assert client.open_records(record[5:], 4.0) == [record[:-1]]
    assert client.open_frame(record, 5.0)
