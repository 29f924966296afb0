"""The TCP stream splitter: glued, split, garbage, unicode, overflow."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.rig import encode
from sciwire.rig._framing import BufferOverflowError, StreamSplitter
from sciwire.rig._protocol import NOT_JSON
from tests.helpers import examples

MESSAGES = [
    encode([1, {"exp_ref": "2024-01-01_1_m"}]),
    encode([2, "ref", {"s": 'with ] and } and " and \\ inside'}]),
    encode([64, 0, {"ü": "日本"}]),  # ASCII-escaped
    '[4, "raw utf-8 é 日本 🐭"]'.encode(),  # a peer that does not escape
    b'[8,{"compact":[1,2.5e-3,-4]}]',
    encode([32, 20]),
    encode([0, "ValueError: x", 2]),
]


def values(items: list[tuple[bytes, object]]) -> list[bytes]:
    return [raw for raw, value in items if value is not NOT_JSON]


def test_glued_messages_come_apart() -> None:
    splitter = StreamSplitter()
    assert values(splitter.feed(b"".join(MESSAGES))) == MESSAGES
    assert splitter.buffered == 0


def test_whitespace_between_messages() -> None:
    splitter = StreamSplitter()
    out = splitter.feed(b"  [1, 2]\n\r\t[2, 3]  ")
    assert [raw for raw, _ in out] == [b"[1, 2]", b"[2, 3]"]


def test_byte_at_a_time() -> None:
    splitter = StreamSplitter()
    stream = b"".join(MESSAGES)
    got: list[bytes] = []
    for i in range(len(stream)):
        got.extend(values(splitter.feed(stream[i : i + 1])))
    assert got == MESSAGES
    assert splitter.buffered == 0


@settings(max_examples=examples(150), deadline=None)
@given(st.data())
def test_any_chunking_gives_the_same_messages(data: st.DataObject) -> None:
    stream = b"".join(MESSAGES)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), max_size=30)))
    splitter = StreamSplitter()
    got: list[bytes] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        got.extend(values(splitter.feed(stream[start:cut])))
        start = cut
    assert got == MESSAGES


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=8))
def test_garbage_never_raises_and_is_consumed(chunks: list[bytes]) -> None:
    splitter = StreamSplitter(max_buffer=10_000)
    for chunk in chunks:
        for raw, _ in splitter.feed(chunk):
            assert raw
    assert splitter.buffered <= sum(map(len, chunks))


def test_garbage_then_resync() -> None:
    splitter = StreamSplitter()
    out = splitter.feed(b"hello world[1, 2][1, 2,][3] junk [4, 5]")
    assert out[0] == (b"hello world", NOT_JSON)
    assert out[1] == (b"[1, 2]", [1, 2])
    assert out[2][1] is NOT_JSON  # the invalid [1, 2,]
    assert (b"[3]", [3]) in out
    assert out[-1] == (b"[4, 5]", [4, 5])


def test_invalid_utf8_is_garbage_but_stream_recovers() -> None:
    splitter = StreamSplitter()
    out = splitter.feed(b'["\xff\xfe"][1, "ok"]')
    assert out[0][1] is NOT_JSON
    assert out[-1] == (b'[1, "ok"]', [1, "ok"])


def test_split_inside_multibyte_character() -> None:
    raw = '[1, "é"]'.encode()
    splitter = StreamSplitter()
    assert splitter.feed(raw[:6]) == []
    assert values(splitter.feed(raw[6:])) == [raw]


def test_incomplete_tails_wait_for_more() -> None:
    for prefix in (b"[1, ", b'[1, "ab', b"[1, -", b"[1, 1e", b"[1, tr", b'[1, "\\u00', b"[1, {"):
        splitter = StreamSplitter()
        assert splitter.feed(prefix) == [], prefix
        assert splitter.buffered == len(prefix)


def test_bare_number_waits_for_a_delimiter() -> None:
    splitter = StreamSplitter()
    assert splitter.feed(b"12") == []
    assert splitter.feed(b"3 ") == [(b"123", 123)]


def test_overflow_raises_and_resets() -> None:
    splitter = StreamSplitter(max_buffer=100)
    splitter.feed(b'[1, "' + b"x" * 60)
    with pytest.raises(BufferOverflowError):
        splitter.feed(b"x" * 60)
    assert splitter.buffered == 0
    assert values(splitter.feed(b"[1, 2]")) == [b"[1, 2]"]


def test_deep_nesting_is_garbage_not_a_crash() -> None:
    splitter = StreamSplitter()
    out = splitter.feed(b"[" * 100_000 + b"]" * 100_000)  # (3.13 parses 5000 deep)
    assert out and all(value is NOT_JSON for _, value in out)
