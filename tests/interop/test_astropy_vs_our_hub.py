"""astropy's SAMPIntegratedClient (the real peer) against our SAMPHubServer on loopback."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sciwire.samp.hub import SAMPHubServer

with warnings.catch_warnings():
    # astropy 8 deprecates astropy.samp in favour of pyvo.samp on import; the module
    # is still the peer most scripts use, so the warning is expected here.
    warnings.simplefilter("ignore")
    from astropy.samp import SAMPIntegratedClient, conf

pytestmark = [
    pytest.mark.interop,
    # astropy's clients leave their http.client sockets to the hub for the garbage
    # collector (its leak, not ours: the local ends are astropy's); with
    # filterwarnings=error those ResourceWarnings would fail unrelated tests.
    pytest.mark.filterwarnings("ignore:unclosed <socket:ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

Scaled = Callable[[float], float]


@pytest.fixture(autouse=True)
def _no_internet_probe() -> Iterator[None]:
    # astropy's clients otherwise try to reach an outside host at start-up
    with conf.set_temp("use_internet", False):
        yield


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[SAMPHubServer]:
    server = SAMPHubServer(lockfile=str(tmp_path / "lock"), web_profile=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def connect(hub: SAMPHubServer) -> Iterator[Callable[..., Any]]:
    clients: list[Any] = []

    def make(name: str, **metadata: str) -> Any:
        meta = {"samp.name": name, **metadata}
        client = SAMPIntegratedClient(name=name, metadata=meta)
        client.connect(hub=hub)
        clients.append(client)
        return client

    yield make
    for client in clients:
        if client.is_connected:
            client.disconnect()


class Inbox:
    """Collects astropy callbacks and lets a test wait for them."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, ...]] = []
        self._cond = threading.Condition()

    def add(self, *args: Any) -> None:
        with self._cond:
            self.items.append(args)
            self._cond.notify_all()

    def notification(self, key: str, sender: str, mtype: str, params: Any, extra: Any) -> None:
        """astropy's 5-argument notification callback."""
        self.add(key, sender, mtype, params, extra)

    def wait_for(self, test: Callable[[tuple[Any, ...]], bool], timeout: float) -> tuple[Any, ...]:
        with self._cond:
            found: list[tuple[Any, ...]] = []

            def ready() -> bool:
                found[:] = [i for i in self.items if test(i)]
                return bool(found)

            assert self._cond.wait_for(ready, timeout), f"nothing matched in {self.items!r}"
            return found[0]


def test_registration_metadata_and_clients(connect: Callable[..., Any], hub: SAMPHubServer) -> None:
    a = connect("alpha", **{"samp.description.text": "first = one"})
    b = connect("beta")
    assert a.is_connected
    assert sorted(a.get_registered_clients()) == sorted(["hub", b.get_public_id()])
    assert b.get_metadata(a.get_public_id()) == {
        "samp.name": "alpha",
        "samp.description.text": "first = one",
    }
    assert a.get_metadata("hub")["samp.name"] == "sciwire hub"
    a.declare_metadata({"samp.name": "alpha2", "author.name": "me"})
    assert b.get_metadata(a.get_public_id())["samp.name"] == "alpha2"
    assert a.ping() == ""
    b.disconnect()
    assert a.get_registered_clients() == ["hub"]


def test_subscriptions_and_notify(connect: Callable[..., Any], scaled: Scaled) -> None:
    a = connect("sender")
    b = connect("receiver")
    inbox = Inbox()
    b.bind_receive_notification("table.load.votable", inbox.notification)
    subs = a.get_subscriptions(b.get_public_id())
    assert "table.load.votable" in subs
    assert b.get_public_id() in a.get_subscribed_clients("table.load.votable")
    params = {"url": "file:///tmp/t.xml", "name": "t"}
    a.enotify(b.get_public_id(), "table.load.votable", **params)
    _key, sender, mtype, got, _extra = inbox.wait_for(lambda i: True, scaled(5))
    assert (sender, mtype, got) == (a.get_public_id(), "table.load.votable", params)
    ids = a.notify_all({"samp.mtype": "table.load.votable", "samp.params": {"n": "2"}})
    assert ids == [b.get_public_id()]
    inbox.wait_for(lambda i: i[3] == {"n": "2"}, scaled(5))


def test_call_reply_and_response(connect: Callable[..., Any], scaled: Scaled) -> None:
    a = connect("caller")
    b = connect("answerer")

    def on_call(key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any) -> None:
        b.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {"echo": params["x"]}})

    b.bind_receive_call("test.echo", on_call)
    responses = Inbox()
    a.bind_receive_response("tag-7", lambda *args: responses.add(*args))
    msg_id = a.call(
        b.get_public_id(), "tag-7", {"samp.mtype": "test.echo", "samp.params": {"x": "1"}}
    )
    assert msg_id
    _key, responder, tag, response = responses.wait_for(lambda i: True, scaled(5))
    assert (responder, tag) == (b.get_public_id(), "tag-7")
    assert response == {"samp.status": "samp.ok", "samp.result": {"echo": "1"}}
    ids = a.call_all("tag-8", {"samp.mtype": "test.echo", "samp.params": {"x": "2"}})
    assert list(ids) == [b.get_public_id()]


