"""The receive door's in-place frame reader agrees with the exact receive path.

``SignalRConnection.receive_frame`` reads whole text frames record by record without
splitting them and hands canonical invocations over as ``(target, arguments)``; these
tests feed the same frames through it and ``HubClient._dispatch`` and through the exact
path (the record buffer, then every record decoded by ``decode_message`` in order, one
record dispatched at a time) and compare every handler call, error, end cause and count.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sciwire.errors import ProtocolError, RemoteProtocolError
from sciwire.ifcb._signalr import (
    RS,
    Completion,
    HandshakeResponse,
    Invocation,
    SignalRConnection,
    encode_message,
)
from sciwire.ifcb._transport import HubClient

TARGETS = ["messageRelayed", "heartbeat", "", 'a"b', "a\\b", "é", "messageRelayedX"]

RECORDS = [
    '{"type":1,"target":"messageRelayed","arguments":["1","h",3,"syringetrack:1.5"]}',
    '{"type":1,"target":"messageRelayed","arguments":["1","h",4,"a\\"b\\\\c\\u00e9"]}',
    '{"type":1,"target":"messageRelayed","arguments":["1","h",5,"x"],"invocationId":"9"}',
    '{"type":1,"target":"messageRelayed","arguments":[] }',
    '{"type":1,"target":"messageRelayed","arguments":{}}',
    '{"type":1,"target":"messageRelayed","arguments":[1,]}',
    '{"type":1,"target":"messageRelayed","arguments":["\x01"]}',  # not JSON
    '{"type":1,"target":"messageRelayed","arguments":[1',  # cut short
    '{"type":1,"target":"messageRelayed"}',
    '{"type":1,"target":"messageRelayed","arguments":[1]}x',
    '{"type":1,"target":"messageRelayed","arguments":[1]}}',
    '{"type":1,"target":"messageRelayed\\"","arguments":[1]}',
    '{"type":1,"target":"messageRelayed","arguments":[1]} ',
    '{"type":1, "target":"heartbeat","arguments":[]}',
    '{"type":1,"target":"heartbeat","arguments":[]}',
    '{"type":1,"target":"","arguments":[null,true,2.5,{"k":[1]}]}',
    '{"type":1,"target":"messageRelayedX","arguments":[7]}',
    '{"type":1,"target":"messageRelayed","arguments":[8]}',
    '{"type":1,"target":"a\\\\b","arguments":[2]}',
    '{"type":1,"target":"',
    '{"type":6}',
    '{"type":8,"sequenceId":1}',
    '{"type":3,"invocationId":"1","result":"ok"}',
    '{"type":3,"invocationId":"77","result":"who?"}',
    '{"type":7,"error":"bye"}',
    '{"type":7}',
    "{}",
    "[1]",
    "not json",
    "",
]


def _client() -> tuple[HubClient, list[tuple[str, Any]]]:
    hub = HubClient("ws://127.0.0.1:1/hub")
    calls: list[tuple[str, Any]] = []
    for target in TARGETS:
        hub.on(target, lambda args, target=target: calls.append((target, args)))
    hub.on("heartbeat", _raise)  # a raising handler is counted; the others still run
    proto = SignalRConnection("client")
    proto.handshake_request(0.0)
    assert proto.receive_frame("{}" + RS, 0.0) == [HandshakeResponse(None, {})]
    proto.pending.add("1")
    hub._proto = proto
    return hub, calls


def _raise(args: Any) -> None:
    raise RuntimeError("handler failed")


def _run(frames: list[str], fast: bool) -> tuple[Any, ...]:
    hub, calls = _client()
    proto = hub._proto
    assert proto is not None
    outcome: Any = None
    for frame in frames:
        try:
            if fast:
                outcome = hub._dispatch(proto.receive_frame(frame, 1.0))
            else:
                outcome = _general(hub, proto, frame)
        except ProtocolError as exc:
            outcome = (type(exc), str(exc))
        if outcome is not None:
            break
    if isinstance(outcome, BaseException):
        outcome = (type(outcome), str(outcome))
    return (
        calls,
        outcome,
        hub.handler_errors,
        proto.dropped,
        proto.state,
        sorted(proto.pending),
        proto._buffer.pending,
    )


def _general(hub: HubClient, proto: SignalRConnection, frame: str) -> Any:
    """The exact path, record by record in order: decode_message for every record."""
    proto._last_received = 1.0
    records = proto._buffer.feed(frame)
    cause = None
    for record in records:  # after a Close, the rest is dropped (and counted) one by one
        msg = proto._message(record)
        if msg is not None and cause is None:
            cause = hub._dispatch((msg,))
    return cause


def _frames(records: list[str], cuts: list[int]) -> list[str]:
    stream = "".join(record + RS for record in records)
    frames, start = [], 0
    for cut in sorted({c % (len(stream) + 1) for c in cuts}):
        frames.append(stream[start:cut])
        start = cut
    frames.append(stream[start:])
    return frames


@pytest.mark.parametrize("record", RECORDS)
def test_each_record_alone_and_between_two_canonical_ones(record: str) -> None:
    for records in ([record], [RECORDS[0], record, RECORDS[0]], [record, record]):
        frame = "".join(r + RS for r in records)
        assert _run([frame], fast=True) == _run([frame], fast=False)


@given(
    st.lists(st.sampled_from(RECORDS), min_size=1, max_size=12),
    st.lists(st.integers(min_value=0), max_size=3),
)
def test_any_frames_of_any_records_match_the_general_path(
    records: list[str], cuts: list[int]
) -> None:
    frames = _frames(records, cuts)
    assert _run(frames, fast=True) == _run(frames, fast=False)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(TARGETS),
            st.lists(st.text(max_size=8) | st.integers() | st.none(), max_size=4),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_encoded_invocations_of_any_target_reach_the_same_handlers(
    invocations: list[tuple[str, list[Any]]],
) -> None:
    frame = "".join(encode_message(Invocation(t, a)) for t, a in invocations)
    fast, general = _run([frame], fast=True), _run([frame], fast=False)
    assert fast == general
    assert fast[0] == invocations


def test_an_empty_record_after_a_buffered_part_is_an_error_as_on_the_exact_path() -> None:
    # found by hypothesis: the buffered path once dropped a lone empty record
    frames = [RS + "{", RECORDS[0][1:] + RS]
    fast = _run(frames, fast=True)
    assert fast == _run(frames, fast=False)
    assert fast[0] == [] and fast[1][0] is RemoteProtocolError


def test_bytes_frames_and_split_records_take_the_buffered_path() -> None:
    records = [RECORDS[0], RECORDS[14], RECORDS[0]]
    stream = "".join(r + RS for r in records)
    for frames in ([stream.encode()], [stream[:20], stream[20:]], [stream[:-1], RS]):
        assert _run(frames, fast=True) == _run(frames, fast=False)  # type: ignore[arg-type]
    calls = _run([stream[:20], stream[20:]], fast=True)[0]
    assert [t for t, _ in calls] == ["messageRelayed", "heartbeat", "messageRelayed"]


def test_a_close_in_mid_frame_counts_the_records_after_it_as_dropped() -> None:
    frame = "".join(r + RS for r in [RECORDS[0], '{"type":7,"error":"bye"}', RECORDS[0]] * 2)
    calls, outcome, _, dropped, state, _, _ = _run([frame], fast=True)
    assert len(calls) == 1 and dropped == 4 and state == "closed"
    assert outcome[1] == "hub closed the connection: bye"
    assert _run([frame], fast=False) == _run([frame], fast=True)


def test_a_completion_in_a_frame_resolves_its_invocation() -> None:
    hub, calls = _client()
    proto = hub._proto
    assert proto is not None
    frame = RECORDS[0] + RS + encode_message(Completion("1", {"ok": 1})) + RECORDS[0] + RS
    assert hub._dispatch(proto.receive_frame(frame, 1.0)) is None
    assert proto.pending == set() and len(calls) == 2
    assert json.loads(RECORDS[0])["arguments"] == calls[0][1]
