"""``sciwire rig``: stand up a remote rig, or send one experiment message."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import dataclass
from typing import Any

import click

from sciwire.clikit import (
    JSON_OPTION,
    UserError,
    bind_error,
    describe,
    emit_json,
    fail,
    run_until_signal,
)
from sciwire.errors import SciwireError
from sciwire.rig._client import EchoProtocol
from sciwire.rig._framing import DEFAULT_MAX_TOTAL_BUFFER
from sciwire.rig._protocol import ExpMessage
from sciwire.rig._server import RemoteRig
from sciwire.rig._uri import STREAM_SCHEMES, parse_uri

__all__ = ["group"]

_SCHEMES = ("udp", "tcp", "ws", "wss")


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@click.group(name="rig")
def group() -> None:
    """IBL rig echo protocol (iblutil.io.net) over UDP or TCP."""


@group.command()
@click.argument("uri")
@click.option("--name", "-n", default=None, help="Label of this rig.")
@click.option("--reply", is_flag=True, help="Answer each message with the same event.")
@click.option("--count", type=int, default=0, help="Exit after this many messages (0: never).")
@click.option(
    "--max-total-buffer",
    type=click.IntRange(min=1),
    default=None,
    help=(
        "tcp:// only: most bytes of unfinished messages held across all connections"
        f" [default: {DEFAULT_MAX_TOTAL_BUFFER}]; the connection that passes it is closed."
    ),
)
@JSON_OPTION
def serve(
    uri: str,
    name: str | None,
    reply: bool,
    count: int,
    max_total_buffer: int | None,
    as_json: bool,
) -> None:
    """Listen on URI (udp://host:port, tcp://..., [::1] works; port 0 picks one).

    Prints the bound URI, then one line per message: EVENT DATA-JSON HOST:PORT (with
    --json: {"event", "data", "from"} objects). Stops on Ctrl-C or SIGTERM.
    """
    _check_scheme(uri)
    stream = uri.partition("://")[0].lower() in STREAM_SCHEMES
    if max_total_buffer is not None and not stream:
        fail(f"{uri}: --max-total-buffer applies to tcp:// (a UDP datagram is never held)")

    async def start() -> _Served:
        try:
            com = await EchoProtocol.server(uri, name=name)
        except OSError as exc:
            # the URI parsed before the bind failed; its defaults (udp, port 11001) apply
            _, host, port = parse_uri(uri, resolve_host=False, allow_port_zero=True)
            raise bind_error("rig", host, port, exc) from exc
        except (SciwireError, ValueError) as exc:
            raise UserError(f"cannot serve on {uri}: {describe(exc)}") from exc
        if max_total_buffer is not None:
            # read on each chunk, and no chunk has been read yet
            com.max_total_buffer_size = max_total_buffer
        return _Served(com, RemoteRig(com) if reply else None, asyncio.Event())

    async def stop(served: _Served) -> None:
        if served.rig is not None:
            served.rig.close()
        await served.com.wait_closed()

    async def until(served: _Served) -> None:
        await _serve(served, count, as_json)

    run_until_signal(start, stop, until=until)


class _NoReply(Exception):
    """The message was echoed, but no reply came within --wait-reply."""


@dataclass
class _Served:
    com: EchoProtocol
    rig: RemoteRig | None
    done: asyncio.Event


def _check_scheme(uri: str) -> None:
    scheme, sep, _ = uri.partition("://")
    if sep and scheme.lower() not in _SCHEMES:
        fail(f"{uri}: the scheme {scheme!r} is not one of {'/'.join(_SCHEMES)}")


async def _serve(served: _Served, count: int, as_json: bool) -> None:
    com, done = served.com, served.done
    seen = 0

    def show(data: list[Any], addr: Any, event: ExpMessage) -> None:
        nonlocal seen
        seen += 1
        if as_json:
            emit_json({"event": event.name, "data": data, "from": f"{addr[0]}:{addr[1]}"})
        else:
            click.echo(f"{event.name} {json.dumps(data)} {addr[0]}:{addr[1]}")
        if count and seen >= count:
            done.set()

    com.assign_callback(ExpMessage.any(), show)
    click.echo(f"listening on {com.server_uri}")
    sys.stdout.flush()
    await done.wait()
    await asyncio.sleep(0.05)  # let a --reply answer to the last message go out


@group.command()
@click.argument("uri")
@click.argument("event")
@click.argument("data", nargs=-1)
@click.option("--timeout", type=float, default=1.0, show_default=True, help="Echo timeout (s).")
@click.option(
    "--wait-reply", type=float, default=None, help="Also wait this long for the same event back."
)
@JSON_OPTION
def send(
    uri: str,
    event: str,
    data: tuple[str, ...],
    timeout: float,
    wait_reply: float | None,
    as_json: bool,
) -> None:
    """Send EVENT (name or code) with DATA (each argument JSON, else text) to URI.

    The message is ``[event, *DATA]`` (``[event, null]`` with no DATA); it is confirmed
    by its echo. Exit status 1 on a timeout or error.
    """
    try:
        code = ExpMessage.validate(int(event) if event.isdigit() else event, allow_bitwise=False)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="EVENT") from exc
    if not code:
        raise click.BadParameter("code 0 is the error report, not an event", param_hint="EVENT")
    args = [_json_arg(d) for d in data] or [None]
    _check_scheme(uri)
    try:
        reply = asyncio.run(_send(uri, code, args, timeout, wait_reply))
    except _NoReply as exc:
        raise UserError(f"{uri}: echoed, but no {code.name} reply within {wait_reply:g} s") from exc
    except (TimeoutError, asyncio.TimeoutError) as exc:
        raise UserError(f"{uri}: no echo within {timeout:g} s (is a rig listening?)") from exc
    except (SciwireError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"{uri}: {describe(exc)}") from exc
    if as_json:
        emit_json({"confirmed": code.name, "data": args})
        if reply is not None:
            emit_json({"reply": code.name, "data": reply})
        return
    click.echo(f"confirmed {code.name} {json.dumps(args)}")
    if reply is not None:
        click.echo(f"reply {code.name} {json.dumps(reply)}")


async def _send(
    uri: str, event: ExpMessage, args: list[Any], timeout: float, wait_reply: float | None
) -> Any:
    # under the sciwire logger (not iblutil's logger named after the URI), so that -v
    # shows its transport errors and a plain run keeps to the one error line
    com = await EchoProtocol.client(uri, log=logging.getLogger("sciwire.rig.link"))
    try:
        waiter = asyncio.ensure_future(com.on_event(event)) if wait_reply else None
        try:
            await com.confirmed_send([event, *args], timeout=timeout)
            if waiter is None:
                return None
            try:
                data, _ = await asyncio.wait_for(waiter, wait_reply)
            except (TimeoutError, asyncio.TimeoutError) as exc:
                raise _NoReply from exc
            return data
        finally:
            if waiter is not None and not waiter.done():
                waiter.cancel()
    finally:
        await com.wait_closed()
