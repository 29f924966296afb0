"""Our blocking clients against our hub on loopback: every method, fault and event."""

from __future__ import annotations

import threading
import urllib.request
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sciwire.errors import ConnectError, RemoteError, SciwireError
from sciwire.samp import (
    SAMP_STATUS_ERROR,
    SAMP_STATUS_OK,
    SAMP_STATUS_WARNING,
    SAMPClient,
    SAMPClientError,
    SAMPHubConnectError,
    SAMPHubError,
    SAMPHubProxy,
    SAMPHubServer,
    SAMPIntegratedClient,
    SAMPProxyError,
    SAMPWarning,
    get_main_running_hub,
)
from tests.samp.clientkit import ClientFactory, Inbox


def ok_replier(client: SAMPIntegratedClient, seen: Inbox | None = None) -> Callable[..., None]:
    def on_call(key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any) -> None:
        if seen is not None:
            seen.put((sender, msg_id, mtype, params, extra))
        client.ereply(msg_id, SAMP_STATUS_OK, result={"echo": params})

    return on_call


# -- connection --------------------------------------------------------------------------


def test_connect_register_and_disconnect(make: ClientFactory, hub: SAMPHubServer) -> None:
    cli = make("alpha")
    assert cli.is_connected
    assert cli.get_public_id() and cli.get_private_key()
    assert cli.client.is_registered
    assert cli.hub.lockfile["samp.hub.xmlrpc.url"] == hub.params["samp.hub.xmlrpc.url"]
    other = make("beta")
    assert cli.get_public_id() in other.get_registered_clients()
    cli.disconnect()
    assert not cli.is_connected
    assert cli.get_private_key() is None
    assert cli.get_public_id() not in other.get_registered_clients()
    cli.disconnect()  # idempotent


def test_reconnect_keeps_bindings(make: ClientFactory, hub: SAMPHubServer) -> None:
    inbox = Inbox()
    cli = make("re", connect=False)
    cli.bind_receive_notification("test.re", inbox.notification_handler())  # before connect
    cli.connect(hub=hub)
    first = cli.get_public_id()
    cli.disconnect()
    cli.connect(hub=hub)
    assert cli.get_public_id() != first
    sender = make("sender")
    assert sender.enotify_all("test.re", n=1) == [cli.get_public_id()]
    assert inbox.wait(1)[0][1] == "test.re"


def test_ping_and_hub_proxy_methods(make: ClientFactory, hub: SAMPHubServer) -> None:
    cli = make()
    cli.ping()
    cli.hub.ping()
    assert len(cli.get_registered_clients()) == 1  # just the hub itself


def test_connect_argument_errors(hub: SAMPHubServer) -> None:
    cli = SAMPIntegratedClient()
    with pytest.raises(ValueError, match="both"):
        cli.connect(hub=hub, hub_params=hub.params)
    assert not cli.is_connected


def test_connect_through_lockfile_discovery(
    hub: SAMPHubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert hub.lockfile is not None
    monkeypatch.setenv("SAMP_HUB", "std-lockurl:" + Path(hub.lockfile).as_uri())
    cli = SAMPIntegratedClient(name="discover")
    cli.connect()
    try:
        assert cli.is_connected
        assert cli.hub.lockfile["samp.secret"] == hub.params["samp.secret"]
    finally:
        cli.disconnect()


def test_discovery_through_home_and_http_lock_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import http.server
    import threading

    home = tmp_path / "home"
    home.mkdir()
    server = SAMPHubServer(web_profile=False, lockfile=home / ".samp")
    server.start()
    try:
        monkeypatch.delenv("SAMP_HUB", raising=False)
        monkeypatch.setenv("HOME", str(home))
        assert get_main_running_hub()["samp.secret"] == server.params["samp.secret"]

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, directory=str(home), **kw)

            def log_message(self, *args: Any) -> None:
                pass

        web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=web.serve_forever, daemon=True)
        thread.start()
        try:
            monkeypatch.setenv("SAMP_HUB", f"std-lockurl:http://127.0.0.1:{web.server_port}/.samp")
            cli = SAMPIntegratedClient(name="over-http")
            cli.connect()
            assert cli.is_connected
            cli.disconnect()
        finally:
            web.shutdown()
            web.server_close()
            thread.join(5)
        (tmp_path / "partial").write_text("samp.secret=x\n")
        monkeypatch.setenv("SAMP_HUB", "std-lockurl:" + (tmp_path / "partial").as_uri())
        with pytest.raises(SAMPHubError, match=r"samp\.hub\.xmlrpc\.url"):
            get_main_running_hub()
    finally:
        server.stop()


