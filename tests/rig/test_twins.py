"""The asyncio and blocking forms run the same scenarios and give the same results.

Each scenario is a list of steps ``(object, method, args, kwargs)``. The async form
runs them on :class:`EchoProtocol` / :class:`Services` inside one coroutine on a
portal's loop (awaiting what returns an awaitable); the blocking form runs the same
steps on :class:`BlockingEchoProtocol` / :class:`BlockingServices` from the test
thread. Every step's outcome (its result, or its exception's type and text, with
port numbers masked) must be equal for both forms.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sciwire.core.portal import Portal
from sciwire.errors import ConnectionClosed
from sciwire.rig import (
    BlockingEchoProtocol,
    BlockingServices,
    EchoProtocol,
    EchoTimeoutError,
    RemoteRig,
    RigTypeError,
    RigValueError,
    Services,
    ServicesTimeoutError,
)

Scaled = Callable[[float], float]
Step = tuple[str, str, tuple[Any, ...], dict[str, Any]]
CB = object()  # stands for the form's recording callback in a step's arguments


def step(obj: str, method: str, *args: Any, **kwargs: Any) -> Step:
    return (obj, method, args, kwargs)


def _mask(value: Any) -> Any:
    """Port numbers and peer addresses differ between the two runs; nothing else may."""
    if isinstance(value, str):
        return re.sub(r":\d+", ":PORT", value)
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and value[0].startswith("127.")
        and isinstance(value[1], int)
    ):
        return "ADDR"
    if isinstance(value, list | tuple):
        return type(value)(_mask(v) for v in value)
    if isinstance(value, dict):
        return {_mask(k): _mask(v) for k, v in value.items()}
    return value


def _outcome(result: Any = None, exc: BaseException | None = None) -> Any:
    if exc is not None:
        failed = getattr(exc, "failed", None)  # ServicesTimeoutError names the rigs
        return ("raised", type(exc), _mask(str(exc)), failed)
    return ("returned", _mask(result))


def _args(args: tuple[Any, ...], seen: list[Any]) -> tuple[Any, ...]:
    def record(data: Any, addr: Any, *event: Any) -> None:
        # a compound registration also gets the event
        seen.append([data, *(e.name for e in event)])

    return tuple(record if a is CB else a for a in args)


def _call(objects: dict[str, Any], s: Step, seen: list[Any]) -> Any:
    obj, method, args, kwargs = s
    if method.startswith("@"):  # an attribute read, e.g. "@is_connected"
        return getattr(objects[obj], method[1:])
    return getattr(objects[obj], method)(*_args(args, seen), **kwargs)


async def _run_async(objects: dict[str, Any], steps: list[Step], seen: list[Any]) -> list[Any]:
    out = []
    for s in steps:
        try:
            result = _call(objects, s, seen)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            out.append(_outcome(exc=exc))
        else:
            out.append(_outcome(result))
    return [*out, ("callbacks saw", _mask(seen))]


def _run_blocking(objects: dict[str, Any], steps: list[Step], seen: list[Any]) -> list[Any]:
    out = []
    for s in steps:
        try:
            result = _call(objects, s, seen)
        except Exception as exc:
            out.append(_outcome(exc=exc))
        else:
            out.append(_outcome(result))
    return [*out, ("callbacks saw", _mask(seen))]


@pytest.fixture
def portal() -> Iterator[Portal]:
    with Portal("test-rig-twins") as p:
        yield p


@pytest.fixture
def closers() -> Iterator[list[Callable[[], Any]]]:
    made: list[Callable[[], Any]] = []
    yield made
    for close in reversed(made):
        close()


@pytest.fixture
def silent_udp() -> Iterator[int]:
    """A UDP port on loopback that receives and never answers (no echo ever)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _both(
    portal: Portal,
    closers: list[Callable[[], Any]],
    steps: list[Step],
    scheme: str = "udp",
    silent_port: int | None = None,
) -> tuple[list[Any], list[Any]]:
    """Run *steps* with a server "srv" and a client "cli" (of the server, or of the
    silent port) in both forms; return both outcome lists."""
    server_uri = f"{scheme}://127.0.0.1:0"

    async def run_async() -> list[Any]:
        server = await EchoProtocol.server(server_uri, name="srv")
        target = server.server_uri if silent_port is None else f"udp://127.0.0.1:{silent_port}"
        client = await EchoProtocol.client(target, name="cli")
        try:
            return await _run_async({"srv": server, "cli": client}, steps, [])
        finally:
            await client.wait_closed()
            await server.wait_closed()

    got_async = portal.call(run_async())

    server = BlockingEchoProtocol.server(server_uri, name="srv", portal=portal)
    closers.append(server.close)
    target = server.server_uri if silent_port is None else f"udp://127.0.0.1:{silent_port}"
    client = BlockingEchoProtocol.client(target, name="cli", portal=portal)
    closers.append(client.close)
    got_blocking = _run_blocking({"srv": server, "cli": client}, steps, [])
    return got_async, got_blocking


