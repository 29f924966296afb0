"""AsyncHttpPool.close() with a request still being written to a peer that does not read:
the connection must end at once (failing the call in flight), not wait for a peer that
may never take the bytes, which left the socket open past the loop (an unclosed
transport found by the garbage collector in a later test)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from sciwire.core.http import AsyncHttpPool, Endpoint
from sciwire.errors import ConnectionClosed
from tests.helpers import scale

#: more than loopback's socket buffers take (both ends), so some stays in the transport
BODY = b"x" * (32 << 20)


@pytest.fixture
def deaf() -> Iterator[socket.socket]:
    """A listening socket that accepts (through the kernel's backlog) and never reads."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    yield sock
    sock.close()


@pytest.mark.parametrize("timeout", [None, 60.0])
async def test_close_ends_a_connection_whose_request_is_still_being_written(
    deaf: socket.socket, timeout: float | None
) -> None:
    pool = AsyncHttpPool(Endpoint("http", "127.0.0.1", deaf.getsockname()[1]), timeout=timeout)
    call = asyncio.ensure_future(pool.call("POST", "/", BODY, {}))
    try:
        for _ in range(1000):  # until the request is out and stuck in the transport
            await asyncio.sleep(0.005)
            conns = list(pool._conns)
            if conns and conns[0].transport and conns[0].transport.get_write_buffer_size():
                break
        else:
            pytest.fail("the request never filled the transport's buffer")
        await pool.close()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(call, scale(10))
    finally:
        call.cancel()
        await pool.close()
    # nothing left to write: the socket is closed, not left for the garbage collector
    transport = conns[0].transport
    assert transport is not None and transport.get_write_buffer_size() == 0
