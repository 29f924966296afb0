"""Small asyncio transport helpers shared by the asyncio pool and the server."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["mark_closed"]


def mark_closed(transport: asyncio.BaseTransport | None) -> None:
    """Close our side of a transport whose connection is gone.

    On Python 3.10 the TLS transport is otherwise never marked closed when the peer
    closes first, and warns "unclosed transport" when collected."""
    if transport is not None and not transport.is_closing():
        with contextlib.suppress(Exception):
            transport.close()
