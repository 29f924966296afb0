"""``sciwire ifcb``: run the instrument simulator, or monitor a hub's messages live."""

from __future__ import annotations

import asyncio
import logging
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

from sciwire.clikit import (
    JSON_OPTION,
    PORT,
    UserError,
    bind_error,
    describe,
    emit_json,
    fail,
    run_until_signal,
    silence_stdout,
)
from sciwire.errors import RemoteError, SciwireError
from sciwire.ifcb._signalr import MAX_MESSAGE_SIZE, MAX_RECORD_SIZE

__all__ = ["group", "parse_pattern"]

logger = logging.getLogger("sciwire.ifcb.cli")


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
@click.option(
    "--port", type=PORT, default=8092, show_default=True, help="Port (0 picks a free one)."
)
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
@click.option(
    "--max-message-size",
    type=click.IntRange(min=0),
    default=MAX_MESSAGE_SIZE,
    show_default=True,
    help="Largest WebSocket message taken from a client, bytes (0: no limit).",
)
@click.option(
    "--max-record-size",
    type=click.IntRange(min=0),
    default=MAX_RECORD_SIZE,
    show_default=True,
    help="Longest SignalR record taken from a client, also across frames (0: no limit).",
)
def sim(
    host: str,
    port: int,
    serial: str,
    rate: float,
    triggers: int,
    heartbeat: float,
    coalesce: bool,
    max_message_size: int,
    max_record_size: int,
) -> None:
    """Run an IFCB hub with a simulated instrument at /ifcbHub until interrupted."""
    from sciwire.ifcb import IFCBSimulator

    async def start() -> IFCBSimulator:
        simulator = IFCBSimulator(
            serial,
            rate=rate,
            triggers=triggers,
            heartbeat_interval=heartbeat,
            coalesce=coalesce,
            max_message_size=max_message_size,
            max_record_size=max_record_size,
        )
        try:
            await simulator.start(host, port)
        except OSError as exc:
            raise bind_error("IFCB simulator", host, port, exc) from exc
        click.echo(f"IFCB simulator listening on {simulator.url} serial {serial}")
        sys.stdout.flush()
        return simulator

    async def stop(simulator: IFCBSimulator) -> None:
        await simulator.stop(graceful=True)

    run_until_signal(start, stop)


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
@click.option(
    "--silence",
    default=5.0,
    show_default=True,
    help="Warn when the instrument has sent nothing for this many seconds (0: never).",
)
@JSON_OPTION
def monitor(
    url: str,
    serial: str,
    patterns: tuple[str, ...],
    count: int,
    commands: tuple[str, ...],
    silence: float,
    as_json: bool,
) -> None:
    """Connect to an IFCB hub at URL (ws://host:port/ifcbHub) and print messages live.

    Stops after --count messages, or on Ctrl-C or SIGTERM.
    """
    from sciwire.ifcb import AsyncIFCBClient

    _check_url(url)

    async def start() -> _Watch:
        client = AsyncIFCBClient(url, serial)
        watch = _Watch(client, asyncio.Event(), asyncio.Event())
        seen = 0

        def show(*fields: Any) -> None:
            nonlocal seen
            if count and seen >= count:
                return  # a burst may hold more than asked for: show exactly --count
            seen += 1
            try:
                if as_json:
                    emit_json({"message": [_plain(f) for f in fields]})
                else:
                    click.echo(_show(list(fields)))
            except BrokenPipeError:  # `... | head`: the reader has all it wanted
                silence_stdout()
                watch.done.set()
            if count and seen >= count:
                watch.done.set()

        for text in patterns or ("*",):
            client.on(parse_pattern(text), show)
        # any message at all from the instrument, whatever the patterns
        client.on((None,), lambda *fields: watch.heard.set())
        client.on_reconnect(lambda: click.echo("# reconnected", err=True))
        try:
            await client.connect()
        except SciwireError as exc:
            raise UserError(_connect_failure(url, exc)) from exc
        try:
            for command in commands:
                await client.relay_message_to_host(command)
        except BaseException:
            await client.disconnect()
            raise
        return watch

    async def until(watch: _Watch) -> None:
        if silence > 0:
            try:
                await asyncio.wait_for(watch.heard.wait(), silence)
            except asyncio.TimeoutError:
                logger.warning(
                    "no message from instrument %s at %s in %g s: check the serial"
                    " (a hub relays only its own instrument's messages)",
                    serial,
                    url,
                    silence,
                )
        await watch.done.wait()

    async def stop(watch: _Watch) -> None:
        await watch.client.disconnect()

    run_until_signal(start, stop, until=until)


@dataclass
class _Watch:
    client: Any
    done: asyncio.Event  # --count messages shown
    heard: asyncio.Event  # anything at all came from the instrument


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        fail(f"{url!r} is not a hub URL: expected ws://HOST:PORT/ifcbHub (or wss://, http://)")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        fail(f"{url!r} has a bad port: expected ws://HOST:PORT/ifcbHub")


def _connect_failure(url: str, exc: SciwireError) -> str:
    text = f"cannot connect to {url}: {describe(exc)}"
    code = getattr(exc, "code", None)
    if (isinstance(exc, RemoteError) and code in (404, 405)) or "negotiate" in text:
        path = urllib.parse.urlsplit(url).path
        if not path.rstrip("/").endswith("ifcbHub"):
            text += f" (not a SignalR hub; did you mean {url.rstrip('/')}/ifcbHub?)"
        else:
            text += " (not a SignalR hub at that path)"
    return text


def _plain(value: Any) -> Any:
    """A JSON form of one parsed field (images by size, DAQ values as a map)."""
    if hasattr(value, "base64"):
        return {"image_base64_chars": len(value.base64)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
