"""The blocking and the asyncio command client are twins: each scenario here runs on
both, against the same real server on loopback, and their results or exceptions
(type, message, code, data) must be equal.

The scenarios are written once, against :class:`Driver`; :class:`BlockingDriver` and
:class:`AsyncDriver` run them on :class:`CommandClient` and :class:`AsyncCommandClient`.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sciwire.command import (
    AsyncCommandClient,
    CommandClient,
    CommandConnectError,
    CommandConnectionClosed,
    CommandError,
    CommandServer,
    CommandTimeout,
)
from tests.command.helpers import ScriptedServer, Service, free_port, http_reply

Outcome = tuple[Any, ...]


def outcome(fn: Callable[[], Any]) -> Outcome:
    """What a step gave: ("ok", value) or ("raised", type, message, code, data)."""
    try:
        return ("ok", fn())
    except CommandError as exc:
        return ("raised", type(exc).__name__, str(exc), exc.code, exc.data)


class Driver:
    """One twin, driven by blocking steps."""

    def open(self, port: int, **kwargs: Any) -> None:
        raise NotImplementedError

    def call(self, name: str, *args: Any) -> Any:
        raise NotImplementedError

    def call_by_name(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """The client's ``call(name, ...)``, which needs no discovered method."""
        raise NotImplementedError

    def reload(self) -> None:
        raise NotImplementedError

    def _cli(self) -> CommandClient | AsyncCommandClient:
        raise NotImplementedError

    def endpoints(self) -> list[str]:
        return sorted(self._cli()._endpoints)

    def has(self, name: str) -> bool:
        return hasattr(self._cli(), name)

    def close(self) -> None:
        raise NotImplementedError

    def racing(self, calls: list[tuple[str, tuple[Any, ...]]], reloads: int) -> list[Any]:
        """*calls* and *reloads* discoveries all at once; the calls' outcomes in order."""
        raise NotImplementedError


