"""How the bridge keeps each instrument connected, the same for every kind (IFCB, rig,
SAMP): the pause before it tries again and the health flag while a connection is up."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

__all__ = ["POLL", "RETRY_DELAYS", "Link", "Seat", "hold", "pause"]

logger = logging.getLogger(__name__)

#: seconds between attempts to reach an instrument; the last one repeats
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
#: seconds between looks at a connection, for the health flag
POLL = 0.25


class Seat(Protocol):
    """An instrument's record in the bridge, as far as its health flag goes."""

    connected: bool


async def pause(attempt: int, what: str, exc: BaseException) -> None:
    """Say why *what* could not be reached and wait before try *attempt* + 1 (from 0)."""
    delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
    logger.info("%s unreachable (%s); retrying in %s s", what, exc, delay)
    await asyncio.sleep(delay)


class Link(Protocol):
    """A connection to an instrument (a rig's EchoProtocol, a SAMP client)."""

    @property
    def is_connected(self) -> bool: ...


async def hold(seat: Seat, link: Link) -> None:
    """Keep *seat* marked connected while *link* is; unmarked when this returns or is
    cancelled."""
    try:
        while link.is_connected:
            seat.connected = True
            await asyncio.sleep(POLL)
    finally:
        seat.connected = False
