"""sciwire.core.streams: reads through one reused buffer, delivered as plain bytes."""

from __future__ import annotations

import asyncio
import threading

from sciwire.core.streams import READ_SIZE, ReadIntoProtocol


class Collect(ReadIntoProtocol):
    def __init__(self, done: asyncio.Event, want: int) -> None:
        self.parts: list[bytes] = []
        self.got = 0
        self.want = want
        self.done = done

    def data_received(self, data: bytes) -> None:
        assert type(data) is bytes
        self.parts.append(data)
        self.got += len(data)
        if self.got >= self.want:
            self.done.set()


async def _send_and_collect(payloads: list[bytes]) -> list[bytes]:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    total = sum(map(len, payloads))
    protocols: list[Collect] = []

    class Counted(Collect):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if sum(p.got for p in protocols) >= total:
                done.set()

    def factory() -> Collect:
        protocols.append(Counted(done, total))
        return protocols[-1]

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    writers = [(await asyncio.open_connection("127.0.0.1", port))[1] for _ in payloads]
    # interleave the connections' writes so reads of both share the buffer
    for offset in range(0, max(map(len, payloads)), 5000):
        for writer, payload in zip(writers, payloads, strict=True):
            writer.write(payload[offset : offset + 5000])
        await asyncio.gather(*(w.drain() for w in writers))
    await asyncio.wait_for(done.wait(), 10)
    for writer in writers:
        writer.close()
        await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return sorted(b"".join(p.parts) for p in protocols)


async def test_interleaved_connections_each_get_their_own_bytes() -> None:
    a = bytes(range(256)) * 1000  # bigger than one read
    b = b"xyz" * 70_000
    assert len(a) > READ_SIZE
    assert await _send_and_collect([a, b]) == sorted([a, b])


def test_one_buffer_per_thread_reused_between_reads() -> None:
    seen: dict[str, object] = {}

    def grab(name: str) -> None:
        proto = Collect(asyncio.Event(), 0)
        first = proto.get_buffer(-1)
        assert proto.get_buffer(-1).obj is first.obj  # reused
        assert Collect(asyncio.Event(), 0).get_buffer(-1).obj is first.obj  # by every protocol
        # the buffer itself, not its id(): once a thread ends its buffer may be freed
        # and the other thread's allocated at the same address (the same id)
        seen[name] = first.obj

    threads = [threading.Thread(target=grab, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 2 and seen["a"] is not seen["b"]


def test_buffer_updated_copies_out_before_the_buffer_is_reused() -> None:
    proto = Collect(asyncio.Event(), 10)
    view = proto.get_buffer(-1)
    view[:3] = b"abc"
    proto.buffer_updated(3)
    view = proto.get_buffer(-1)
    view[:3] = b"xyz"
    proto.buffer_updated(2)
    assert proto.parts == [b"abc", b"xy"]
