"""The IFCB codec: every vocabulary form, typed values, malformed input, robustness."""

from __future__ import annotations

import base64
import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sciwire.errors import RemoteProtocolError
from sciwire.ifcb._server import make_png, sample_messages
from sciwire.ifcb.protocol import (
    VALUECHANGED_TYPES,
    DaqValues,
    IFCBProtocolError,
    RoiImage,
    UnknownMessage,
    format_message,
    parse_message,
    parse_response,
)

PNG = make_png(3, 2, bytes([0, 50, 100, 150, 200, 250]))
PNG64 = base64.b64encode(PNG).decode()
DAQ = (
    "ADCTime:4295.101:GrabTimeStart:4295.101:GrabTimeEnd:4338.461:PeakA:0.016:PeakB:0.261"
    ":PeakC:0.010:PeakD:0.010:IntegratedA:0.004:IntegratedB:0.016:IntegratedC:0.000"
    ":IntegratedD:0.001:TimeOfFlight:58.695:RunTime:4.317:InhibitTime:0.420"
)

CASES: list[tuple[str, list[Any]]] = [
    ("client:reset", ["client", "reset"]),
    ("client:disconnected", ["client", "disconnected"]),
    ("client:enableroutines", ["client", "enableroutines"]),
    ("client:disableroutines", ["client", "disableroutines"]),
    ("syringetrack:3.14159", ["syringetrack", 3.14159]),
    ("movevalvestarted:sample:waste", ["movevalvestarted", "sample", "waste"]),
    ("movevalvefinished:waste", ["movevalvefinished", "waste"]),
    ("triggerchanged:12:processed:2:0:40", ["triggerchanged", 12, "processed", 2, 0, 40]),
    ("triggerchanged:12:saved:10:2", ["triggerchanged", 12, "saved", 10, 2]),
    ("triggerchanged:12:skipped:1:2:3:4", ["triggerchanged", 12, "skipped", 1, 2, 3, 4]),
    (f"triggerimage:{PNG64}", ["triggerimage", PNG]),
    ("triggerrois:2:0:0:AAAA:5:5:BBBB", ["triggerrois", [(0, 0, b"\0\0\0"), (5, 5, b"\x04\x10A")]]),
    ("triggerrois:0", ["triggerrois", []]),
    (
        "graphchanged:0.1:0.2:0.3:0.4:5:6:7:1.5:2.5:3.5:4.5:2024-06-01|12-30",
        [
            "graphchanged",
            0.1,
            0.2,
            0.3,
            0.4,
            5,
            6,
            7,
            1.5,
            2.5,
            3.5,
            4.5,
            datetime.datetime(2024, 6, 1, 12, 30),
        ],
    ),
    ("file:start:D1.adc:3:text/plain", ["file", "start", "D1.adc", 3, "text/plain"]),
    ("file:chunk:D1.adc:1:a,b:c:d", ["file", "chunk", "D1.adc", 1, "a,b:c:d"]),
    ("file:end:D1.adc", ["file", "end", "D1.adc"]),
    ("file:list:a.adc:b.hdr:c.roi", ["file", "list", ["a.adc", "b.hdr", "c.roi"]]),
    ("file:list:", ["file", "list", []]),
    ("reportevent:Routine: done: ok", ["reportevent", "Routine: done: ok"]),
    (
        "valuechanged:acquisition:status:running",
        ["valuechanged", "acquisition", "status", "running"],
    ),
    ("valuechanged:acquisition:started", ["valuechanged", "acquisition", "started"]),
    ("valuechanged:acquisition:stopped", ["valuechanged", "acquisition", "stopped"]),
    ("valuechanged:pausestate:0", ["valuechanged", "pausestate", False]),
    ("valuechanged:pausestate:1", ["valuechanged", "pausestate", True]),
    (
        'valuechanged:interactive:load:{"name":"r","steps":[{"a":"b:c"}]}',
        ["valuechanged", "interactive", "load", {"name": "r", "steps": [{"a": "b:c"}]}],
    ),
    ("valuechanged:interactive:clear", ["valuechanged", "interactive", "clear"]),
    ("valuechanged:interactive:save", ["valuechanged", "interactive", "save"]),
    ("valuechanged:interactive:started", ["valuechanged", "interactive", "started"]),
    ("valuechanged:interactive:stopped", ["valuechanged", "interactive", "stopped"]),
    (
        "valuechanged:interactive:listgroups:a:b",
        ["valuechanged", "interactive", "listgroups", "a", "b"],
    ),
    ("valuechanged:interactive:liststeps:x", ["valuechanged", "interactive", "liststeps", "x"]),
    ("valuechanged:switchstirrer:0", ["valuechanged", "switchstirrer", False]),
    ("valuechanged:switchauxpower1:1", ["valuechanged", "switchauxpower1", True]),
    ("valuechanged:setpmta:0.55", ["valuechanged", "setpmta", 0.55]),
    ("valuechanged:setcameragain:12", ["valuechanged", "setcameragain", 12]),
    ("valuechanged:getenvironment:21.5:48.25", ["valuechanged", "getenvironment", 21.5, 48.25]),
    (
        "valuechanged:setdatafolder:C:\\IFCB\\data",
        ["valuechanged", "setdatafolder", "C:\\IFCB\\data"],
    ),
    ("valuechanged:setzoomsize:640:480", ["valuechanged", "setzoomsize", 640, 480]),
    ("valuechanged:fpsrate:4.5", ["valuechanged", "fpsrate", 4.5]),
    ("valuechanged:movefocus:-20", ["valuechanged", "movefocus", -20]),
    ("valuechanged:movelaser:5", ["valuechanged", "movelaser", 5]),
    ("valuechanged:uvmodulepresent:1", ["valuechanged", "uvmodulepresent", True]),
    ("valuechanged:hostversion:4.1.2:beta", ["valuechanged", "hostversion", "4.1.2:beta"]),
    ("valuechanged:currentgpsposition:n/a", ["valuechanged", "currentgpsposition", "n/a"]),
    (
        "valuechanged:samplegpsposition:41.5:-70.6",
        ["valuechanged", "samplegpsposition", "41.5:-70.6"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_every_form_parses_to_typed_values(text: str, expected: list[Any]) -> None:
    fields = parse_message(text)
    assert fields == expected
    assert type(fields) is list  # known, not flagged
    for got, want in zip(fields, expected, strict=True):
        if isinstance(want, bool | int | float | str | datetime.datetime):
            assert type(got) is type(want)


def test_triggercontent_daq_dict_and_rois() -> None:
    fields = parse_message(f"triggercontent:daq:{DAQ}:rois:2:0:0:AAAA:5:5:{PNG64}")
    name, daq, rois = fields
    assert name == "triggercontent"
    assert isinstance(daq, DaqValues) and len(daq) == 14
    assert daq["PeakA"] == 0.016 and daq["IntegratedC"] == 0.0
    assert daq == {
        k: float(v) for k, v in zip(DAQ.split(":")[::2], DAQ.split(":")[1::2], strict=True)
    }
    assert "RunTime" in daq and "Nope" not in daq
    assert isinstance(daq.to_dict(), dict)
    assert [(t, left) for t, left, _ in rois] == [(0, 0), (5, 5)]
    assert rois[0][2] == b"\0\0\0" and bytes(rois[1][2]) == PNG
    assert rois[1][2].data.startswith(b"\x89PNG")


def test_images_decode_only_when_looked_at() -> None:
    [_, rois] = parse_message("triggerrois:1:3:4:!!notbase64!!")
    image = rois[0][2]
    assert isinstance(image, RoiImage) and image.base64 == "!!notbase64!!"
    with pytest.raises(IFCBProtocolError, match="base64"):
        _ = image.data


def test_parsed_images_and_daq_values_are_what_their_constructors_build() -> None:
    # the hot path builds them without calling __init__; nothing may differ
    text = f"triggercontent:daq:{DAQ}:rois:1:3:4:{PNG64}"
    [_, daq, [(_, _, image)]] = parse_message(text)
    made = RoiImage(PNG64)
    assert type(image) is RoiImage and image.base64 == made.base64 == PNG64
    assert image._data is None and made._data is None  # nothing decoded yet
    assert repr(image) == repr(made) and image == made and hash(image) == hash(made)
    assert image._data == made._data == PNG
    built = DaqValues(DAQ.split(":"))
    assert type(daq) is DaqValues and daq._values is None and daq._fields is None
    assert dict(daq) == dict(built) and repr(daq) == repr(built) and len(daq) == len(built)


def test_bad_daq_value_raises_on_access_naming_the_message() -> None:
    [_, daq, _] = parse_message("triggercontent:daq:PeakA:xyz:rois:0")
    with pytest.raises(IFCBProtocolError, match="triggercontent"):
        daq["PeakA"]


def test_unknown_but_well_formed_messages_are_delivered_raw_and_flagged() -> None:
    for text in (
        "newthing:1:2",
        "valuechanged:switchnew:1",
        "client:whatever",
        "triggerchanged:1:zapped:2",
    ):
        fields = parse_message(text)
        assert isinstance(fields, UnknownMessage) and fields.known is False
        assert fields == text.split(":")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "syringetrack:abc",
        "syringetrack:1:2",
        "syringetrack",
        "triggerchanged:x:processed:1:2:3",
        "triggerchanged:5",
        "valuechanged:pausestate:2",
        "valuechanged:pausestate",
        "valuechanged",
        "valuechanged:setcameragain:1.5",
        "valuechanged:interactive:load:{not json",
        "graphchanged:1:2:3:4:5:6:7:8:9:10:11:2024-06-01 12:30",
        "graphchanged:1:2:3",
        "triggerrois:2:0:0:AAAA",
        "triggerrois:x",
        "triggerrois:-1",
        "triggerrois:1:a:0:AAAA",
        "triggerimage:AAAA:BBBB",
        "triggercontent:daq:PeakA:1.0",
        "triggercontent:daq:PeakA:rois:0",
        "triggercontent:nodaq:rois:0",
        "file:start:x:many:text/plain",
        "file:chunk:x:1",
    ],
)
def test_malformed_known_messages_raise_naming_the_message(text: str) -> None:
    with pytest.raises(IFCBProtocolError) as info:
        parse_message(text)
    assert isinstance(info.value, RemoteProtocolError) and isinstance(info.value, ValueError)
    head = text.split(":")[0]
    assert f"'{head}" in str(info.value)


def test_non_string_input_is_an_error() -> None:
    with pytest.raises(IFCBProtocolError):
        parse_message(b"syringetrack:1")  # type: ignore[arg-type]


def test_reference_name_parses_like_parse_message() -> None:
    assert parse_response(m="valuechanged:pausestate:0") == ["valuechanged", "pausestate", False]
    assert parse_response("syringetrack:2.5") == parse_message("syringetrack:2.5")


def test_table_covers_the_documented_families() -> None:
    switches = [k for k in VALUECHANGED_TYPES if k.startswith("switch")]
    settings = [k for k in VALUECHANGED_TYPES if k.startswith("set")]
    assert len(switches) == 39 and len(settings) == 49  # as the reference table


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_format_inverts_parse(text: str, expected: list[Any]) -> None:
    assert parse_message(format_message(*parse_message(text))) == expected


def test_format_builds_instrument_text() -> None:
    assert format_message("valuechanged", "pausestate", False) == "valuechanged:pausestate:0"
    assert format_message("triggerrois", [(1, 2, b"\0\0\0")]) == "triggerrois:1:1:2:AAAA"
    assert (
        format_message("triggercontent", {"PeakA": 0.5}, [(1, 2, RoiImage("AAAA"))])
        == "triggercontent:daq:PeakA:0.5:rois:1:1:2:AAAA"
    )
    assert format_message("valuechanged", "interactive", "load", {"a": [1]}) == (
        'valuechanged:interactive:load:{"a":[1]}'
    )
    with pytest.raises(TypeError):
        format_message("x", object())
    with pytest.raises(ValueError):
        format_message()


def test_sample_mix_parses() -> None:
    heads = [parse_message(m)[0] for m in sample_messages(200)]
    assert heads.count("triggercontent") == 90 and heads.count("graphchanged") == 10


@given(st.text(max_size=80))
def test_any_text_parses_or_raises_the_codec_error(text: str) -> None:
    try:
        fields = parse_message(text)
    except IFCBProtocolError:
        return
    assert isinstance(fields, list) and fields


fields_strategy = st.one_of(
    st.tuples(st.just("syringetrack"), st.floats(allow_nan=False, allow_infinity=False)),
    st.tuples(st.just("valuechanged"), st.just("pausestate"), st.booleans()),
    st.tuples(
        st.just("triggerchanged"),
        st.integers(0, 10**9),
        st.just("saved"),
        st.integers(0, 10**6),
        st.integers(0, 10**6),
    ),
    st.tuples(st.just("reportevent"), st.text(min_size=0, max_size=40)),
    st.tuples(
        st.just("triggerrois"),
        st.lists(
            st.tuples(st.integers(0, 2000), st.integers(0, 2000), st.binary(max_size=30)),
            max_size=4,
        ),
    ),
)


@given(fields_strategy)
def test_format_then_parse_round_trips(fields: tuple[Any, ...]) -> None:
    parsed = parse_message(format_message(*fields))
    if fields[0] == "triggerrois":
        assert parsed == ["triggerrois", [tuple(r) for r in fields[1]]]
    else:
        assert parsed == list(fields)


@pytest.mark.parametrize(
    "text",
    [
        "triggercontent:daq:rois:0",
        "triggercontent:daq:A:1:rois:0",
        "triggercontent:daq:A:1:B:2:rois:1:3:4:AAAA",
        "triggercontent:daq::rois:0",  # one empty DAQ field: odd
        "triggercontent:daq:A:rois:0",  # odd
        "triggercontent:daq:rois:1.0:rois:0",  # the first 'rois' field counts
        "triggercontent:daq:A:1:rois",
        "triggercontent:daq:A:1:rois:",
        "triggercontent:daq:A:1:rois:2:0:0:AAAA",
        "triggercontent:daq:A:1:rois:-1",
        "triggercontent:daq:rois:rois:0",
        "triggercontent:nodaq:rois:0",
        "triggercontent:daq",
        "triggercontent:",
    ],
)
def test_triggercontent_text_path_agrees_with_the_field_path(text: str) -> None:
    from sciwire.ifcb._codec import _triggercontent

    def outcome(fn: Any) -> Any:
        try:
            fields = fn()
        except IFCBProtocolError:
            return "malformed"
        return [fields[0], dict(fields[1]), fields[2]]

    expected = outcome(lambda: _triggercontent(text.split(":"), text))
    assert outcome(lambda: parse_message(text)) == expected


def test_daq_values_from_text_split_on_first_use() -> None:
    [_, daq, _] = parse_message("triggercontent:daq:PeakA:0.5:PeakB:2:rois:0")
    assert len(daq) == 2 and "PeakB" in daq and "0.5" not in daq
    assert daq == {"PeakA": 0.5, "PeakB": 2.0} and daq.to_dict()["PeakA"] == 0.5


def _single_forms() -> list[tuple[str, Any]]:
    from sciwire.ifcb import _codec as p

    out = []
    for head, specs in [*p._HEADS_SPEC.items(), *p.VALUECHANGED_TYPES.items()]:
        prefix = [head] if head in p._HEADS_SPEC else ["valuechanged", head]
        name = head if head in p._HEADS_SPEC else f"valuechanged:{head}"
        forms = p._forms(prefix, specs)
        [form, *more] = forms
        if not more and not form.lits and not form.rest and len(form.convs) == 1:
            out.append((name, form))
    return out


@pytest.mark.parametrize("name, form", _single_forms(), ids=lambda v: str(v)[:30])
def test_single_conversion_fast_parser_agrees_with_the_form_path(name: str, form: Any) -> None:
    from sciwire.ifcb._codec import _malformed, _single

    def general(args: list[str], text: str) -> Any:
        try:
            return form.parse(args)
        except ValueError as exc:
            raise _malformed(name, text, exc) from exc

    fast = _single(form, name)
    prefix = name.split(":")
    for value in ["1", "0", "2.5", "-3", "true", "x", "", "1e3", " 7"]:
        for fields in ([*prefix, value], [*prefix], [*prefix, value, value]):
            text = ":".join(fields)
            outcomes = []
            for parser in (fast, general):
                try:
                    got: Any = parser(list(fields), text)
                    outcomes.append(("ok", got, [type(v) for v in got]))
                except IFCBProtocolError as exc:
                    outcomes.append(("error", str(exc), type(exc.__cause__), exc.data))
            assert outcomes[0] == outcomes[1]
    assert parse_message(":".join([*prefix, "1"]))[-1] == general([*prefix, "1"], "")[-1]