def test_no_hub_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMP_HUB", "std-lockurl:" + (tmp_path / "missing").as_uri())
    cli = SAMPIntegratedClient()
    with pytest.raises(SAMPHubError, match="Unable to find a running SAMP Hub"):
        cli.connect()
    monkeypatch.setenv("SAMP_HUB", "web-appname:x")
    with pytest.raises(SAMPHubError, match="profile not supported"):
        cli.connect()
    assert not cli.is_connected


def test_dead_hub_url_raises_connect_error() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    params = {"samp.hub.xmlrpc.url": f"http://127.0.0.1:{port}/xmlrpc", "samp.secret": "x"}
    cli = SAMPIntegratedClient()
    with pytest.raises(SAMPHubConnectError) as info:
        cli.connect(hub_params=params)
    assert isinstance(info.value, OSError) and isinstance(info.value, ConnectError)
    assert isinstance(info.value, SAMPHubError)
    assert not cli.is_connected


def test_https_without_a_certificate_raises_a_clear_error() -> None:
    with pytest.raises(SAMPClientError, match="https=True needs a cert_file"):
        SAMPIntegratedClient(https=True)
    with pytest.raises(SAMPClientError, match="https"):
        SAMPClient(SAMPHubProxy(), https=True)


def test_not_connected_errors() -> None:
    cli = SAMPIntegratedClient()
    with pytest.raises(SAMPClientError):
        cli.notify("c1", {"samp.mtype": "a.b", "samp.params": {}})
    with pytest.raises(SAMPHubError):
        cli.ping()
    with pytest.raises(SAMPHubError):
        SAMPHubProxy().get_metadata("k", "c1")
    with pytest.raises(SAMPClientError):
        cli.declare_metadata({"a": "b"})
    with pytest.raises(SAMPClientError):
        cli.declare_subscriptions()


def test_non_callable_client(make: ClientFactory) -> None:
    quiet = make("quiet", callable=False)
    assert quiet.is_connected
    with pytest.raises(SAMPClientError, match="not callable"):
        quiet.bind_receive_notification("a.b", lambda *a: None)
    with pytest.raises(SAMPClientError, match="not callable"):
        quiet.bind_receive_response("t", lambda *a: None)
    listener = make("listener")
    inbox = Inbox()
    listener.bind_receive_notification("test.q", inbox.notification_handler())
    quiet.enotify(listener.get_public_id(), "test.q", x="1")
    assert inbox.wait(1)[0][0] == quiet.get_public_id()


# -- metadata and subscriptions ------------------------------------------------------------


def test_metadata(make: ClientFactory) -> None:
    cli = make("meta", description="a test client", metadata={"x.version": "1.0"})
    viewer = make("viewer")
    meta = viewer.get_metadata(cli.get_public_id())
    assert meta["samp.name"] == "meta"
    assert meta["samp.description.text"] == "a test client"
    assert meta["x.version"] == "1.0"
    cli.declare_metadata({"samp.icon.url": "http://127.0.0.1/icon.png", "x.n": 3})
    meta = viewer.get_metadata(cli.get_public_id())
    assert meta["samp.icon.url"] == "http://127.0.0.1/icon.png"
    assert meta["x.n"] == 3  # as sent (astropy's behaviour; strict hubs get "3")
    assert meta["samp.name"] == "meta"  # merged, not replaced


