"""Our SAMPIntegratedClient against astropy's SAMPHubServer on loopback."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sciwire.samp import SAMP_STATUS_OK
from tests.interop.samp_client_scenarios import *  # noqa: F403 - the shared scenarios
from tests.samp.clientkit import ClientFactory, Inbox, factory

# astropy 8 deprecates astropy.samp in favour of pyvo.samp (an identical copy): the
# warning is about the peer's future, not about our code. astropy's hub also drops the
# xmlrpc.client proxies of unregistered clients without closing their sockets (plain
# socket objects; our clients use aiohttp transports, whose leaks read differently).
pytestmark = [
    pytest.mark.interop,
    pytest.mark.filterwarnings("ignore:.*samp.*:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
    ),
]


def _astropy_hub(lockfile: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from astropy.samp import SAMPHubServer, conf

    conf.use_internet = False  # astropy would otherwise probe the internet at start
    return SAMPHubServer(web_profile=False, lockfile=str(lockfile))


@pytest.fixture
def astropy_hub(tmp_path: Path) -> Iterator[Any]:
    hub = _astropy_hub(tmp_path / "astropy.lock")
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def make(astropy_hub: Any) -> Iterator[ClientFactory]:
    yield from factory(hub=astropy_hub)


@pytest.fixture
def reply_delay() -> float:
    """astropy's hub delivers a synchronous call before it records the msg-id, so a reply
    that comes back at once is dropped and callAndWait times out (the race described in
    shared/protocols/samp.md). Our client answers fast enough to hit it; handlers in the
    scenarios wait this long before replying, which only this peer needs."""
    return 0.05


def test_connect_with_astropy_hub_params(astropy_hub: Any) -> None:
    from sciwire.samp import SAMPIntegratedClient

    cli = SAMPIntegratedClient(name="params")
    cli.connect(hub_params=astropy_hub.params)
    try:
        assert cli.is_connected
        assert cli.hub.lockfile["samp.secret"] == astropy_hub.params["samp.secret"]
        assert cli.client.core.get_hub_id()
    finally:
        cli.disconnect()


@pytest.fixture
def astropy_client(astropy_hub: Any) -> Iterator[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from astropy.samp import SAMPIntegratedClient as AstropyClient

    client = AstropyClient(name="astropy-peer", addr="127.0.0.1")
    client.connect(hub=astropy_hub)
    try:
        yield client
    finally:
        client.disconnect()


def test_messages_both_ways_with_an_astropy_client(
    make: ClientFactory, astropy_client: Any, reply_delay: float
) -> None:
    ours = make("ours")
    pause = threading.Event()
    inbox = Inbox()
    ours.bind_receive_notification("test.mixed.note", inbox.notification_handler())

    def our_answer(k: str, s: str, msg_id: str, mtype: str, params: Any, extra: Any) -> None:
        pause.wait(reply_delay)
        ours.ereply(msg_id, SAMP_STATUS_OK, result={"from": "sciwire", "n": params["n"]})

    ours.bind_receive_call("test.mixed.call", our_answer)

    def their_answer(k: str, s: str, msg_id: str, mtype: str, params: Any, extra: Any) -> None:
        pause.wait(reply_delay)  # the same hub race when astropy's own client answers
        astropy_client.reply(
            msg_id, {"samp.status": SAMP_STATUS_OK, "samp.result": {"from": "astropy"}}
        )

    astropy_client.bind_receive_call("test.mixed.back", their_answer)
    astropy_client.enotify(ours.get_public_id(), "test.mixed.note", x="y")
    assert inbox.wait(1)[0][:3] == (astropy_client.get_public_id(), "test.mixed.note", {"x": "y"})
    answer = astropy_client.ecall_and_wait(ours.get_public_id(), "test.mixed.call", "10", n="4")
    assert answer["samp.result"] == {"from": "sciwire", "n": "4"}
    back = ours.ecall_and_wait(astropy_client.get_public_id(), "test.mixed.back", "10", n=1)
    assert back["samp.status"] == SAMP_STATUS_OK and back["samp.result"] == {"from": "astropy"}
    meta = astropy_client.get_metadata(ours.get_public_id())
    assert meta["samp.name"] == "ours"
