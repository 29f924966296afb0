"""sciwire.core.jsonfast: json's results and errors, by the direct paths."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.core.jsonfast import loads, reused_encoder, scan
from tests.helpers import examples


def _json_loads(text: str) -> Any:
    try:
        return ("ok", json.loads(text))
    except (ValueError, RecursionError) as exc:
        return (type(exc), str(exc))


def _ours(text: str) -> Any:
    try:
        return ("ok", loads(text))
    except (ValueError, RecursionError) as exc:
        return (type(exc), str(exc))


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=examples(300), deadline=None)
@given(_values, st.sampled_from(["", " ", "\n", "x", "}", "\ufeff"]), st.sampled_from(["", " "]))
def test_loads_is_json_loads(value: Any, tail: str, lead: str) -> None:
    text = lead + json.dumps(value) + tail
    assert _ours(text) == _json_loads(text)


@pytest.mark.parametrize(
    "text", ["", "{", "[1,]", "\ufeff{}", "nan", "NaN", "1" * 5000, '"\\ud800"', "[1] [2]", "{}x"]
)
def test_loads_odd_texts(text: str) -> None:
    assert _ours(text) == _json_loads(text)


def test_scan_reads_one_value_at_an_index() -> None:
    assert scan('xx{"a": [1]} tail', 2) == ({"a": [1]}, 12)
    with pytest.raises(StopIteration):
        scan("xx", 2)


@pytest.mark.parametrize(
    "encoder",
    [json.JSONEncoder(), json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)],
)
def test_reused_encoder_is_encode_and_recovers_from_errors(encoder: json.JSONEncoder) -> None:
    encode = reused_encoder(encoder)
    loop: list[Any] = [1]
    loop.append(loop)
    box: dict[str, Any] = {"x": {1}}  # a set: not serialisable
    for bad, kind in [(loop, ValueError), (box, TypeError)]:
        with pytest.raises(kind):
            encode([bad])
    loop.pop()
    box["x"] = [1]
    for value in ([box, box], loop, "é\n", 1.5, {"k": [None, True]}, float("inf")):
        assert encode(value) == encoder.encode(value)  # no stale circular-check marker


def test_reused_encoder_from_several_threads() -> None:
    encode = reused_encoder(json.JSONEncoder())
    value = {"a": [list(range(50))] * 20}
    want = json.dumps(value)
    got: list[str] = []

    def work() -> None:
        got.extend(encode(value) for _ in range(200))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [want] * 800


def test_indented_encoder_is_left_alone() -> None:
    encoder = json.JSONEncoder(indent=2)
    assert reused_encoder(encoder)({"a": [1]}) == encoder.encode({"a": [1]})