def test_subscriptions_follow_bindings(make: ClientFactory) -> None:
    cli = make("subs")
    viewer = make("viewer")
    handler = Inbox().notification_handler()
    cli.bind_receive_notification("test.a", handler, metadata={"x.note": "A"})
    cli.bind_receive_call("test.b", lambda *a: None)
    cli.bind_receive_message("test.c.*", lambda *a: None)
    subs = viewer.get_subscriptions(cli.get_public_id())
    assert {"test.a", "test.b", "test.c.*", "samp.app.ping"} <= set(subs)
    assert subs["test.a"] == {"x.note": "A"}
    subscribed = viewer.get_subscribed_clients("test.a")
    assert subscribed == {cli.get_public_id(): {"x.note": "A"}}
    assert cli.get_public_id() in viewer.get_subscribed_clients("test.c.d")
    cli.unbind_receive_notification("test.a")
    cli.unbind_receive_call("test.b")
    subs = viewer.get_subscriptions(cli.get_public_id())
    assert "test.a" not in subs and "test.b" not in subs
    cli.declare_subscriptions({"test.extra": {}})
    assert "test.extra" in viewer.get_subscriptions(cli.get_public_id())
    assert "test.c.*" in viewer.get_subscriptions(cli.get_public_id())
    with pytest.raises(KeyError):
        cli.unbind_receive_call("never.bound")


def test_bind_without_declare_does_not_subscribe(make: ClientFactory) -> None:
    cli = make("lazy")
    viewer = make("viewer")
    cli.bind_receive_notification("test.lazy", lambda *a: None, declare=False)
    assert "test.lazy" not in viewer.get_subscriptions(cli.get_public_id())
    cli.declare_subscriptions()
    assert "test.lazy" in viewer.get_subscriptions(cli.get_public_id())


# -- notifications -----------------------------------------------------------------------


def test_notify_and_enotify_keep_types_and_extra_kws(make: ClientFactory) -> None:
    receiver = make("rx")
    inbox = Inbox()
    receiver.bind_receive_notification("test.note", inbox.notification_handler())
    sender = make("tx")
    sender.enotify(
        receiver.get_public_id(),
        "test.note",
        n=5,
        ok=True,
        no=False,
        f=1.5,
        items=[1, "a", (2, 3)],
        extra_kws={"x.extra": "E"},
    )
    sender.notify(receiver.get_public_id(), {"samp.mtype": "test.note", "samp.params": {"k": "v"}})
    (who, mtype, params, extra), second = inbox.wait(2)
    assert who == sender.get_public_id() and mtype == "test.note"
    # values arrive as sent, as between astropy clients (tuples become lists)
    assert params == {"n": 5, "ok": True, "no": False, "f": 1.5, "items": [1, "a", [2, 3]]}
    assert extra == {"x.extra": "E"}
    assert second[2] == {"k": "v"}


def test_notify_all_returns_recipients_and_wildcards_match(make: ClientFactory) -> None:
    inboxes = []
    ids = []
    for pattern in ("test.all", "test.*", "*"):
        cli = make(f"rx-{pattern}")
        inbox = Inbox()
        cli.bind_receive_notification(pattern, inbox.notification_handler())
        inboxes.append(inbox)
        ids.append(cli.get_public_id())
    sender = make("tx")
    recipients = sender.enotify_all("test.all", v="1")
    assert sorted(recipients) == sorted(ids)
    for inbox in inboxes:
        inbox.wait_for(lambda item: item[1] == "test.all")
    assert sorted(sender.notify_all({"samp.mtype": "other.x", "samp.params": {}})) == [ids[2]]


def test_six_argument_notification_handler_gets_msg_id_none(make: ClientFactory) -> None:
    inbox = Inbox()

    def handler(key: str, sender: str, msg_id: Any, mtype: str, params: Any, extra: Any) -> None:
        inbox.put((msg_id, mtype))

    rx = make("rx")
    rx.bind_receive_message("test.six", handler)
    make("tx").enotify_all("test.six")
    assert inbox.wait(1) == [(None, "test.six")]


def test_notify_unsubscribed_or_unknown_recipient_faults(make: ClientFactory) -> None:
    rx = make("rx")
    tx = make("tx")
    with pytest.raises(SAMPProxyError) as info:
        tx.enotify(rx.get_public_id(), "test.nobody")
    assert isinstance(info.value, xmlrpc.client.Fault)
    assert isinstance(info.value, RemoteError) and isinstance(info.value, SciwireError)
    with pytest.raises(SAMPProxyError):
        tx.enotify("no-such-client", "test.x")


# -- calls -------------------------------------------------------------------------------


