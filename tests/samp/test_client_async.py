"""The asyncio client API against our asyncio hub, on one event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sciwire.samp import (
    SAMP_STATUS_ERROR,
    SAMP_STATUS_OK,
    AsyncSAMPHub,
    AsyncSAMPIntegratedClient,
    SAMPClientError,
    SAMPProxyError,
    SAMPWarning,
)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[AsyncSAMPHub]:
    server = AsyncSAMPHub(web_profile=False, lockfile=tmp_path / "lock")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def make(
    hub: AsyncSAMPHub,
) -> AsyncIterator[Callable[..., Any]]:
    made: list[AsyncSAMPIntegratedClient] = []

    async def connect(name: str = "async", **kw: Any) -> AsyncSAMPIntegratedClient:
        client = AsyncSAMPIntegratedClient(name=name, **kw)
        made.append(client)
        await client.connect(hub_params=hub.params)
        return client

    try:
        yield connect
    finally:
        for client in made:
            await client.disconnect()


async def test_context_manager_discovers_the_hub(
    hub: AsyncSAMPHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert hub.lockfile is not None
    monkeypatch.setenv("SAMP_HUB", "std-lockurl:" + Path(hub.lockfile).as_uri())
    async with AsyncSAMPIntegratedClient(name="ctx", metadata={"x.a": "1"}) as cli:
        assert cli.is_connected
        await cli.ping()
        me = cli.get_public_id()
        assert me is not None
        assert (await cli.get_metadata(me))["x.a"] == "1"
        assert me not in await cli.get_registered_clients()
    assert not cli.is_connected
    with pytest.raises(SAMPClientError):
        await cli.notify_all({"samp.mtype": "a.b", "samp.params": {}})


async def test_coroutine_handlers_notify_call_and_respond(make: Callable[..., Any]) -> None:
    rx: AsyncSAMPIntegratedClient = await make("rx")
    tx: AsyncSAMPIntegratedClient = await make("tx")
    notes: asyncio.Queue[Any] = asyncio.Queue()
    responses: asyncio.Queue[Any] = asyncio.Queue()

    async def on_note(key: str, sender: str, mtype: str, params: Any, extra: Any) -> None:
        await notes.put((sender, mtype, params, extra))

    async def on_call(
        key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any
    ) -> None:
        await rx.ereply(msg_id, SAMP_STATUS_OK, result={"twice": str(2 * int(params["n"]))})

    def on_response(key: str, responder: str, tag: str, response: Any) -> None:
        responses.put_nowait((responder, tag, response))  # plain functions run on the loop

    await rx.bind_receive_notification("test.*", on_note, metadata={"x.m": "1"})
    await rx.bind_receive_call("test.double", on_call)
    tx.bind_receive_response("t1", on_response)
    assert await tx.get_subscribed_clients("test.x") == {rx.get_public_id(): {"x.m": "1"}}
    assert "test.double" in await tx.get_subscriptions(rx.get_public_id() or "")

    assert await tx.enotify_all("test.x", n=1, extra_kws={"x.e": "e"}) == [rx.get_public_id()]
    await tx.enotify(rx.get_public_id() or "", "test.y")
    first = await asyncio.wait_for(notes.get(), 5)
    assert first == (tx.get_public_id(), "test.x", {"n": 1}, {"x.e": "e"})
    assert (await asyncio.wait_for(notes.get(), 5))[1] == "test.y"

    response = await tx.ecall_and_wait(rx.get_public_id() or "", "test.double", "5", n=21)
    assert response == {"samp.status": SAMP_STATUS_OK, "samp.result": {"twice": "42"}}
    await tx.ecall(rx.get_public_id() or "", "t1", "test.double", n=2)
    responder, tag, answer = await asyncio.wait_for(responses.get(), 5)
    assert (responder, tag, answer["samp.result"]) == (rx.get_public_id(), "t1", {"twice": "4"})
    ids = await tx.ecall_all("t1", "test.double", n=3)
    assert list(ids) == [rx.get_public_id()]
    assert (await asyncio.wait_for(responses.get(), 5))[2]["samp.result"] == {"twice": "6"}

    await rx.unbind_receive_call("test.double")
    await rx.unbind_receive_notification("test.*")
    tx.unbind_receive_response("t1")
    assert await tx.get_subscribed_clients("test.x") == {}


async def test_failing_coroutine_call_handler_answers_an_error(make: Callable[..., Any]) -> None:
    rx: AsyncSAMPIntegratedClient = await make("rx")
    tx: AsyncSAMPIntegratedClient = await make("tx")

    async def on_call(*args: Any) -> None:
        raise ValueError("bad input")

    await rx.bind_receive_message("test.fail", on_call)
    response = await tx.ecall_and_wait(rx.get_public_id() or "", "test.fail", "5")
    assert response["samp.status"] == SAMP_STATUS_ERROR
    assert "bad input" in response["samp.error"]["samp.errortxt"]
    assert rx.client.handler_errors == 1


async def test_many_concurrent_call_and_wait(make: Callable[..., Any]) -> None:
    rx: AsyncSAMPIntegratedClient = await make("rx")
    tx: AsyncSAMPIntegratedClient = await make("tx")

    async def on_call(
        key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any
    ) -> None:
        await rx.reply(msg_id, {"samp.status": SAMP_STATUS_OK, "samp.result": params})

    await rx.bind_receive_call("test.echo", on_call)
    target = rx.get_public_id() or ""
    answers = await asyncio.gather(
        *(tx.ecall_and_wait(target, "test.echo", "10", i=i) for i in range(50))
    )
    assert [a["samp.result"]["i"] for a in answers] == list(range(50))


async def test_faults_and_not_connected(make: Callable[..., Any]) -> None:
    tx: AsyncSAMPIntegratedClient = await make("tx")
    with pytest.raises(SAMPProxyError):
        await tx.enotify("nobody", "test.x")
    with pytest.raises(SAMPProxyError):
        await tx.ereply("no-such-msg", SAMP_STATUS_OK, result={})
    idle = AsyncSAMPIntegratedClient()
    with pytest.raises(SAMPClientError):
        await idle.get_registered_clients()
    await idle.disconnect()  # no-op
    with pytest.raises(SAMPClientError, match="https"):
        AsyncSAMPIntegratedClient(https=True)


async def test_notify_all_that_reaches_nobody_warns(make: Callable[..., Any]) -> None:
    tx: AsyncSAMPIntegratedClient = await make("tx")
    with pytest.warns(SAMPWarning, match="No client was able to receive"):
        assert await tx.enotify_all("test.nobody") == []
