"""A stream protocol base whose reads land in one reused buffer.

asyncio's selector transports read for a plain :class:`asyncio.Protocol` with
``recv(256 KiB)``. glibc serves an allocation that large with ``mmap``; shrinking the
result to the bytes received is an ``mremap`` and freeing it a ``munmap``: three
system calls, and fresh pages to fault in, on every read. A
:class:`asyncio.BufferedProtocol` is handed to ``recv_into`` instead, so
:class:`ReadIntoProtocol` gives the transport one buffer per thread, reused for every
read, and passes each read on to :meth:`~ReadIntoProtocol.data_received` as bytes,
exactly as a plain protocol gets it. Subclasses keep their ``data_received``.

One buffer per thread is enough: a transport calls :meth:`get_buffer` and
:meth:`buffer_updated` back to back in one callback of its loop, and
:meth:`buffer_updated` copies the bytes out before it returns.
"""

from __future__ import annotations

import asyncio
import threading

__all__ = ["READ_SIZE", "ReadIntoProtocol"]

#: the most one read takes (below glibc's mmap threshold, so copies stay on the heap)
READ_SIZE = 65536

_local = threading.local()


def _buffer() -> memoryview:
    try:
        view: memoryview = _local.view
    except AttributeError:
        view = _local.view = memoryview(bytearray(READ_SIZE))
    return view


class ReadIntoProtocol(asyncio.BufferedProtocol):
    """A stream protocol with ``data_received(bytes)``, read through a reused buffer."""

    def get_buffer(self, sizehint: int) -> memoryview:
        return _buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(_local.view[:nbytes]))

    def data_received(self, data: bytes) -> None:
        """Called with the bytes of each read, as :meth:`asyncio.Protocol.data_received`."""
        raise NotImplementedError
