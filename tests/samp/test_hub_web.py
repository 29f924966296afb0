"""The hub's Web Profile over loopback: consent, CORS, policy files, long polls, safe
mtypes and the URL translator."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sciwire.samp import _protocol as P
from sciwire.samp.errors import SAMPHubError, SAMPProxyError
from sciwire.samp.hub import AsyncSAMPHub, WebAuth
from tests.samp.hubkit import RawClient

ORIGIN = "http://page.example"
Scaled = Callable[[float], float]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _hub(tmp_path: Path, web_auth: WebAuth = "allow") -> AsyncSAMPHub:
    hub = AsyncSAMPHub(lockfile=tmp_path / "lock", web_port=0, web_auth=web_auth)
    await hub.start()
    return hub


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[AsyncSAMPHub]:
    h = await _hub(tmp_path)
    try:
        yield h
    finally:
        await h.stop()


def _web_client(session: aiohttp.ClientSession, hub: AsyncSAMPHub) -> RawClient:
    client = RawClient(session, f"http://127.0.0.1:{hub.web_port}/", web=True)
    client.headers["Origin"] = ORIGIN
    return client


@pytest.fixture
async def web(session: aiohttp.ClientSession, hub: AsyncSAMPHub) -> RawClient:
    client = _web_client(session, hub)
    await client.register({"samp.name": "page"})
    await client.h("allowReverseCallbacks", "1")
    return client


@pytest.fixture
async def desk(session: aiohttp.ClientSession, hub: AsyncSAMPHub) -> AsyncIterator[RawClient]:
    client = RawClient(session, hub.url)
    await client.register(hub.params["samp.secret"])
    await client.listen()
    try:
        yield client
    finally:
        await client.close()


async def test_registration_returns_a_translator(hub: AsyncSAMPHub, web: RawClient) -> None:
    assert web.hub_id == "hub"
    assert web.key.startswith("wk:")
    info = await _web_client(web.session, hub).register({"samp.name": "again"})
    assert info["samp.url-translator"].startswith(f"http://127.0.0.1:{hub.web_port}/translator/")
    assert info["samp.url-translator"].endswith("?ref=")
    assert await web.call("ping") == ""
    assert web.id in hub.state._by_id


async def test_deny_policy_refuses(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    hub = await _hub(tmp_path, "deny")
    try:
        with pytest.raises(SAMPProxyError, match="refused"):
            await _web_client(session, hub).register({"samp.name": "page"})
        assert hub.state.clients == []
    finally:
        await hub.stop()


async def test_callback_policy_sees_name_and_origin(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    seen: list[dict[str, Any]] = []

    def policy(request: dict[str, Any]) -> bool:
        seen.append(request)
        return request["samp.name"] == "good"

    hub = await _hub(tmp_path, policy)
    try:
        with pytest.raises(SAMPProxyError, match="refused"):
            await _web_client(session, hub).register({"samp.name": "bad"})
        await _web_client(session, hub).register({"samp.name": "good"})
        assert [(r["samp.name"], r["origin"]) for r in seen] == [("bad", ORIGIN), ("good", ORIGIN)]
    finally:
        await hub.stop()


async def test_async_and_failing_policies(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    async def allow(request: dict[str, Any]) -> bool:
        return True

    def broken(request: dict[str, Any]) -> bool:
        raise RuntimeError("dialog crashed")

    for policy, ok in ((allow, True), (broken, False)):
        hub = await _hub(tmp_path, policy)
        try:
            client = _web_client(session, hub)
            if ok:
                await client.register({"samp.name": "x"})
            else:
                with pytest.raises(SAMPProxyError):
                    await client.register({"samp.name": "x"})
        finally:
            await hub.stop()


async def test_bad_registrations_and_wrong_profile_methods(
    hub: AsyncSAMPHub, web: RawClient, desk: RawClient
) -> None:
    for identity in ({}, {"samp.name": ["x"]}, ["x"], {"samp.name": "caf\u00e9"}):
        with pytest.raises(SAMPProxyError):
            await _web_client(web.session, hub).register(identity)
    with pytest.raises(SAMPProxyError, match="not a Web Profile method"):
        await web.h("setXmlrpcCallback", "http://127.0.0.1:1/")
    with pytest.raises(SAMPProxyError, match="private key"):  # a desktop key on the web port
        await web.call("getRegisteredClients", desk.key)
    with pytest.raises(SAMPProxyError):
        await web.call("samp.hub.register", "x")  # wrong prefix
    with pytest.raises(SAMPProxyError):
        await web.h("pullCallbacks", "later")


async def test_cors_preflight_and_policy_files(
    hub: AsyncSAMPHub, session: aiohttp.ClientSession
) -> None:
    base = f"http://127.0.0.1:{hub.web_port}"
    headers = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
        "Access-Control-Request-Private-Network": "true",
    }
    async with session.options(base + "/", headers=headers) as reply:
        assert reply.status == 200
        assert reply.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "POST" in reply.headers["Access-Control-Allow-Methods"]
        assert reply.headers["Access-Control-Allow-Headers"] == "content-type"
        assert reply.headers["Access-Control-Allow-Private-Network"] == "true"
    body = P.encode_call("samp.webhub.ping", [])
    async with session.post(base + "/", data=body, headers={"Origin": ORIGIN}) as reply:
        assert reply.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert P.decode_response(await reply.read()) == ""
    async with session.get(base + "/crossdomain.xml") as reply:
        assert reply.status == 200
        assert b"<cross-domain-policy>" in await reply.read()
    async with session.get(base + "/clientaccesspolicy.xml") as reply:
        assert reply.status == 200
        assert b"<access-policy>" in await reply.read()
    async with session.get(base + "/") as reply:
        assert reply.status == 405


async def test_pull_callbacks_is_a_long_poll(web: RawClient, desk: RawClient) -> None:
    await web.h("declareSubscriptions", {"table.load.votable": {}})
    poll = asyncio.ensure_future(web.h("pullCallbacks", "30"))
    assert await web.call("ping") == ""  # a round trip while the poll is held
    assert not poll.done()
    msg = {"samp.mtype": "table.load.votable", "samp.params": {"url": "http://127.0.0.1:1/t"}}
    await desk.h("notify", web.id, msg)
    items = await asyncio.wait_for(poll, 5)
    assert items == [{"samp.methodName": "receiveNotification", "samp.params": [desk.id, msg]}]


async def test_pull_callbacks_honours_its_timeout(web: RawClient) -> None:
    assert await asyncio.wait_for(web.h("pullCallbacks", "0.2"), 5) == []
    assert await web.h("pullCallbacks", "0") == []


async def test_web_client_answers_a_call(web: RawClient, desk: RawClient) -> None:
    await web.h("declareSubscriptions", {"samp.app.ping": {}})
    waiting = asyncio.ensure_future(
        desk.h("callAndWait", web.id, {"samp.mtype": "samp.app.ping"}, "0")
    )
    [item] = await asyncio.wait_for(web.h("pullCallbacks", "10"), 5)
    assert item["samp.methodName"] == "receiveCall"
    sender, msg_id, msg = item["samp.params"]
    assert (sender, msg["samp.mtype"]) == (desk.id, "samp.app.ping")
    await web.h("reply", msg_id, P.make_ok_response({"pong": "1"}))
    assert await asyncio.wait_for(waiting, 5) == P.make_ok_response({"pong": "1"})


async def test_web_client_receives_responses_and_events(web: RawClient, desk: RawClient) -> None:
    await web.h("declareSubscriptions", {"samp.hub.event.*": {}})
    await desk.h("declareSubscriptions", {"samp.app.ping": {}})
    await web.h("call", desk.id, "t9", {"samp.mtype": "samp.app.ping"})  # desk auto-echoes
    items = []
    while not any(i["samp.methodName"] == "receiveResponse" for i in items):
        items += await asyncio.wait_for(web.h("pullCallbacks", "5"), 10)
    [response] = [i for i in items if i["samp.methodName"] == "receiveResponse"]
    assert response["samp.params"][:2] == [desk.id, "t9"]
    assert any(
        i["samp.params"][1]["samp.mtype"] == P.HUB_EVENT_SUBSCRIPTIONS
        for i in items
        if i["samp.methodName"] == "receiveNotification"
    )


async def test_web_clients_may_send_only_safe_mtypes_to_desktop_clients(
    web: RawClient, desk: RawClient
) -> None:
    await desk.h(
        "declareSubscriptions",
        {"script.run": {}, "table.load.votable": {}, "x.harmless": {"samp.mostly-harmless": "1"}},
    )
    with pytest.raises(SAMPProxyError, match="Web Profile"):
        await web.h("notify", desk.id, {"samp.mtype": "script.run"})
    with pytest.raises(SAMPProxyError, match="Web Profile"):
        await web.h("callAndWait", desk.id, {"samp.mtype": "script.run"}, "1")
    assert desk.id not in await web.h("getSubscribedClients", "script.run")
    assert await web.h("notifyAll", {"samp.mtype": "script.run"}) == []
    await web.h("notify", desk.id, {"samp.mtype": "table.load.votable"})
    await web.h("notify", desk.id, {"samp.mtype": "x.harmless"})
    await desk.expect("receiveNotification", "table.load.votable")
    await desk.expect("receiveNotification", "x.harmless")


async def test_url_translator_serves_only_urls_the_client_was_sent(
    tmp_path: Path, hub: AsyncSAMPHub, web: RawClient, desk: RawClient
) -> None:
    shared = tmp_path / "table.xml"
    shared.write_text("<VOTABLE/>")
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    await web.h("declareSubscriptions", {"table.load.votable": {}})
    msg = {"samp.mtype": "table.load.votable", "samp.params": {"url": shared.as_uri()}}
    await desk.h("notify", web.id, msg)
    await asyncio.wait_for(web.h("pullCallbacks", "5"), 10)
    translator = f"http://127.0.0.1:{hub.web_port}/translator/{web.key}?ref="

    async def fetch(url: str, key: str | None = None) -> tuple[int, bytes]:
        base = translator if key is None else translator.replace(web.key, key)
        async with web.session.get(base + urllib.parse.quote(url, safe="")) as reply:
            return reply.status, await reply.read()

    assert await fetch(shared.as_uri()) == (200, b"<VOTABLE/>")
    assert (await fetch(secret.as_uri()))[0] == 403
    assert (await fetch(shared.as_uri(), key="wk:forged"))[0] == 403
    # HEAD: the headers of the GET (type and length), no body
    quoted = translator + urllib.parse.quote(shared.as_uri(), safe="")
    async with web.session.head(quoted, headers={"Origin": ORIGIN}) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Length"] == str(len(b"<VOTABLE/>"))
        assert reply.headers["Content-Type"] == "application/xml"
        assert reply.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert await reply.read() == b""
    shared.unlink()  # sent, then gone: 404, not an error page
    assert (await fetch(shared.as_uri()))[0] == 404


async def test_stopping_the_hub_ends_long_polls(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    hub = await _hub(tmp_path)
    try:
        client = _web_client(session, hub)
        await client.register({"samp.name": "page"})
        await client.h("allowReverseCallbacks", "1")
        poll = asyncio.ensure_future(client.h("pullCallbacks", "600"))
        assert await client.call("ping") == ""
    finally:
        await hub.stop()
    # the held poll ends promptly (an empty list, or the connection closing), not in 600 s
    done, _ = await asyncio.wait({poll}, timeout=10)
    assert poll in done
    if poll.exception() is None:
        assert poll.result() == []
    else:
        assert isinstance(poll.exception(), aiohttp.ClientError)


def test_dialog_policy_answers_no_when_nobody_answers() -> None:
    from sciwire.samp.hub import DialogPolicy

    class SilentDialog:
        def consent(self) -> None: ...

    dialog = SilentDialog()
    policy = DialogPolicy(dialog, timeout=0.05)
    assert policy({"samp.name": "x", "origin": ORIGIN, "remote": "127.0.0.1"}) is False
    assert dialog.queue_request.empty()  # type: ignore[attr-defined]
    dialog.queue_result.put(True)  # type: ignore[attr-defined]
    assert policy({"samp.name": "y"}) is True
    assert dialog.queue_request.get_nowait() == ({"samp.name": "y"}, ("127.0.0.1", 0), "unknown")  # type: ignore[attr-defined]


async def test_web_clients_that_stop_polling_are_unregistered(
    tmp_path: Path, session: aiohttp.ClientSession, scaled: Scaled
) -> None:
    hub = AsyncSAMPHub(lockfile=tmp_path / "lock", web_port=0, web_auth="allow", web_idle=0.3)
    await hub.start()
    watcher = RawClient(session, hub.url)
    try:
        await watcher.register(hub.params["samp.secret"])
        await watcher.listen()
        await watcher.h("declareSubscriptions", {"samp.hub.event.unregister": {}})
        polling, gone = _web_client(session, hub), _web_client(session, hub)
        for client in (polling, gone):
            await client.register({"samp.name": "page"})
            await client.h("allowReverseCallbacks", "1")
        held = asyncio.ensure_future(polling.h("pullCallbacks", "30"))
        args = await watcher.expect("receiveNotification", P.HUB_EVENT_UNREGISTER, scaled(10))
        assert args[1]["samp.params"] == {"id": gone.id}
        registered = await watcher.h("getRegisteredClients")
        assert polling.id in registered and gone.id not in registered
        assert not held.done()
    finally:
        await hub.stop()
        await watcher.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(held, scaled(5))


async def test_a_busy_web_port_is_a_clear_error(tmp_path: Path) -> None:
    first = await _hub(tmp_path)
    second = AsyncSAMPHub(lockfile=tmp_path / "other-lock", web_port=first.web_port)
    try:
        with pytest.raises(SAMPHubError, match="Web Profile port"):
            await second.start()
        assert not second.is_running
        assert not (tmp_path / "other-lock").exists()
    finally:
        await second.stop()
        await first.stop()


async def test_web_port_limits_bodies_and_refuses_bad_requests(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """The Web Profile port is on core.http: its body cap and strict parsing apply."""
    hub = AsyncSAMPHub(lockfile=tmp_path / "lock", web_port=0, web_auth="allow", max_body=1024)
    await hub.start()
    try:
        base = f"http://127.0.0.1:{hub.web_port}/"
        async with session.post(base, data=b"x" * 4096, headers={"Origin": ORIGIN}) as reply:
            assert reply.status == 413
        async with session.get(base + "xmlrpc") as reply:  # only POST carries XML-RPC
            assert reply.status == 405
            assert reply.headers["Allow"] == "POST, OPTIONS"
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.web_port)
        try:
            writer.write(b"POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readline(), 10)
            assert head.startswith(b"HTTP/1.1 400 ")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        # and the port still serves
        client = _web_client(session, hub)
        await client.register({"samp.name": "after"})
        assert await client.call("ping") == ""
    finally:
        await hub.stop()


async def test_url_translator_relays_a_large_http_body_whole(
    hub: AsyncSAMPHub, web: RawClient, desk: RawClient
) -> None:
    from aiohttp import web as aioweb

    payload = bytes(range(256)) * 4096  # 1 MiB: many reads' worth
    app = aioweb.Application()

    async def table(request: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(body=payload, content_type="application/x-votable+xml")

    app.router.add_get("/table.xml", table)
    runner = aioweb.AppRunner(app)
    await runner.setup()
    site = aioweb.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/table.xml"
        await web.h("declareSubscriptions", {"table.load.votable": {}})
        msg = {"samp.mtype": "table.load.votable", "samp.params": {"url": url}}
        await desk.h("notify", web.id, msg)
        await asyncio.wait_for(web.h("pullCallbacks", "5"), 10)
        translator = f"http://127.0.0.1:{hub.web_port}/translator/{web.key}?ref="
        async with web.session.get(translator + urllib.parse.quote(url, safe="")) as reply:
            assert reply.status == 200
            assert await reply.read() == payload
    finally:
        await runner.cleanup()
