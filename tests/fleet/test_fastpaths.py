"""The bridge's and the consumer's fast paths against the general ones they stand in for:
same output for the realistic mix, and the same verdict on malformed input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sciwire.errors import SciwireError
from sciwire.fleet._schema import (
    FleetPayloadError,
    _ifcb_fields,
    _loads,
    _refill,
    _trigger_blobs,
    _triggercontent_blobs,
    decode_event,
    encode_event,
    encode_ifcb,
    ifcb_event,
)
from sciwire.ifcb import RoiImage, parse_message
from sciwire.ifcb._server import sample_messages

SAMPLES = sample_messages(600)

EDGES = [
    "triggercontent:daq:rois:0",
    "triggercontent:daq:rois:1:2:3:iVBORw0KGgo=",
    "triggercontent:daq:a:1:rois:1:2:3:iVBORw0KGgo=",
    "triggercontent:daq:a:rois:1:2:3:iVBORw0KGgo=",  # an odd number of DAQ fields
    "triggercontent:daq:a:1:rois:2:2:3:iVBORw0KGgo=",  # fewer ROIs than announced
    "triggercontent:daq:a:1:rois:1:x:3:iVBORw0KGgo=",  # a top that is not an int
    "triggercontent:daq:a:1:rois:1:2:3:not base64!",
    "triggercontent:daq:a:1:rois:-1",
    "triggercontent:daq:a:1:rois:one",
    "triggercontent:daq:a:1",  # no rois at all
    "triggercontent:nodaq:rois:0",
    "triggercontent:daq:rois:rois:1:2:3:AAAA",
    "triggercontent:daq: 1:2:rois: 1:+2:3_0:AAAA",  # what int() accepts, both ways
]


def _general(text: str) -> object:
    try:
        return _trigger_blobs("triggercontent", text)
    except SciwireError as exc:
        return type(exc)


def _fast(text: str) -> object:
    try:
        return _triggercontent_blobs(text)
    except SciwireError as exc:
        return type(exc)


def _check(text: str) -> None:
    fast = _fast(text)
    if fast is not None:  # None: the fast path leaves it to the general one
        assert fast == _general(text), text


@pytest.mark.parametrize("text", [t for t in SAMPLES if t.startswith("triggercontent")] + EDGES)
def test_triggercontent_fast_path_matches_the_general_one(text: str) -> None:
    _check(text)


def test_fast_path_takes_the_realistic_mix() -> None:
    taken = [t for t in SAMPLES if t.startswith("triggercontent")]
    assert taken and all(_triggercontent_blobs(t) is not None for t in taken)


@given(
    st.lists(st.sampled_from(["daq", "rois", "1", "2", "-1", "x", "AAAA", "iVBORw0KGgo=", ""])),
)
def test_fast_path_matches_on_generated_fields(fields: list[str]) -> None:
    _check(":".join(["triggercontent", *fields]))


@pytest.mark.parametrize("text", SAMPLES[:200] + EDGES + ["bad head.x*:1", "newthing:a:b"])
def test_encode_ifcb_is_ifcb_event_then_encode_event(text: str) -> None:
    try:
        subject, body, blobs = ifcb_event("111-111-111", 7, 1733.25, text, 42)
    except SciwireError as exc:
        with pytest.raises(type(exc)):
            encode_ifcb("111-111-111", 7, 1733.25, text, 42)
        return
    assert encode_ifcb("111-111-111", 7, 1733.25, text, 42) == (
        subject,
        *encode_event(body, blobs),
    )
    data, headers = encode_event(body, blobs)
    assert decode_event(subject, data, headers).seq == 7


@pytest.mark.parametrize("text", [t for t in SAMPLES if t.startswith("trigger")][:100])
def test_consumer_refills_images_as_the_general_walk_does(text: str) -> None:
    _, body, blobs = ifcb_event("s", 1, 0.0, text)
    fast = _ifcb_fields(body, blobs)
    general = _refill(parse_message(body["text"]), iter(blobs))
    assert repr(fast) == repr(general)
    assert _images(fast) == _images(general)


def _images(value: object) -> list[bytes]:
    if isinstance(value, RoiImage):
        return [value.data]
    if isinstance(value, list | tuple):
        return [data for item in value for data in _images(item)]
    return []


def test_consumer_refuses_image_counts_that_do_not_match() -> None:
    text = "triggercontent:daq:rois:2:2:3:iVBORw0KGgo=:4:5:iVBORw0KGgo="
    _, body, blobs = ifcb_event("s", 1, 0.0, text)
    with pytest.raises(FleetPayloadError, match="fewer"):
        _ifcb_fields(body, blobs[:1])
    with pytest.raises(FleetPayloadError, match="more"):
        _ifcb_fields(body, [*blobs, b"x"])


@pytest.mark.parametrize(
    "text", ['{"a":1}', ' {"a":1} ', '{"a":1}\n', '{"a":1} x', '{"a":', "", "[1,2]", "NaN"]
)
def test_loads_decides_as_json_loads(text: str) -> None:
    try:
        expected: object = json.loads(text)
    except ValueError as exc:
        with pytest.raises(ValueError, match=str(exc).split(":")[0]):
            _loads(text)
        return
    assert repr(_loads(text)) == repr(expected)
