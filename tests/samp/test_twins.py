"""The blocking and the asyncio integrated clients, run through the same scenarios.

Each scenario is written once against a :class:`Twin` adapter: ``await twin.do(obj,
"method", ...)`` calls the method and awaits it when the asyncio twin returns a
coroutine. The scenario records what happened (results, exceptions, connection
state) with client ids and msg-ids replaced by stable names, and the two records must
be equal (issue #13: the twins had drifted; a failing ``stop()`` during ``connect``
left the asyncio twin's hub proxy connected).

Both twins talk to one real blocking hub on loopback (its own loop thread).
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from sciwire.samp import (
    SAMP_STATUS_OK,
    AsyncSAMPIntegratedClient,
    SAMPHubServer,
    SAMPIntegratedClient,
)
from tests.samp.clientkit import Inbox

Client = SAMPIntegratedClient | AsyncSAMPIntegratedClient
Record = list[tuple[str, Any]]


class Twin:
    """Makes clients of one twin and calls their methods the same way for both."""

    def __init__(self, kind: str, hub: SAMPHubServer) -> None:
        self.kind = kind
        self.hub = hub
        self.made: list[Client] = []
        self.names: dict[str, str] = {}  # real id -> stable name, for the record

    def new(self, name: str) -> Client:
        cls = SAMPIntegratedClient if self.kind == "blocking" else AsyncSAMPIntegratedClient
        client: Client = cls(name=name)
        self.made.append(client)
        return client

    async def do(self, obj: Any, method: str, *args: Any, **kw: Any) -> Any:
        """``obj.method(*args, **kw)``, awaited when the twin returns an awaitable."""
        result = getattr(obj, method)(*args, **kw)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def connect(self, name: str, **kw: Any) -> Client:
        client = self.new(name)
        await self.do(client, "connect", hub_params=self.hub.params, **kw)
        me = client.get_public_id()
        assert me is not None
        self.names[me] = name
        return client

    def failing(self, message: str) -> Callable[..., Any]:
        """A replacement for a method that raises RuntimeError(*message*), in this
        twin's calling style."""

        def fail(*args: Any, **kw: Any) -> None:
            raise RuntimeError(message)

        async def afail(*args: Any, **kw: Any) -> None:
            raise RuntimeError(message)

        return fail if self.kind == "blocking" else afail

    def stable(self, value: Any) -> Any:
        """*value* with every client id of this twin replaced by the client's name and
        client's name."""
        if isinstance(value, str):
            for real, name in self.names.items():
                value = re.sub(rf"\b{re.escape(real)}\b", f"<{name}>", value)
            return value
        if isinstance(value, dict):
            return {self.stable(k): self.stable(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.stable(v) for v in value)
        return value

    async def outcome(self, call: Awaitable[Any]) -> tuple[str, Any]:
        """("ok", result) or (exception class name, message), both made stable."""
        try:
            return ("ok", self.stable(await call))
        except Exception as exc:
            return (type(exc).__name__, self.stable(str(exc)))

    async def close(self) -> None:
        for client in self.made:
            inner = client.client
            inner.__dict__.pop("stop", None)  # undo a scenario's failing stop
            try:
                await self.do(client, "disconnect")
            except Exception:  # a scenario may have left it half connected
                if inner.is_running:
                    await self.do(inner, "stop")
                await self.do(client.hub, "disconnect")


Scenario = Callable[[Twin], Awaitable[Record]]


async def _run_both(hub: SAMPHubServer, scenario: Scenario) -> tuple[Record, Record]:
    records = []
    for kind in ("blocking", "asyncio"):
        twin = Twin(kind, hub)
        try:
            records.append(await scenario(twin))
        finally:
            await twin.close()
    return records[0], records[1]


@pytest.fixture
async def both(hub: SAMPHubServer) -> AsyncIterator[Callable[[Scenario], Awaitable[Record]]]:
    async def run(scenario: Scenario) -> Record:
        blocking, asyncio_ = await _run_both(hub, scenario)
        assert blocking == asyncio_, (
            f"the twins differ:\n  blocking {blocking}\n  asyncio  {asyncio_}"
        )
        return blocking

    yield run


async def _failing_stop_on_connect(twin: Twin) -> Record:
    client = twin.new("half")
    # registration fails (a wrong secret), then the cleanup's stop() fails too
    params = {**twin.hub.params, "samp.secret": "not-the-secret"}
    client.client.stop = twin.failing("stop failed")  # type: ignore[method-assign]
    record: Record = [
        ("connect", await twin.outcome(twin.do(client, "connect", hub_params=params)))
    ]
    record.append(("hub connected", client.hub.is_connected))
    record.append(("connected", client.is_connected))
    return record


async def test_failing_stop_during_connect_still_disconnects_the_hub(
    both: Callable[[Scenario], Awaitable[Record]],
) -> None:
    record = await both(_failing_stop_on_connect)
    assert record[0] == ("connect", ("RuntimeError", "stop failed"))
    assert record[1:] == [("hub connected", False), ("connected", False)]


async def _messages(twin: Twin) -> Record:
    rx = await twin.connect("rx")
    tx = await twin.connect("tx")
    notes, calls, responses = Inbox(), Inbox(), Inbox()

    def on_call(key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any) -> None:
        calls.put((sender, msg_id, mtype, params))

    await twin.do(rx, "bind_receive_notification", "test.note", notes.notification_handler())
    await twin.do(rx, "bind_receive_call", "test.echo", on_call)
    tx.bind_receive_response("tag", responses.response_handler())
    rx_id = rx.get_public_id()
    record: Record = []

    async def step(name: str, method: str, *args: Any, **kw: Any) -> None:
        record.append((name, await twin.outcome(twin.do(tx, method, *args, **kw))))

    await step("ping", "ping")
    await step("subscribed", "get_subscribed_clients", "test.echo")
    await step("notify", "enotify", rx_id, "test.note", n="1")
    await step("notify_all", "enotify_all", "test.note", n="2", extra_kws={"x.e": "e"})
    got = await asyncio.to_thread(notes.wait, 2)
    record.append(("notes", twin.stable(sorted(got, key=repr))))

    kind, msg_id = await twin.outcome(twin.do(tx, "ecall", rx_id, "tag", "test.echo", x="3"))
    record.append(("call", (kind, isinstance(msg_id, str))))  # msg-ids count hub-wide
    sender, msg_id, mtype, params = (await asyncio.to_thread(calls.wait, 1))[0]
    record.append(("call received", twin.stable((sender, mtype, params))))
    reply = await twin.outcome(
        twin.do(rx, "ereply", msg_id, SAMP_STATUS_OK, result={"echo": params["x"]})
    )
    record.append(("reply", reply))
    answer = (await asyncio.to_thread(responses.wait, 1))[0]
    record.append(("response", twin.stable(answer)))

    ids = await twin.outcome(twin.do(tx, "ecall_all", "tag", "test.echo", x="4"))
    record.append(("call_all", (ids[0], sorted(ids[1]) if ids[0] == "ok" else ids[1])))
    return record


async def test_notify_call_reply(both: Callable[[Scenario], Awaitable[Record]]) -> None:
    record = dict(await both(_messages))
    assert record["notify_all"] == ("ok", ["<rx>"])
    assert record["notes"] == [
        ("<tx>", "test.note", {"n": "1"}, {}),
        ("<tx>", "test.note", {"n": "2"}, {"x.e": "e"}),
    ]
    assert record["response"] == (
        "<rx>",
        "tag",
        {"samp.status": SAMP_STATUS_OK, "samp.result": {"echo": "3"}},
    )
    assert record["call_all"] == ("ok", ["<rx>"])


async def _errors(twin: Twin) -> Record:
    tx = await twin.connect("tx")
    silent = await twin.connect("silent")
    silent_id = silent.get_public_id()
    message = {"samp.mtype": "test.none", "samp.params": {}}
    record: Record = []
    for name, method, args in [
        ("notify unknown", "notify", ("nobody", message)),
        ("metadata unknown", "get_metadata", ("nobody",)),
        ("call unsubscribed", "call", (silent_id, "tag", message)),
        ("callAndWait unsubscribed", "call_and_wait", (silent_id, message, "5")),
        ("bad mtype", "enotify_all", ("not an mtype!",)),
    ]:
        record.append((name, await twin.outcome(twin.do(tx, method, *args))))
    return record


async def test_errors(both: Callable[[Scenario], Awaitable[Record]]) -> None:
    record = dict(await both(_errors))
    # every one is refused, the same way by both twins
    assert all(outcome[0] != "ok" for outcome in record.values()), record


async def _close_then_use(twin: Twin) -> Record:
    client = await twin.connect("closer")
    record: Record = []
    await twin.do(client, "disconnect")
    record.append(("connected", client.is_connected))
    record.append(("disconnect again", await twin.outcome(twin.do(client, "disconnect"))))
    for name, method, args in [
        ("ping", "ping", ()),
        ("notify_all", "enotify_all", ("test.x",)),
        ("registered", "get_registered_clients", ()),
        ("declare", "declare_metadata", ({"x.y": "1"},)),
    ]:
        record.append((name, await twin.outcome(twin.do(client, method, *args))))
    record.append(
        ("reconnect", await twin.outcome(twin.do(client, "connect", hub_params=twin.hub.params)))
    )
    record.append(("connected again", client.is_connected))
    return record


async def test_close_then_use(both: Callable[[Scenario], Awaitable[Record]]) -> None:
    record = dict(await both(_close_then_use))
    assert record["connected"] is False
    assert record["disconnect again"] == ("ok", None)
    assert record["ping"][0] != "ok"
    assert record["notify_all"][0] != "ok"
    assert record["connected again"] is True
