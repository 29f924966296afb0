"""``sciwire ifcb sim`` in its own process, ``sciwire ifcb monitor`` against it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner

from sciwire.ifcb.cli import group, parse_pattern


@pytest.fixture
def sim_url(scaled: Callable[[float], float]) -> Iterator[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sciwire",
            "ifcb",
            "sim",
            "--port",
            "0",
            "--rate",
            "0",
            "--triggers",
            "4",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("IFCB simulator listening on "), line
        yield line.split()[4]
    finally:
        proc.terminate()
        proc.wait(scaled(10))
        if proc.stdout is not None:
            proc.stdout.close()


def test_parse_pattern() -> None:
    assert parse_pattern("valuechanged,*,started") == ("valuechanged", None, "started")


@pytest.mark.slow
def test_monitor_prints_parsed_messages_from_the_sim(sim_url: str) -> None:
    result = CliRunner().invoke(
        group,
        [
            "monitor",
            sim_url.replace("http", "ws"),
            "111-111-111",
            "--pattern",
            "triggerchanged,*,processed",
            "--pattern",
            "valuechanged,pausestate",
            "--send",
            "routine:runsample",
            "--count",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "valuechanged pausestate False" in lines
    assert "triggerchanged 1 processed" in "\n".join(lines)


def test_monitor_unreachable_hub_is_a_clean_error() -> None:
    result = CliRunner().invoke(group, ["monitor", "ws://127.0.0.1:1/ifcbHub", "x"])
    assert result.exit_code == 1
    assert "error: cannot connect to ws://127.0.0.1:1/ifcbHub" in result.output
