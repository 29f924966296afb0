"""Sans-I/O core: codec identity with iblutil, events, URIs, message checks, echo state.

The tests that compare with iblutil import it themselves and are marked ``interop``, so the
unit tier (``make check``) runs the rest without the peer installed.
"""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.errors import LocalProtocolError
from sciwire.rig import ExpMessage, ExpStatus, Service, decode, encode, validate_uri
from sciwire.rig._errors import RigValueError
from sciwire.rig._protocol import (
    EchoState,
    EchoVerdict,
    ErrorReport,
    Message,
    Rejected,
    exp_ref_string,
    parse_message,
)
from sciwire.rig._uri import parse_uri
from tests.helpers import examples

CORPUS = [
    [1, None],
    [1, {"exp_ref": "2024-01-01_1_subject"}],
    [2, "2024-01-01_1_subject", {"nested": {"list": [1, 2.5, -3e-12, None, True]}}],
    [4, 'unicode: é ü 日本語 🐭 \u2028 \x00 \t \n " \\'],
    [8, [1.0, 0.1, 1e300, -0.0, 12345678901234567890]],
    [16, {"z": 1, "a": [{}, []], "ü": "ß"}],
    [32, 20],
    [64, 0, {"main_sync": True, "name": "cam", "floats": [3.141592653589793, 2.718281828]}],
    [128, "https://alyx.example.org", {"user": "token"}],
    [128, None, {}],
    [0, "ValueError: boom", 2],
    ["expinit", "name as code"],
    "plain text",
    {"a": 1},
]


@pytest.mark.interop
@pytest.mark.parametrize("payload", CORPUS)
def test_encode_is_byte_identical_to_iblutil(payload: object) -> None:
    from iblutil.io.net import base as ibl_base
    from iblutil.io.net.app import EchoProtocol as IblEchoProtocol

    assert encode(payload) == IblEchoProtocol.encode(payload)
    assert encode(payload) == ibl_base.Communicator.encode(payload)


@pytest.mark.interop
def test_encode_enums_and_tuples_like_iblutil() -> None:
    from iblutil.io.net.app import EchoProtocol as IblEchoProtocol

    ours = Service()
    for message in (
        ours.init({"a": 1}),
        ours.start({"date": "2024-01-01", "sequence": "2", "subject": "m"}, [1]),
        ours.stop(immediately=True),
        ours.status("running"),
        ours.info(ExpStatus.CONNECTED, {"x": "y"}),
        ours.cleanup(),
    ):
        theirs = tuple(message)
        assert encode(message) == IblEchoProtocol.encode(theirs)
    assert encode((ExpMessage.EXPSTART, ExpStatus.RUNNING)) == b"[2, 20]"


@pytest.mark.interop
@settings(max_examples=examples(200), deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )
)
def test_encode_identity_hypothesis(value: object) -> None:
    from iblutil.io.net.app import EchoProtocol as IblEchoProtocol

    payload = [1, value]
    assert encode(payload) == IblEchoProtocol.encode(payload)
    assert decode(encode(payload)) == json.loads(json.dumps(payload))


def test_encode_refuses_unserialisable() -> None:
    with pytest.raises(TypeError):
        encode([1, object()])
    with pytest.raises(LocalProtocolError):
        encode([1, {1, 2}])


def test_decode_like_iblutil() -> None:
    assert decode(b"[1, null]") == [1, None]
    with pytest.warns(UserWarning, match="Failed to decode as JSON"):
        assert decode(b"not json") == "not json"
    with pytest.raises(ValueError):
        decode(b"\xff\xfe")


@pytest.mark.interop
def test_exp_message_codes_and_any() -> None:
    from iblutil.io.net import base as ibl_base

    assert [int(m) for m in ExpMessage] == [int(m) for m in ibl_base.ExpMessage]
    assert [m.name for m in ExpMessage] == [m.name for m in ibl_base.ExpMessage]
    assert ExpMessage.any() == 255 == ibl_base.ExpMessage.any()
    assert [int(s) for s in ExpStatus] == [int(s) for s in ibl_base.ExpStatus]
    assert ExpMessage.__version__ == ibl_base.ExpMessage.__version__ == "1.0.0"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("expstart", ExpMessage.EXPSTART),
        (" EXPEND ", ExpMessage.EXPEND),
        (4, ExpMessage.EXPEND),
        (ExpMessage.ALYX, ExpMessage.ALYX),
        (10, ExpMessage.EXPSTART | ExpMessage.EXPCLEANUP),
        ("expend|expinterrupt", ExpMessage.EXPEND | ExpMessage.EXPINTERRUPT),
        (0, ExpMessage(0)),
    ],
)
def test_validate_event(event: object, expected: ExpMessage) -> None:
    assert ExpMessage.validate(event) == expected


