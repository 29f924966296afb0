"""sciwire.rig against the real iblutil (iblutil.io.net) on loopback, both directions."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from iblutil.io.net import app as ibl_app
from iblutil.io.net import base as ibl_base

from sciwire.rig import EchoProtocol, ExpMessage, ExpStatus, RemoteRig, Services
from tests.rig.helpers import Factory, free_port

pytestmark = pytest.mark.interop

Scaled = Callable[[float], float]
# iblutil's own loggers print every message at DEBUG unless handed a logger
IBL_LOG = logging.getLogger("tests.iblutil-peer")

STEPS: list[tuple[str, tuple[Any, ...], ExpMessage, list[Any]]] = [
    (
        "info",
        (ExpStatus.CONNECTED, {"main_sync": True}),
        ExpMessage.EXPINFO,
        [0, {"main_sync": True}],
    ),
    (
        "init",
        ({"exp_ref": "2024-01-01_1_m", "ü": "日本"},),
        ExpMessage.EXPINIT,
        [{"exp_ref": "2024-01-01_1_m", "ü": "日本"}],
    ),
    (
        "start",
        ({"date": "2024-01-01", "sequence": 1, "subject": "m"}, [1.5, None]),
        ExpMessage.EXPSTART,
        ["2024-01-01_1_m", [1.5, None]],
    ),
    ("status", (ExpStatus.RUNNING,), ExpMessage.EXPSTATUS, [20]),
    ("stop", ({"end": True},), ExpMessage.EXPEND, [{"end": True}]),
    ("cleanup", (None,), ExpMessage.EXPCLEANUP, [None]),
]


class IblPeers:
    """iblutil communicators started by a test, all closed at the end."""

    def __init__(self) -> None:
        self.coms: list[Any] = []
        self.tasks: set[asyncio.Task[Any]] = set()

    async def server(self, scheme: str = "udp", name: str = "ibl-server") -> Any:
        kind = "tcp" if scheme != "udp" else "udp"
        port = free_port(ibl_app.socket.SOCK_STREAM if kind == "tcp" else ibl_app.socket.SOCK_DGRAM)
        com = await ibl_app.EchoProtocol.server(
            f"{scheme}://127.0.0.1:{port}", name=name, log=IBL_LOG
        )
        self.coms.append(com)
        return com

    async def client(self, uri: str, name: str = "ibl-client") -> Any:
        com = await ibl_app.EchoProtocol.client(uri, name=name, log=IBL_LOG)
        self.coms.append(com)
        return com

    def replying(self, com: Any) -> Any:
        """Make an iblutil server answer each experiment message, as iblrig's devices do."""

        def reply(data: list[Any], addr: Any, event: ibl_base.ExpMessage) -> None:
            task = asyncio.create_task(com.confirmed_send([int(event), *data], addr=addr))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        # one callback per event, the event bound: for a combined flag iblutil passes the
        # event only where `flag in ExpMessage` is false, which Python 3.12 made true
        for event in ~ibl_base.ExpMessage.ALYX & ibl_base.ExpMessage.any():
            com.assign_callback(event, functools.partial(reply, event=event))
        return com

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        for com in self.coms:
            com.close()
            if com.Server is not None:
                com.Server.close()
                await com.Server.wait_closed()
        await asyncio.sleep(0)


@pytest.fixture
async def make() -> AsyncIterator[Factory]:
    factory = Factory()
    try:
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
async def ibl() -> AsyncIterator[IblPeers]:
    peers = IblPeers()
    try:
        yield peers
    finally:
        await peers.aclose()


async def test_our_client_to_iblutil_server(make: Factory, ibl: IblPeers, scaled: Scaled) -> None:
    server = await ibl.server()
    client = await make.client(server.server_uri, name="ours")
    for method, args, event, expected in STEPS:
        got = asyncio.ensure_future(server.on_event(event))
        await getattr(client, method)(*args)  # iblutil echoed the exact bytes
        data, addr = await asyncio.wait_for(got, scaled(2))
        assert data == expected
    # and iblutil's server messages reach our client, echoed back as iblutil expects
    back = asyncio.ensure_future(client.on_event("EXPSTATUS"))
    await server.status(ibl_base.ExpStatus.STOPPED, addr=addr)
    assert (await asyncio.wait_for(back, scaled(2)))[0] == [30]