class BlockingDriver(Driver):
    def __init__(self) -> None:
        self.cli: CommandClient | None = None

    def open(self, port: int, **kwargs: Any) -> None:
        kwargs.setdefault("host", "127.0.0.1")
        self.cli = CommandClient(port=port, **kwargs)

    def _cli(self) -> CommandClient:
        assert self.cli is not None
        return self.cli

    def call(self, name: str, *args: Any) -> Any:
        return getattr(self._cli(), name)(*args)

    def call_by_name(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._cli().call(name, *args, **kwargs)

    def reload(self) -> None:
        self._cli()()

    def close(self) -> None:
        if self.cli is not None:
            self.cli.close()

    def racing(self, calls: list[tuple[str, tuple[Any, ...]]], reloads: int) -> list[Any]:
        cli = self._cli()
        start = threading.Barrier(len(calls) + reloads)

        def one_call(step: tuple[str, tuple[Any, ...]]) -> Outcome:
            start.wait(30)
            return outcome(lambda: getattr(cli, step[0])(*step[1]))

        def one_reload() -> None:
            start.wait(30)
            cli()

        with ThreadPoolExecutor(len(calls) + reloads) as pool:
            futures = [pool.submit(one_call, c) for c in calls]
            reloaded = [pool.submit(one_reload) for _ in range(reloads)]
            for f in reloaded:
                f.result(60)
            return [f.result(60) for f in futures]


class AsyncDriver(Driver):
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.cli: AsyncCommandClient | None = None

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def open(self, port: int, **kwargs: Any) -> None:
        kwargs.setdefault("host", "127.0.0.1")
        cli = AsyncCommandClient(port=port, **kwargs)
        self.cli = cli
        self._run(cli.connect())

    def _cli(self) -> AsyncCommandClient:
        assert self.cli is not None
        return self.cli

    def call(self, name: str, *args: Any) -> Any:
        return self._run(getattr(self._cli(), name)(*args))

    def call_by_name(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._run(self._cli().call(name, *args, **kwargs))

    def reload(self) -> None:
        self._run(self._cli()())

    def close(self) -> None:
        if self.cli is not None:
            self._run(self.cli.close())

    def racing(self, calls: list[tuple[str, tuple[Any, ...]]], reloads: int) -> list[Any]:
        cli = self._cli()

        async def one_call(step: tuple[str, tuple[Any, ...]]) -> Outcome:
            try:
                return ("ok", await getattr(cli, step[0])(*step[1]))
            except CommandError as exc:
                return ("raised", type(exc).__name__, str(exc), exc.code, exc.data)

        async def race() -> list[Outcome]:
            tasks = [asyncio.ensure_future(one_call(c)) for c in calls]
            await asyncio.gather(*(cli() for _ in range(reloads)))
            return list(await asyncio.gather(*tasks))

        result: list[Any] = self._run(race())
        return result

    def shutdown(self) -> None:
        try:
            self.close()
        finally:
            self.loop.close()


@pytest.fixture
def twins() -> Iterator[tuple[BlockingDriver, AsyncDriver]]:
    blocking, aio = BlockingDriver(), AsyncDriver()
    yield blocking, aio
    try:
        blocking.close()
    finally:
        aio.shutdown()


Twins = tuple[BlockingDriver, AsyncDriver]
MakeServer = Callable[..., CommandServer]


def both(twins: Twins, scenario: Callable[[Driver], Any]) -> Any:
    """Run *scenario* on each twin; assert equal outcomes; return the blocking one's."""
    got = [scenario(driver) for driver in twins]
    assert got[0] == got[1]
    return got[0]


def test_close_then_call(twins: Twins, make_server: MakeServer, scaled: Any) -> None:
    srv = make_server()

    def scenario(d: Driver) -> list[Outcome]:
        d.open(srv.port, timeout=scaled(10), retries=1)
        steps = [outcome(lambda: d.call("add", 1, 2))]
        d.close()
        d.close()  # idempotent
        steps.append(outcome(lambda: d.call("add", 1, 2)))
        steps.append(outcome(d.reload))
        return steps

    steps = both(twins, scenario)
    assert steps[0] == ("ok", 3)
    assert steps[1][:2] == ("raised", "CommandError")
    assert steps[1][2].endswith('"add" with params (1, 2): client is closed')
    assert "system.describe" in steps[2][2] and "client is closed" in steps[2][2]


def test_call_by_name(twins: Twins, make_server: MakeServer, scaled: Any) -> None:
    srv = make_server()

    def scenario(d: Driver) -> list[Outcome]:
        d.open(srv.port, timeout=scaled(10), retries=1)
        return [
            outcome(lambda: d.call_by_name("add", 1, 2)),
            outcome(lambda: d.call_by_name("add", a=1, b=2)),
            outcome(lambda: d.call_by_name("no_such_method")),
        ]

    positional, named, unknown = both(twins, scenario)
    assert positional == named == ("ok", 3)
    assert unknown[1] == "CommandError" and "no_such_method" in unknown[2]


def test_server_errors(twins: Twins, make_server: MakeServer, scaled: Any) -> None:
    srv = make_server()

    def scenario(d: Driver) -> list[Outcome]:
        d.open(srv.port, timeout=scaled(10), retries=1)
        return [
            outcome(lambda: d.call("boom", "bad")),
            outcome(lambda: d.call("add", 1)),  # a TypeError on the server
            outcome(lambda: d.call("hello_world")),
        ]

    boom, bad_args, fine = both(twins, scenario)
    assert boom[1] == "CommandError" and boom[3] == -32000
    assert "ValueError: bad" in boom[4]["traceback"]
    assert bad_args[1] == "CommandError"
    assert fine == ("ok", {"hello": "world"})


def test_http_error_on_discovery(twins: Twins, make_server: MakeServer, scaled: Any) -> None:
    srv = make_server()

    def scenario(d: Driver) -> Outcome:
        return outcome(lambda: d.open(srv.port, url="/nowhere", timeout=scaled(10), retries=1))

    got = both(twins, scenario)
    assert got[1] == "CommandError" and got[3] == 404


def test_connection_refused(twins: Twins, scaled: Any) -> None:
    port = free_port()

    def scenario(d: Driver) -> Outcome:
        return outcome(lambda: d.open(port, timeout=scaled(10), retries=3, retry_seconds=0))

    got = both(twins, scenario)
    assert got[1] == CommandConnectError.__name__
    assert "(attempt 3 of 3)" in got[2]


def test_timeout_is_not_resent(
    twins: Twins, make_server: MakeServer, service: Service, scaled: Any
) -> None:
    srv = make_server()
    limit = scaled(0.5)

    def scenario(d: Driver) -> Outcome:
        d.open(srv.port, timeout=limit, retries=3, retry_seconds=0)
        return outcome(lambda: d.call("stall"))

    got = both(twins, scenario)
    assert got[1] == CommandTimeout.__name__
    assert f"within timeout of {limit} seconds" in got[2]
    assert service.calls().count("stall") == 2  # once per twin: never re-sent


def test_kept_connection_dropped_by_a_restart(
    twins: Twins, make_server: MakeServer, scaled: Any
) -> None:
    srv = make_server()
    port = srv.port
    servers = [srv]

    def scenario(d: Driver) -> list[Outcome]:
        d.open(port, timeout=scaled(10), retries=1)
        first = outcome(lambda: d.call("add", 1, 2))
        servers[-1].stop_background()  # the kept connection dies with it
        servers.append(make_server(port=port))
        return [first, outcome(lambda: d.call("add", 2, 3))]

    assert both(twins, scenario) == [("ok", 3), ("ok", 5)]


def test_kept_connection_dropped_mid_call_is_not_resent(
    twins: Twins, scripted: Callable[[list[str | bytes]], ScriptedServer], scaled: Any
) -> None:
    srv = scripted(["close", "close"])  # one dropped call per twin

    def sent() -> int:
        return sum(b'"add"' in r for r in srv.requests)

    def scenario(d: Driver) -> tuple[Outcome, int]:
        d.open(srv.port, timeout=scaled(10), retries=3, retry_seconds=0)
        before = sent()
        got = outcome(lambda: d.call("add", 1, 2))
        return got, sent() - before

    got, received = both(twins, scenario)
    assert got[1] == CommandConnectionClosed.__name__
    assert "it may have been processed" in got[2]
    assert received == 1


def test_reload_racing_calls(
    twins: Twins, make_server: MakeServer, service: Service, scaled: Any
) -> None:
    srv = make_server()

    def late(x: int) -> int:
        return x + 1

    def scenario(d: Driver) -> tuple[list[Outcome], list[str], bool, Outcome]:
        srv.expose(late)
        d.open(srv.port, timeout=scaled(10), retries=1)
        srv.unexpose("late")
        calls = [("add", (i, 1)) for i in range(24)] + [("echo", (i,)) for i in range(8)]
        results = d.racing(calls, reloads=4)
        after = (d.endpoints(), d.has("late"))
        srv.expose(late)
        d.reload()
        return results, *after, outcome(lambda: d.call("late", 1))

    results, names, has_late, late_call = both(twins, scenario)
    assert results == [("ok", i + 1) for i in range(24)] + [("ok", i) for i in range(8)]
    assert "late" not in names and "add" in names and not has_late
    assert late_call == ("ok", 2)


def test_untrusted_certificate(
    twins: Twins, make_server: MakeServer, tls_files: tuple[Path, Path], scaled: Any
) -> None:
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    srv = make_server(ssl_context=server_ctx)

    def scenario(d: Driver) -> Outcome:
        return outcome(
            lambda: d.open(
                srv.port, host="https://127.0.0.1", timeout=scaled(10), retries=3, retry_seconds=0
            )
        )

    got = both(twins, scenario)
    assert got[1] == CommandConnectError.__name__
    assert "CERTIFICATE_VERIFY_FAILED" in got[2] and "(attempt 1 of 3)" in got[2]


def test_reply_cut_short_by_a_close(
    twins: Twins, scripted: Callable[[list[str | bytes]], ScriptedServer], scaled: Any
) -> None:
    srv = scripted(["truncated", "truncated"])

    def scenario(d: Driver) -> Outcome:
        d.open(srv.port, timeout=scaled(10), retries=3, retry_seconds=0)
        return outcome(lambda: d.call("add", 1, 2))

    got = both(twins, scenario)
    assert got[1] == CommandConnectionClosed.__name__


_REPLIES: list[str | bytes] = [
    http_reply(b'{"result": 5}'),
    http_reply(b'{"error": {"code": 3, "name": "Oops", "message": "bad", "data": {"x": 1}}}'),
    http_reply(b"not json"),
    http_reply(b""),
    http_reply(b"[1, 2]"),
    http_reply(b'{"detail": "no"}', "500 Internal Server Error"),
    http_reply(b"<html>gone</html>", "404 Not Found"),
    http_reply(b'{"result": 1}', "302 Found"),
    "garbage",
]


def test_every_reply_reads_the_same(
    twins: Twins, scripted: Callable[[list[str | bytes]], ScriptedServer], scaled: Any
) -> None:
    srv = scripted(_REPLIES * 2)  # the same replies, in order, for each twin

    def scenario(d: Driver) -> list[Outcome]:
        d.open(srv.port, timeout=scaled(10), retries=1)
        return [outcome(lambda: d.call("add", 2, 3)) for _ in _REPLIES]

    got = both(twins, scenario)
    assert got[0] == ("ok", 5)
    assert got[-1][1] == "CommandError" and "invalid HTTP response" in got[-1][2]