def test_call_and_wait(connect: Callable[..., Any]) -> None:
    a = connect("caller")
    b = connect("answerer")

    def on_call(key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any) -> None:
        b.ereply(msg_id, "samp.ok", result={"i": params["i"]})

    b.bind_receive_call("test.echo", on_call)
    for i in range(20):
        msg = {"samp.mtype": "test.echo", "samp.params": {"i": str(i)}}
        reply = a.call_and_wait(b.get_public_id(), msg, "5")
        assert reply == {"samp.status": "samp.ok", "samp.result": {"i": str(i)}}
    # astropy sends the timeout as given: an int is accepted by our (lenient) hub
    assert a.call_and_wait(
        b.get_public_id(), {"samp.mtype": "test.echo", "samp.params": {"i": "x"}}, 5
    )
    assert a.ecall_and_wait("hub", "samp.app.ping", "5")["samp.status"] == "samp.ok"


def test_hub_events(connect: Callable[..., Any], scaled: Scaled) -> None:
    watcher = connect("watcher")
    events = Inbox()
    for mtype in (
        "samp.hub.event.register",
        "samp.hub.event.unregister",
        "samp.hub.event.metadata",
        "samp.hub.event.subscriptions",
    ):
        watcher.bind_receive_notification(mtype, events.notification)
    other = connect("other")
    oid = other.get_public_id()
    events.wait_for(lambda i: i[2] == "samp.hub.event.register" and i[3]["id"] == oid, scaled(5))
    meta = events.wait_for(
        lambda i: i[2] == "samp.hub.event.metadata" and i[3]["id"] == oid, scaled(5)
    )
    assert meta[1] == "hub"
    assert meta[3]["metadata"]["samp.name"] == "other"
    other.bind_receive_notification("x.y", events.notification)
    events.wait_for(
        lambda i: i[2] == "samp.hub.event.subscriptions" and "x.y" in i[3]["subscriptions"],
        scaled(5),
    )
    other.disconnect()
    events.wait_for(lambda i: i[2] == "samp.hub.event.unregister" and i[3]["id"] == oid, scaled(5))


def test_hub_shutdown_reaches_astropy_clients(tmp_path: Path, scaled: Scaled) -> None:
    server = SAMPHubServer(lockfile=str(tmp_path / "lock"), web_profile=False)
    server.start()
    client = SAMPIntegratedClient(name="c")
    try:
        client.connect(hub=server)
        events = Inbox()
        client.bind_receive_notification("samp.hub.event.shutdown", events.notification)
        server.stop()
        events.wait_for(lambda i: True, scaled(5))
    finally:
        server.stop()
        if client.is_connected:  # astropy cannot unregister from a hub that is gone
            with contextlib.suppress(ConnectionRefusedError):
                client.disconnect()


def test_astropy_web_client_through_an_astropy_consent_dialog(
    tmp_path: Path, scaled: Scaled
) -> None:
    """astropy's Web Profile client, admitted by astropy's dialog protocol, talks to an
    astropy Standard Profile client through our hub."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from astropy.samp.tests.web_profile_test_helpers import (
            AlwaysApproveWebProfileDialog,
            SAMPIntegratedWebClient,
        )

    dialog = AlwaysApproveWebProfileDialog()
    poller = threading.Thread(target=dialog.poll, daemon=True)
    poller.start()
    server = SAMPHubServer(lockfile=str(tmp_path / "lock"), web_profile_dialog=dialog, web_port=0)
    server.start()
    desk = SAMPIntegratedClient(name="desk")
    web = SAMPIntegratedWebClient(name="page")
    try:
        desk.connect(hub=server)
        web.connect(web_port=server._web_port)
        assert web.get_public_id() in desk.get_registered_clients()
        inbox = Inbox()
        web.bind_receive_notification("table.load.votable", inbox.notification)
        desk.enotify(web.get_public_id(), "table.load.votable", url="http://127.0.0.1:1/t.xml")
        _key, sender, mtype, params, _extra = inbox.wait_for(lambda i: True, scaled(10))
        assert (sender, mtype, params) == (
            desk.get_public_id(),
            "table.load.votable",
            {"url": "http://127.0.0.1:1/t.xml"},
        )
    finally:
        for client in (web, desk):
            if client.is_connected:
                client.disconnect()
        server.stop()
        dialog.stop()
        poller.join(scaled(5))