async def test_iblutil_client_to_our_server(make: Factory, ibl: IblPeers, scaled: Scaled) -> None:
    server = await make.server(name="ours")
    client = await ibl.client(server.server_uri)
    for method, args, event, expected in STEPS:
        got = asyncio.ensure_future(server.on_event(event))
        await getattr(client, method)(*args)  # our echo satisfied iblutil's byte compare
        data, addr = await asyncio.wait_for(got, scaled(2))
        assert data == expected
    back = asyncio.ensure_future(client.on_event("EXPINFO"))
    await server.info(ExpStatus.RUNNING, {"x": [1, 2]}, addr=addr)
    assert (await asyncio.wait_for(back, scaled(2)))[0] == [20, {"x": [1, 2]}]
    assert not server.dropped


async def test_callback_errors_cross_both_ways(
    make: Factory, ibl: IblPeers, scaled: Scaled
) -> None:
    ours = await make.server(name="ours")
    theirs = await ibl.client(ours.server_uri)

    def boom(data: list[Any], addr: Any) -> None:
        raise ValueError("ours failed")

    ours.assign_callback("EXPINIT", boom)
    seen = asyncio.ensure_future(theirs.on_event(0))
    await theirs.init()
    data, _ = await asyncio.wait_for(seen, scaled(2))
    assert data == ["ValueError: ours failed", 1]

    ibl_server = await ibl.server()
    client = await make.client(ibl_server.server_uri)

    def ibl_boom(data: list[Any], addr: Any) -> None:
        raise KeyError("theirs")

    ibl_server.assign_callback("EXPSTART", ibl_boom)
    report = asyncio.ensure_future(client.on_event(0))
    await client.start("2024-01-01_1_m")
    data, _ = await asyncio.wait_for(report, scaled(2))
    assert data == ["KeyError: 'theirs'", 2]
    assert not client.dropped


async def test_iblutil_services_drive_our_rigs(
    make: Factory, ibl: IblPeers, scaled: Scaled
) -> None:
    rigs = [await make.rig(name=f"rig{i}") for i in range(3)]
    clients = [await ibl.client(r.com.server_uri, name=r.com.name) for r in rigs]
    services = ibl_app.Services(clients, timeout=scaled(3))
    info = await services.info(ibl_base.ExpStatus.CONNECTED, {"exp": 1})
    assert info == {f"rig{i}": [0, {"name": f"rig{i}", "main_sync": False}] for i in range(3)}
    assert await services.init({"a": 1}) == {f"rig{i}": [{"a": 1}] for i in range(3)}
    # concurrent only: iblutil's sequential mode registers for a rig's reply after the echo
    # has come back, so a rig that replies at once (like ours) is missed - its bug, which
    # our Services fixes (see test_our_services_drive_iblutil_rigs, concurrent=False).
    started = await services.start("2024-01-01_1_m")
    assert started == {f"rig{i}": ["2024-01-01_1_m", None] for i in range(3)}
    assert await services.status(ibl_base.ExpStatus.RUNNING) == {f"rig{i}": [20] for i in range(3)}
    assert await services.stop(immediately=True) == {f"rig{i}": [None] for i in range(3)}
    assert await services.cleanup() == {f"rig{i}": [None] for i in range(3)}
    assert [e for e, _, _ in rigs[0].received] == [
        ExpMessage.EXPINFO,
        ExpMessage.EXPINIT,
        ExpMessage.EXPSTART,
        ExpMessage.EXPSTATUS,
        ExpMessage.EXPINTERRUPT,
        ExpMessage.EXPCLEANUP,
    ]
    assert all(not r.com.dropped and not r.reply_errors for r in rigs)


