"""SAMP: sciwire's hub and clients side by side with astropy's, and with the JSAMP hub.

Every hub runs in its own process (as users run one); the clients run here.

- call_and_wait round trips/s: our hub + our clients vs astropy's hub + astropy's
  clients (target >= 10x), and our hub vs the JSAMP hub, both driven by our clients.
- notify_all deliveries/s to 10 receivers: ours vs astropy's (target >= 5x).
- 200 clients registered at once, each notifying its neighbour: deliveries/s, checked
  for loss. Memory is measured around the registration: what the 200 clients added to
  this process's RSS, and the hub's RSS before and after (this process also runs the
  other packages' workloads, so its whole RSS says nothing about samp).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.harness import Workload
from sciwire.samp import SAMPIntegratedClient
from sciwire.samp._hublock import read_lockfile

CALL_ROUNDS = {"sciwire": 400, "astropy": 60, "jsamp": 300}
NOTIFY_ROUNDS = {"sciwire": 200, "astropy": 60}
RECEIVERS = 10
LOST: dict[str, int] = {}  # call_and_wait calls that timed out, by client module
MANY_CLIENTS = 200
MANY_MESSAGES = 5  # per client per round

ASTROPY_HUB = """
import sys, warnings
warnings.simplefilter("ignore")
from astropy.samp import SAMPHubServer, conf
conf.use_internet = False
SAMPHubServer(web_profile=False, lockfile=sys.argv[1]).start(wait=True)
"""


def _astropy() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import astropy.samp as samp

    samp.conf.use_internet = False
    return samp


def _wait_for_hub(
    proc: subprocess.Popen[bytes], lockfile: Path, timeout: float = 60
) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hub process exited with {proc.returncode}")
        if lockfile.exists():
            params = read_lockfile(lockfile)
            if "samp.hub.xmlrpc.url" in params:
                probe = SAMPIntegratedClient(callable=False)  # JSAMP pings before it registers
                try:
                    probe.connect(hub_params=params)
                    probe.disconnect()
                    return params
                except Exception:
                    probe.disconnect()
        time.sleep(0.05)
    raise RuntimeError(f"no hub answered through {lockfile}")


def _start_hub(stack: contextlib.ExitStack, kind: str) -> tuple[dict[str, str], int]:
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-samp-{kind}-")))
    lockfile = tmp / "lock"
    env = dict(os.environ, HOME=str(tmp), SAMP_HUB=f"std-lockurl:{lockfile.as_uri()}")
    if kind == "sciwire":
        cmd = [
            sys.executable,
            "-m",
            "sciwire",
            "samp",
            "hub",
            "--no-web",
            "--lockfile",
            str(lockfile),
        ]
    elif kind == "astropy":
        cmd = [sys.executable, "-c", ASTROPY_HUB, str(lockfile)]
    else:
        jsamp = shutil.which("jsamp")
        if jsamp is None:
            raise RuntimeError("jsamp is not installed")
        cmd = [jsamp, "hub", "-mode", "no-gui", "-profiles", "std"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    stack.callback(stop)
    return _wait_for_hub(proc, lockfile), proc.pid


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _disconnect(client: Any) -> None:
    try:
        client.disconnect()
    except Exception as exc:  # the hub went first; say so but finish the cleanup
        print(f"samp: disconnect failed: {exc!r}", file=sys.stderr)


def _connect(stack: contextlib.ExitStack, cls: Any, params: dict[str, str], name: str) -> Any:
    client = cls(name=name, addr="127.0.0.1") if cls is not SAMPIntegratedClient else cls(name=name)
    client.connect(hub_params=params)
    stack.callback(_disconnect, client)
    return client


class _Tally:
    """Counts notifications delivered to :meth:`handler`; a round waits for its total."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.got = 0
        self._expected = 0

    def handler(self, key: str, sender: str, mtype: str, params: Any, extra: Any) -> None:
        with self._lock:
            self.got += 1
            if self.got >= self._expected:
                self._done.set()

    def expect(self, total: int) -> None:
        """Start a round of *total* deliveries."""
        with self._lock:
            self.got = 0
            self._expected = total
            self._done.clear()

    def wait(self, what: str) -> None:
        """Block until the round's deliveries all arrived (RuntimeError after 120 s)."""
        if not self._done.wait(120):
            raise RuntimeError(f"lost {what}: {self.got} of {self._expected}")


def _call_and_wait(
    stack: contextlib.ExitStack, cls: Any, params: dict[str, str], n: int
) -> Callable[[], float]:
    caller = _connect(stack, cls, params, "caller")
    callee = _connect(stack, cls, params, "callee")

    def on_call(key: str, sender: str, msg_id: str, mtype: str, p: Any, extra: Any) -> None:
        callee.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {}})

    callee.bind_receive_call("bench.call", on_call)
    target = callee.get_public_id()
    message = {"samp.mtype": "bench.call", "samp.params": {"x": "1"}}

    def run() -> float:
        # astropy's hub sometimes loses a fast reply (it delivers the call before it
        # registers the msg-id) and the call then times out: such calls are counted
        # in LOST and their time is left out, which flatters the peer.
        ok, busy = 0, 0.0
        for _ in range(n):
            start = time.perf_counter()
            try:
                caller.call_and_wait(target, message, "2")
            except Exception as exc:
                LOST[cls.__module__] = LOST.get(cls.__module__, 0) + 1
                print(f"samp: {cls.__module__} call_and_wait lost ({exc}); {LOST}", file=sys.stderr)
                continue
            busy += time.perf_counter() - start
            ok += 1
        return ok / busy

    run()  # warm up connections
    return run