def test_validate_event_errors() -> None:
    with pytest.raises(ValueError, match="Unrecognized"):
        ExpMessage.validate("init")
    with pytest.raises(ValueError):
        ExpMessage.validate(256)
    with pytest.raises(TypeError):
        ExpMessage.validate(1.0)
    with pytest.raises(TypeError):
        ExpMessage.validate(True)
    with pytest.raises(ValueError, match="Compound"):
        ExpMessage.validate(3, allow_bitwise=False)
    with pytest.raises(RigValueError):
        ExpMessage.validate("nope")


def test_flag_iterates_bits() -> None:
    flag = ExpMessage.EXPINIT | ExpMessage.ALYX
    assert list(flag) == [ExpMessage.EXPINIT, ExpMessage.ALYX]
    assert list(ExpMessage(0)) == []


def test_service_messages() -> None:
    s = Service()
    assert s.start({"date": "2024-01-01", "sequence": 3, "subject": "m"}) == (
        ExpMessage.EXPSTART,
        "2024-01-01_3_m",
        None,
    )
    assert s.start("") == (ExpMessage.EXPSTART, None, None)
    assert s.stop(1) == (ExpMessage.EXPEND, 1)
    assert s.stop(immediately=True)[0] is ExpMessage.EXPINTERRUPT
    assert s.status(10)[1] is ExpStatus.INITIALIZED
    with pytest.raises(ValueError):
        s.status(11)
    with pytest.raises(TypeError):
        s.status(1.5)
    assert s.alyx(None) == (ExpMessage.ALYX, None, {})
    with pytest.raises(ValueError):
        exp_ref_string({"date": "x"})

    class Alyx:
        base_url = "https://alyx"
        user = "me"
        _token = "t0k"
        is_logged_in = True

    assert s.alyx(Alyx()) == (ExpMessage.ALYX, "https://alyx", {"me": "t0k"})


# -- URIs -------------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize(
    "uri",
    [
        "127.0.0.1",
        "127.0.0.1:9999",
        "udp://127.0.0.1",
        "ws://127.0.0.1:8888",
        "tcp://127.0.0.1:1",
        ipaddress.IPv4Address("10.0.0.1"),
        "localhost:1234",
    ],
)
def test_validate_uri_matches_iblutil(uri: object) -> None:
    from iblutil.io.net import base as ibl_base

    assert validate_uri(uri) == ibl_base.validate_uri(uri)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("[::1]:9000", "udp://[::1]:9000"),
        ("tcp://[::1]", "tcp://[::1]:11001"),
        ("::1", "udp://[::1]:11001"),
        ("fe80::1", "udp://[fe80::1]:11001"),
        (ipaddress.IPv6Address("::1"), "udp://[::1]:11001"),
        ("ws://[2001:db8::5]:80", "ws://[2001:db8::5]:80"),
    ],
)
def test_validate_uri_ipv6(uri: object, expected: str) -> None:
    assert validate_uri(uri) == expected


def test_validate_uri_errors() -> None:
    for bad_port in ("127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:abc"):
        with pytest.raises(ValueError, match="Invalid port"):
            validate_uri(bad_port)
    with pytest.raises(TypeError):
        validate_uri(1234)
    with pytest.raises(ValueError, match="Invalid hostname"):
        validate_uri("Bad_Host", resolve_host=False)
    assert validate_uri("rig-3", resolve_host=False) == "udp://rig-3:11001"
    with pytest.raises(ValueError, match="resolve"):
        validate_uri("no-such-host.invalid")
    with pytest.raises(ValueError):
        validate_uri("[::1")
    with pytest.raises(ValueError):
        validate_uri("[nothex]:5")
    assert parse_uri("tcp://[::1]:0", allow_port_zero=True) == ("tcp", "::1", 0)


# -- received messages -------------------------------------------------------------------