def test_call_and_wait_and_ecall_and_wait(make: ClientFactory) -> None:
    rx = make("rx")
    seen = Inbox()
    rx.bind_receive_call("test.call", ok_replier(rx, seen))
    tx = make("tx")
    response = tx.call_and_wait(
        rx.get_public_id(), {"samp.mtype": "test.call", "samp.params": {"n": 1}}, "5"
    )
    assert response["samp.status"] == SAMP_STATUS_OK
    assert response["samp.result"] == {"echo": {"n": 1}}
    response = tx.ecall_and_wait(rx.get_public_id(), "test.call", 5, n=2, extra_kws={"x.e": "1"})
    assert response["samp.result"] == {"echo": {"n": 2}}
    sender, _msg_id, mtype, _params, extra = seen.wait(2)[1]
    assert sender == tx.get_public_id() and mtype == "test.call" and extra == {"x.e": "1"}
    # timeout "0" (no limit) with a fast reply: the reply must not be lost
    for i in range(20):
        assert tx.ecall_and_wait(rx.get_public_id(), "test.call", "0", n=i)["samp.status"] == (
            SAMP_STATUS_OK
        )


def test_call_with_response_binding(make: ClientFactory) -> None:
    rx = make("rx")
    rx.bind_receive_call("test.async", ok_replier(rx))
    tx = make("tx")
    responses = Inbox()
    tx.bind_receive_response("tag-1", responses.response_handler())
    msg_id = tx.ecall(rx.get_public_id(), "tag-1", "test.async", v="x")
    assert isinstance(msg_id, str) and msg_id
    responder, tag, response = responses.wait(1)[0]
    assert (responder, tag) == (rx.get_public_id(), "tag-1")
    assert response["samp.result"] == {"echo": {"v": "x"}}
    tx.call(rx.get_public_id(), "tag-1", {"samp.mtype": "test.async", "samp.params": {}})
    responses.wait(2)
    tx.unbind_receive_response("tag-1")
    with pytest.raises(KeyError):
        tx.unbind_receive_response("tag-1")


def test_call_all_and_ecall_all(make: ClientFactory) -> None:
    receivers = [make(f"rx{i}") for i in range(3)]
    for rx in receivers:
        rx.bind_receive_call("test.many", ok_replier(rx))
    tx = make("tx")
    responses = Inbox()
    tx.bind_receive_response("all", responses.response_handler())
    ids = tx.ecall_all("all", "test.many", i=1)
    assert sorted(ids) == sorted(rx.get_public_id() for rx in receivers)
    assert all(isinstance(v, str) for v in ids.values())
    ids2 = tx.call_all("all", {"samp.mtype": "test.many", "samp.params": {}})
    assert len(ids2) == 3
    got = responses.wait(6)
    assert {r[0] for r in got} == set(ids)


def test_ereply_warning_and_error(make: ClientFactory) -> None:
    rx = make("rx")

    def handler(key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any) -> None:
        if params.get("fail") is True:
            rx.ereply(msg_id, SAMP_STATUS_ERROR, error={"samp.errortxt": "asked to fail"})
        else:
            rx.ereply(msg_id, SAMP_STATUS_WARNING, result={}, error={"samp.errortxt": "meh"})

    rx.bind_receive_call("test.status", handler)
    tx = make("tx")
    bad = tx.ecall_and_wait(rx.get_public_id(), "test.status", "5", fail=True)
    assert bad["samp.status"] == SAMP_STATUS_ERROR
    assert bad["samp.error"]["samp.errortxt"] == "asked to fail"
    warn = tx.ecall_and_wait(rx.get_public_id(), "test.status", "5")
    assert warn["samp.status"] == SAMP_STATUS_WARNING


def test_raising_call_handler_answers_an_error(make: ClientFactory) -> None:
    rx = make("rx")

    def handler(*args: Any) -> None:
        raise RuntimeError("handler broke")

    rx.bind_receive_call("test.boom", handler)
    response = make("tx").ecall_and_wait(rx.get_public_id(), "test.boom", "5")
    assert response["samp.status"] == SAMP_STATUS_ERROR
    assert "handler broke" in response["samp.error"]["samp.errortxt"]
    assert rx.client.core.handler_errors == 1


def test_subscribed_call_without_handler_answers_an_error(make: ClientFactory) -> None:
    rx = make("rx")
    rx.declare_subscriptions({"test.unhandled": {}})
    response = make("tx").ecall_and_wait(rx.get_public_id(), "test.unhandled", "5")
    assert response["samp.status"] == SAMP_STATUS_ERROR