@pytest.mark.parametrize("scheme", ["udp", "tcp"])
def test_sends_and_a_callback(
    portal: Portal, closers: list[Callable[[], Any]], scaled: Scaled, scheme: str
) -> None:
    steps = [
        step("srv", "assign_callback", "EXPINIT", CB),
        step("srv", "assign_callback", "EXPSTART|EXPEND|EXPINTERRUPT|EXPSTATUS", CB),
        step("cli", "confirmed_send", [1, {"a": 1}], timeout=scaled(2)),
        step("cli", "init", {"b": 2}),
        step("cli", "start", {"date": "2024-01-01", "sequence": 1, "subject": "m"}),
        step("cli", "status", "running"),
        step("cli", "stop", immediately=True),
        step("cli", "send", [0, "ValueError: not echoed", 1]),  # an error report: no echo
        step("cli", "awaiting_response"),
        step("cli", "confirmed_send", [1, "after a plain send"], timeout=scaled(2)),
        step("srv", "clear_callbacks", "EXPINIT"),
        step("srv", "clear_callbacks", "EXPINIT"),
        step("cli", "init", {"c": 3}),  # no callback any more
    ]
    got_async, got_blocking = _both(portal, closers, steps, scheme)
    assert got_async == got_blocking
    assert got_async[-1] == (
        "callbacks saw",
        [
            [[{"a": 1}]],
            [[{"b": 2}]],
            [["2024-01-01_1_m", None], "EXPSTART"],
            [[20], "EXPSTATUS"],
            [[None], "EXPINTERRUPT"],
            [["after a plain send"]],
        ],
    )
    assert got_async[10] == ("returned", 1) and got_async[11] == ("returned", 0)


def test_bad_input_raises_the_same(portal: Portal, closers: list[Callable[[], Any]]) -> None:
    steps = [
        step("cli", "init", {1, 2}),  # a set is not JSON
        step("cli", "confirmed_send", [1, "x"], timeout=-1),
        step("cli", "status", "no such status"),
        step("srv", "assign_callback", "NOT_AN_EVENT", CB),
        step("srv", "assign_callback", "EXPINIT", 42),
        step("srv", "confirmed_send", [1, "x"]),  # a server needs the peer's address
        step("cli", "send", [1, "x"], addr=("127.0.0.1", 9)),  # not the client's peer
    ]
    got_async, got_blocking = _both(portal, closers, steps)
    assert got_async == got_blocking
    kinds = [o[1] for o in got_async[:-1]]
    assert [issubclass(k, (RigTypeError, RigValueError)) for k in kinds] == [True] * len(steps)


def test_close_then_use_raises_the_same(
    portal: Portal, closers: list[Callable[[], Any]], scaled: Scaled
) -> None:
    steps = [
        step("cli", "init"),
        step("cli", "close"),
        step("cli", "close"),  # closing again does nothing
        step("cli", "@is_connected"),
        step("cli", "confirmed_send", [1, "x"], timeout=scaled(2)),
        step("cli", "send", [1, "x"]),
        step("cli", "init", {"after": "close"}),
    ]
    got_async, got_blocking = _both(portal, closers, steps)
    assert got_async == got_blocking
    assert got_async[3] == ("returned", False)
    assert [o[1] for o in got_async[4:7]] == [ConnectionClosed] * 3


def test_timeouts_raise_the_same(
    portal: Portal, closers: list[Callable[[], Any]], scaled: Scaled, silent_udp: int
) -> None:
    steps = [
        step("cli", "confirmed_send", [1, "x"], timeout=scaled(0.2)),
        step("cli", "@is_connected"),  # a client closes after a failed confirmed send
        step("cli", "confirmed_send", [1, "x"], timeout=scaled(0.2)),
    ]
    got_async, got_blocking = _both(portal, closers, steps, silent_port=silent_udp)
    assert got_async == got_blocking
    assert got_async[0][1] is EchoTimeoutError and issubclass(EchoTimeoutError, TimeoutError)
    assert got_async[1] == ("returned", False)
    assert got_async[2][1] is ConnectionClosed


