"""``sciwire ifcb``: run the instrument simulator, or monitor a hub's messages live."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import click

from sciwire.errors import SciwireError

__all__ = ["group", "parse_pattern"]


def parse_pattern(text: str) -> tuple[Any, ...]:
    """``"valuechanged,*,started"`` -> ``("valuechanged", None, "started")``."""
    fields = tuple(None if f in ("*", "") else f for f in text.split(","))
    return fields


def _show(fields: list[Any]) -> str:
    parts = []
    for value in fields:
        if hasattr(value, "base64"):
            parts.append(f"<image {len(value.base64)} b64 chars>")
        elif isinstance(value, list) and value and isinstance(value[0], tuple):
            parts.append(f"<{len(value)} ROIs>")
        else:
            parts.append(repr(value) if not isinstance(value, str) else value)
    return " ".join(parts)


@click.group(name="ifcb")
def group() -> None:
    """IFCB SignalR client and instrument simulator."""


@group.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8092, show_default=True, help="Port (0 picks a free one).")
@click.option("--serial", default="111-111-111", show_default=True, help="Instrument serial.")
@click.option("--rate", default=20.0, show_default=True, help="Triggers per second in routines.")
@click.option("--triggers", default=10, show_default=True, help="Triggers per runsample.")
@click.option("--heartbeat", default=5.0, show_default=True, help="Heartbeat interval, s.")
@click.option(
    "--coalesce/--frame-per-message",
    default=True,
    show_default=True,
    help="Batch queued messages into one WebSocket frame, or send one frame each.",
)
def sim(
    host: str,
    port: int,
    serial: str,
    rate: float,
    triggers: int,
    heartbeat: float,
    coalesce: bool,
) -> None:
    """Run an IFCB hub with a simulated instrument at /ifcbHub until interrupted."""
    from sciwire.ifcb import IFCBSimulator

    async def main() -> None:
        simulator = IFCBSimulator(
            serial, rate=rate, triggers=triggers, heartbeat_interval=heartbeat, coalesce=coalesce
        )
        await simulator.start(host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        click.echo(f"IFCB simulator listening on {simulator.url} serial {serial}")
        try:
            await stop.wait()
        finally:
            await simulator.stop(graceful=True)

    asyncio.run(main())


@group.command()
@click.argument("url")
@click.argument("serial")
@click.option(
    "--pattern",
    "patterns",
    multiple=True,
    help="Leading fields to match, comma-separated, '*' for any (repeatable). Default: all.",
)
@click.option("--count", default=0, help="Exit after this many matching messages (0: never).")
@click.option("--send", "commands", multiple=True, help="Relay this command after connecting.")
def monitor(
    url: str, serial: str, patterns: tuple[str, ...], count: int, commands: tuple[str, ...]
) -> None:
    """Connect to an IFCB hub and print parsed messages live."""
    from sciwire.ifcb import AsyncIFCBClient

    async def main() -> None:
        client = AsyncIFCBClient(url, serial)
        done = asyncio.Event()
        seen = 0

        def show(*fields: Any) -> None:
            nonlocal seen
            click.echo(_show(list(fields)))
            seen += 1
            if count and seen >= count:
                done.set()

        for text in patterns or ("*",):
            client.on(parse_pattern(text), show)
        client.on_reconnect(lambda: click.echo("# reconnected", err=True))
        await client.connect()
        try:
            for command in commands:
                await client.relay_message_to_host(command)
            await done.wait()
        finally:
            await client.disconnect()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except SciwireError as exc:
        raise click.ClickException(str(exc)) from exc