async def test_our_services_drive_iblutil_rigs(
    make: Factory, ibl: IblPeers, scaled: Scaled
) -> None:
    servers = [ibl.replying(await ibl.server(name=f"ibl{i}")) for i in range(3)]
    clients = [await make.client(s.server_uri, name=f"ibl{i}") for i, s in enumerate(servers)]
    services = Services(clients, timeout=scaled(3))
    names = [f"ibl{i}" for i in range(3)]
    assert await services.info(ExpStatus.CONNECTED, {"a": 1}) == {n: [0, {"a": 1}] for n in names}
    assert await services.init({"b": 2}) == {n: [{"b": 2}] for n in names}
    assert await services.start("2024-01-01_2_m") == {n: ["2024-01-01_2_m", None] for n in names}
    assert await services.status(ExpStatus.RUNNING, concurrent=False) == {n: [20] for n in names}
    assert await services.stop() == {n: [None] for n in names}
    assert await services.cleanup(concurrent=False) == {n: [None] for n in names}
    assert all(not c.dropped for c in clients)


class Alyx:
    base_url = "https://alyx.example.org"
    user = "experimenter"
    _token = "s3cr3t"
    is_logged_in = True


async def test_alyx_token_sharing_both_ways(make: Factory, ibl: IblPeers, scaled: Scaled) -> None:
    # iblutil asks our rig for the token; our rig answers with its own confirmed message
    ours = await make.server(name="ours")

    async def share(data: list[Any], addr: Any) -> None:
        if data == [None, {}]:
            await ours.alyx(Alyx(), addr=addr)

    ours.assign_callback("ALYX", share)
    theirs = await ibl.client(ours.server_uri)
    token = await asyncio.wait_for(theirs.alyx(), scaled(2))
    assert token == ["https://alyx.example.org", {"experimenter": "s3cr3t"}]
    # and our client sends a token to an iblutil server
    ibl_server = await ibl.server()
    client = await make.client(ibl_server.server_uri)
    got = asyncio.ensure_future(ibl_server.on_event("ALYX"))
    assert await client.alyx(Alyx()) is None
    assert (await asyncio.wait_for(got, scaled(2)))[0] == [
        Alyx.base_url,
        {"experimenter": "s3cr3t"},
    ]


async def test_largest_udp_message_to_iblutil(make: Factory, ibl: IblPeers, scaled: Scaled) -> None:
    ibl_server = await ibl.server()
    client = await make.client(ibl_server.server_uri)
    text = "y" * (65507 - len(b'[1, ""]'))
    got = asyncio.ensure_future(ibl_server.on_event("EXPINIT"))
    await client.init(text)
    assert (await asyncio.wait_for(got, scaled(2)))[0] == [text]


@pytest.mark.parametrize("scheme", ["tcp", "ws"])
async def test_tcp_single_messages_both_ways(
    make: Factory, ibl: IblPeers, scaled: Scaled, scheme: str
) -> None:
    """iblutil's TCP takes each read as one message: single confirmed messages work."""
    ibl_server = await ibl.server(scheme)
    client = await make.client(ibl_server.server_uri)
    got = asyncio.ensure_future(ibl_server.on_event("EXPINIT"))
    await client.init({"over": "tcp"})
    assert (await asyncio.wait_for(got, scaled(2)))[0] == [{"over": "tcp"}]

    ours = await make.server(f"{scheme}://127.0.0.1:0")
    ibl_client = await ibl.client(ours.server_uri)
    got = asyncio.ensure_future(ours.on_event("EXPSTART"))
    await ibl_client.start("2024-01-01_1_m")
    data, addr = await asyncio.wait_for(got, scaled(2))
    assert data == ["2024-01-01_1_m", None]
    back = asyncio.ensure_future(ibl_client.on_event("EXPSTATUS"))
    await ours.status(ExpStatus.STOPPED, addr=addr)
    assert (await asyncio.wait_for(back, scaled(2)))[0] == [30]


async def test_iblutil_client_with_ipv6_uri_is_our_fix(make: Factory, scaled: Scaled) -> None:
    """iblutil cannot parse [::1]; ours serves and reaches IPv6 loopback."""
    with pytest.raises(ValueError):
        ibl_base.validate_uri("udp://[::1]:5000")
    server = await make.server("udp://[::1]:0")
    client: EchoProtocol = await make.client(server.server_uri)
    await client.init()
    rig = RemoteRig(await make.server("tcp://[::1]:0", name="v6"))
    make.closers.append(rig.close)
    v6 = await make.client(rig.com.server_uri, name="v6")
    assert await Services([v6], timeout=scaled(2)).init() == {"v6": [None]}
