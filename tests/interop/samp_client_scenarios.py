"""Client scenarios run against every hub implementation (imported by the interop modules).

Each importing module provides a ``make`` fixture returning connected
``sciwire.samp.SAMPIntegratedClient`` objects on its hub (astropy's, JSAMP's).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sciwire.samp import SAMP_STATUS_OK, SAMPProxyError
from tests.samp.clientkit import ClientFactory, Inbox

__all__ = [
    "keeps_types",
    "reply_delay",
    "test_call_and_wait_and_builtin_ping",
    "test_call_with_response_and_call_all",
    "test_hub_events",
    "test_metadata_and_subscriptions",
    "test_notify_with_extras_and_numbers",
    "test_register_and_query",
    "test_unknown_recipient_faults",
]


def test_register_and_query(make: ClientFactory) -> None:
    one = make("one")
    two = make("two")
    assert one.is_connected and two.is_connected
    assert two.get_public_id() in one.get_registered_clients()
    assert one.get_public_id() not in one.get_registered_clients()
    one.ping()
    two.disconnect()
    assert two.get_public_id() not in one.get_registered_clients()


def test_metadata_and_subscriptions(make: ClientFactory, keeps_types: bool) -> None:
    cli = make("meta", description="interop", metadata={"x.version": "2"})
    viewer = make("viewer")
    cli.bind_receive_notification("test.sub", lambda *a: None)
    meta = viewer.get_metadata(cli.get_public_id())
    assert meta["samp.name"] == "meta" and meta["x.version"] == "2"
    assert meta["samp.description.text"] == "interop"
    cli.declare_metadata({"x.count": 3})
    assert viewer.get_metadata(cli.get_public_id())["x.count"] == (3 if keeps_types else "3")
    assert "test.sub" in viewer.get_subscriptions(cli.get_public_id())
    assert cli.get_public_id() in viewer.get_subscribed_clients("test.sub")
    cli.unbind_receive_notification("test.sub")
    assert "test.sub" not in viewer.get_subscriptions(cli.get_public_id())


@pytest.fixture
def keeps_types() -> bool:
    """Whether the hub relays ints, floats and bools as sent (astropy's does; a
    strict hub such as JSAMP's refuses them, and our client then sends strings)."""
    return True


def test_notify_with_extras_and_numbers(make: ClientFactory, keeps_types: bool) -> None:
    rx = make("rx")
    inbox = Inbox()
    rx.bind_receive_notification("test.*", inbox.notification_handler())
    tx = make("tx")
    recipients = tx.enotify_all("test.note", n=1, flag=False, x=0.25, extra_kws={"x.e": "E"})
    assert recipients == [rx.get_public_id()]
    tx.enotify(rx.get_public_id(), "test.one", url="file:///tmp/t.xml")
    sender, _mtype, params, extra = inbox.wait_for(lambda i: i[1] == "test.note")
    assert sender == tx.get_public_id()
    if keeps_types:
        assert params == {"n": 1, "flag": False, "x": 0.25}
    else:
        assert params == {"n": "1", "flag": "0", "x": "0.25"}
    assert extra["x.e"] == "E"  # astropy's hub adds host/user keys too
    assert inbox.wait_for(lambda i: i[1] == "test.one")[2] == {"url": "file:///tmp/t.xml"}


@pytest.fixture
def reply_delay() -> float:
    """Seconds a handler waits before replying to a synchronous call (0: at once)."""
    return 0.0


def test_call_and_wait_and_builtin_ping(
    make: ClientFactory, reply_delay: float, keeps_types: bool
) -> None:
    rx = make("rx")
    pause = threading.Event()

    def on_call(key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any) -> None:
        pause.wait(reply_delay)  # only for a hub with a lost-reply race (see its module)
        rx.ereply(msg_id, SAMP_STATUS_OK, result={"got": params.get("v", "")})

    rx.bind_receive_call("test.call", on_call)
    tx = make("tx")
    for i in range(10):
        response = tx.ecall_and_wait(rx.get_public_id(), "test.call", "10", v=i)
        assert response["samp.status"] == SAMP_STATUS_OK
        assert response["samp.result"] == {"got": i if keeps_types else str(i)}
    # the built-in samp.app.ping answer, through an asynchronous call
    responses = Inbox()
    tx.bind_receive_response("ping", responses.response_handler())
    tx.ecall(rx.get_public_id(), "ping", "samp.app.ping")
    responder, _tag, ping = responses.wait(1)[0]
    assert responder == rx.get_public_id() and ping["samp.status"] == SAMP_STATUS_OK


def test_call_with_response_and_call_all(make: ClientFactory) -> None:
    receivers = [make(f"rx{i}") for i in range(2)]
    for rx in receivers:

        def on_call(k: str, s: str, msg_id: str, m: str, p: Any, e: Any, rx: Any = rx) -> None:
            rx.ereply(msg_id, SAMP_STATUS_OK, result={"me": rx.get_public_id()})

        rx.bind_receive_call("test.async", on_call)
    tx = make("tx")
    responses = Inbox()
    tx.bind_receive_response("tag", responses.response_handler())
    msg_id = tx.ecall(receivers[0].get_public_id(), "tag", "test.async")
    assert isinstance(msg_id, str) and msg_id
    responder, tag, response = responses.wait(1)[0]
    assert (responder, tag) == (receivers[0].get_public_id(), "tag")
    assert response["samp.result"] == {"me": responder}
    ids = tx.ecall_all("tag", "test.async")
    assert sorted(ids) == sorted(rx.get_public_id() for rx in receivers)
    got = responses.wait(3)
    assert {r[0] for r in got[1:]} == set(ids)


def test_hub_events(make: ClientFactory) -> None:
    watcher = make("watcher")
    events = Inbox()
    watcher.bind_receive_notification("samp.hub.event.*", events.notification_handler())
    other = make("other")
    oid = other.get_public_id()
    events.wait_for(lambda e: e[1] == "samp.hub.event.register" and e[2]["id"] == oid)
    other.declare_metadata({"x.k": "v"})
    events.wait_for(
        lambda e: e[1] == "samp.hub.event.metadata" and e[2]["metadata"].get("x.k") == "v"
    )
    other.disconnect()
    events.wait_for(lambda e: e[1] == "samp.hub.event.unregister" and e[2]["id"] == oid)


def test_unknown_recipient_faults(make: ClientFactory) -> None:
    tx = make("tx")
    with pytest.raises(SAMPProxyError):
        tx.enotify("no-such-client", "test.x")
