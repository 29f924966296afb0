"""``sciwire command``: serve a simulated CryoSPARC instance, or call a command server."""

from __future__ import annotations

import json
from typing import Any

import click

from sciwire.clikit import (
    JSON_OPTION,
    PORT,
    bind_error,
    emit_json,
    fail,
    run_until_signal,
    verbosity,
)
from sciwire.command import CommandConnectError, CommandError, CommandTimeout

__all__ = ["group"]


@click.group(name="command")
def group() -> None:
    """CryoSPARC command_core/vis/rtp JSON-RPC: simulated server and client."""


@group.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=PORT,
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

    async def start() -> list[Any]:
        started = []
        try:
            for server in servers:
                try:
                    await server.start()
                except OSError as exc:
                    # three ports: name the one that is taken
                    raise bind_error(server.name, host, server.port, exc) from exc
                started.append(server)
                click.echo(f"{server.name} listening on {server.url}", err=True)
        except BaseException:
            for server in started:
                await server.stop()
            raise
        return started

    async def stop(started: list[Any]) -> None:
        for server in started:
            await server.stop()

    run_until_signal(start, stop)


@group.command()
@click.argument("method")
@click.argument("params", nargs=-1)
@click.option("--host", default="localhost", show_default=True)
@click.option("--port", type=PORT, default=39002, show_default=True)
@click.option("--license", "license_id", default=None, help="License-ID header to send.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the answer.")
@JSON_OPTION
def call(
    method: str,
    params: tuple[str, ...],
    host: str,
    port: int,
    license_id: str | None,
    timeout: float,
    as_json: bool,
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
    where = f"{host}:{port}"
    try:
        with CommandClient(
            host=host, port=port, headers=headers, timeout=int(timeout), retries=1
        ) as cli:
            result = cli.call(method, *args, **kwargs)
    except CommandConnectError as exc:
        fail(f"cannot connect to {where} to call {method}: {_reason(exc)}")
    except CommandTimeout as exc:
        fail(f"no answer from {where} within {timeout:g} s to {method}: {_reason(exc)}")
    except CommandError as exc:
        fail(f"{method} failed on {where}: {_server_error(exc)}")
    except TypeError as exc:
        raise click.UsageError(str(exc)) from exc
    if as_json:
        emit_json({"method": method, "result": result})
    else:
        click.echo(json.dumps(result, indent=2))


def _reason(exc: CommandError) -> str:
    # the innermost OS error says it best ("Connection refused"); else the client's reason
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return getattr(exc, "reason", "") or str(exc)


def _server_error(exc: CommandError) -> str:
    """The server's error as its last traceback line (all of it with -v)."""
    data = exc.data if isinstance(exc.data, dict) else {}
    tb = data.get("traceback")
    if isinstance(tb, str) and tb.strip():
        lines = tb.strip().splitlines()
        if verbosity():
            return "\n" + "\n".join(lines)
        return lines[-1].strip()
    return f"code {exc.code}: {_reason(exc)}"


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value
