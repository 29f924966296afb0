"""AsyncCommandClient against our server in the same event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from sciwire.command import (
    AsyncCommandClient,
    CommandConnectError,
    CommandConnectionClosed,
    CommandError,
    CommandServer,
    CommandTimeout,
)
from tests.command.helpers import ScriptedServer, Service, free_port, http_reply


class AsyncService(Service):
    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.all_arrived = asyncio.Event()
        self.expect = 32

    async def wait_here(self) -> str:
        self._note("wait_here")
        if self.calls().count("wait_here") >= self.expect:
            self.all_arrived.set()
        await self.release.wait()
        return "done"


@pytest.fixture
async def aservice() -> AsyncIterator[AsyncService]:
    svc = AsyncService()
    yield svc
    svc.release.set()
    svc.gate.set()


@pytest.fixture
async def aserver(aservice: AsyncService) -> AsyncIterator[CommandServer]:
    srv = CommandServer(aservice, port=0, shutdown_timeout=1.0)
    await srv.start()
    yield srv
    aservice.release.set()
    await srv.stop()


@pytest.fixture
async def aclient(
    aserver: CommandServer, scaled: Callable[[float], float]
) -> AsyncIterator[AsyncCommandClient]:
    async with AsyncCommandClient(
        host="127.0.0.1", port=aserver.port, timeout=scaled(10), retries=1
    ) as cli:
        yield cli


async def test_discovery_and_calls(aclient: AsyncCommandClient) -> None:
    assert await aclient.hello_world() == {"hello": "world"}
    assert await aclient.add(1, 2) == 3
    assert await aclient.add(a=[1], b=[2]) == [1, 2]
    assert await aclient.array_sum(np.arange(4)) == 6.0
    assert aclient.add.__doc__.startswith("Add two values.")
    with pytest.raises(TypeError):
        await aclient.add(1, b=2)


async def test_remote_errors(aclient: AsyncCommandClient) -> None:
    with pytest.raises(CommandError) as info:
        await aclient.boom("bad")
    assert info.value.code == -32000
    assert "ValueError: bad" in info.value.data["traceback"]
    with pytest.raises(CommandError) as info:
        await aclient.call("missing")
    assert info.value.code == -32601


async def test_many_calls_in_flight(
    aclient: AsyncCommandClient, aservice: AsyncService, scaled: Callable[[float], float]
) -> None:
    # 32 calls parked on the server at once, then released together
    waiting = [asyncio.ensure_future(aclient.wait_here()) for _ in range(32)]
    await asyncio.wait_for(aservice.all_arrived.wait(), scaled(10))
    assert not any(w.done() for w in waiting)
    aservice.release.set()
    assert await asyncio.gather(*waiting) == ["done"] * 32
    results = await asyncio.gather(*(aclient.echo(i) for i in range(200)))
    assert results == list(range(200))


async def test_rediscovery(aserver: CommandServer, aclient: AsyncCommandClient) -> None:
    async def late(x: int) -> int:
        return x + 1

    aserver.expose(late)
    aserver.unexpose("boom")
    await aclient()
    assert await aclient.late(1) == 2
    assert not hasattr(aclient, "boom")


async def test_timeout_is_not_resent(
    aserver: CommandServer, aservice: AsyncService, scaled: Callable[[float], float]
) -> None:
    async with AsyncCommandClient(
        host="127.0.0.1", port=aserver.port, timeout=scaled(0.3), retries=3, retry_seconds=0
    ) as cli:
        with pytest.raises(CommandTimeout) as info:
            await cli.wait_here()
        assert isinstance(info.value, TimeoutError)
        assert aservice.calls().count("wait_here") == 1


async def test_connection_refused(scaled: Callable[[float], float]) -> None:
    cli = AsyncCommandClient(host="127.0.0.1", port=free_port(), retries=2, retry_seconds=0)
    with pytest.raises(CommandConnectError) as info:
        await cli.connect()
    await cli.close()
    assert "attempt 2 of 2" in str(info.value)
    assert isinstance(info.value, OSError)


async def test_http_error_and_closed_client(aserver: CommandServer) -> None:
    cli = AsyncCommandClient(host="127.0.0.1", port=aserver.port, url="/nope", retries=1)
    with pytest.raises(CommandError) as info:
        await cli.connect()
    assert info.value.code == 404
    await cli.close()
    with pytest.raises(CommandError, match="closed"):
        await cli.call("hello_world")


async def test_license(aservice: AsyncService) -> None:
    srv = CommandServer(aservice, port=0, license_id="L", shutdown_timeout=1.0)
    await srv.start()
    try:
        with pytest.raises(CommandError) as info:
            async with AsyncCommandClient(host="127.0.0.1", port=srv.port, retries=1):
                pass
        assert info.value.code == 401
        async with AsyncCommandClient(
            host="127.0.0.1", port=srv.port, headers={"License-ID": "L"}, retries=1
        ) as cli:
            assert await cli.hello_world() == {"hello": "world"}
    finally:
        await srv.stop()


async def test_pooled_connection_closed_by_server_restart(
    aservice: AsyncService, scaled: Callable[[float], float]
) -> None:
    srv = CommandServer(aservice, port=0, shutdown_timeout=1.0)
    await srv.start()
    port = srv.port
    cli = AsyncCommandClient(host="127.0.0.1", port=port, retries=1, timeout=scaled(10))
    try:
        await cli.connect()
        assert await cli.add(1, 2) == 3
        await srv.stop()
        srv = CommandServer(aservice, port=port, shutdown_timeout=1.0)
        await srv.start()
        # the pooled connection is dead; it must be noticed, not written to
        assert await cli.add(2, 3) == 5
    finally:
        await cli.close()
        await srv.stop()


async def test_dropped_connection_and_garbage_are_not_resent(
    scripted: Callable[[list[str | bytes]], ScriptedServer],
) -> None:
    srv = scripted(["close", "garbage"])
    async with AsyncCommandClient(host="127.0.0.1", port=srv.port, retries=3) as cli:
        with pytest.raises(CommandConnectionClosed):
            await cli.add(1, 2)
        with pytest.raises(CommandError, match="invalid HTTP response"):
            await cli.add(1, 2)
    assert sum(b'"add"' in r for r in srv.requests) == 2


async def test_connection_limit_and_reuse(aserver: CommandServer) -> None:
    async with AsyncCommandClient(host="127.0.0.1", port=aserver.port, retries=1, limit=4) as cli:
        assert await asyncio.gather(*(cli.echo(i) for i in range(100))) == list(range(100))
        assert 1 <= len(cli._transport._conns) <= 4


async def test_async_https(tls_files: tuple[Path, Path], aservice: AsyncService) -> None:
    import ssl

    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    srv = CommandServer(aservice, port=0, ssl_context=server_ctx, shutdown_timeout=1.0)
    await srv.start()
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        async with AsyncCommandClient(
            host="https://127.0.0.1", port=srv.port, ssl_context=ctx, retries=1
        ) as cli:
            assert await cli.add(3, 4) == 7
        untrusted = AsyncCommandClient(host="https://127.0.0.1", port=srv.port, retries=3)
        with pytest.raises(CommandConnectError):
            await untrusted.connect()
        await untrusted.close()
    finally:
        await srv.stop()


async def test_pipelining(aserver: CommandServer, aservice: AsyncService) -> None:
    async with AsyncCommandClient(
        host="127.0.0.1", port=aserver.port, retries=1, limit=2, pipeline=8
    ) as cli:
        results = await asyncio.gather(*(cli.echo(i) for i in range(300)))
        assert results == list(range(300))
        assert len(cli._transport._conns) <= 2
        # a parked procedure holds the calls queued behind it on its connection
        # (head-of-line blocking); once it returns, every call completes in order
        parked = asyncio.ensure_future(cli.wait_here())
        aservice.expect = 1
        await asyncio.wait_for(aservice.all_arrived.wait(), 10)
        adds = asyncio.ensure_future(asyncio.gather(*(cli.add(i, 1) for i in range(20))))
        aservice.release.set()
        assert await asyncio.wait_for(parked, 10) == "done"
        assert await asyncio.wait_for(adds, 10) == [i + 1 for i in range(20)]


async def test_pipelined_connection_failure_fails_its_calls_without_resending(
    scripted: Callable[[list[str | bytes]], ScriptedServer],
) -> None:
    srv = scripted(["close"])
    async with AsyncCommandClient(
        host="127.0.0.1", port=srv.port, retries=3, limit=1, pipeline=4
    ) as cli:
        results = await asyncio.gather(*(cli.add(i, 1) for i in range(4)), return_exceptions=True)
    assert all(isinstance(r, CommandConnectionClosed) for r in results)
    # the server read one request, then closed: nothing was sent again
    assert sum(b'"add"' in r for r in srv.requests) == 1


async def test_an_async_client_never_closed_leaks_nothing(aserver: CommandServer) -> None:
    import gc

    cli = AsyncCommandClient(host="127.0.0.1", port=aserver.port, retries=1)
    await cli.connect()
    assert await cli.add(1, 2) == 3
    conns = list(cli._transport._conns)
    assert conns and not any(c.closed for c in conns)
    del cli
    gc.collect()
    assert all(c.closed for c in conns)  # aborted by the finalizer, not left open
    await asyncio.sleep(0)  # let the aborted transports finish


_REPLIES: list[bytes] = [
    http_reply(b'{"result": 5}'),
    http_reply(b'{"error": {"code": 3, "name": "Oops", "message": "bad"}}'),
    http_reply(b"not json"),
    http_reply(b""),
    http_reply(b'{"detail": "no"}', "500 Internal Server Error"),
    http_reply(b"<html>gone</html>", "404 Not Found"),
    http_reply(b'{"result": 1}', "302 Found"),
]


def _outcome(result: object) -> object:
    if isinstance(result, CommandError):
        return (type(result), str(result), result.code, result.data)
    return result


async def test_procedure_methods_and_call_agree_on_every_reply(
    scripted: Callable[[list[str | bytes]], ScriptedServer],
) -> None:
    """A discovered method (which inlines the call path) gives what call() gives."""
    srv = scripted([r for reply in _REPLIES for r in (reply, reply)])
    async with AsyncCommandClient(host="127.0.0.1", port=srv.port, retries=1) as cli:
        for _ in _REPLIES:
            by_method = await asyncio.gather(cli.add(2, 3), return_exceptions=True)
            by_call = await asyncio.gather(cli.call("add", 2, 3), return_exceptions=True)
            assert _outcome(by_method[0]) == _outcome(by_call[0])
    closed = await asyncio.gather(cli.add(1), cli.call("add", 1), return_exceptions=True)
    assert _outcome(closed[0]) == _outcome(closed[1])
    assert isinstance(closed[0], CommandError) and "closed" in str(closed[0])
