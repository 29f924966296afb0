"""The ``sciwire ifcb`` rows of issue #14, against ``sciwire ifcb sim`` in its own process."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest

from tests.clirun import Running, run, running, taken_port


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[Running, str]]:
    with running("ifcb", "sim", "--port", "0", "--rate", "0", "--triggers", "2") as job:
        url = job.wait_line("IFCB simulator listening on").split()[4]
        yield job, url.replace("http://", "ws://")


def test_sim_on_a_taken_port_is_one_line() -> None:
    with taken_port() as port:
        result = run("ifcb", "sim", "--port", str(port)).clean(1)
    assert result.err.strip() == (
        f"error: IFCB simulator: cannot listen on 127.0.0.1:{port}: the port is already in use"
        " (is another server running? try another --port)"
    )


def test_monitor_rejects_what_is_not_a_url() -> None:
    result = run("ifcb", "monitor", "notaurl", "111-111-111").clean(1)
    assert result.err.strip() == (
        "error: 'notaurl' is not a hub URL: expected ws://HOST:PORT/ifcbHub (or wss://, http://)"
    )


def test_monitor_at_a_url_that_is_not_a_hub_hints_at_the_path(sim: tuple[Running, str]) -> None:
    _, url = sim
    base = url.removesuffix("/ifcbHub")
    result = run("ifcb", "monitor", base, "111-111-111").clean(1)
    assert result.err.strip() == (
        f"error: cannot connect to {base}: negotiate failed with HTTP 404"
        f" (not a SignalR hub; did you mean {base}/ifcbHub?)"
    )


@pytest.mark.parametrize("count", [1, 3])
def test_monitor_count_prints_exactly_n(sim: tuple[Running, str], count: int) -> None:
    result = run("ifcb", "monitor", sim[1], "111-111-111", "--count", str(count)).clean(0)
    assert len(result.out.splitlines()) == count


def test_monitor_json_lines(sim: tuple[Running, str]) -> None:
    result = run(
        "ifcb",
        "monitor",
        sim[1],
        "111-111-111",
        "--json",
        "--pattern",
        "triggercontent",
        "--send",
        "routine:runsample",
        "--count",
        "1",
    ).clean(0)
    (line,) = result.out.splitlines()
    fields = json.loads(line)["message"]
    assert fields[0] == "triggercontent"
    assert "PeakA" in fields[1]  # DAQ values as a map
    assert fields[2][0][2]["image_base64_chars"] > 0  # each ROI: top, left, image size


def test_wrong_serial_is_warned_on_both_sides(sim: tuple[Running, str]) -> None:
    job, url = sim
    with running("ifcb", "monitor", url, "999-999-999", "--silence", "1") as mon:
        line = mon.wait_line("no message from instrument 999-999-999", err=True)
        assert "check the serial" in line
        mon.signal(signal.SIGTERM).clean(0)
    line = job.wait_line("'999-999-999'", err=True)
    assert "serves only '111-111-111'" in line


def test_sim_and_monitor_exit_0_on_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        with running("ifcb", "sim", "--port", "0", "--rate", "0") as sim:
            url = sim.wait_line("listening on").split()[4].replace("http://", "ws://")
            with running("ifcb", "monitor", url, "111-111-111") as mon:
                mon.wait_line("valuechanged")
                mon.signal(signum).clean(0)
            sim.signal(signum).clean(0)
