"""The fleet's wire contract without I/O: subjects, payloads, patterns, config."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sciwire.errors import LocalProtocolError
from sciwire.fleet import (
    CommandError,
    ConfigError,
    FleetPayloadError,
    decode_event,
    encode_event,
    parse_config,
    pattern_subject,
)
from sciwire.fleet._schema import HDR_BLOBS, HDR_MSG_ID, ifcb_event, rig_event, samp_event
from sciwire.ifcb import DaqValues, RoiImage, UnknownMessage, format_message
from sciwire.rig import ExpMessage, ExpStatus

PNG1 = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
PNG2 = b"\x89PNG\r\n\x1a\n" + b"\x00\xff" * 33


def roundtrip(built: tuple[str, dict, list[bytes]]) -> object:
    subject, body, blobs = built
    data, headers = encode_event(body, blobs)
    return decode_event(subject, data, headers, stream_seq=7)


def test_triggercontent_images_travel_as_bytes_and_come_back_typed() -> None:
    text = format_message(
        "triggercontent", {"PeakA": 0.25, "PeakB": 1.5}, [(1, 2, PNG1), (3, 4, PNG2)]
    )
    subject, body, blobs = ifcb_event("111-111-111", 5, 1000.5, text, hub_seq=42)
    assert subject == "sciwire.ifcb.111-111-111.triggercontent"
    assert blobs == [PNG1, PNG2]
    data, headers = encode_event(body, blobs)
    json_part = data[: len(data) - len(PNG1) - len(PNG2)]
    assert b"iVBOR" not in data  # no base64 anywhere in the payload
    assert json.loads(json_part)["text"].count(":") == text.count(":")
    assert headers[HDR_BLOBS] == f"{len(PNG1)},{len(PNG2)}"
    assert headers[HDR_MSG_ID] == "ifcb.111-111-111.5"
    event = decode_event(subject, data, headers, stream_seq=9)
    assert (event.kind, event.instrument, event.name, event.seq, event.time) == (
        "ifcb",
        "111-111-111",
        "triggercontent",
        5,
        1000.5,
    )
    assert event.stream_seq == 9 and event.body["hub_seq"] == 42
    name, daq, rois = event.fields
    assert name == "triggercontent"
    assert isinstance(daq, DaqValues) and daq == {"PeakA": 0.25, "PeakB": 1.5}
    assert [(t, left) for t, left, _ in rois] == [(1, 2), (3, 4)]
    assert all(isinstance(img, RoiImage) for _, _, img in rois)
    assert [img.data for _, _, img in rois] == [PNG1, PNG2]


@pytest.mark.parametrize(
    "fields",
    [
        ("triggerimage", PNG1),
        ("triggerrois", [(5, 6, PNG2)]),
        ("triggercontent", {}, []),
    ],
)
def test_other_image_messages_roundtrip(fields: tuple) -> None:
    text = format_message(*fields)
    event = roundtrip(ifcb_event("s", 1, 0.0, text))
    assert format_message(*event.fields) == text  # type: ignore[attr-defined]


def test_text_messages_parse_like_the_package() -> None:
    event = roundtrip(ifcb_event("s", 3, 0.0, "valuechanged:pausestate:0"))
    assert event.fields == ["valuechanged", "pausestate", False]  # type: ignore[attr-defined]
    unknown = roundtrip(ifcb_event("s", 4, 0.0, "newthing:a:b"))
    assert isinstance(unknown.fields, UnknownMessage)  # type: ignore[attr-defined]


def test_odd_ifcb_heads_become_subject_tokens() -> None:
    subject, body, _ = ifcb_event("s", 1, 0.0, "bad head.x*:1")
    assert subject == "sciwire.ifcb.s.bad_head_x_"
    assert body["text"] == "bad head.x*:1"


def test_malformed_image_message_is_refused_at_the_bridge() -> None:
    with pytest.raises(ValueError):
        ifcb_event("s", 1, 0.0, "triggerrois:2:1:2:AAAA")
    with pytest.raises(ValueError):
        ifcb_event("s", 1, 0.0, "triggerimage:not base64!")


def test_rig_and_samp_events() -> None:
    event = roundtrip(
        rig_event("cam", 2, 5.0, int(ExpMessage.EXPINFO), [20, {"a": 1}], ("127.0.0.1", 9))
    )
    assert event.subject == "sciwire.rig.cam.expinfo"  # type: ignore[attr-defined]
    assert event.fields == [ExpMessage.EXPINFO, [20, {"a": 1}]]  # type: ignore[attr-defined]
    assert event.fields[0] is ExpMessage.EXPINFO  # type: ignore[attr-defined]
    samp = roundtrip(samp_event("desk", 1, 0.0, "table.load.votable", {"url": "x"}, "c1", False))
    assert samp.subject == "sciwire.samp.table.load.votable"  # type: ignore[attr-defined]
    assert samp.data == {"url": "x"}  # type: ignore[attr-defined]
    with pytest.raises(LocalProtocolError):
        samp_event("desk", 1, 0.0, "bad mtype", {}, "c1", False)


@pytest.mark.parametrize(
    ("data", "headers", "why"),
    [
        (b"{}", {}, "not a sciwire fleet v1 event"),
        (b"not json", {}, "bad event body"),
        (
            b'{"v":2,"kind":"ifcb","instrument":"s","name":"x","seq":1,"time":0}',
            {},
            "v1 event",
        ),
        (
            b'{"v":1,"kind":"ifcb","name":"x","seq":1,"time":0}',
            {},
            "bad event body",
        ),
        (
            b'{"v":1,"kind":"tv","instrument":"s","name":"x","seq":1,"time":0}',
            {},
            "unknown event kind",
        ),
        (
            b'{"v":1,"kind":"ifcb","instrument":"s","name":"x","seq":1,"time":0,"text":"triggerrois:x"}',
            {},
            "bad ifcb event",
        ),
        (b'{"v":1}', {HDR_BLOBS: "99"}, "do not fit"),
        (b'{"v":1}', {HDR_BLOBS: "a,b"}, "bad Sciwire-Blobs"),
    ],
)
def test_malformed_payloads_raise_a_clear_error(data: bytes, headers: dict, why: str) -> None:
    with pytest.raises(FleetPayloadError, match=why):
        decode_event("sciwire.ifcb.s.x", data, headers)


def test_image_count_mismatch_is_malformed() -> None:
    subject, body, blobs = ifcb_event("s", 1, 0.0, format_message("triggerimage", PNG1))
    data, headers = encode_event(body, blobs)
    headers[HDR_BLOBS] = f"{len(PNG1) - 4},4"
    with pytest.raises(FleetPayloadError, match="images"):
        decode_event(subject, data, headers)


def test_oversized_event_is_refused() -> None:
    _, body, _ = ifcb_event("s", 1, 0.0, "x")
    with pytest.raises(LocalProtocolError, match="exceeds"):
        encode_event(body, [b"\0" * (1 << 20)])


def test_patterns_map_onto_subjects() -> None:
    assert pattern_subject(("valuechanged", "pausestate")) == "sciwire.ifcb.*.valuechanged"
    assert pattern_subject((None, "x"), "111") == "sciwire.ifcb.111.*"
    assert pattern_subject(ExpMessage.EXPINIT, "cam") == "sciwire.rig.cam.expinit"
    assert pattern_subject(ExpMessage.EXPEND | ExpMessage.EXPINIT) == "sciwire.rig.*.*"
    assert pattern_subject("*") == "sciwire.samp.>"
    assert pattern_subject("table.*") == "sciwire.samp.table.>"
    assert pattern_subject("table.load.votable") == "sciwire.samp.table.load.votable"
    for bad in [3.5, b"x", None]:
        with pytest.raises(TypeError):
            pattern_subject(bad)
    with pytest.raises(ValueError):
        pattern_subject(("a.b",))
    with pytest.raises(ValueError):
        pattern_subject("table..x")
    with pytest.raises(ValueError):
        pattern_subject("*", "hub")
    with pytest.raises(LocalProtocolError):
        pattern_subject(("x",), "bad.serial")
    with pytest.raises(ValueError):
        pattern_subject(300)


def test_command_error_is_a_remote_error() -> None:
    from sciwire.errors import RemoteError

    err = CommandError("nope", code="not-allowed")
    assert isinstance(err, RemoteError) and err.code == "not-allowed"


def test_config_parses_and_checks() -> None:
    cfg = parse_config(
        {
            "bridge": {"name": "b1", "health_interval": 0.5},
            "nats": {"servers": "nats://127.0.0.1:1", "user": "u", "password": "p"},
            "stream": {"name": "S", "replicas": 3, "max_age": 60},
            "ifcb": [
                {"serial": "111", "url": "ws://127.0.0.1:1/ifcbHub", "commands": ["routine:"]}
            ],
            "rig": [{"name": "cam", "uri": "udp://127.0.0.1:1", "commands": ["init"]}],
            "samp": {"name": "desk"},
        }
    )
    assert cfg.name == "b1" and cfg.nats.servers == ["nats://127.0.0.1:1"]
    assert cfg.stream.replicas == 3 and cfg.ifcb[0].allows("routine:runsample")
    assert not cfg.ifcb[0].allows("refresh")
    assert cfg.nats.connect_options()["credentials"] == ("u", "p")
    assert ExpStatus.CONNECTED == 0


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ({"nope": {}}, "unknown sections"),
        ({"stream": {"colour": 1}}, "unknown keys"),
        ({"bridge": {"name": "a.b"}}, "without dots"),
        ({"bridge": {"name": "ping"}}, "reserved"),
        ({"ifcb": [{"serial": "1", "url": "u"}, {"serial": "1", "url": "u"}]}, "twice"),
        (
            {"rig": [{"name": "r", "uri": "udp://127.0.0.1:1", "commands": ["alyx"]}]},
            "unknown commands",
        ),
        ({"ifcb": [{"serial": "1"}]}, "url"),
        ({"stream": {"storage": "tape"}}, "storage"),
        ({"stream": {"subjects": ["sciwire.cmd.>"]}}, "never sciwire.cmd"),
        ({"stream": {"subjects": "sciwire.ifcb.>"}}, "must be a list"),
        ({"bridge": {"window": 0}}, "positive"),
    ],
)
def test_config_errors_are_clear(doc: dict, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_config(doc)


def test_load_config_reports_bad_toml(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sciwire.fleet import load_config

    path = tmp_path / "b.toml"
    path.write_text("[bridge\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    "text",
    ["valuechanged:pausestate:0", 'quote " back\\slash \u00e9 \u2603 \n tab\t', ""],
)
@pytest.mark.parametrize("hub_seq", [None, 0, 12345678901234, "odd"])
def test_fast_ifcb_json_is_what_json_dumps_gives(text: str, hub_seq: object) -> None:
    _, body, _ = ifcb_event("111-\u00e9", 3, 1733.123456789, text, hub_seq)
    data, _ = encode_event(body)
    assert json.loads(data) == body
    assert data == json.dumps(body, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("pattern", "subject", "covered"),
    [
        ("sciwire.ifcb.>", "sciwire.ifcb.111.>", True),
        ("sciwire.ifcb.111.>", "sciwire.ifcb.111.>", True),
        ("sciwire.ifcb.*.>", "sciwire.ifcb.111.>", True),
        ("sciwire.ifcb.222.>", "sciwire.ifcb.111.>", False),
        ("sciwire.ifcb.111.*", "sciwire.ifcb.111.>", False),
        ("sciwire.rig.>", "sciwire.ifcb.111.>", False),
        ("sciwire.>", "sciwire.samp.>", True),
        ("sciwire.samp.a", "sciwire.samp.a", True),
        ("sciwire.samp.a.b", "sciwire.samp.a", False),
    ],
)
def test_subject_matches(pattern: str, subject: str, covered: bool) -> None:
    from sciwire.fleet._schema import subject_matches

    assert subject_matches(pattern, subject) is covered


@given(st.text(alphabet="ABCDEFabcdef0123456789+/=\n *-_", max_size=40))
def test_strict_base64_is_what_the_package_accepts(text: str) -> None:
    from sciwire.fleet._schema import _b64decode

    image = RoiImage(text)
    try:
        expected: bytes | None = image.data
    except ValueError:
        expected = None
    try:
        got: bytes | None = _b64decode(text)
    except ValueError:
        got = None
    assert got == expected


async def test_nats_errors_are_mapped_at_the_edge() -> None:
    import nats.errors
    import nats.js.errors

    from sciwire.errors import ConnectionClosed, Timeout
    from sciwire.fleet import FleetError
    from sciwire.fleet._nats import mapped

    cases = [
        (nats.js.errors.NotFoundError(code=404, description="stream not found"), FleetError),
        (nats.errors.TimeoutError(), Timeout),
        (nats.errors.NoRespondersError(), FleetError),
        (nats.errors.ConnectionClosedError(), ConnectionClosed),
        (nats.errors.Error("odd"), FleetError),
    ]
    for raised, expected in cases:
        with pytest.raises(expected, match=r"^doing it: "):
            async with mapped("doing it"):
                raise raised
