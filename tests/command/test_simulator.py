"""The simulated command_core: model and lifecycle (fake clock), over the wire, and the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner

from sciwire.command import CommandClient, CommandError, make_json_request, make_request
from sciwire.command._simulator import CommandCoreSim, SimError, simulated_servers
from sciwire.command.cli import group


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> CommandCoreSim:
    return CommandCoreSim(clock=clock)


def test_job_lifecycle_advances_with_the_clock(sim: CommandCoreSim, clock: FakeClock) -> None:
    uid = sim.make_job("homo_abinit", "P1", "W1", "u1", params={"abinit_K": 3})
    assert sim.get_job("P1", uid)["status"] == "building"
    assert sim.job_set_param("P1", uid, "abinit_K", 2) is True
    assert sim.enqueue_job("P1", uid, lane="gpu") == "queued"
    seen = []
    for _ in range(12):
        seen.append(sim.get_job("P1", uid)["status"])
        clock.now += 0.5
    assert seen == ["queued"] * 2 + ["launched"] * 2 + ["running"] * 6 + ["completed"] * 2
    doc = sim.get_job("P1", uid)
    assert doc["queued_to_lane"] == "gpu"
    assert doc["params_spec"]["abinit_K"] == {"value": 2}
    assert doc["queued_at"] < doc["launched_at"] < doc["running_at"] < doc["completed_at"]
    assert sim.get_job("P1", uid, "status") == {
        "uid": uid,
        "project_uid": "P1",
        "status": "completed",
    }


def test_failing_job_and_speed(clock: FakeClock) -> None:
    sim = CommandCoreSim(clock=clock, speed=10)
    uid = sim.make_job("x", "P1", "W1", "u1", params={"sim_fail": True})
    sim.enqueue_job("P1", uid)
    clock.now += 0.51
    assert sim.get_job_status("P1", uid) == "failed"


def test_kill_clear_and_set_status(sim: CommandCoreSim, clock: FakeClock) -> None:
    uid = sim.make_job("x", "P1", "W1", "u1")
    with pytest.raises(SimError, match="cannot kill"):
        sim.kill_job("P1", uid)
    sim.enqueue_job("P1", uid)
    clock.now += 1.5
    sim.kill_job("P1", uid, killed_by_user_id="u1")
    clock.now += 100
    assert sim.get_job_status("P1", uid) == "killed"
    with pytest.raises(SimError, match="not building"):
        sim.enqueue_job("P1", uid)
    sim.clear_job("P1", uid)
    assert sim.get_job("P1", uid)["status"] == "building"
    sim.set_job_status("P1", uid, "waiting")
    clock.now += 100
    assert sim.get_job_status("P1", uid) == "waiting"
    with pytest.raises(SimError):
        sim.set_job_status("P1", uid, "bogus")


def test_model_errors_and_lookups(sim: CommandCoreSim) -> None:
    assert sim.get_id_by_email_password("user@example.com", "password") == "u1"
    with pytest.raises(SimError):
        sim.get_id_by_email_password("user@example.com", "wrong")
    with pytest.raises(SimError):
        sim.get_project("P9")
    with pytest.raises(SimError):
        sim.get_job("P1", "J9")
    with pytest.raises(SimError):
        sim.make_job("x", "P1", "W9", "u1")
    uid = sim.make_job("x", "P1", "W1", "u1")
    with pytest.raises(SimError, match="Unknown lane"):
        sim.enqueue_job("P1", uid, lane="nowhere")
    w = sim.create_empty_workspace("P1", "u1", title="second")
    assert w == "W2" and sim.get_workspace("P1", "W2")["title"] == "second"
    assert [lane["name"] for lane in sim.get_scheduler_lanes()] == ["default", "gpu"]
    assert sim.get_scheduler_targets()[0]["lane"] == "default"
    assert sim.get_job_dir_abs("P1", uid).endswith(f"/CS-p1/{uid}")
    assert sim.get_project_dir_abs("P1") == sim.get_project("P1")["project_dir"]
    assert sim.job_connect_group("P1", f"{uid}.particles", f"{uid}.input") is True
    assert sim.get_running_version() == "v4.7.1"
    assert sim.test_connection() is True


@pytest.fixture
def sim_servers(clock: FakeClock) -> Iterator[tuple[CommandCoreSim, list[int]]]:
    core, servers = simulated_servers(base_port=0, license_id="LIC", clock=clock)
    started = []
    try:
        for srv in servers:
            started.append(srv.start_background())
        yield core, [s.port for s in servers]
    finally:
        for srv in started:
            srv.stop_background()


def test_simulator_over_the_wire(
    sim_servers: tuple[CommandCoreSim, list[int]], clock: FakeClock
) -> None:
    _, (core_port, vis_port, rtp_port) = sim_servers
    headers = {"License-ID": "LIC"}
    cli = CommandClient("command_core", "127.0.0.1", core_port, headers=headers, retries=1)
    vis = CommandClient("command_vis", "127.0.0.1", vis_port, headers=headers, retries=1)
    rtp = CommandClient("command_rtp", "127.0.0.1", rtp_port, headers=headers, retries=1)
    try:
        assert cli.hello_world() == {"hello": "world"}
        assert rtp.hello_world() == {"hello": "world"}
        uid = cli.make_job(job_type="t", project_uid="P1", workspace_uid="W1", user_id="u1")
        cli.enqueue_job(project_uid="P1", job_uid=uid, lane="default")
        clock.now += 10
        assert cli.get_job("P1", uid)["status"] == "completed"
        with pytest.raises(CommandError, match="SimError") as info:
            cli.get_job("P1", "J404")
        assert "does not exist" in str(info.value)
        assert "traceback" in info.value.data
        ext = vis.create_external_job("P1", "W1", "u1", "ext")
        assert cli.get_job("P1", ext)["job_type"] == "snowflake"
        with make_request(vis, method="GET") as resp:
            assert resp.read()
        with (
            pytest.raises(CommandError) as info,
            make_json_request(vis, "/get_project_file", data={"project_uid": "P1", "path": "none"}),
        ):
            pass
        assert info.value.code == 404
    finally:
        for c in (cli, vis, rtp):
            c.close()


def test_cli_call_against_the_simulator(sim_servers: tuple[CommandCoreSim, list[int]]) -> None:
    _, (core_port, _, _) = sim_servers
    runner = CliRunner()
    base = ["--host", "127.0.0.1", "--port", str(core_port), "--license", "LIC"]
    res = runner.invoke(group, ["call", "get_project", "P1", *base])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["uid"] == "P1"
    res = runner.invoke(
        group, ["call", "create_empty_workspace", "project_uid=P1", "created_by_user_id=u1", *base]
    )
    assert res.exit_code == 0 and json.loads(res.output) == "W2"
    res = runner.invoke(group, ["call", "get_project", "P7", *base])
    assert res.exit_code == 1
    assert "does not exist" in res.output


def test_cli_serve_in_a_subprocess(scaled: Callable[[float], float]) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sciwire", "command", "serve", "--port", "0", "--fast"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        urls = {}
        for _ in range(3):
            line = proc.stderr.readline()
            m = re.match(r"(\w+) listening on http://127\.0\.0\.1:(\d+)", line)
            assert m, line
            urls[m.group(1)] = int(m.group(2))
        cli = CommandClient(host="127.0.0.1", port=urls["command_core"], retries=1)
        try:
            assert cli.get_running_version() == "v4.7.1"
        finally:
            cli.close()
    finally:
        proc.terminate()
        assert proc.wait(scaled(10)) == 0
        if proc.stderr:
            proc.stderr.close()
