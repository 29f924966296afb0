"""Our hub over real loopback sockets, driven by a bare XML-RPC client (tests/samp/hubkit.py).

Every Standard Profile method, every hub event, the faults, callAndWait timeouts, a
receiver that dies, bad input, lockfile handling and the inactivity timeouts.
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sciwire.samp import _hublock as L
from sciwire.samp import _protocol as P
from sciwire.samp._delivery import Courier
from sciwire.samp.errors import SAMPDataError, SAMPHubError, SAMPProxyError
from sciwire.samp.hub import AsyncSAMPHub, SAMPHubServer
from tests.samp.hubkit import RawClient

Scaled = Callable[[float], float]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[AsyncSAMPHub]:
    h = AsyncSAMPHub(lockfile=tmp_path / "lock", web_profile=False)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


MakeClient = Callable[..., Awaitable[RawClient]]


@pytest.fixture
async def make_client(
    hub: AsyncSAMPHub, session: aiohttp.ClientSession
) -> AsyncIterator[MakeClient]:
    clients: list[RawClient] = []

    async def make(*, listen: bool = True, subs: dict[str, Any] | None = None) -> RawClient:
        client = RawClient(session, hub.url)
        clients.append(client)
        await client.register(hub.params["samp.secret"])
        if listen:
            await client.listen()
        if subs is not None:
            await client.h("declareSubscriptions", subs)
        return client

    yield make
    for client in clients:
        await client.close()


# -- registration, metadata, subscriptions ------------------------------------------------


async def test_register_and_bad_secret(hub: AsyncSAMPHub, make_client: MakeClient) -> None:
    a = await make_client()
    assert a.hub_id == "hub"
    with pytest.raises(SAMPProxyError, match="secret"):
        await a.call("register", "wrong secret")
    assert await a.call("ping") == ""
    assert await a.call("ping", a.key) == ""  # ping(key) is accepted too
    b = await make_client()
    assert sorted(await a.h("getRegisteredClients")) == sorted(["hub", b.id])
    await b.h("unregister")
    assert await a.h("getRegisteredClients") == ["hub"]
    with pytest.raises(SAMPProxyError, match="private key"):
        await b.h("getRegisteredClients")


async def test_metadata_and_its_event(make_client: MakeClient) -> None:
    watcher = await make_client(subs={"samp.hub.event.*": {}})
    a = await make_client()
    meta = {"samp.name": "A", "samp.description.text": "a = b", "x.y": ["1", {"z": "2"}]}
    await a.h("declareMetadata", meta)
    assert await watcher.h("getMetadata", a.id) == meta
    args = await watcher.expect("receiveNotification", P.HUB_EVENT_METADATA)
    assert args == ("hub", P.make_message(P.HUB_EVENT_METADATA, {"id": a.id, "metadata": meta}))
    # the client concerned hears about itself too
    await watcher.h("declareMetadata", {"samp.name": "W"})
    args = await watcher.expect("receiveNotification", P.HUB_EVENT_METADATA)
    assert args[1]["samp.params"]["id"] == watcher.id
    with pytest.raises(SAMPProxyError):
        await a.h("getMetadata", "c999")


async def test_register_unregister_and_subscription_events(make_client: MakeClient) -> None:
    watcher = await make_client(subs={"samp.hub.event.*": {}})
    a = await make_client(listen=False)
    args = await watcher.expect("receiveNotification", P.HUB_EVENT_REGISTER)
    assert args[1]["samp.params"] == {"id": a.id}
    subs = {"table.*": {"note": "tables"}, "samp.app.ping": {}}
    await a.h("declareSubscriptions", subs)
    args = await watcher.expect("receiveNotification", P.HUB_EVENT_SUBSCRIPTIONS)
    assert args[1]["samp.params"] == {"id": a.id, "subscriptions": subs}
    assert await watcher.h("getSubscriptions", a.id) == subs
    await a.h("unregister")
    args = await watcher.expect("receiveNotification", P.HUB_EVENT_UNREGISTER)
    assert args[1]["samp.params"] == {"id": a.id}


async def test_subscribed_clients_carry_annotations(make_client: MakeClient) -> None:
    a = await make_client(subs={"table.load.*": {"samp.mostly-harmless": "1", "x": "y"}})
    b = await make_client(subs={"*": {}})
    c = await make_client()
    found = await c.h("getSubscribedClients", "table.load.votable")
    assert found == {a.id: {"samp.mostly-harmless": "1", "x": "y"}, b.id: {}}
    assert await a.h("getSubscribedClients", "table.load.votable") == {b.id: {}}
    assert "hub" in await c.h("getSubscribedClients", "samp.app.ping")
    assert a.id not in await c.h("getSubscribedClients", "not.an.mtype")


# -- messaging ---------------------------------------------------------------------------------


async def test_notify_and_notify_all(make_client: MakeClient) -> None:
    a = await make_client()
    b = await make_client(subs={"test.n": {}})
    c = await make_client(subs={"test.*": {}})
    msg = {"samp.mtype": "test.n", "samp.params": {"k": "v"}, "extra.key": "kept"}
    await a.h("notify", b.id, msg)
    assert await b.expect("receiveNotification", "test.n") == (a.id, msg)
    ids = await a.h("notifyAll", msg)
    assert sorted(ids) == sorted([b.id, c.id])
    await b.expect("receiveNotification", "test.n")
    await c.expect("receiveNotification", "test.n")
    assert await a.h("notifyAll", {"samp.mtype": "nobody.listens"}) == []


async def test_messages_to_unsubscribed_or_unknown_clients_fault(make_client: MakeClient) -> None:
    a = await make_client()
    b = await make_client(subs={"test.n": {}})
    quiet = await make_client(listen=False, subs={"test.n": {}})
    msg = {"samp.mtype": "other.mtype"}
    for method, args in (
        ("notify", (b.id, msg)),
        ("call", (b.id, "t", msg)),
        ("callAndWait", (b.id, msg, "0")),
        ("notify", ("c999", {"samp.mtype": "test.n"})),
        ("call", (quiet.id, "t", {"samp.mtype": "test.n"})),  # subscribed but not callable
    ):
        with pytest.raises(SAMPProxyError):
            await a.h(method, *args)


async def test_call_reply_and_receive_response(make_client: MakeClient) -> None:
    a = await make_client()
    b = await make_client(subs={"test.echo": {}})
    b.on_call = None  # reply by hand below
    msg = {"samp.mtype": "test.echo", "samp.params": {"v": "1"}}
    msg_id = await a.h("call", b.id, "tag-1", msg)
    sender, got_id, got_msg = await b.expect("receiveCall")
    assert (sender, got_id, got_msg) == (a.id, msg_id, msg)
    response = P.make_ok_response({"v": "1"}) | {"test.msgid": msg_id}
    with pytest.raises(SAMPProxyError, match="msg-id"):
        await a.h("reply", msg_id, response)  # only the recipient may reply
    with pytest.raises(SAMPProxyError, match="msg-id"):
        await b.h("reply", "bogus-id", response)
    assert await b.h("reply", msg_id, response) == ""
    assert await a.expect("receiveResponse") == (b.id, "tag-1", response)
    with pytest.raises(SAMPProxyError):
        await b.h("reply", msg_id, response)  # the call is answered already


async def test_call_all(make_client: MakeClient) -> None:
    a = await make_client()
    b = await make_client(subs={"test.echo": {}})
    c = await make_client(subs={"test.echo": {}})
    ids = await a.h("callAll", "every", {"samp.mtype": "test.echo", "samp.params": {"q": "1"}})
    assert set(ids) == {b.id, c.id}
    got = {}
    for _ in range(2):
        responder, tag, response = await a.expect("receiveResponse")
        got[responder] = (tag, response)
    assert got == {
        b.id: ("every", P.make_ok_response({"q": "1"})),
        c.id: ("every", P.make_ok_response({"q": "1"})),
    }


async def test_call_and_wait_with_fast_inline_replies(make_client: MakeClient) -> None:
    """The reply arrives before the receiveCall HTTP call returns: never lost, never hung."""
    a = await make_client()
    b = await make_client(subs={"test.echo": {}})
    for i in range(30):
        msg = {"samp.mtype": "test.echo", "samp.params": {"i": str(i)}}
        assert await a.h("callAndWait", b.id, msg, "0") == P.make_ok_response({"i": str(i)})


async def test_call_and_wait_to_the_hub(make_client: MakeClient) -> None:
    a = await make_client(listen=False)
    reply = await a.h("callAndWait", "hub", {"samp.mtype": "samp.app.ping"}, "5")
    assert reply == P.make_ok_response({})


async def test_call_and_wait_timeout_then_late_reply_faults(
    make_client: MakeClient, scaled: Scaled
) -> None:
    a = await make_client()
    b = await make_client(subs={"test.slow": {}})
    b.on_call = None
    with pytest.raises(SAMPProxyError, match="timed out"):
        await a.h("callAndWait", b.id, {"samp.mtype": "test.slow"}, "0.3")
    _, msg_id, _ = await b.expect("receiveCall", timeout=scaled(5))
    with pytest.raises(SAMPProxyError, match="msg-id"):
        await b.h("reply", msg_id, P.make_ok_response())


async def test_call_and_wait_zero_means_no_timeout(make_client: MakeClient) -> None:
    a = await make_client()
    b = await make_client(subs={"test.slow": {}})
    b.on_call = None
    waiting = asyncio.ensure_future(a.h("callAndWait", b.id, {"samp.mtype": "test.slow"}, "0"))
    _, msg_id, _ = await b.expect("receiveCall")
    assert not waiting.done()
    await b.h("reply", msg_id, P.make_error_response("nope", code="9"))
    reply = await asyncio.wait_for(waiting, 5)
    assert reply["samp.status"] == "samp.error"
    assert reply["samp.error"] == {"samp.errortxt": "nope", "samp.code": "9"}


async def test_bad_call_and_wait_timeout_faults(make_client: MakeClient) -> None:
    a = await make_client()
    b = await make_client(subs={"test.echo": {}})
    with pytest.raises(SAMPProxyError, match="timeout"):
        await a.h("callAndWait", b.id, {"samp.mtype": "test.echo"}, "soon")


async def test_a_receiver_that_dies_is_unregistered_and_callers_get_an_error(
    make_client: MakeClient, hub: AsyncSAMPHub
) -> None:
    watcher = await make_client(subs={"samp.hub.event.unregister": {}})
    a = await make_client()
    b = await make_client(subs={"test.echo": {}})
    b.on_call = None
    waiting = asyncio.ensure_future(a.h("callAndWait", b.id, {"samp.mtype": "test.echo"}, "0"))
    pending_async = await a.h("call", b.id, "t", {"samp.mtype": "test.echo"})
    await b.expect("receiveCall")
    await b.expect("receiveCall")
    await b.stop_listening()  # b dies without unregistering
    # notify returns at once; its delivery then fails, so b is unregistered and both
    # callers waiting on b get error responses
    await a.h("notify", b.id, {"samp.mtype": "test.echo"})
    args = await watcher.expect("receiveNotification", P.HUB_EVENT_UNREGISTER)
    assert args[1]["samp.params"] == {"id": b.id}
    reply = await asyncio.wait_for(waiting, 5)
    assert reply["samp.status"] == P.SAMP_STATUS_ERROR
    responder, tag, response = await a.expect("receiveResponse")
    assert (responder, tag, response["samp.status"]) == (b.id, "t", P.SAMP_STATUS_ERROR)
    assert pending_async not in hub.state.pending
    assert hub.failed_deliveries >= 1
    # the hub keeps serving the others
    assert b.id not in await a.h("getRegisteredClients")


async def test_unregistering_recipient_answers_pending_calls(make_client: MakeClient) -> None:
    a = await make_client()
    b = await make_client(subs={"test.echo": {}})
    b.on_call = None
    waiting = asyncio.ensure_future(a.h("callAndWait", b.id, {"samp.mtype": "test.echo"}, "0"))
    await b.expect("receiveCall")
    await b.h("unregister")
    reply = await asyncio.wait_for(waiting, 5)
    assert reply["samp.status"] == P.SAMP_STATUS_ERROR


async def test_shutdown_event(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    hub = AsyncSAMPHub(lockfile=tmp_path / "lock", web_profile=False)
    await hub.start()
    client = RawClient(session, hub.url)
    try:
        await client.register(hub.params["samp.secret"])
        await client.listen()
        await client.h("declareSubscriptions", {"samp.hub.event.shutdown": {}})
        await hub.stop()
        args = await client.expect("receiveNotification", P.HUB_EVENT_SHUTDOWN)
        assert args[0] == "hub"
    finally:
        await hub.stop()
        await client.close()


# -- bad input ---------------------------------------------------------------------------------


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, bytes]:
    async with session.post(url, data=body, headers={"Content-Type": "text/xml"}) as reply:
        return reply.status, await reply.read()


@pytest.mark.parametrize(
    "body",
    [
        b"garbage",
        b"<methodCall><methodName>samp.hub.ping</methodName><params>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><methodCall>'
        b"<methodName>samp.hub.ping</methodName></methodCall>",
        P.encode_call("samp.hub.nonsense", []),
        P.encode_call("system.listMethods", []),
        P.encode_call("samp.hub.register", []),
        P.encode_call("samp.hub.register", ["a", "b"]),
        P.encode_call("samp.hub.getMetadata", [["not a key"], "hub"]),
    ],
)
async def test_bad_requests_fault_and_the_hub_keeps_serving(
    hub: AsyncSAMPHub, session: aiohttp.ClientSession, make_client: MakeClient, body: bytes
) -> None:
    status, data = await _post(session, hub.url, body)
    assert status == 200
    with pytest.raises(SAMPProxyError):
        P.decode_response(data)
    a = await make_client()
    assert await a.h("getRegisteredClients") == ["hub"]


async def test_bad_samp_data_faults(make_client: MakeClient) -> None:
    a = await make_client()
    b = await make_client(subs={"test.n": {}})
    for msg in (
        {"samp.mtype": "test.n", "samp.params": {"t": "caf\u00e9"}},
        {"samp.mtype": "test.n", "samp.params": {"t": "\x01"}},
        {"samp.mtype": "test.n", "samp.params": "not a map"},
        {"samp.mtype": "bad mtype"},
        "not a message",
        ["a", "list"],
    ):
        with pytest.raises(SAMPProxyError):
            await a.h("notify", b.id, msg)
    with pytest.raises(SAMPProxyError):
        await a.h("declareMetadata", {"samp.name": "\u2603"})
    with pytest.raises(SAMPProxyError):
        await a.h("declareSubscriptions", {"a.*.b": {}})


async def test_numbers_are_relayed_as_sent_by_default(make_client: MakeClient) -> None:
    # astropy's hub relays them and astropy's own tests expect them back unchanged
    a = await make_client()
    b = await make_client(subs={"test.n": {}})
    await a.h("notify", b.id, {"samp.mtype": "test.n", "samp.params": {"n": 5, "b": True}})
    _, msg = await b.expect("receiveNotification", "test.n")
    assert msg["samp.params"] == {"n": 5, "b": True}


async def test_coercing_hub_turns_numbers_into_strings(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    hub = AsyncSAMPHub(lockfile=tmp_path / "lock", web_profile=False, coerce=True)
    await hub.start()
    try:
        a = RawClient(session, hub.url)
        await a.register(hub.params["samp.secret"])
        await a.h("declareMetadata", {"samp.name": "x", "n": 5, "b": False, "f": 0.5})
        meta = await a.h("getMetadata", a.id)
        assert meta == {"samp.name": "x", "n": "5", "b": "0", "f": "0.5"}
    finally:
        await hub.stop()


async def test_strict_hub_refuses_numbers(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    hub = AsyncSAMPHub(lockfile=tmp_path / "lock", web_profile=False, strict=True)
    await hub.start()
    try:
        a = RawClient(session, hub.url)
        await a.register(hub.params["samp.secret"])
        with pytest.raises(SAMPProxyError, match="not a SAMP type"):
            await a.h("declareMetadata", {"samp.name": "x", "n": 5})
    finally:
        await hub.stop()


async def test_huge_bodies_and_wrong_verbs(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    hub = AsyncSAMPHub(lockfile=tmp_path / "lock", web_profile=False, max_body=10_000)
    await hub.start()
    try:
        status, _ = await _post(session, hub.url, P.encode_call("samp.hub.ping", ["x" * 20_000]))
        assert status == 413
        async with session.get(hub.url) as reply:
            assert reply.status == 405
        status, data = await _post(session, hub.url, P.encode_call("samp.hub.ping", []))
        assert (status, P.decode_response(data)) == (200, "")
    finally:
        await hub.stop()


# -- lockfile ----------------------------------------------------------------------------------


async def test_lockfile_is_owner_only_complete_and_removed(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    hub = AsyncSAMPHub(lockfile=lock, web_profile=False, label="test hub")
    await hub.start()
    try:
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        fields = L.read_lockfile(lock)
        for key in ("samp.secret", "samp.hub.xmlrpc.url", "samp.profile.version"):
            assert fields[key] == hub.params[key]
        assert fields["hub.label"] == "test hub"
        assert hub.lockfile == str(lock)
    finally:
        await hub.stop()
    assert not lock.exists()


async def test_a_second_hub_refuses_while_the_first_lives(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    first = AsyncSAMPHub(lockfile=lock, web_profile=False)
    await first.start()
    second = AsyncSAMPHub(lockfile=lock, web_profile=False)
    try:
        with pytest.raises(SAMPHubError, match="already running"):
            await second.start()
        assert L.read_lockfile(lock)["samp.secret"] == first.params["samp.secret"]
        assert not second.is_running
    finally:
        await second.stop()
        await first.stop()
    assert not lock.exists()


async def test_a_stale_lockfile_is_taken_over(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    L.write_lockfile(
        lock,
        {
            "samp.secret": "old",
            "samp.hub.xmlrpc.url": "http://127.0.0.1:9/xmlrpc",  # the discard port: nobody
            "samp.profile.version": "1.3",
        },
    )
    hub = AsyncSAMPHub(lockfile=lock, web_profile=False)
    await hub.start()
    try:
        assert L.read_lockfile(lock)["samp.secret"] == hub.params["samp.secret"]
    finally:
        await hub.stop()


async def test_samp_hub_std_lockurl_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = tmp_path / "custom-lock"
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{lock.as_uri()}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    hub = AsyncSAMPHub(web_profile=False)
    await hub.start()
    try:
        assert hub.lockfile == str(lock)
        assert L.read_lockfile(lock)["samp.hub.xmlrpc.url"] == hub.url
    finally:
        await hub.stop()
    assert not lock.exists()


async def test_stop_leaves_another_hubs_lockfile_alone(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    hub = AsyncSAMPHub(lockfile=lock, web_profile=False)
    await hub.start()
    L.write_lockfile(lock, {"samp.secret": "someone else"})
    await hub.stop()
    assert L.read_lockfile(lock) == {"samp.secret": "someone else"}


# -- timeouts ----------------------------------------------------------------------------------


async def test_idle_hub_stops_itself(tmp_path: Path, scaled: Scaled) -> None:
    lock = tmp_path / "lock"
    hub = AsyncSAMPHub(lockfile=lock, web_profile=False, timeout=0.3)
    await hub.start()
    try:
        await asyncio.wait_for(hub.wait_stopped(), scaled(10))
        assert not hub.is_running
        assert not lock.exists()
    finally:
        await hub.stop()


async def test_silent_client_is_disconnected(
    tmp_path: Path, session: aiohttp.ClientSession, scaled: Scaled
) -> None:
    hub = AsyncSAMPHub(lockfile=tmp_path / "lock", web_profile=False, client_timeout=0.3)
    await hub.start()
    silent = RawClient(session, hub.url)
    try:
        await silent.register(hub.params["samp.secret"])
        await silent.listen()
        await silent.h("declareSubscriptions", {"samp.hub.disconnect": {}})
        args = await silent.expect("receiveNotification", P.HUB_EVENT_DISCONNECT, scaled(10))
        assert args[1]["samp.params"]["reason"]
        with pytest.raises(SAMPProxyError):
            await silent.h("getRegisteredClients")
    finally:
        await silent.close()
        await hub.stop()


# -- the blocking facade -------------------------------------------------------------------------


def test_blocking_server_start_stop(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    server = SAMPHubServer(lockfile=str(lock), web_profile=False)
    assert not server.is_running
    server.start()
    try:
        assert server.is_running
        assert server.params["samp.hub.xmlrpc.url"] == server.url
        assert server.id.startswith("sciwire-")
        assert lock.exists()
        with pytest.raises(SAMPHubError, match="already running"):
            server.start()
    finally:
        server.stop()
    assert not server.is_running
    assert not lock.exists()
    server.stop()  # idempotent


def test_blocking_server_bad_arguments() -> None:
    with pytest.raises(ValueError):
        SAMPHubServer(mode="double")
    with pytest.raises(ValueError):
        SAMPHubServer(web_auth="maybe")


async def test_pipelined_requests_are_answered_in_order(
    hub: AsyncSAMPHub, make_client: MakeClient
) -> None:
    """A slow callAndWait first, a ping after it on the same connection: answers in order."""
    a = await make_client()
    b = await make_client(subs={"test.slow": {}})
    b.on_call = None
    port = hub.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        slow = P.encode_call(
            "samp.hub.callAndWait", [a.key, b.id, {"samp.mtype": "test.slow"}, "0"]
        )
        quick = P.encode_call("samp.hub.ping", [])
        for body in (slow, quick):
            head = f"POST /xmlrpc HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
            writer.write(head.encode() + body)
        await writer.drain()
        _, msg_id, _ = await b.expect("receiveCall")
        await b.h("reply", msg_id, P.make_ok_response({"first": "1"}))
        bodies = []
        for _ in range(2):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            bodies.append(P.decode_response(await reader.readexactly(length)))
        assert bodies == [P.make_ok_response({"first": "1"}), ""]
    finally:
        writer.close()
        await writer.wait_closed()


async def test_chunked_request_and_garbage_http(hub: AsyncSAMPHub) -> None:
    body = P.encode_call("samp.hub.ping", [])
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    try:
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(body):x}\r\n".encode()
            + body
            + b"\r\n0\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        assert P.decode_response(await reader.readexactly(length)) == ""
        writer.write(b"NONSENSE\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 400")
    finally:
        writer.close()
        await writer.wait_closed()
    assert hub.bad_requests >= 1


async def test_multiple_mode_writes_its_own_lockfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SAMP_HUB", raising=False)
    hubs = [AsyncSAMPHub(mode="multiple", web_profile=False) for _ in range(2)]
    for hub in hubs:
        await hub.start()
    try:
        locks = [Path(str(hub.lockfile)) for hub in hubs]
        assert locks[0] != locks[1]
        for lock in locks:
            assert lock.parent == tmp_path / ".samp-1"
            assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / ".samp-1").stat().st_mode) == 0o700
        assert not (tmp_path / ".samp").exists()
    finally:
        for hub in hubs:
            await hub.stop()
    assert list((tmp_path / ".samp-1").iterdir()) == []


async def test_a_receiver_answering_with_a_fault_fails_the_call_not_the_hub(
    make_client: MakeClient, hub: AsyncSAMPHub
) -> None:
    a = await make_client()
    b = await make_client(subs={"test.echo": {}})
    b.fault_text = "no handler for that"
    reply = await a.h("callAndWait", b.id, {"samp.mtype": "test.echo"}, "0")
    assert reply["samp.status"] == P.SAMP_STATUS_ERROR
    assert "no handler for that" in reply["samp.error"]["samp.errortxt"]
    assert b.id in await a.h("getRegisteredClients")  # alive: it answered


async def test_a_caller_that_hangs_up_abandons_its_call_and_wait(
    hub: AsyncSAMPHub, make_client: MakeClient, scaled: Scaled
) -> None:
    a = await make_client()
    b = await make_client(subs={"test.slow": {}})
    b.on_call = None
    _reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    body = P.encode_call("samp.hub.callAndWait", [a.key, b.id, {"samp.mtype": "test.slow"}, "0"])
    writer.write(f"POST / HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    _, msg_id, _ = await b.expect("receiveCall")
    assert msg_id in hub.state.pending
    writer.close()
    await writer.wait_closed()
    # the reply of the recipient then finds no call waiting for it

    async def abandoned() -> None:
        while msg_id in hub.state.pending:
            await asyncio.sleep(0)  # yield to the hub (same loop) until it sees the EOF

    await asyncio.wait_for(abandoned(), scaled(5))
    with pytest.raises(SAMPProxyError, match="msg-id"):
        await b.h("reply", msg_id, P.make_ok_response())


async def test_courier_refuses_a_callback_url_that_is_not_http() -> None:
    """Delivery is core.http only: another scheme is a clear SAMPDataError (the hub
    refuses such URLs at setXmlrpcCallback, so this guards the courier alone)."""
    courier = Courier()
    try:
        with pytest.raises(SAMPDataError, match="not http"):
            await courier.post("ftp://127.0.0.1/x", b"<methodCall/>")
    finally:
        await courier.close()
