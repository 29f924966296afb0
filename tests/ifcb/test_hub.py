"""The SignalR hub server and client edges: negotiate versions, redirects, errors, timeouts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from sciwire.ifcb import HubClient, IFCBSimulator, NegotiateError
from sciwire.ifcb._signalr import RS


@pytest.fixture
async def sim() -> AsyncIterator[IFCBSimulator]:
    simulator = IFCBSimulator(
        heartbeat_interval=0, handshake_timeout=0.3, client_timeout=0.5, keep_alive_interval=0.1
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def fake_negotiate() -> AsyncIterator[tuple[list[dict[str, str]], Callable[..., str]]]:
    """A tiny server whose negotiate answers what the test sets."""
    replies: list[dict[str, str]] = []
    seen: list[dict[str, str]] = []

    async def negotiate(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response(replies.pop(0))

    app = web.Application()
    app.router.add_post("/hub/negotiate", negotiate)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    def url(reply: dict[str, str]) -> str:
        replies.append(reply)
        return f"http://127.0.0.1:{port}/hub"

    yield seen, url  # type: ignore[misc]
    await runner.cleanup()


async def test_redirect_with_access_token_is_followed(
    sim: IFCBSimulator,
    fake_negotiate: tuple[list[dict[str, str]], Callable[..., str]],
    scaled: Callable[[float], float],
) -> None:
    seen, url = fake_negotiate
    start = url({"url": sim.url, "accessToken": "secret"})
    hub = HubClient(start, handshake_timeout=scaled(5))
    await hub.start()
    try:
        assert await hub.invoke("startAsClient", [sim.serial], timeout=scaled(5)) is None
    finally:
        await hub.stop()
    assert "Authorization" not in seen[0]


async def test_negotiate_error_reply_raises(
    fake_negotiate: tuple[list[dict[str, str]], Callable[..., str]],
    scaled: Callable[[float], float],
) -> None:
    _, url = fake_negotiate
    hub = HubClient(url({"error": "instrument offline"}), handshake_timeout=scaled(5))
    with pytest.raises(NegotiateError, match="instrument offline"):
        await hub.start()
    assert isinstance(hub.closed.result(), NegotiateError)


async def test_negotiate_v0_id_and_skip_negotiation(
    sim: IFCBSimulator, scaled: Callable[[float], float]
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(sim.url + "/negotiate") as resp:
            body = await resp.json()
        assert body["negotiateVersion"] == 0 and "connectionToken" not in body
        ws_url = sim.url.replace("http", "ws")
        ws = await session.ws_connect(f"{ws_url}?id={body['connectionId']}")
        await ws.send_str('{"protocol":"json","version":0}' + RS)
        reply = await ws.receive(timeout=scaled(5))
        assert reply.data.startswith("{}" + RS)
        await ws.close()
    hub = HubClient(sim.url, skip_negotiation=True, handshake_timeout=scaled(5))
    await hub.start()
    try:
        assert hub.connection_id is None
        assert await hub.invoke("startAsClient", [sim.serial], timeout=scaled(5)) is None
    finally:
        await hub.stop()


async def test_server_drops_a_client_that_never_handshakes_or_goes_silent(
    sim: IFCBSimulator, scaled: Callable[[float], float]
) -> None:
    ws_url = sim.url.replace("http", "ws")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(ws_url)  # no handshake at all
        msg = await ws.receive(timeout=scaled(5))
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        ws = await session.ws_connect(ws_url, autoping=False)
        await ws.send_str('{"protocol":"json","version":1}' + RS)
        kinds = []
        while True:  # pings from the server, then a close once we stay silent
            msg = await ws.receive(timeout=scaled(5))
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            kinds.append(msg.data)
        assert kinds[0].startswith("{}" + RS)
        assert any('{"type":6}' in k for k in kinds)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_server_answers_bad_records_with_close(
    sim: IFCBSimulator, scaled: Callable[[float], float]
) -> None:
    ws_url = sim.url.replace("http", "ws")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(ws_url)
        await ws.send_str('{"protocol":"json","version":1}' + RS + "{broken" + RS)
        texts = []
        while True:
            msg = await ws.receive(timeout=scaled(5))
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            texts.append(msg.data)
        assert '"type":7' in "".join(texts) and "error" in "".join(texts)
    assert sim.connections == {} or all(not c.open for c in sim.connections.values())
    await asyncio.sleep(0)


@pytest.mark.parametrize("coalesce", [False, True])
async def test_blast_framing_one_record_per_frame_or_batched(
    coalesce: bool, scaled: Callable[[float], float]
) -> None:
    # frame-per-message bursts go out in one socket write of many frames: every size
    # of frame header (7-bit, 16-bit, 64-bit lengths) must still arrive intact, in order
    sim = IFCBSimulator(heartbeat_interval=0, coalesce=coalesce)
    await sim.start()
    texts = [f"reportevent:{'x' * size}" for size in (1, 100, 200, 70_000, 3, 65_600, 5)] * 40
    blast: asyncio.Task[int] | None = None
    try:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(sim.url.replace("http", "ws"), max_msg_size=0)
            await ws.send_str('{"protocol":"json","version":1}' + RS)
            assert (await ws.receive(scaled(5))).data == "{}" + RS
            call = {"type": 1, "target": "startAsClient", "arguments": [sim.serial]}
            await ws.send_str(json.dumps(call) + RS)
            assert "startedAsClient" in (await ws.receive(scaled(5))).data
            blast = asyncio.create_task(sim.blast(len(texts), texts))
            records: list[str] = []
            frames = 0
            while len(records) < len(texts):
                data = (await ws.receive(scaled(5))).data
                assert data.endswith(RS)
                frames += 1
                records.extend(data.split(RS)[:-1])
            assert await asyncio.wait_for(blast, scaled(5)) == len(texts)
            await ws.close()
    finally:
        if blast is not None:
            blast.cancel()
        await sim.stop()
    got = [json.loads(r)["arguments"][3] for r in records]
    assert got == texts
    if coalesce:
        assert frames < len(texts)
    else:
        assert frames == len(texts)
