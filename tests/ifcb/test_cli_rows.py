"""The ``sciwire ifcb`` rows of issue #14, against ``sciwire ifcb sim`` in its own process."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest

from tests.clirun import Running, run, running, taken_port


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[Running, str]]:
    with running("ifcb", "sim", "--port", "0", "--rate", "0", "--triggers", "2") as job:
        url = job.wait_line("IFCB simulator listening on").split()[4]
        yield job, url.replace("http://", "ws://")


@pytest.mark.slow
def test_sim_on_a_taken_port_is_one_line() -> None:
    with taken_port() as port:
        result = run("ifcb", "sim", "--port", str(port)).clean(1)
    assert result.err.strip() == (
        f"error: IFCB simulator: cannot listen on 127.0.0.1:{port}: the port is already in use"
        " (is another server running? try another --port)"
    )


@pytest.mark.slow
def test_monitor_rejects_what_is_not_a_url() -> None:
    result = run("ifcb", "monitor", "notaurl", "111-111-111").clean(1)
    assert result.err.strip() == (
        "error: 'notaurl' is not a hub URL: expected ws://HOST:PORT/ifcbHub (or wss://, http://)"
    )


@pytest.mark.slow
def test_monitor_at_a_url_that_is_not_a_hub_hints_at_the_path(sim: tuple[Running, str]) -> None:
    _, url = sim
    base = url.removesuffix("/ifcbHub")
    result = run("ifcb", "monitor", base, "111-111-111").clean(1)
    assert result.err.strip() == (
        f"error: cannot connect to {base}: negotiate failed with HTTP 404"
        f" (not a SignalR hub; did you mean {base}/ifcbHub?)"
    )


@pytest.mark.slow
@pytest.mark.parametrize("count", [1, 3])
def test_monitor_count_prints_exactly_n(sim: tuple[Running, str], count: int) -> None:
    result = run("ifcb", "monitor", sim[1], "111-111-111", "--count", str(count)).clean(0)
    assert len(result.out.splitlines()) == count


@pytest.mark.slow
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


@pytest.mark.slow
def test_wrong_serial_is_warned_on_both_sides(sim: tuple[Running, str]) -> None:
    job, url = sim
    with running("ifcb", "monitor", url, "999-999-999", "--silence", "1") as mon:
        line = mon.wait_line("no message from instrument 999-999-999", err=True)
        assert "check the serial" in line
        mon.signal(signal.SIGTERM).clean(0)
    line = job.wait_line("'999-999-999'", err=True)
    assert "serves only '111-111-111'" in line


@pytest.mark.slow
def test_sim_and_monitor_exit_0_on_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        with running("ifcb", "sim", "--port", "0", "--rate", "0") as sim:
            url = sim.wait_line("listening on").split()[4].replace("http://", "ws://")
            with running("ifcb", "monitor", url, "111-111-111") as mon:
                mon.wait_line("valuechanged")
                mon.signal(signum).clean(0)
            sim.signal(signum).clean(0)


async def _attack(url: str, frames: list[str], timeout: float) -> list[Any]:
    """Handshake on a bare WebSocket, send *frames*; what the hub sends back until it closes."""
    got: list[Any] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
        await ws.send_str('{"protocol":"json","version":1}\x1e')
        assert (await ws.receive(timeout=timeout)).data == "{}\x1e"
        for frame in frames:
            if ws.closed:
                break
            try:
                await ws.send_str(frame)
            except (ConnectionError, aiohttp.ClientError):
                break
        while True:
            msg = await ws.receive(timeout=timeout)
            got.append(msg.data if msg.type is aiohttp.WSMsgType.TEXT else msg.type)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                got.append(msg.data)  # the close code
                return got


@pytest.mark.slow
def test_sim_size_limits_from_the_command_line(scaled: Callable[[float], float]) -> None:
    args = ("--port", "0", "--rate", "0", "--max-message-size", "300", "--max-record-size", "100")
    with running("ifcb", "sim", *args) as job:
        url = job.wait_line("IFCB simulator listening on").split()[4].replace("http", "ws")
        got = asyncio.run(_attack(url, ["m" * 301], scaled(10)))
        assert got[-2:] == [aiohttp.WSMsgType.CLOSE, 1009], got
        job.wait_line("max_message_size", err=True)
        got = asyncio.run(_attack(url, ["r" * 60] * 4, scaled(10)))  # each frame under 300
        assert any("max_record_size" in str(g) for g in got), got
        job.wait_line("max_record_size", err=True)
        job.signal().clean(0)
    for name in ("max_message_size", "max_record_size"):
        assert sum(name in ln for ln in job.err) == 1, job.err
