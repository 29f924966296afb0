"""The bridge's JetStream publisher: a bounded queue, a window of unconfirmed events,
and re-publishing (same ``Nats-Msg-Id``, so JetStream keeps one copy) when a
confirmation fails or does not come.

Not every event asks for its own acknowledgement: that costs a reply subject, a
future and a JSON reply per event, half the bridge's time. Events go out as plain
publishes on the stream's subjects, and every ``checkpoint``-th event (and the last
one before the queue runs dry) as a JetStream publish that asks for one. The stream
handles one connection's messages in order, so its acknowledgement of a checkpoint
confirms every event sent before it on that connection. A failed or overdue
checkpoint sends everything unconfirmed again, oldest first; the copies the stream
already has are dropped by their message id.
"""

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
    """Publishes events in order with at most *window* of them unconfirmed.

    Args:
        nc: the NATS connection.
        js: its JetStream context.
        max_pending: events held (queued plus unconfirmed); more are dropped.
        window: events sent but not yet confirmed, at most.
        checkpoint: ask for an acknowledgement every this many events (1: every one).
        ack_timeout: seconds before unconfirmed events are sent again.
        on_stored: called with each event once JetStream confirmed it (and whether
            the stream reported it a duplicate, known for checkpoints only).
    """

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        *,
        max_pending: int = 100_000,
        window: int = 4096,
        checkpoint: int = 128,
        ack_timeout: float = 5.0,
        on_stored: Callable[[Outgoing, bool], None] | None = None,
    ) -> None:
        self.nc = nc
        self.js = js
        self.max_pending = max_pending
        self.window = window
        self.checkpoint = max(1, min(checkpoint, window))
        self.ack_timeout = ack_timeout
        self.on_stored = on_stored
        #: events confirmed stored, checkpoints reported duplicate, dropped (queue
        #: full), sent again
        self.stored = 0
        self.duplicates = 0
        self.dropped = 0
        self.resent = 0
        self._queue: deque[Outgoing] = deque()
        #: sent, unconfirmed, oldest first: token -> (event, send time)
        self._inflight: dict[int, tuple[Outgoing, float]] = {}
        self._checkpoints: dict[int, asyncio.Future[Any]] = {}
        self._token = 0
        self._last_checkpoint = 0
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
        """Events queued or awaiting confirmation."""
        return len(self._queue) + len(self._inflight)

    def lag(self, now: float | None = None) -> float:
        """Age in seconds of the oldest event not yet confirmed (0 when none)."""
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
        for fut in self._checkpoints.values():
            fut.cancel()
        self._checkpoints.clear()
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
                # wait here: an event taken from the queue and held across a re-send
                # would overtake the older events put back
                self._room.clear()
                await self._room.wait()
                continue
            out = queue.popleft()
            token = self._token + 1
            checkpoint = not queue or token - self._last_checkpoint >= self.checkpoint
            try:
                if checkpoint:
                    fut = await js.publish_async(out.subject, out.data, headers=out.headers)
                else:
                    await nc.publish(out.subject, out.data, headers=out.headers)
            except (nats.errors.Error, OSError) as exc:
                queue.appendleft(out)
                logger.info("fleet publish failed (%s); retrying", exc)
                await asyncio.sleep(0.1)
                continue
            self._token = token
            inflight[token] = (out, time.monotonic())
            if checkpoint:
                self._last_checkpoint = token
                self._checkpoints[token] = fut
                fut.add_done_callback(functools.partial(self._acked, token))

    def _acked(self, token: int, fut: asyncio.Future[Any]) -> None:
        self._room.set()
        if self._checkpoints.pop(token, None) is None or fut.cancelled():
            return  # already sent again
        exc = fut.exception()
        if exc is not None:
            logger.info("fleet checkpoint not acknowledged (%r); re-sending", exc)
            self.resend_unacknowledged()
            return
        duplicate = bool(getattr(fut.result(), "duplicate", False))
        if duplicate:
            self.duplicates += 1
        inflight = self._inflight
        while inflight:  # everything up to the checkpoint is confirmed
            first = next(iter(inflight))
            if first > token:
                break
            out, _ = inflight.pop(first)
            self.stored += 1
            if self.on_stored is not None:
                self.on_stored(out, duplicate and first == token)
        if not inflight and not self._queue:
            self._idle.set()

    def resend_unacknowledged(self) -> None:
        """Put every event not yet confirmed back in the queue, oldest first."""
        # JetStream drops the copies it already has (same Nats-Msg-Id): nothing twice
        entries = [out for out, _ in self._inflight.values()]
        self._inflight.clear()
        for fut in self._checkpoints.values():
            fut.cancel()
        self._checkpoints.clear()
        self._queue.extendleft(reversed(entries))
        self.resent += len(entries)
        self._last_checkpoint = self._token
        self._wake.set()
        self._room.set()

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(min(0.5, self.ack_timeout / 2))
            if not self._inflight:
                continue
            _, sent = next(iter(self._inflight.values()))
            if time.monotonic() - sent > self.ack_timeout:
                logger.info("fleet confirmations overdue; re-sending %d", len(self._inflight))
                self.resend_unacknowledged()