def test_parse_valid_messages() -> None:
    msg = parse_message(b'[2, "ref", {"a": 1}]')
    assert isinstance(msg, Message)
    assert msg.event is ExpMessage.EXPSTART
    assert msg.data == ["ref", {"a": 1}]
    by_name = parse_message(b'["EXPINFO", 0, null]')
    assert isinstance(by_name, Message) and by_name.event is ExpMessage.EXPINFO
    compact = parse_message(b"[1,{}]")  # MATLAB writes compact JSON
    assert isinstance(compact, Message) and compact.raw == b"[1,{}]"
    report = parse_message(b'[0, "KeyError: x", 4]')
    assert report == ErrorReport("KeyError: x", 4, b'[0, "KeyError: x", 4]')


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"x" * 70000, "oversized"),
        (b"\xff\xfe[1, 2]", "utf8"),
        (b"garbage", "json"),
        (b"[1, 2", "json"),
        (b"[1]", "shape"),
        (b'{"a": 1}', "shape"),
        (b"42", "shape"),
        (b"[3, null]", "event"),
        (b"[256, null]", "event"),
        (b"[true, null]", "event"),
        (b"[1.0, null]", "event"),
        (b'["nope", 1]', "event"),
        (b"[-1, 1]", "event"),
        (b"[0, 1]", "shape"),
        (b'[0, "E: x", "bad"]', "shape"),
        (b"[" * 100000, "oversized"),
        (b"[" * 50000, "json"),
    ],
)
def test_parse_rejects(raw: bytes, reason: str) -> None:
    result = parse_message(raw)
    assert isinstance(result, Rejected)
    assert result.reason == reason


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=300))
def test_parse_never_raises(raw: bytes) -> None:
    assert isinstance(parse_message(raw), Message | ErrorReport | Rejected)


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.integers(0, 300) | st.text(max_size=8) | st.none(), max_size=4))
def test_parse_json_lists_never_raise(value: list[object]) -> None:
    result = parse_message(json.dumps(value).encode())
    if isinstance(result, Message):
        assert result.event in ExpMessage.any()
        assert len(result.data) == len(value) - 1


# -- echo state ---------------------------------------------------------------------------


def test_echo_state_match_and_mismatch() -> None:
    state: EchoState[str] = EchoState()
    a, b = ("127.0.0.1", 1), ("127.0.0.1", 2)
    assert state.receive(a, b"[1, null]") == (EchoVerdict.NEW, None)
    state.expect(a, b"[1, null]", "fa")
    state.expect(b, b"[2, null]", "fb")
    assert state.awaiting(a) and state.awaiting()
    assert state.get(a) == (b"[1, null]", "fa") and state.get(("127.0.0.1", 3)) is None
    assert state.receive(b, b"[9, null]") == (EchoVerdict.MISMATCH, "fb")
    assert state.receive(a, b"[1, null]") == (EchoVerdict.MATCH, "fa")
    assert not state.awaiting()
    assert state.receive(a, b"[1, null]") == (EchoVerdict.NEW, None)
    assert state.counts == {"mismatch": 1, "match": 1}


def test_echo_state_truncated_udp_echo() -> None:
    state: EchoState[int] = EchoState(max_message_size=8)
    addr = ("h", 1)
    state.expect(addr, b"0123456789", 1)
    assert state.receive(addr, b"01234567") == (EchoVerdict.TRUNCATED, 1)
    state.expect(addr, b"0123456789", 2)
    assert state.receive(addr, b"0123456") == (EchoVerdict.MISMATCH, 2)


def test_echo_state_late_echo_swallowed_once() -> None:
    state: EchoState[int] = EchoState()
    addr = ("h", 1)
    state.expect(addr, b"[1, null]", 1)
    state.forget(addr)  # timed out
    assert state.receive(addr, b"[2, null]") == (EchoVerdict.NEW, None)
    assert state.receive(addr, b"[1, null]") == (EchoVerdict.LATE, None)
    assert state.receive(addr, b"[1, null]") == (EchoVerdict.NEW, None)
    state.expect(addr, b"x", 3)
    assert state.clear() == [3]
    assert not state.awaiting(addr)


def test_echo_state_keeps_a_bounded_number_of_late_echoes() -> None:
    state: EchoState[int] = EchoState()
    state.max_late = 2
    for port in (1, 2, 3):
        state.expect(("h", port), b"[%d, null]" % port, port)
        state.forget(("h", port))  # timed out
    # the oldest was dropped: its late echo is a new message now
    assert state.receive(("h", 1), b"[1, null]") == (EchoVerdict.NEW, None)
    assert state.receive(("h", 2), b"[2, null]") == (EchoVerdict.LATE, None)
    assert state.receive(("h", 3), b"[3, null]") == (EchoVerdict.LATE, None)


async def test_is_success() -> None:
    import asyncio

    from sciwire.rig import is_success

    loop = asyncio.get_running_loop()
    ok, failed, cancelled, waiting = (loop.create_future() for _ in range(4))
    ok.set_result(1)
    failed.set_exception(ValueError())
    cancelled.cancel()
    assert [is_success(f) for f in (ok, failed, cancelled, waiting)] == [True, False, False, False]
