"""JSAMP's conformance tester (``jsamp hubtester``) against our hub, on loopback.

The tester registers several clients, checks metadata, subscriptions, hub events,
faults and timeouts, then runs a message storm; it is silent and exits 0 on success.
It finds the hub through ``SAMP_HUB`` (never the user's ~/.samp): a ``std-lockurl:``
for the Standard Profile, ``web-appname:`` for the Web Profile, which JSAMP always
looks for on the spec's port 21012.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from sciwire.samp.hub import AsyncSAMPHub

pytestmark = [pytest.mark.interop, pytest.mark.slow]

Scaled = Callable[[float], float]


async def _run_hubtester(env_hub: str, home: Path, timeout: float) -> tuple[int, str]:
    jsamp = shutil.which("jsamp")
    assert jsamp is not None, "jsamp is not installed (make system-deps installs it)"
    env = dict(os.environ, SAMP_HUB=env_hub, HOME=str(home))
    proc = await asyncio.create_subprocess_exec(
        jsamp,
        "hubtester",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"jsamp hubtester hung for {timeout} s against our hub") from None
    return proc.returncode or 0, out.decode(errors="replace")


def _unexpected(out: str) -> str:
    """The tester's output without JSAMP's own known client race.

    After a web client unregisters, JSAMP's callback puller may poll once more with
    the dead key and log "Fatal pullCallbacks error" (a WARNING, exit code still 0).
    It logs the same against JSAMP's own hub; everything else must be silent.
    """
    kept: list[str] = []
    skipping = False
    for line in out.splitlines():
        if "CallWorker seriousError" in line:
            skipping = True
        elif skipping and not line.strip():
            skipping = False
            continue
        if not skipping:
            kept.append(line)
    return "\n".join(kept).strip()


@pytest.mark.parametrize("run", [1, 2])
async def test_hubtester_standard_profile(tmp_path: Path, scaled: Scaled, run: int) -> None:
    lock = tmp_path / "lock"
    hub = AsyncSAMPHub(lockfile=lock, web_profile=False)
    await hub.start()
    try:
        code, out = await _run_hubtester(f"std-lockurl:{lock.as_uri()}", tmp_path, scaled(90))
    finally:
        await hub.stop()
    assert code == 0, out
    assert _unexpected(out) == "", out


async def test_hubtester_web_profile(tmp_path: Path, scaled: Scaled) -> None:
    hub = AsyncSAMPHub(lockfile=tmp_path / "lock", web_profile=True, web_auth="allow")
    await hub.start()  # on port 21012: JSAMP's web clients only look there
    try:
        assert hub.web_port == 21012
        code, out = await _run_hubtester("web-appname:hubtester", tmp_path, scaled(90))
    finally:
        await hub.stop()
    assert code == 0, out
    assert _unexpected(out) == "", out
