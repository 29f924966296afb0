"""Our SAMPIntegratedClient against the reference JSAMP hub (``jsamp hub -mode no-gui``).

The hub runs as a subprocess with its own lockfile (``SAMP_HUB=std-lockurl:``) and its
own HOME in a temporary directory, so the user's ~/.samp is never touched. JSAMP is
strict about the SAMP data model (it refuses XML-RPC ints), which checks that we
stringify what we send.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sciwire.samp import SAMP_STATUS_OK, SAMPHubError, SAMPIntegratedClient, SAMPProxyError
from sciwire.samp._hublock import read_lockfile
from tests.helpers import scale
from tests.interop.samp_client_scenarios import *  # noqa: F403 - the shared scenarios
from tests.samp.clientkit import ClientFactory, Inbox, factory, poll

pytestmark = pytest.mark.interop

JSAMP = shutil.which("jsamp")


def _hub_answers(lockfile: Path) -> bool:
    if not lockfile.exists():
        return False
    params = read_lockfile(lockfile)
    if "samp.hub.xmlrpc.url" not in params:
        return False  # still being written
    # a full registration: JSAMP answers ping before its hub service runs, and
    # refuses registrations ("Hub is stopped") until then
    probe = SAMPIntegratedClient(callable=False)
    try:
        probe.connect(hub_params=params)
    except (SAMPHubError, SAMPProxyError):
        probe.disconnect()
        return False
    probe.disconnect()
    return True


@pytest.fixture(scope="module")
def jsamp_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    assert JSAMP is not None, "jsamp is not installed (make system-deps installs it)"
    home = tmp_path_factory.mktemp("jsamp-home")
    lockfile = home / "jsamp.lock"
    env = dict(os.environ, HOME=str(home), SAMP_HUB=f"std-lockurl:{lockfile.as_uri()}")
    proc = subprocess.Popen(
        [JSAMP, "hub", "-mode", "no-gui", "-profiles", "std"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        poll(lambda: proc.poll() is None and _hub_answers(lockfile), scale(60), "the JSAMP hub")
        yield read_lockfile(lockfile)
    finally:
        proc.terminate()
        try:
            proc.wait(scale(10))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def make(jsamp_hub: dict[str, str]) -> Iterator[ClientFactory]:
    yield from factory(hub_params=jsamp_hub)


@pytest.fixture
def keeps_types() -> bool:
    """JSAMP's hub refuses ints, floats and bools: our client learns it, sends strings."""
    return False


def test_jsamp_hub_id_and_hub_in_registered_clients(make: ClientFactory) -> None:
    cli = make("probe")
    hub_id = cli.client.core.get_hub_id()
    assert hub_id and hub_id in cli.get_registered_clients()
    assert cli.get_metadata(hub_id).get("samp.name")


def test_jsamp_messagesender_calls_our_client(
    make: ClientFactory, jsamp_hub: dict[str, str], tmp_path: Path
) -> None:
    assert JSAMP is not None
    ours = make("sciwire-target")
    seen = Inbox()

    def answer(key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any) -> None:
        seen.put(params)
        ours.ereply(msg_id, SAMP_STATUS_OK, result={"answer": "42"})

    ours.bind_receive_message("test.jsamp.*", answer)
    lockfile = tmp_path / "pointer.lock"  # JSAMP finds the hub through SAMP_HUB
    lockfile.write_text("".join(f"{k}={v}\n" for k, v in jsamp_hub.items()))
    env = dict(os.environ, SAMP_HUB=f"std-lockurl:{lockfile.as_uri()}", HOME=str(tmp_path))
    done = subprocess.run(
        [
            JSAMP,
            "messagesender",
            "-mtype",
            "test.jsamp.sync",
            "-param",
            "q",
            "life",
            "-mode",
            "sync",
            "-targetid",
            ours.get_public_id() or "",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=scale(60),
    )
    assert done.returncode == 0, done.stderr
    assert seen.wait(1)[0] == {"q": "life"}
    assert "42" in done.stdout
