"""The experiment steps of a communicator whose every message is confirmed by its echo.

Each step builds its message as :class:`~sciwire.rig._protocol.Service` does and
sends it with ``confirmed_send``, which the transport layer (``EchoProtocol``)
provides; kept apart so that what a step sends and how it is confirmed stay two
pieces.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sciwire.rig._communicator import Addr, Communicator
from sciwire.rig._protocol import ExpMessage

__all__ = ["ConfirmedSteps"]


class ConfirmedSteps(Communicator):
    """A communicator's experiment steps, each a confirmed send of the step's message."""

    async def confirmed_send(
        self, data: Any, addr: Addr | None = None, timeout: float | None = None
    ) -> None:
        """Send *data* and wait for its byte-for-byte echo (the transport's job)."""
        raise NotImplementedError

    async def init(self, data: Any = None, addr: Addr | None = None) -> None:
        """Send EXPINIT and await its echo."""
        await self.confirmed_send(super().init(data), addr=addr)

    async def start(self, exp_ref: Any, data: Any = None, addr: Addr | None = None) -> None:
        """Send EXPSTART (exp_ref ``yyyy-mm-dd_n_subject`` or a dict) and await its echo."""
        await self.confirmed_send(super().start(exp_ref, data), addr=addr)

    async def stop(
        self, data: Any = None, immediately: bool = False, addr: Addr | None = None
    ) -> None:
        """Send EXPEND (EXPINTERRUPT if *immediately*) and await its echo."""
        await self.confirmed_send(super().stop(data, immediately=immediately), addr=addr)

    async def status(self, status: Any, addr: Addr | None = None) -> None:
        """Send EXPSTATUS and await its echo."""
        await self.confirmed_send(super().status(status), addr=addr)

    async def info(self, status: Any, data: Any = None, addr: Addr | None = None) -> None:
        """Send EXPINFO and await its echo."""
        await self.confirmed_send(super().info(status, data), addr=addr)

    async def cleanup(self, data: Any = None, addr: Addr | None = None) -> None:
        """Send EXPCLEANUP and await its echo."""
        await self.confirmed_send(super().cleanup(data), addr=addr)

    async def alyx(self, alyx: Any = None, addr: Addr | None = None) -> Any:
        """Send our Alyx token, or (no logged-in *alyx*) ask for the peer's and return it.

        Returns:
            None when sending; when asking, the peer's ``[base_url, {user: token}]``.
        """
        message = super().alyx(alyx)
        if all(message):
            await self.confirmed_send(message, addr=addr)
            return None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.assign_callback(ExpMessage.ALYX, fut)
        try:
            await self.confirmed_send(message, addr=addr)
            token, _ = await fut
        finally:
            if not fut.done() or fut.cancelled():  # still registered
                self.clear_callbacks(ExpMessage.ALYX, fut)
        return token
