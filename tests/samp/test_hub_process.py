"""The hub run as a command (``sciwire samp hub``): lockfile removed on SIGTERM and
SIGINT, and a clear error with exit code 1 when a live hub already owns the lockfile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sciwire.samp import _hublock as L

Scaled = Callable[[float], float]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _start_hub(
    lock: Path, processes: list[subprocess.Popen[str]], home: Path
) -> subprocess.Popen[str]:
    env = dict(os.environ, HOME=str(home))
    env.pop("SAMP_HUB", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sciwire", "samp", "hub", "--no-web", "--lockfile", str(lock)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    processes.append(proc)
    return proc


def _wait_ready(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    line = proc.stderr.readline()  # the hub announces itself once it serves
    assert "SAMP hub http://127.0.0.1:" in line, line
    return line


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_hub_and_removes_the_lockfile(
    tmp_path: Path, processes: list[subprocess.Popen[str]], scaled: Scaled, sig: int
) -> None:
    lock = tmp_path / "lock"
    proc = _start_hub(lock, processes, tmp_path)
    _wait_ready(proc)
    fields = L.read_lockfile(lock)
    assert fields["samp.hub.xmlrpc.url"].startswith("http://127.0.0.1:")
    assert oct(lock.stat().st_mode & 0o777) == oct(0o600)
    proc.send_signal(sig)
    code = proc.wait(scaled(20))
    assert not lock.exists()
    # 0 when the signal reached the hub's wait loop; the signal arriving between the
    # start and the wait (the ready line is printed in between) ends the process the
    # signal's usual way, after the hub stopped and removed its lockfile
    assert code in (0, -sig, 128 + sig, 1)


@pytest.mark.slow
def test_a_second_hub_exits_with_a_clear_error(
    tmp_path: Path, processes: list[subprocess.Popen[str]], scaled: Scaled
) -> None:
    lock = tmp_path / "lock"
    first = _start_hub(lock, processes, tmp_path)
    _wait_ready(first)
    second = _start_hub(lock, processes, tmp_path)
    _, err = second.communicate(timeout=scaled(30))
    assert second.returncode == 1
    assert "already running" in err
    assert lock.exists()  # the first hub's lockfile is untouched
    first.send_signal(signal.SIGTERM)
    assert first.wait(scaled(20)) == 0
    assert not lock.exists()


SCRIPT = """
import sys, threading
from sciwire.samp.hub import SAMPHubServer
hub = SAMPHubServer(lockfile=sys.argv[1], web_profile=False)
hub.start()
print("ready", flush=True)
threading.Event().wait()  # a script busy with other things, not in hub.wait()
"""


@pytest.mark.slow
def test_sigterm_outside_wait_still_removes_the_lockfile(
    tmp_path: Path, processes: list[subprocess.Popen[str]], scaled: Scaled
) -> None:
    lock = tmp_path / "lock"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(lock)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    processes.append(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    assert lock.exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(scaled(20)) == -signal.SIGTERM  # still dies of SIGTERM, as before
    assert not lock.exists()
