"""``sciwire fleet``: run a bridge, watch events, send commands, check health.

    sciwire fleet bridge CONFIG.toml
    sciwire fleet watch PATTERN... [--since all|new|SEQ|ISO-TIME] [--durable NAME] [--json]
    sciwire fleet send ifcb SERIAL MESSAGE | sciwire fleet send rig NAME OP [JSON-ARG...]
    sciwire fleet status [--json]
    sciwire fleet resync --stream SHORE
    sciwire fleet demo

PATTERN: ``ifcb`` or ``ifcb:valuechanged:pausestate`` (an IFCB prefix), ``rig`` or
``rig:expinit|expend``, ``samp`` or ``samp:table.*``, or ``all``. The NATS server comes
from ``--server`` or ``SCIWIRE_NATS`` (default nats://127.0.0.1:4222).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import signal
import sys
from typing import Any

import click

__all__ = ["group", "parse_pattern"]


def parse_pattern(text: str) -> list[Any]:
    """The handler patterns a PATTERN argument stands for.

    Raises:
        click.BadParameter: an unknown kind or event.
    """
    from sciwire.rig import ExpMessage

    kind, _, rest = text.partition(":")
    if kind == "all":
        return [(None,), ExpMessage.any(), "*"]
    if kind == "ifcb":
        return [tuple(rest.split(":")) if rest else (None,)]
    if kind == "rig":
        try:
            return [ExpMessage.validate(rest) if rest else ExpMessage.any()]
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
    if kind == "samp":
        return [rest or "*"]
    raise click.BadParameter(f"{text!r}: start with ifcb, rig, samp or all")


def _since(text: str) -> Any:
    if text in ("all", "new", "last"):
        return text
    if text.isdigit():
        return int(text)
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"--since {text!r}: all, new, a sequence or an ISO time") from exc


def _credentials(user: str | None, password: str | None, creds: str | None) -> Any:
    if user:
        return (user, password or "")
    return creds


def _connection(func: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--server",
                envvar="SCIWIRE_NATS",
                default="nats://127.0.0.1:4222",
                show_default=True,
                help="NATS URL (comma-separated for several).",
            ),
            click.option("--user", envvar="SCIWIRE_NATS_USER", help="NATS user."),
            click.option("--password", envvar="SCIWIRE_NATS_PASSWORD", help="NATS password."),
            click.option("--creds", type=click.Path(), help="NATS .creds file."),
            click.option("--stream", default="SCIWIRE", show_default=True),
            click.option("--domain", default=None, help="JetStream domain of the stream."),
        ]
    ):
        func = option(func)
    return func


def _fleet(server: str, user: str | None, password: str | None, creds: str | None,
           stream: str, domain: str | None, name: str) -> Any:  # fmt: skip
    from sciwire.fleet import AsyncFleet

    return AsyncFleet(
        server.split(","),
        _credentials(user, password, creds),
        stream=stream,
        domain=domain,
        name=name,
    )


def _run(coro: Any) -> Any:
    # a SciwireError (ConfigError too) becomes the one error line at the root command
    return asyncio.run(coro)


@click.group(name="fleet")
def group() -> None:
    """Many instruments, many consumers, across machines, on NATS JetStream."""


@group.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def bridge(config: str, verbose: bool) -> None:
    """Connect to every instrument in CONFIG and publish their events into JetStream."""
    from sciwire.clikit import run_until_signal, setup_logging, verbosity
    from sciwire.fleet import Bridge, load_config

    if verbose and verbosity() < 1:
        # the root command owns logging (and undoes it): -v here is its -v, so each
        # record is printed once, in one format
        setup_logging(1, None)
    cfg = load_config(config)

    async def start() -> Bridge:
        bridge = Bridge(cfg)
        await bridge.start()
        click.echo(
            f"bridge {cfg.name}: {len(bridge.instruments)} instruments -> stream "
            f"{cfg.stream.name} on {', '.join(cfg.nats.servers)}",
            err=True,
        )
        return bridge

    async def stop(bridge: Bridge) -> None:
        await bridge.stop()
        health = bridge.health()
        click.echo(
            f"bridge {cfg.name} stopped: {health['stored']} stored, "
            f"{health['dropped']} dropped, {health['pending']} unsent",
            err=True,
        )

    run_until_signal(start, stop)


@group.command()
@click.argument("patterns", nargs=-1, required=True)
@click.option("--since", default="new", show_default=True, help="all, new, last, SEQ or ISO time.")
@click.option("--durable", default=None, help="Resume from (and keep) this consumer's position.")
@click.option("--instrument", default=None, help="Only this IFCB serial or rig name.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--count", type=int, default=0, help="Exit after this many events.")
@_connection
def watch(
    patterns: tuple[str, ...],
    since: str,
    durable: str | None,
    instrument: str | None,
    as_json: bool,
    count: int,
    **conn: Any,
) -> None:
    """Print the events matching PATTERN(s) as they arrive (or from --since)."""
    wanted = [p for text in patterns for p in parse_pattern(text)]
    start = _since(since)

    async def main() -> None:
        fleet = _fleet(name="sciwire-watch", **conn)
        await fleet.connect()
        enough = asyncio.Event()
        seen = 0

        def show(event: Any) -> None:
            nonlocal seen
            if as_json:
                click.echo(json.dumps(event.to_json(), default=str))
            else:
                click.echo(
                    f"{event.kind} {event.instrument} #{event.seq} {event.name} "
                    f"{json.dumps(event.to_json().get('fields', event.data), default=str)[:200]}"
                )
            seen += 1
            if count and seen >= count:
                enough.set()

        for pattern in wanted:
            # SAMP subjects carry no instrument: --instrument applies to IFCB and rigs
            fleet.on(pattern, show, instrument=None if isinstance(pattern, str) else instrument)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await fleet.start(start, durable)
            waits = [asyncio.ensure_future(e.wait()) for e in (enough, stop)]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
        finally:
            sys.stdout.flush()
            await fleet.close()

    _run(main())


@group.command()
@click.argument("kind", type=click.Choice(["ifcb", "rig"]))
@click.argument("instrument")
@click.argument("words", nargs=-1, required=True)
@click.option("--timeout", type=float, default=30.0, show_default=True)
@_connection
def send(kind: str, instrument: str, words: tuple[str, ...], timeout: float, **conn: Any) -> None:
    """Send a command: ``ifcb SERIAL MESSAGE`` or ``rig NAME OP [JSON-ARG...]``."""

    async def main() -> Any:
        fleet = _fleet(name="sciwire-send", **conn)
        await fleet.connect()
        try:
            if kind == "ifcb":
                return await fleet.relay_message_to_host(instrument, " ".join(words), timeout)
            args = []
            for word in words[1:]:
                try:
                    args.append(json.loads(word))
                except ValueError:
                    args.append(word)
            return await fleet.rig(instrument, words[0], *args, timeout=timeout)
        finally:
            await fleet.close()

    click.echo(json.dumps({"ok": True, "result": _run(main())}, default=str))


@group.command()
@click.option("--wait", type=float, default=0.5, show_default=True, help="Seconds to collect.")
@click.option("--json", "as_json", is_flag=True)
@_connection
def status(wait: float, as_json: bool, **conn: Any) -> None:
    """Show every running bridge's health and the stream's state."""

    async def main() -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        fleet = _fleet(name="sciwire-status", **conn)
        await fleet.connect()
        try:
            reports = await fleet.bridges(wait)
            try:
                info = await fleet.stream_info()
            except Exception:  # a watcher-only user may not read stream info
                info = None
            return reports, info
        finally:
            await fleet.close()

    reports, info = _run(main())
    if as_json:
        click.echo(json.dumps({"bridges": reports, "stream": info}, default=str))
        return
    if info is not None:
        click.echo(
            f"stream {info['stream']}: {info['messages']} events, {info['bytes']} bytes, "
            f"seq {info['first_seq']}..{info['last_seq']}, {info['consumers']} consumers, "
            f"R{info['replicas']}"
        )
    if not reports:
        click.echo("no bridge answered")
    for r in reports:
        click.echo(
            f"bridge {r['bridge']}: {r['connected']}/{r['configured']} instruments connected, "
            f"nats {'up' if r['nats_connected'] else 'DOWN'}, lag {r['lag']} s, "
            f"pending {r['pending']}, stored {r['stored']}, dropped {r['dropped']}, "
            f"malformed {r['malformed']}"
        )
        for inst in r["instruments"]:
            click.echo(
                f"  {inst['kind']:4} {inst['name']:16} "
                f"{'up  ' if inst['connected'] else 'AWAY'} seq {inst['seq']}"
            )


@group.command()
@_connection
def resync(**conn: Any) -> None:
    """Restart --stream's sourcing now (the shore side, once a ship's link is back)."""

    async def main() -> int:
        from sciwire.fleet import resync_sources

        fleet = _fleet(name="sciwire-resync", **conn)
        await fleet.connect()
        try:
            assert fleet.js is not None
            return await resync_sources(fleet.js, conn["stream"])
        finally:
            await fleet.close()

    click.echo(f"{_run(main())} sources of {conn['stream']} restarted")


@group.command()
def demo() -> None:
    """Run a NATS server, 3 IFCB simulators, 2 rigs, a bridge and a watcher; print what flowed."""
    from sciwire.fleet.demo import run_async

    lines: list[str] = []
    row = _run(run_async(lines))
    for line in lines:
        click.echo(line)
    click.echo(f"{'ok' if row.ok else 'FAILED'}: {row.checked}")
    if not row.ok:
        sys.exit(1)
