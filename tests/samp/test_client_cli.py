"""``sciwire samp hub|send|snoop`` on loopback, with temporary lockfiles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sciwire.samp import SAMP_STATUS_OK, SAMPHubServer
from sciwire.samp._hublock import read_lockfile
from sciwire.samp.cli import group
from tests.helpers import scale
from tests.samp.clientkit import ClientFactory, Inbox, poll


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_send_notify(hub: SAMPHubServer, make: ClientFactory) -> None:
    rx = make("rx")
    inbox = Inbox()
    rx.bind_receive_notification("table.load.votable", inbox.notification_handler())
    result = CliRunner().invoke(
        group,
        [
            "send",
            "table.load.votable",
            "url=file:///t.vot",
            "n=3",
            "--lockfile",
            hub.lockfile or "",
        ],
    )
    assert result.exit_code == 0, result.output
    assert lines(result.output) == [{"notified": rx.get_public_id()}]
    assert inbox.wait(1)[0][2] == {"url": "file:///t.vot", "n": "3"}
    result = CliRunner().invoke(
        group,
        [
            "send",
            "table.load.votable",
            'x=["a","b"]',
            "--to",
            rx.get_public_id() or "",
            "--lockfile",
            hub.lockfile or "",
        ],
    )
    assert result.exit_code == 0, result.output
    assert inbox.wait(2)[1][2] == {"x": ["a", "b"]}


def test_send_sync_and_call(hub: SAMPHubServer, make: ClientFactory) -> None:
    rx = make("rx")

    def answer(key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any) -> None:
        rx.ereply(msg_id, SAMP_STATUS_OK, result={"echo": params["v"]})

    rx.bind_receive_call("test.cli", answer)
    for mode in ("sync", "call"):
        result = CliRunner().invoke(
            group, ["send", "test.cli", "v=1", "--mode", mode, "--lockfile", hub.lockfile or ""]
        )
        assert result.exit_code == 0, result.output
        (record,) = lines(result.output)
        assert record["from"] == rx.get_public_id()
        assert record["response"]["samp.result"] == {"echo": "1"}


def test_send_errors(hub: SAMPHubServer, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(group, ["send", "a.b", "novalue", "--lockfile", hub.lockfile or ""])
    assert result.exit_code == 2 and "key=value" in result.output
    result = runner.invoke(
        group, ["send", "a.b", "--to", "nobody", "--lockfile", hub.lockfile or ""]
    )
    assert result.exit_code == 1 and "refused" in result.output
    result = runner.invoke(group, ["send", "a.b", "--lockfile", str(tmp_path / "none")])
    assert result.exit_code == 1 and "cannot read lockfile" in result.output


def _sciwire(*args: str) -> list[str]:
    return [sys.executable, "-m", "sciwire", "samp", *args]


@pytest.mark.slow
def test_hub_command_refuses_a_second_hub_and_cleans_up_on_sigterm(tmp_path: Path) -> None:
    lockfile = tmp_path / "cli.lock"
    proc = subprocess.Popen(
        _sciwire("hub", "--no-web", "--lockfile", str(lockfile)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        poll(
            lambda: lockfile.exists() and "samp.secret" in read_lockfile(lockfile),
            scale(20),
            "lock",
        )
        assert lockfile.stat().st_mode & 0o077 == 0  # owner-only
        second = subprocess.run(
            _sciwire("hub", "--no-web", "--lockfile", str(lockfile)),
            capture_output=True,
            text=True,
            timeout=scale(30),
        )
        assert second.returncode == 1
        assert "already running" in second.stderr
        made = ClientFactory(hub_params=read_lockfile(lockfile))
        try:
            assert made("probe").is_connected
        finally:
            made.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(scale(20)) == 0
        assert not lockfile.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.slow
def test_snoop_prints_messages(hub: SAMPHubServer, make: ClientFactory) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        _sciwire("snoop", "--lockfile", hub.lockfile or ""),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    printed = Inbox()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{"):
                printed.put(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        tx = make("tx")

        def snooper_ready() -> bool:
            subscribed = tx.get_subscribed_clients("test.snoop")
            return any(tx.get_metadata(c).get("samp.name") == "sciwire-snoop" for c in subscribed)

        poll(snooper_ready, scale(20), "the snooper")
        tx.enotify_all("test.snoop", a="1")
        (target,) = list(tx.get_subscribed_clients("test.snoop"))
        assert tx.ecall_and_wait(target, "test.snoop.call", "10")["samp.status"] == SAMP_STATUS_OK
        note = printed.wait_for(lambda r: r["mtype"] == "test.snoop")
        call = printed.wait_for(lambda r: r["mtype"] == "test.snoop.call")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(scale(20)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(scale(5))
        if proc.stdout is not None:
            proc.stdout.close()
    assert note["kind"] == "notify" and note["params"] == {"a": "1"}
    assert note["sender"] == tx.get_public_id()
    assert call["kind"] == "call"


@pytest.mark.slow
def test_hub_command_takes_samp_hubs_options(tmp_path: Path) -> None:
    lockfile = tmp_path / "opts.lock"
    logfile = tmp_path / "hub.log"
    proc = subprocess.Popen(
        _sciwire("hub", "-w", "-f", str(lockfile), "-k", "sekrit", "-l", "my hub",
                 "-L", "debug", "-O", str(logfile), "-P", "2", "-c", "0", "-t", "600"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        poll(
            lambda: lockfile.exists() and "samp.secret" in read_lockfile(lockfile),
            scale(20),
            "lock",
        )
        fields = read_lockfile(lockfile)
        assert fields["samp.secret"] == "sekrit"
        assert fields["hub.label"] == "my hub"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(scale(20)) == 0
        assert logfile.exists() and logfile.stat().st_size > 0  # DEBUG lines went to FILE
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(scale(10))
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.slow
def test_hub_command_asks_on_the_terminal_for_web_clients(tmp_path: Path) -> None:
    import re
    import xmlrpc.client

    lockfile = tmp_path / "prompt.lock"
    proc = subprocess.Popen(
        _sciwire("hub", "-f", str(lockfile), "--web-port", "0", "--web-auth", "prompt"),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stderr is not None
    try:
        banner = proc.stderr.readline()  # "SAMP hub ... web profile on port N)"
        match = re.search(r"web profile on port (\d+)", banner)
        assert match, banner
        web = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{match.group(1)}/")
        answers: list[Any] = []

        def register() -> None:
            try:
                answers.append(web.samp.webhub.register({"samp.name": "page"}))
            except xmlrpc.client.Fault as fault:
                answers.append(fault)

        asker = threading.Thread(target=register)
        asker.start()
        seen = ""
        while "SAMP messages" not in seen:  # the request's description, then the question
            line = proc.stderr.readline()
            assert line, f"the hub ended its output before asking: {seen!r}"
            seen += line
        assert "page" in seen
        proc.stdin.write("yes\n")
        proc.stdin.flush()
        asker.join(scale(20))
        web("close")()
        assert isinstance(answers[0], dict) and answers[0]["samp.self-id"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(scale(20)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(scale(10))
        proc.stdin.close()
        proc.stderr.close()
