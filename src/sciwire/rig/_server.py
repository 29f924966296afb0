"""A remote rig: a server that answers each experiment message with the same event.

iblrig's remote devices (cameras, ephys, timeline) reply to every step the main
rig sends with a confirmed message of the same event; :class:`Services` waits for
those replies. :func:`serve` stands up such a rig on our :class:`EchoProtocol`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from sciwire.rig._client import EchoProtocol
from sciwire.rig._communicator import Addr
from sciwire.rig._protocol import ExpMessage, ExpStatus, encode

__all__ = ["RemoteRig", "serve"]

logger = logging.getLogger(__name__)

#: the status a rig moves to when it receives each event
_NEXT_STATUS = {
    ExpMessage.EXPINIT: ExpStatus.INITIALIZED,
    ExpMessage.EXPSTART: ExpStatus.RUNNING,
    ExpMessage.EXPEND: ExpStatus.STOPPED,
    ExpMessage.EXPINTERRUPT: ExpStatus.STOPPED,
    ExpMessage.EXPCLEANUP: ExpStatus.CONNECTED,
}


class RemoteRig:
    """Replies to each experiment message from a peer with the same event.

    EXPSTATUS is answered with this rig's status, EXPINFO with its status and
    ``{"name": ..., "main_sync": False}``, other events with the payload received.
    ALYX messages are only echoed (as iblutil's Services expects).

    Args:
        com: a server-role communicator.
        info: extra fields for the EXPINFO reply.

    Attributes:
        max_received: how many of the latest messages :attr:`received` keeps.
        max_queued: the most replies waiting behind a confirmed send in flight; a
            peer that sends faster than it echoes gets no reply past it (counted in
            ``reply_errors``).
    """

    max_received = 10_000
    max_queued = 1024

    def __init__(self, com: EchoProtocol, info: dict[str, Any] | None = None) -> None:
        self.com = com
        self.status = ExpStatus.CONNECTED
        self.info: dict[str, Any] = {"name": com.name, "main_sync": False, **(info or {})}
        #: the latest messages received (up to max_received), as (event, data, addr)
        self.received: collections.deque[tuple[ExpMessage, list[Any], Addr]] = collections.deque(
            maxlen=self.max_received
        )
        self.reply_errors = 0
        self._tasks: set[asyncio.Task[None]] = set()
        com.assign_callback(ExpMessage.any(), self._on_message)

    def _on_message(self, data: list[Any], addr: Addr, event: ExpMessage) -> None:
        self.received.append((event, data, addr))
        if event is ExpMessage.ALYX:
            return
        self.status = _NEXT_STATUS.get(event, self.status)
        if event is ExpMessage.EXPSTATUS:
            reply: list[Any] = [event, self.status]
        elif event is ExpMessage.EXPINFO:
            reply = [event, self.status, self.info]
        else:
            reply = [event, *data]
        com = self.com
        if com.awaiting_response(addr):  # queue behind the confirmed send in flight
            if len(self._tasks) >= self.max_queued:
                self._failed(addr, OverflowError(f"{self.max_queued} replies already queued"))
                return
            task = asyncio.ensure_future(self._reply(reply, addr))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        try:  # the common case, without a task: send now; the echo's future reports
            com._confirm(encode(reply), addr, com.default_echo_timeout, _ReplyEcho(self, addr))
        except Exception as exc:
            self._failed(addr, exc)

    def _failed(self, addr: Addr, exc: BaseException) -> None:
        self.reply_errors += 1
        logger.warning("%s: reply to %s failed: %s", self.com.name, addr, exc)

    async def _reply(self, reply: list[Any], addr: Addr) -> None:
        try:
            await self.com.confirmed_send(reply, addr=addr)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(addr, exc)

    def close(self) -> None:
        """Close the communicator and cancel replies in flight."""
        for task in list(self._tasks):
            task.cancel()
        self.com.close()


class _ReplyEcho(asyncio.Future):  # type: ignore[type-arg]
    """The awaited echo of a reply nobody awaits: a failure (timeout, mismatch, lost
    peer) is reported as it is set, without a done-callback's extra event-loop pass."""

    def __init__(self, rig: RemoteRig, addr: Addr) -> None:
        super().__init__()
        self._rig = rig
        self._addr = addr

    def set_exception(self, exception: type | BaseException) -> None:
        super().set_exception(exception)
        exc = self.exception()  # retrieved: no "never retrieved" warning
        if exc is not None:
            self._rig._failed(self._addr, exc)


async def serve(
    uri: Any, name: str | None = None, reply: bool = True, **kwargs: Any
) -> tuple[EchoProtocol, RemoteRig | None]:
    """Listen on *uri*; with *reply*, answer each message as a remote rig does."""
    com = await EchoProtocol.server(uri, name=name, **kwargs)
    return com, (RemoteRig(com) if reply else None)
