"""The bridge's SAMP side: a client subscribed to every mtype ("snooping"), each
notification or call it receives published as a fleet event; calls are answered
``samp.ok`` so the sender is not left waiting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

from sciwire.errors import SciwireError
from sciwire.fleet._config import BridgeConfig, SampSpec
from sciwire.fleet._reconnect import hold, pause
from sciwire.fleet._schema import samp_event


class _Seat(Protocol):
    """What the SAMP side reads and writes of its instrument's record in the bridge."""

    name: str
    seq: int
    connected: bool


class _Host(Protocol):
    """What the SAMP side needs of the bridge that runs it (the seam: no import of it)."""

    config: BridgeConfig
    samp_client: Any

    def emit_event(self, inst: Any, built: tuple[str, dict[str, Any], list[bytes]]) -> None: ...

    def drop_malformed(self, inst: Any, what: Any, exc: Exception) -> None: ...


__all__ = ["run_samp"]

logger = logging.getLogger(__name__)


async def run_samp(bridge: _Host, spec: SampSpec, inst: _Seat) -> None:
    """Join the hub (retrying while it is away) and publish what arrives, until cancelled."""
    from sciwire.samp import AsyncSAMPIntegratedClient
    from sciwire.samp.lockfile_helpers import read_lockfile

    def notified(key: str, sender: str, mtype: str, params: Any, extra: Any) -> None:
        _publish(bridge, inst, mtype, params, sender, call=False)

    attempt = 0
    while True:
        client = AsyncSAMPIntegratedClient(
            name=f"sciwire-fleet-{bridge.config.name}", description="sciwire fleet bridge"
        )

        async def called(
            key: str,
            sender: str,
            msg_id: str,
            mtype: str,
            params: Any,
            extra: Any,
            client: Any = client,
        ) -> None:
            _publish(bridge, inst, mtype, params, sender, call=True)
            with contextlib.suppress(SciwireError, OSError, asyncio.TimeoutError):
                await asyncio.wait_for(client.ereply(msg_id, "samp.ok", result={}), 10)

        try:
            hub_params = read_lockfile(spec.lockfile) if spec.lockfile else None
            await client.connect(hub_params=hub_params)
            await client.bind_receive_notification("*", notified)
            await client.bind_receive_call("*", called)
        except (SciwireError, OSError) as exc:
            with contextlib.suppress(Exception):
                await client.disconnect()
            await pause(attempt, "SAMP hub", exc)
            attempt += 1
            continue
        attempt = 0
        bridge.samp_client = client
        try:
            await hold(inst, client)
        finally:
            bridge.samp_client = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 5)


def _publish(bridge: _Host, inst: _Seat, mtype: str, params: Any, sender: str, call: bool) -> None:
    try:
        built = samp_event(inst.name, inst.seq + 1, time.time(), mtype, params, sender, call)
        bridge.emit_event(inst, built)
    except (SciwireError, ValueError, TypeError) as exc:
        bridge.drop_malformed(inst, mtype, exc)