def test_waiting_for_an_event_times_out_as_a_timeout_error(
    portal: Portal, closers: list[Callable[[], Any]], scaled: Scaled
) -> None:
    """on_event has no timeout of its own (as iblutil's): asyncio code bounds it with
    wait_for, blocking code passes *timeout*; both raise a TimeoutError."""

    async def wait_async() -> type[BaseException]:
        server = await EchoProtocol.server("udp://127.0.0.1:0", name="srv")
        try:
            await asyncio.wait_for(server.on_event("EXPEND"), scaled(0.1))
        except BaseException as exc:
            return type(exc)
        finally:
            await server.wait_closed()
        raise AssertionError("no timeout")

    async_kind = portal.call(wait_async())
    server = BlockingEchoProtocol.server("udp://127.0.0.1:0", name="srv", portal=portal)
    closers.append(server.close)
    with pytest.raises(TimeoutError) as blocking:
        server.on_event("EXPEND", timeout=scaled(0.1))
    # asyncio.wait_for's own error is asyncio.TimeoutError, the built-in one from 3.11 on
    assert issubclass(async_kind, (TimeoutError, asyncio.TimeoutError))
    assert isinstance(blocking.value, TimeoutError)


def _both_services(
    portal: Portal, closers: list[Callable[[], Any]], steps: list[Step], timeout: float
) -> tuple[list[Any], list[Any]]:
    """Run *steps* on "svc": Services over clients of remote rigs "a" and "b" (which
    reply to every step), and on "mute": Services over a client of rig "m", which
    echoes but never replies. Both forms; return both outcome lists."""

    async def run_async() -> list[Any]:
        made: list[EchoProtocol] = []
        rigs: list[RemoteRig] = []
        try:
            for name in "abm":
                made.append(await EchoProtocol.server("udp://127.0.0.1:0", name=name))
            servers = list(made)
            rigs.extend(RemoteRig(s) for s in servers[:2])
            for server in servers:
                made.append(await EchoProtocol.client(server.server_uri, name=server.name))
            clients = made[3:]
            objects = {
                "svc": Services(clients[:2], timeout=timeout),
                "mute": Services(clients[2:], timeout=timeout),
            }
            return [*await _run_async(objects, steps, []), _heard(rigs)]
        finally:
            for rig in rigs:
                rig.close()
            for com in made:
                await com.wait_closed()

    got_async = portal.call(run_async())

    servers = [
        BlockingEchoProtocol.server("udp://127.0.0.1:0", name=n, portal=portal) for n in "abm"
    ]
    closers.extend(s.close for s in servers)

    async def attach(com: EchoProtocol) -> RemoteRig:
        return RemoteRig(com)

    rigs = [portal.call(attach(server.com)) for server in servers[:2]]
    clients = []
    for server in servers:
        clients.append(
            BlockingEchoProtocol.client(server.server_uri, name=server.name, portal=portal)
        )
        closers.append(clients[-1].close)
    objects = {
        "svc": BlockingServices(clients[:2], timeout=timeout),
        "mute": BlockingServices(clients[2:], timeout=timeout),
    }
    return got_async, [*_run_blocking(objects, steps, []), _heard(rigs)]


def _heard(rigs: list[RemoteRig]) -> Any:
    """What the remote rigs received: the events and data, in order."""
    return ("rigs heard", [[(e.name, d) for e, d, _ in rig.received] for rig in rigs])


def test_services_steps_and_timeouts(
    portal: Portal, closers: list[Callable[[], Any]], scaled: Scaled
) -> None:
    steps = [
        step("svc", "@is_connected"),
        step("svc", "info", "connected", {"subject": "m"}),
        step("svc", "init", {"exp_ref": "2024-01-01_1_m"}),
        step("svc", "start", "2024-01-01_1_m", concurrent=False),
        step("svc", "status", 20),
        step("svc", "stop", immediately=True),
        step("svc", "cleanup"),
        step("svc", "assign_callback", "EXPEND", CB),
        step("svc", "clear_callbacks", "EXPEND"),
        step("svc", "init", data=None, concurrent=True, extra=1),  # not an argument
        step("svc", "start", {"date": "x"}),  # a bad experiment reference
        step("mute", "init", {"x": 1}),  # the echo comes, the reply never does
        step("svc", "stop"),  # still works after another Services timed out
    ]
    got_async, got_blocking = _both_services(portal, closers, steps, scaled(0.5))
    assert got_async == got_blocking
    assert got_async[0] == ("returned", True)
    assert got_async[2] == (
        "returned",
        {"a": [{"exp_ref": "2024-01-01_1_m"}], "b": [{"exp_ref": "2024-01-01_1_m"}]},
    )
    assert got_async[8] == ("returned", {"a": 1, "b": 1})
    assert got_async[9][1] is TypeError and got_async[10][1] is RigValueError
    assert got_async[11][1] is ServicesTimeoutError and got_async[11][3] == {"m"}
    assert got_async[12] == ("returned", {"a": [None], "b": [None]})


def test_services_refuse_the_same_rigs(portal: Portal) -> None:
    """Both refuse a rig that is not theirs with the same error type."""
    for make in (Services, BlockingServices):
        with pytest.raises(RigTypeError):
            make([object()])
