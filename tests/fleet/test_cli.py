"""``sciwire fleet`` commands, run as processes against a real nats-server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from sciwire.cli import main
from sciwire.fleet.cli import parse_pattern
from sciwire.rig import ExpMessage
from tests.fleet.helpers import bridge_config
from tests.helpers import scale


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(main, ["fleet", "--help"])
    assert result.exit_code == 0
    for command in ("bridge", "watch", "send", "status", "demo"):
        assert command in result.output


def test_patterns() -> None:
    assert parse_pattern("ifcb") == [(None,)]
    assert parse_pattern("ifcb:valuechanged:pausestate") == [("valuechanged", "pausestate")]
    assert parse_pattern("rig:expinit|expend") == [ExpMessage.EXPINIT | ExpMessage.EXPEND]
    assert parse_pattern("rig") == [ExpMessage.any()]
    assert parse_pattern("samp:table.*") == ["table.*"]
    assert parse_pattern("all") == [(None,), ExpMessage.any(), "*"]
    for bad in ("tv", "rig:explode"):
        with pytest.raises(click.BadParameter):
            parse_pattern(bad)


def test_bad_config_and_pattern_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text("[bridge]\nname = 'a.b'\n")
    result = CliRunner().invoke(main, ["fleet", "bridge", str(path)])
    assert result.exit_code == 1 and "without dots" in result.output
    result = CliRunner().invoke(main, ["fleet", "watch", "tv"])
    assert result.exit_code == 2 and "start with ifcb, rig, samp or all" in result.output


async def finished(proc: Any, timeout: float = 30) -> int:
    return (await asyncio.to_thread(proc.wait, timeout)).code


@pytest.mark.slow
async def test_status_send_and_watch(
    nats_server: Any, sims: list, rigs: list, make_bridge: Any, cli: Any
) -> None:
    bridge = await make_bridge(bridge_config([nats_server.url], sims[:1], rigs[:1]))
    url = ["--server", nats_server.url]
    watcher = cli(
        "watch", "ifcb:triggercontent", "rig", "--since", "all", "--json", "--count", "11", *url
    )
    status = cli("status", "--json", *url)
    assert await finished(status) == 0
    report = json.loads(status.out[-1])
    assert [b["bridge"] for b in report["bridges"]] == ["test"]
    assert report["bridges"][0]["connected"] == 2 and report["stream"]["stream"] == "SCIWIRE"
    send = cli("send", "ifcb", sims[0].serial, "routine:runsample", *url)
    assert await finished(send) == 0 and json.loads(send.out[-1]) == {"ok": True, "result": None}
    rig = cli("send", "rig", "cam", "status", '"running"', *url)
    assert await finished(rig) == 0 and json.loads(rig.out[-1])["result"] == {"cam": [0]}
    missing = cli("send", "ifcb", "999-999-999", "routine:runsample", *url)
    assert await finished(missing) == 1
    assert any("no bridge serves" in line for line in missing.err)
    assert await finished(watcher, scale(30)) == 0
    events = [json.loads(line) for line in watcher.out]
    assert len(events) >= 11
    assert {e["name"] for e in events} == {"triggercontent", "expstatus"}
    assert bridge.health()["stored"] >= 11
    resync = cli("resync", *url)  # SCIWIRE captures subjects: it has no sources
    assert await finished(resync) == 1 and any("has no sources" in line for line in resync.err)
    human = cli("status", *url)
    assert await finished(human) == 0
    assert any(line.startswith("bridge test: 2/2 instruments connected") for line in human.out)


def test_demo_row() -> None:
    from sciwire.fleet.demo import run

    row = run()
    assert row.ok, row.checked
    assert row.package == "fleet" and "delivered once in order" in row.checked