def test_builtin_ping_and_env_get(make: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIWIRE_SAMP_TEST", "yes")
    rx = make("rx")
    tx = make("tx")
    assert tx.ecall_and_wait(rx.get_public_id(), "samp.app.ping", "5")["samp.status"] == "samp.ok"
    env = tx.ecall_and_wait(rx.get_public_id(), "client.env.get", "5", name="SCIWIRE_SAMP_TEST")
    assert env["samp.result"] == {"value": "yes"}
    missing = tx.ecall_and_wait(rx.get_public_id(), "client.env.get", "5", name="NO_SUCH_VAR_X")
    assert missing["samp.status"] == SAMP_STATUS_WARNING


def test_call_and_wait_timeout(make: ClientFactory) -> None:
    rx = make("rx")
    release = threading.Event()
    rx.bind_receive_call("test.slow", lambda *a: release.wait(5))
    tx = make("tx")
    try:
        with pytest.raises((SAMPProxyError, TimeoutError)):
            outcome = tx.ecall_and_wait(rx.get_public_id(), "test.slow", "1")
            # a hub may also answer a timeout with an error response
            if outcome.get("samp.status") == SAMP_STATUS_ERROR:
                raise SAMPProxyError(1, "timeout as error response")
    finally:
        release.set()


def test_receiver_that_dies_does_not_hang_the_caller(make: ClientFactory) -> None:
    rx = make("rx")
    rx.bind_receive_call("test.die", lambda *a: None)
    rx_id = rx.get_public_id()
    rx.client.stop()  # the callback server goes away without unregistering
    tx = make("tx")
    try:
        response = tx.ecall_and_wait(rx_id, "test.die", "0")
    except SAMPProxyError:
        return
    assert response["samp.status"] == SAMP_STATUS_ERROR


def test_reply_to_unknown_msg_id_faults(make: ClientFactory) -> None:
    with pytest.raises(SAMPProxyError):
        make().ereply("no-such-msg-id", SAMP_STATUS_OK, result={})


# -- hub events ------------------------------------------------------------------------


def test_hub_events_reach_subscribers(make: ClientFactory) -> None:
    watcher = make("watcher")
    events = Inbox()
    watcher.bind_receive_notification("samp.hub.event.*", events.notification_handler())
    other = make("other")
    oid = other.get_public_id()
    events.wait_for(lambda e: e[1] == "samp.hub.event.register" and e[2]["id"] == oid)
    other.declare_metadata({"x.k": "v"})
    meta = events.wait_for(
        lambda e: e[1] == "samp.hub.event.metadata" and "x.k" in e[2]["metadata"]
    )
    assert meta[2]["id"] == oid and meta[2]["metadata"]["x.k"] == "v"
    other.bind_receive_notification("test.ev", lambda *a: None)
    subs = events.wait_for(
        lambda e: e[1] == "samp.hub.event.subscriptions" and "test.ev" in e[2]["subscriptions"]
    )
    assert subs[2]["id"] == oid
    other.disconnect()
    events.wait_for(lambda e: e[1] == "samp.hub.event.unregister" and e[2]["id"] == oid)


def test_hub_shutdown_event(tmp_path: Path) -> None:
    server = SAMPHubServer(web_profile=False, lockfile=tmp_path / "lock2")
    server.start()
    made = ClientFactory(hub=server)
    try:
        watcher = made("watcher")
        events = Inbox()
        watcher.bind_receive_notification("samp.hub.event.shutdown", events.notification_handler())
        server.stop()
        assert events.wait(1)[0][1] == "samp.hub.event.shutdown"
    finally:
        server.stop()
        made.close()


# -- low-level classes and the callback server ---------------------------------------------


def test_samp_client_and_hub_proxy_directly(hub: SAMPHubServer) -> None:
    proxy = SAMPHubProxy()
    proxy.connect(hub_params=hub.params)
    client = SAMPClient(proxy, name="low", metadata={"x.low": "1"})
    inbox = Inbox()
    made = ClientFactory(hub=hub)
    try:
        assert proxy.is_connected and not client.is_running
        client.start()
        client.register()
        assert client.is_registered and client.is_running
        with pytest.raises(SAMPClientError, match="already registered"):
            client.register()
        client.bind_receive_notification("test.low", inbox.notification_handler())
        key = client.get_private_key()
        assert key is not None
        assert proxy.get_metadata(key, client.get_public_id() or "")["x.low"] == "1"
        sender = made("tx")
        assert sender.enotify_all("test.low") == [client.get_public_id()]
        assert inbox.wait(1)[0][1] == "test.low"
        with pytest.warns(SAMPWarning, match="No client was able to receive"):
            assert proxy.notify_all(key, {"samp.mtype": "test.low", "samp.params": {}}) == []
        client.unregister()
        assert not client.is_registered
    finally:
        made.close()
        client.stop()
        proxy.disconnect()
    assert not proxy.is_connected


def test_subclass_override_of_receive_notification(hub: SAMPHubServer) -> None:
    inbox = Inbox()

    class Custom(SAMPClient):
        def receive_notification(self, private_key: str, sender_id: str, message: Any) -> str:
            inbox.put(message["samp.mtype"])
            return ""

    proxy = SAMPHubProxy()
    proxy.connect(hub=hub)
    client = Custom(proxy, name="custom")
    made = ClientFactory(hub=hub)
    try:
        client.register()  # starts the client itself
        client.declare_subscriptions({"test.custom": {}})
        made("tx").enotify_all("test.custom")
        assert inbox.wait(1) == ["test.custom"]
    finally:
        made.close()
        client.stop()
        proxy.disconnect()


def test_receive_methods_can_be_called_directly(make: ClientFactory) -> None:
    cli = make()
    inbox = Inbox()
    cli.bind_receive_notification("test.direct", inbox.notification_handler())
    cli.bind_receive_response("t", inbox.response_handler())
    key = cli.get_private_key() or ""
    msg = {"samp.mtype": "test.direct", "samp.params": {"a": "b"}, "x.k": "v"}
    assert cli.receive_notification(key, "someone", msg) == ""
    assert inbox.wait(1)[0] == ("someone", "test.direct", {"a": "b"}, {"x.k": "v"})
    assert cli.receive_response(key, "someone", "t", {"samp.status": "samp.ok"}) == ""
    assert inbox.wait(2)[1] == ("someone", "t", {"samp.status": "samp.ok"})
    before = cli.client.core.dropped
    cli.receive_notification("wrong-key", "someone", msg)
    assert cli.client.core.dropped == before + 1
    assert len(inbox.items) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"not xml at all",
        b"<?xml version='1.0'?><methodCall><methodName>samp.client.nothing</methodName>"
        b"<params></params></methodCall>",
        xmlrpc.client.dumps(("k", "s", "not-a-map"), "samp.client.receiveNotification").encode(),
        xmlrpc.client.dumps(("k", "s"), "samp.client.receiveNotification").encode(),
        b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><methodCall><methodName>&a;"
        b"</methodName></methodCall>",
    ],
)
def test_callback_server_faults_bad_input_and_keeps_serving(
    make: ClientFactory, body: bytes
) -> None:
    cli = make("victim")
    inbox = Inbox()
    cli.bind_receive_notification("test.after", inbox.notification_handler())
    url = cli.client._xmlrpcAddr
    assert url is not None
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "text/xml"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        answer = resp.read()
    with pytest.raises(xmlrpc.client.Fault):
        xmlrpc.client.loads(answer)
    assert cli.client.core.bad_requests + cli.client.core.dropped == 1
    make("tx").enotify_all("test.after")
    assert inbox.wait(1)[0][1] == "test.after"


