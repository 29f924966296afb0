"""The bridge's JetStream publisher: a bounded queue, a window of unacknowledged
publishes, and re-publishing (same ``Nats-Msg-Id``, so JetStream keeps one copy) when
an acknowledgement fails or does not come."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

__all__ = ["Outgoing", "Publisher"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Outgoing:
    """One event waiting to be stored in JetStream."""

    subject: str
    data: bytes
    headers: dict[str, str]
    time: float
    key: tuple[str, str]


class Publisher:
    """Publishes events in order with at most *window* acknowledgements outstanding.

    Args:
        nc: the NATS connection.
        js: its JetStream context.
        max_pending: events held (queued plus unacknowledged); more are dropped.
        window: publishes awaiting their acknowledgement at once (at most the
            JetStream context's ``publish_async_max_pending``).
        ack_timeout: seconds before an unacknowledged publish is sent again.
        on_stored: called with each event once JetStream confirmed it.
    """

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        *,
        max_pending: int = 100_000,
        window: int = 4096,
        ack_timeout: float = 5.0,
        on_stored: Callable[[Outgoing, bool], None] | None = None,
    ) -> None:
        self.nc = nc
        self.js = js
        self.max_pending = max_pending
        self.window = window
        self.ack_timeout = ack_timeout
        self.on_stored = on_stored
        #: events JetStream stored, acknowledged duplicates, dropped (queue full), re-sent
        self.stored = 0
        self.duplicates = 0
        self.dropped = 0
        self.resent = 0
        self._queue: deque[Outgoing] = deque()
        self._inflight: dict[int, tuple[Outgoing, asyncio.Future[Any], float]] = {}
        self._token = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_drop_log = 0.0

    def start(self) -> None:
        """Start the sending and watchdog tasks."""
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="fleet-publisher"),
            asyncio.create_task(self._watchdog(), name="fleet-ack-watchdog"),
        ]

    @property
    def pending(self) -> int:
        """Events queued or awaiting their acknowledgement."""
        return len(self._queue) + len(self._inflight)

    def lag(self, now: float | None = None) -> float:
        """Age in seconds of the oldest event not yet stored (0 when none)."""
        oldest = None
        if self._inflight:
            oldest = next(iter(self._inflight.values()))[0].time
        elif self._queue:
            oldest = self._queue[0].time
        return 0.0 if oldest is None else max(0.0, (now or time.time()) - oldest)

    def put(self, out: Outgoing) -> bool:
        """Queue an event; False (and counted) when the queue is full."""
        if len(self._queue) + len(self._inflight) >= self.max_pending:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 5.0:
                self._last_drop_log = now
                logger.warning("fleet publisher full (%d events): dropping", self.max_pending)
            return False
        self._queue.append(out)
        self._idle.clear()
        self._wake.set()
        return True

    async def flush(self, timeout: float) -> bool:
        """Wait until every queued event is stored; False if *timeout* passed first."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self.pending == 0

    async def close(self) -> None:
        """Stop the tasks (queued events stay unsent)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        for _, fut, _ in self._inflight.values():
            fut.cancel()
        self._inflight.clear()

    async def _send_loop(self) -> None:
        queue, inflight, js, nc = self._queue, self._inflight, self.js, self.nc
        while True:
            if not queue:
                if not inflight:
                    self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            if not nc.is_connected:
                # hold events here rather than in the client's reconnect buffer, which
                # raises when full and whose acknowledgements would be lost anyway
                await asyncio.sleep(0.05)
                continue
            if len(inflight) >= self.window:
                # wait here, not in publish_async: an event taken from the queue and
                # held across a re-send would overtake the older events put back
                self._room.clear()
                await self._room.wait()
                continue
            out = queue.popleft()
            try:
                fut = await js.publish_async(out.subject, out.data, headers=out.headers)
            except (nats.errors.Error, OSError) as exc:
                queue.appendleft(out)
                logger.info("fleet publish failed (%s); retrying", exc)
                await asyncio.sleep(0.1)
                continue
            self._token += 1
            token = self._token
            inflight[token] = (out, fut, time.monotonic())
            fut.add_done_callback(functools.partial(self._acked, token))

    def _acked(self, token: int, fut: asyncio.Future[Any]) -> None:
        self._room.set()
        entry = self._inflight.pop(token, None)
        if entry is None or fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            self._inflight[token] = entry  # put back: it is re-sent with the rest
            logger.info("fleet publish not acknowledged (%r); re-sending", exc)
            self.resend_unacknowledged()
            return
        self.stored += 1
        duplicate = bool(getattr(fut.result(), "duplicate", False))
        if duplicate:
            self.duplicates += 1
        if self.on_stored is not None:
            self.on_stored(entry[0], duplicate)
        if not self._inflight and not self._queue:
            self._idle.set()

    def resend_unacknowledged(self) -> None:
        """Put every publish still awaiting its acknowledgement back in the queue."""
        # Everything unacknowledged goes back to the front, oldest first: JetStream drops
        # the copies it already has (same Nats-Msg-Id), so nothing is stored twice.
        entries = list(self._inflight.values())
        self._inflight.clear()
        for _, fut, _ in entries:
            fut.cancel()
        self._queue.extendleft(reversed([out for out, _, _ in entries]))
        self.resent += len(entries)
        self._wake.set()
        self._room.set()

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(min(0.5, self.ack_timeout / 2))
            if not self._inflight:
                continue
            _, _, sent = next(iter(self._inflight.values()))
            if time.monotonic() - sent > self.ack_timeout:
                logger.info("fleet acknowledgements overdue; re-sending %d", len(self._inflight))
                self.resend_unacknowledged()
