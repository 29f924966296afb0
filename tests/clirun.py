"""Run the real ``sciwire`` command in a subprocess, the way a user does.

Every helper checks what the CLI rows of issue #14 promise: an exit status, and no
Python traceback on stdout or stderr.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.helpers import scale


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("COLUMNS", None)
    env.update(extra or {})
    return env


@dataclass
class Result:
    """What a finished command did."""

    code: int
    out: str
    err: str

    def clean(self, code: int) -> Result:
        """Assert exit status *code* and that no traceback was printed; return self."""
        assert self.code == code, (self.code, self.out, self.err)
        assert "Traceback" not in self.out + self.err, self.err
        return self


def run(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> Result:
    """Run ``sciwire ARGS`` to completion."""
    proc = subprocess.run(
        [sys.executable, "-m", "sciwire", *args],
        capture_output=True,
        text=True,
        timeout=scale(timeout),
        env=_env(env),
        stdin=subprocess.DEVNULL,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Running:
    """A long-running ``sciwire`` command, its output collected line by line."""

    proc: subprocess.Popen[str]
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    _new: threading.Condition = field(default_factory=threading.Condition)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _pump(self, stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._new:
                into.append(line.rstrip("\n"))
                self._new.notify_all()

    def wait_line(self, contains: str, *, err: bool = False, timeout: float = 30) -> str:
        """The first line (stdout, or stderr) containing *contains*; fails after *timeout*."""
        lines = self.err if err else self.out
        with self._new:
            found = self._new.wait_for(
                lambda: next((x for x in lines if contains in x), None), scale(timeout)
            )
        assert found, (contains, self.out, self.err)
        return found

    def wait_lines(
        self, predicate: Callable[[list[str]], bool], *, err: bool = False, timeout: float = 30
    ) -> list[str]:
        """Block until *predicate* holds on the lines so far (stdout, or stderr); fails
        after *timeout*."""
        lines = self.err if err else self.out
        with self._new:
            ok = self._new.wait_for(lambda: predicate(lines), scale(timeout))
        assert ok, (len(self.out), self.out[-10:], self.err[-10:])
        return lines

    def signal(self, signum: int = signal.SIGTERM, timeout: float = 30) -> Result:
        """Send *signum*, wait for the exit, return what the command did."""
        self.proc.send_signal(signum)
        return self.wait(timeout)

    def wait(self, timeout: float = 30) -> Result:
        """Wait for the exit (fails after *timeout*)."""
        code = self.proc.wait(scale(timeout))
        for t in self._threads:
            t.join(scale(5))
        return Result(code, "\n".join(self.out), "\n".join(self.err))

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()


@contextmanager
def running(*args: str, env: dict[str, str] | None = None) -> Iterator[Running]:
    """Start ``sciwire ARGS``; kill it on the way out if it is still running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sciwire", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_env(env),
    )
    job = Running(proc)
    job.start()
    try:
        yield job
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(scale(10))
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def taken_port(kind: int = socket.SOCK_STREAM) -> Iterator[int]:
    """A loopback port that something else holds (listening, for TCP)."""
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            sock.listen()
        yield sock.getsockname()[1]
    finally:
        sock.close()