def test_callback_server_refuses_huge_bodies(make: ClientFactory) -> None:
    cli = make("victim")
    url = cli.client._xmlrpcAddr
    assert url is not None
    body = b"<methodCall>" + b"x" * (17 * 1024 * 1024) + b"</methodCall>"
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "text/xml"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            answer = resp.read()
    except OSError:  # 413 and a close, seen as an HTTP error or a broken pipe
        answer = b""
    if answer:
        with pytest.raises(xmlrpc.client.Fault):
            xmlrpc.client.loads(answer)
    assert cli.client.core.bad_requests == 1
    cli.ping()
    assert cli.is_connected


def test_numpy_values_travel_as_python_values(make: ClientFactory) -> None:
    import numpy as np

    rx = make("rx")
    inbox = Inbox()
    rx.bind_receive_notification("test.np", inbox.notification_handler())
    big = np.int64(2**40)  # beyond XML-RPC's 32-bit int: its decimal string
    make("tx").enotify_all("test.np", i=np.int64(7), f=np.float32(0.5), b=np.bool_(True), big=big)
    params = inbox.wait(1)[0][2]
    assert params == {"i": 7, "f": 0.5, "b": True, "big": str(2**40)}


def test_many_clients_at_once_lose_nothing(make: ClientFactory) -> None:
    from concurrent.futures import ThreadPoolExecutor

    count, each = 30, 5
    inbox = Inbox()

    def start(i: int) -> SAMPIntegratedClient:
        cli = make(f"many{i}", connect=False)
        cli.bind_receive_notification("test.many", inbox.notification_handler())
        cli.connect(**make.connect_args)
        return cli

    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(start, range(count)))
        ids = [c.get_public_id() for c in clients]
        assert len(set(ids)) == count

        def send(i: int) -> None:
            for n in range(each):
                clients[i].enotify(ids[(i + 1) % count], "test.many", n=n)

        list(pool.map(send, range(count)))
    got = inbox.wait(count * each, timeout=20)
    assert len(got) == count * each
    per_sender: dict[str, list[int]] = {}
    for sender, _mtype, params, _extra in got:
        per_sender.setdefault(sender, []).append(params["n"])
    assert all(sorted(v) == list(range(each)) for v in per_sender.values())


