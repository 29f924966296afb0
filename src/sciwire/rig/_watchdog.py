"""One timer for every echo deadline of a communicator, instead of a timer per message."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

from sciwire.rig._protocol import EchoState

__all__ = ["Watchdog"]

#: asyncio may run a timer up to its clock resolution early
_EARLY = 0.001

Pending = tuple["asyncio.Future[bool]", float]  # an echo's future and its deadline


class Watchdog:
    """Fails the echoes in *state* whose deadline passed, with one timer for all of them.

    Args:
        loop: the loop the timer runs on.
        state: the awaited echoes, tokens ``(future, deadline)``.
        expire: called with ``(addr, future)`` for each echo past its deadline.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        state: EchoState[Pending],
        expire: Callable[[Any, asyncio.Future[bool]], None],
    ) -> None:
        self._loop = loop
        self._state = state
        self._expire = expire
        self._timer: asyncio.TimerHandle | None = None
        self._at = 0.0

    def arm(self, deadline: float) -> None:
        """Make sure the timer fires by *deadline* (loop time)."""
        if self._timer is None or deadline < self._at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(deadline, self._check)
            self._at = deadline

    def cancel(self) -> None:
        """Stop the timer (the communicator is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        now = self._loop.time() + _EARLY
        earliest: float | None = None
        expired: list[tuple[Hashable, asyncio.Future[bool]]] = []
        for addr, (_, (fut, deadline)) in self._state.pending().items():
            if deadline <= now:
                expired.append((addr, fut))
            elif earliest is None or deadline < earliest:
                earliest = deadline
        for addr, fut in expired:
            self._expire(addr, fut)
        if earliest is not None:
            self.arm(earliest)
