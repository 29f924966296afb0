"""What a consumer reads from JetStream's reply subjects, where it starts, and when it
acknowledges: sans I/O, shared by :class:`~sciwire.fleet.AsyncFleet`."""

from __future__ import annotations

import datetime
from collections import deque
from typing import Any

from nats.js.api import DeliverPolicy

__all__ = ["ACK_BATCH", "AckPoint", "Recent", "Since", "deliver_options", "reply_fields"]

#: where a consumer starts: "new" (default), "all", a stream sequence (int), a time
#: (datetime, or epoch seconds as a float)
Since = str | int | float | datetime.datetime | None

#: an AckAll consumer acknowledges at least every this many events (and whenever it
#: has caught up): one acknowledgement instead of one per event, for the consumer and
#: for the server
ACK_BATCH = 256


def reply_fields(reply: str) -> tuple[int, int, int, int]:
    """Delivery count, stream sequence, consumer sequence and pending count of a
    JetStream delivery, from its reply subject.

    Raises:
        ValueError, IndexError, AttributeError: not a JetStream delivery's reply.
    """
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>, or the
    # form with domain and account hash: $JS.ACK.<domain>.<hash>.<stream>.<consumer>...
    tokens = reply.split(".")
    base = 4 if len(tokens) == 9 else 6
    return (
        int(tokens[base]),
        int(tokens[base + 1]),
        int(tokens[base + 2]),
        int(tokens[base + 4]),
    )


class AckPoint:
    """Where an AckAll consumer's next acknowledgement goes.

    With ``AckPolicy.ALL`` one acknowledgement confirms every event the consumer was
    given up to it, so the consumer records the furthest delivery it is done with and
    acknowledges that one when *batch* deliveries piled up or it has caught up. The
    owner must not send while it holds events back (they would be confirmed unhandled).

    Args:
        batch: deliveries after which an acknowledgement is due even under load.
    """

    def __init__(self, batch: int = ACK_BATCH) -> None:
        self.batch = max(1, batch)
        self.reply: str | None = None
        self.sseq = 0
        self.count = 0

    def advance(self, reply: str, sseq: int) -> None:
        """Record a delivery the consumer is done with, by its stream sequence.

        The server's AckAll confirms every pending event up to the acknowledged one's
        *stream* sequence (and ignores one at or below its floor), so the point never
        moves back: a redelivery of an older event, whose delivery sequence is newer,
        leaves it where it is.
        """
        if sseq >= self.sseq:
            self.reply, self.sseq = reply, sseq
        self.count += 1

    def due(self, idle: bool) -> bool:
        """True when an acknowledgement should go now (*idle*: nothing more queued)."""
        return self.reply is not None and (idle or self.count >= self.batch)

    def take(self) -> str | None:
        """The reply subject to acknowledge, once (None when nothing is owed)."""
        reply, self.reply, self.count = self.reply, None, 0
        return reply


class Recent:
    """The last *limit* stream sequences handled (a redelivery of one is dropped).

    Args:
        limit: how many are remembered; the oldest are forgotten first.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._set: set[int] = set()
        self._order: deque[int] = deque()

    def add(self, sseq: int) -> None:
        """Remember *sseq*."""
        self._set.add(sseq)
        self._order.append(sseq)
        if len(self._order) > self.limit:
            self._set.discard(self._order.popleft())

    def __contains__(self, sseq: object) -> bool:
        return sseq in self._set


def deliver_options(since: Since) -> dict[str, Any]:
    """ConsumerConfig keywords for *since*.

    Raises:
        ValueError: *since* is none of the accepted forms.
    """
    if since is None or since == "new":
        return {"deliver_policy": DeliverPolicy.NEW}
    if since == "all":
        return {"deliver_policy": DeliverPolicy.ALL}
    if since == "last":
        return {"deliver_policy": DeliverPolicy.LAST}
    if isinstance(since, bool):
        raise ValueError(f"bad since {since!r}")
    if isinstance(since, int):
        return {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": since}
    if isinstance(since, float):
        since = datetime.datetime.fromtimestamp(since, datetime.timezone.utc)
    if isinstance(since, datetime.datetime):
        if since.tzinfo is None:
            since = since.astimezone()
        return {"deliver_policy": DeliverPolicy.BY_START_TIME, "opt_start_time": since}
    raise ValueError(f"since is 'new', 'all', 'last', a sequence or a time, not {since!r}")