def test_failed_registration_leaves_no_half_registered_client(
    make: ClientFactory, hub: SAMPHubServer
) -> None:
    cli = make("bad\x01name", connect=False)  # a character SAMP forbids: the hub refuses
    with pytest.raises(SAMPProxyError):
        cli.connect(hub=hub)
    assert not cli.is_connected and cli.get_private_key() is None
    other = make("other")
    assert len(other.get_registered_clients()) == 1  # just the hub
    cli.client.core._metadata["samp.name"] = "fixed"
    cli.connect(hub=hub)
    assert cli.is_connected
    assert other.get_metadata(cli.get_public_id())["samp.name"] == "fixed"


def test_strict_hub_gets_strings_after_its_first_refusal(tmp_path: Path) -> None:
    strict = SAMPHubServer(web_profile=False, lockfile=tmp_path / "strict.lock", strict=True)
    strict.start()
    made = ClientFactory(hub=strict)
    try:
        inbox = Inbox()
        rx = made("rx")
        rx.bind_receive_notification("test.*", inbox.notification_handler())
        tx = made("tx")
        policy = tx.hub.core.args_policy
        assert not policy.strings
        assert tx.enotify_all("test.n", n=1, ok=True) == [rx.get_public_id()]
        assert policy.strings  # learned from the hub's refusal, the call sent again
        assert inbox.wait(1)[0][2] == {"n": "1", "ok": "1"}
        tx.enotify(rx.get_public_id(), "test.m", x=0.5)  # strings from the start now
        assert inbox.wait_for(lambda item: item[1] == "test.m")[2] == {"x": "0.5"}
    finally:
        made.close()
        strict.stop()


def test_args_policy_and_plain_values() -> None:
    from sciwire.samp._rpc import ArgsPolicy, has_non_strings, plain

    assert plain((1, True, 2.5, ("a", {3: 4}), 2**40)) == [
        1,
        True,
        2.5,
        ["a", {"3": 4}],
        str(2**40),
    ]
    assert not has_non_strings(["a", {"b": ["c"]}]) and has_non_strings(["a", {"b": [1]}])
    policy = ArgsPolicy()
    fault = SAMPProxyError(
        1, "org.astrogrid.samp.DataException: Bad SAMP object: contains a java.lang.Integer"
    )
    assert policy.first(("k", {"n": 1})) == ["k", {"n": 1}]
    assert policy.retry(("k", {"n": "1"}), fault) is None  # nothing to convert
    assert policy.retry(("k", {"n": 1}), SAMPProxyError(1, "unknown key")) is None
    assert policy.retry(("k", {"n": 1}), fault) == ["k", {"n": "1"}]
    assert policy.strings and policy.first(("k", {"n": 1})) == ["k", {"n": "1"}]
    assert policy.retry(("k", {"n": 1}), fault) is None  # only once
