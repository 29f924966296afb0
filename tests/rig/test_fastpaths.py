"""The codec's fast paths give exactly what json.dumps / json.loads give, errors included."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.rig import ExpMessage, ExpStatus, encode
from sciwire.rig._errors import RigTypeError, RigValueError
from sciwire.rig._protocol import (
    NOT_JSON,
    ErrorReport,
    Message,
    Rejected,
    classify,
    loads,
    parse_message,
)
from tests.helpers import examples

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities too: json.dumps writes NaN, Infinity
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def _reference_loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return NOT_JSON


def _same(a: Any, b: Any) -> bool:
    # repr compares NaN with NaN, -0.0 with -0.0, and int with int (not 1 == 1.0 == True)
    return a is b or repr(a) == repr(b)


@settings(max_examples=examples(400), deadline=None)
@given(st.lists(JSON_VALUES, max_size=5) | st.tuples(JSON_VALUES, JSON_VALUES))
def test_encode_fast_path_equals_json_dumps(message: list[Any] | tuple[Any, ...]) -> None:
    assert encode(message) == json.dumps(message).encode()


def test_encode_enum_members_and_subclasses_like_json_dumps() -> None:
    class Items(list[Any]):
        pass

    for message in (
        [ExpMessage.EXPINFO, ExpStatus.RUNNING, {"a": (1, 2.5)}],
        (ExpMessage.EXPEND, None),
        Items([1, "x"]),
        [1, {1: "int key", 2.5: "float key", None: "null key", False: "bool key"}],
    ):
        assert encode(message) == json.dumps(message).encode()


def test_encode_errors_leave_no_state_behind() -> None:
    # The C encoder leaves its circular-check markers set when it fails; a later
    # message holding the same containers must not be taken for a circular one.
    holder: dict[str, Any] = {"x": object()}
    inner = ["ok", holder]
    with pytest.raises(RigTypeError):
        encode([1, inner])
    holder["x"] = 2
    assert encode([1, inner]) == json.dumps([1, inner]).encode()
    circular: list[Any] = [1, inner]
    circular.append(circular)
    with pytest.raises(RigValueError, match="Circular"):
        encode(circular)
    assert encode([1, inner]) == json.dumps([1, inner]).encode()
    deep: list[Any] = [inner]
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(RecursionError):  # as json.dumps: not a protocol error
        encode([1, deep])
    assert encode([1, inner]) == json.dumps([1, inner]).encode()


def test_encode_from_many_threads() -> None:
    shared = {"k": [1, 2, 3]}
    results: list[bytes] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(300):
                results.append(encode([1, i, shared, [shared]]))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 1200
    assert set(results) == {json.dumps([1, i, shared, [shared]]).encode() for i in range(300)}


LOADS_TABLE = [
    "[1, 2]",
    '[64, 0, {"a": [1.5, -0.0, 1e400, NaN, Infinity, null, true, "\\u00e9"]}]',
    " [1, 2]",  # leading whitespace: json.loads skips it
    "[1, 2] ",
    "[1, 2]\n",
    "\t[1]\r\n",
    "[1, 2] x",  # extra data
    "[1, 2][3]",
    "\ufeff[1]",  # a BOM: json.loads refuses it
    "",
    " ",
    "[1,",
    '"text"',
    "12",
    "1" * 5000,  # more digits than int() takes: json.loads raises ValueError
    "[" * 50_000,  # too deep
    "nan",
    "[1, 2]\x00",
    "\u2028[1]",
]


@pytest.mark.parametrize("text", LOADS_TABLE)
def test_loads_equals_json_loads_table(text: str) -> None:
    assert _same(loads(text), _reference_loads(text))


@settings(max_examples=examples(400), deadline=None)
@given(
    JSON_VALUES.map(json.dumps)
    | st.text(alphabet=' \t\n\r[]{}",:0123456789.eE+-nultrfasNIy\\\ufeff', max_size=30)
)
def test_loads_equals_json_loads(text: str) -> None:
    assert _same(loads(text), _reference_loads(text))


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(st.integers(-2, 300) | st.booleans() | st.text(max_size=10), min_size=2, max_size=3)
)
def test_event_table_matches_the_enum(value: list[Any]) -> None:
    raw = json.dumps(value).encode()
    result = classify(value, raw)
    code = value[0]
    if type(code) is int and 0 < code <= 128 and not code & (code - 1):
        assert type(result) is Message
        assert result.event is ExpMessage(code)
        assert result.data == value[1:]
    elif type(code) is int and code == 0:
        assert type(result) in (ErrorReport, Rejected)
    elif type(code) is not str:
        assert type(result) is Rejected
    assert parse_message(raw) == result


def test_too_many_digits_is_a_json_drop_not_an_error() -> None:
    result = parse_message(b"[1, " + b"9" * 5000 + b"]")
    assert isinstance(result, Rejected)
    assert result.reason == "json"


def test_validate_returns_the_flag_itself_for_every_code() -> None:
    for value in range(256):
        flag = ExpMessage(value)
        assert ExpMessage.validate(flag) is ExpMessage(value)
        assert ExpMessage.validate(value) is ExpMessage.validate(flag)
        if value & (value - 1):
            with pytest.raises(RigValueError, match="Compound"):
                ExpMessage.validate(flag, allow_bitwise=False)
        else:
            assert ExpMessage.validate(flag, allow_bitwise=False) is flag
