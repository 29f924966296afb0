"""The ``sciwire samp`` rows of issue #14: deadlines, nobody listening, snoop's count,
a hub that goes away, signals."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sciwire.samp import SAMPHubServer
from tests.clirun import run, running
from tests.samp.clientkit import ClientFactory


@pytest.fixture
def silent_hub(tmp_path: Path) -> Iterator[str]:
    """A lockfile naming a hub that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    lockfile = tmp_path / "silent.lock"
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/xmlrpc"
    lockfile.write_text(f"samp.secret=s\nsamp.hub.xmlrpc.url={url}\nsamp.profile.version=1.3\n")
    try:
        yield str(lockfile)
    finally:
        sock.close()


@pytest.mark.slow
def test_send_gives_up_at_the_timeout(silent_hub: str) -> None:
    result = run("samp", "send", "test.x", "a=1", "--lockfile", silent_hub, "--timeout", "1")
    result.clean(1)
    assert result.err.strip().startswith("error: the SAMP hub at http://127.0.0.1:")
    assert result.err.strip().endswith("no answer within 1 s")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["notify", "call", "sync"])
def test_send_says_when_nobody_received(hub: SAMPHubServer, mode: str) -> None:
    result = run("samp", "send", "test.nobody", "--mode", mode, "--lockfile", hub.lockfile or "")
    result.clean(1)
    assert result.err.strip() == "error: no client received test.nobody: none is subscribed to it"


@pytest.mark.slow
def test_send_without_a_hub_is_one_line(tmp_path: Path) -> None:
    result = run("samp", "send", "test.x", env={"HOME": str(tmp_path), "SAMP_HUB": ""})
    result.clean(1)
    assert result.err.startswith("error: no SAMP hub")
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.slow
def test_snoop_counts_only_what_it_shows(hub: SAMPHubServer, make: ClientFactory) -> None:
    tx = make("tx")  # registered before the snooper: its own events come before
    with running("samp", "snoop", "--count", "2", "--lockfile", hub.lockfile or "") as job:
        job.wait_line("snooping as", err=True)
        tx.enotify_all("test.one", a="1")
        tx.enotify_all("test.two", a="2")
        result = job.wait().clean(0)
    shown = [json.loads(line) for line in result.out.splitlines()]
    # SAMP does not order two notifications (the hub delivers each on its own), so the
    # two shown may come either way round; its own registration events are not among them
    assert sorted(r["mtype"] for r in shown) == ["test.one", "test.two"]


@pytest.mark.slow
def test_snoop_stops_when_the_hub_shuts_down(tmp_path: Path) -> None:
    hub = SAMPHubServer(web_profile=False, lockfile=tmp_path / "samp.lock")
    hub.start()
    try:
        with running("samp", "snoop", "--lockfile", hub.lockfile or "") as job:
            job.wait_line("snooping as", err=True)
            hub.stop()
            result = job.wait().clean(0)
    finally:
        hub.stop()
    assert "the SAMP hub shut down" in result.err
    assert json.loads(result.out.splitlines()[-1])["mtype"] == "samp.hub.event.shutdown"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_snoop_exits_0_on_signals(hub: SAMPHubServer, signum: int) -> None:
    with running("samp", "snoop", "--lockfile", hub.lockfile or "") as job:
        job.wait_line("snooping as", err=True)
        job.signal(signum).clean(0)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_hub_exits_0_on_signals_and_removes_its_lockfile(tmp_path: Path, signum: int) -> None:
    lockfile = tmp_path / "hub.lock"
    with running("samp", "hub", "--no-web", "--lockfile", str(lockfile)) as job:
        job.wait_line("SAMP hub http://", err=True)
        assert lockfile.exists()
        job.signal(signum).clean(0)
    assert not lockfile.exists()


@pytest.mark.slow
def test_snoop_notices_a_hub_that_died(tmp_path: Path) -> None:
    lockfile = tmp_path / "hub.lock"
    with running("samp", "hub", "--no-web", "--lockfile", str(lockfile)) as hub:
        hub.wait_line("SAMP hub http://", err=True)
        with running("samp", "snoop", "--lockfile", str(lockfile)) as job:
            job.wait_line("snooping as", err=True)
            hub.proc.kill()  # no shutdown event: the snooper must find out by itself
            hub.proc.wait()
            result = job.wait(60).clean(1)
    assert result.err.strip().splitlines()[-1].startswith("error: lost the SAMP hub")
