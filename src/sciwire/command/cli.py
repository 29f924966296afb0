"""``sciwire command``: serve a simulated CryoSPARC instance, or call a command server."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

import click

from sciwire.command._errors import CommandError

__all__ = ["group"]


@click.group(name="command")
def group() -> None:
    """CryoSPARC command_core/vis/rtp JSON-RPC: simulated server and client."""


@group.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=39002,
    show_default=True,
    help="command_core port (vis listens on port+1, rtp on port+3; 0 = any free ports).",
)
@click.option("--license", "license_id", default=None, help="Require this License-ID header.")
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    help="Job lifecycle speed-up (a job takes 5 s at speed 1).",
)
@click.option("--fast", is_flag=True, help="Shorthand for --speed 50.")
def serve(host: str, port: int, license_id: str | None, speed: float, fast: bool) -> None:
    """Serve a simulated CryoSPARC command_core (with command_vis and command_rtp)."""
    from sciwire.command._simulator import simulated_servers

    _, servers = simulated_servers(
        host=host,
        base_port=port - 2 if port else 0,
        license_id=license_id,
        speed=50.0 if fast else speed,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            for server in servers:
                await server.start()
                click.echo(f"{server.name} listening on {server.url}", err=True)
            await stop.wait()
        finally:
            for server in servers:
                await server.stop()

    try:
        asyncio.run(run())
    except OSError as exc:
        raise click.ClickException(f"cannot serve: {exc}") from exc


@group.command()
@click.argument("method")
@click.argument("params", nargs=-1)
@click.option("--host", default="localhost", show_default=True)
@click.option("--port", default=39002, show_default=True)
@click.option("--license", "license_id", default=None, help="License-ID header to send.")
@click.option("--timeout", default=30.0, show_default=True)
def call(
    method: str,
    params: tuple[str, ...],
    host: str,
    port: int,
    license_id: str | None,
    timeout: float,
) -> None:
    """Call METHOD with PARAMS (each a JSON value, or NAME=JSON for keyword params)."""
    from sciwire.command._client import CommandClient

    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for raw in params:
        name, sep, value = raw.partition("=")
        if sep and name.isidentifier():
            kwargs[name] = _json_or_text(value)
        else:
            args.append(_json_or_text(raw))
    headers = {"License-ID": license_id} if license_id else {}
    try:
        with CommandClient(
            host=host, port=port, headers=headers, timeout=int(timeout), retries=1
        ) as cli:
            result = cli._call(method, tuple(args), kwargs)
    except (CommandError, TypeError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(json.dumps(result, indent=2))


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value