def _notify_all(
    stack: contextlib.ExitStack, cls: Any, params: dict[str, str], n: int
) -> Callable[[], float]:
    sender = _connect(stack, cls, params, "sender")
    tally = _Tally()
    for i in range(RECEIVERS):
        rx = _connect(stack, cls, params, f"rx{i}")
        rx.bind_receive_notification("bench.note", tally.handler)
    message = {"samp.mtype": "bench.note", "samp.params": {"x": "1"}}

    def run(count: int) -> float:
        tally.expect(count * RECEIVERS)
        start = time.perf_counter()
        for _ in range(count):
            sender.notify_all(message)
        tally.wait("notifications")
        return count * RECEIVERS / (time.perf_counter() - start)

    run(5)
    return lambda: run(n)


def _many_clients(
    stack: contextlib.ExitStack,
    params: dict[str, str],
    hub_pid: int,
    work: Workload,
    memory: dict[str, float],
) -> Callable[[], float]:
    tally = _Tally()
    pool = stack.enter_context(ThreadPoolExecutor(16))
    here_before, hub_before = _rss_mb(os.getpid()), _rss_mb(hub_pid)

    def register(i: int) -> SAMPIntegratedClient:
        client = SAMPIntegratedClient(name=f"many{i}")
        client.bind_receive_notification("bench.many", tally.handler)
        client.connect(hub_params=params)
        return client

    clients = list(pool.map(register, range(MANY_CLIENTS)))
    for client in clients:
        stack.callback(_disconnect, client)
    if len({c.get_public_id() for c in clients}) != MANY_CLIENTS:
        raise RuntimeError("a registration failed")
    ids = [c.get_public_id() for c in clients]
    memory["clients"] = _rss_mb(os.getpid()) - here_before
    memory["hub_before"] = hub_before
    message = {"samp.mtype": "bench.many", "samp.params": {}}

    def send(i: int) -> None:
        for _ in range(MANY_MESSAGES):
            clients[i].notify(ids[(i + 1) % MANY_CLIENTS], message)

    def run() -> float:
        total = MANY_CLIENTS * MANY_MESSAGES
        tally.expect(total)
        start = time.perf_counter()
        list(pool.map(send, range(MANY_CLIENTS)))
        tally.wait("messages")
        figure = total / (time.perf_counter() - start)
        if tally.got != total:
            raise RuntimeError(f"{tally.got} deliveries for {total} messages")
        memory["hub"] = _rss_mb(hub_pid)
        work.notes = (
            f"{MANY_CLIENTS} clients, no loss; they added {memory['clients']:.0f} MB to this "
            f"process; hub RSS {memory['hub_before']:.0f} -> {memory['hub']:.0f} MB"
        )
        print(f"samp: {work.notes}", file=sys.stderr)
        return figure

    return run


def workloads(stack: contextlib.ExitStack) -> list[Workload]:
    """Start the three hubs (each in its own process) and return the workloads."""
    samp = _astropy()
    ours, ours_pid = _start_hub(stack, "sciwire")
    theirs, _ = _start_hub(stack, "astropy")
    jsamp, _ = _start_hub(stack, "jsamp")
    ours_cls = SAMPIntegratedClient
    astropy_cls = samp.SAMPIntegratedClient
    many = Workload(
        name=f"{MANY_CLIENTS} clients registered, notifying at once",
        unit="deliveries/s",
        sciwire=lambda: 0.0,
        notes="",
    )
    memory: dict[str, float] = {}
    many.sciwire = _many_clients(stack, ours, ours_pid, many, memory)
    return [
        Workload(
            name="call_and_wait round trips (hub in its own process)",
            unit="calls/s",
            sciwire=_call_and_wait(stack, ours_cls, ours, CALL_ROUNDS["sciwire"]),
            peer=_call_and_wait(stack, astropy_cls, theirs, CALL_ROUNDS["astropy"]),
            peer_name="astropy hub+client",
            target=10,
        ),
        Workload(
            name="call_and_wait round trips, our hub vs JSAMP hub (our clients)",
            unit="calls/s",
            sciwire=_call_and_wait(stack, ours_cls, ours, CALL_ROUNDS["sciwire"]),
            peer=_call_and_wait(stack, ours_cls, jsamp, CALL_ROUNDS["jsamp"]),
            peer_name="JSAMP hub",
            target=1,
        ),
        Workload(
            name=f"notify_all deliveries to {RECEIVERS} receivers",
            unit="deliveries/s",
            sciwire=_notify_all(stack, ours_cls, ours, NOTIFY_ROUNDS["sciwire"]),
            peer=_notify_all(stack, astropy_cls, theirs, NOTIFY_ROUNDS["astropy"]),
            peer_name="astropy hub+clients",
            target=5,
        ),
        many,
        Workload(
            name=f"{MANY_CLIENTS} clients: hub RSS + what the clients added here",
            unit="MB",
            sciwire=lambda: _rss_mb(ours_pid) + memory["clients"],
            lower_is_better=True,
            notes="hub RSS read with every client of every workload registered",
        ),
    ]
