"""``sciwire samp``: run a hub, send a message, snoop on the traffic.

    sciwire samp hub [--no-web] [--web-auth deny|allow] [--lockfile PATH] [--timeout S]
    sciwire samp send MTYPE key=value... [--to ID] [--mode notify|call|sync]
    sciwire samp snoop

``send`` and ``snoop`` find the hub like every SAMP client (``SAMP_HUB`` or
``~/.samp``) unless ``--lockfile`` names one.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import click

__all__ = ["group"]

LOG_LEVELS = ["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]


def _hub_params(lockfile: str | None) -> dict[str, str] | None:
    if lockfile is None:
        return None
    from sciwire.samp._protocol import read_lockfile

    try:
        return read_lockfile(lockfile)
    except OSError as exc:
        raise click.ClickException(f"cannot read lockfile {lockfile}: {exc}") from exc


def _connect(name: str, lockfile: str | None) -> Any:
    from sciwire.samp import SAMPHubError, SAMPIntegratedClient

    client = SAMPIntegratedClient(name=name, description=f"sciwire samp {name.split('-')[-1]}")
    try:
        client.connect(hub_params=_hub_params(lockfile))
    except SAMPHubError as exc:
        raise click.ClickException(f"no SAMP hub: {exc}") from exc
    return client


def _parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="PARAMS")
        if value[:1] in "[{":  # a JSON list or map, for structured SAMP params
            try:
                params[key] = json.loads(value)
                continue
            except json.JSONDecodeError:
                pass
        params[key] = value
    return params


def _emit(record: dict[str, Any]) -> None:
    click.echo(json.dumps(record, sort_keys=True))


@click.group(name="samp")
def group() -> None:
    """SAMP hub and clients (Standard Profile, Web Profile on the hub)."""


@group.command()
@click.option("--no-web", "-w", "--no-web-profile", "no_web", is_flag=True,
              help="Do not serve the Web Profile.")  # fmt: skip
@click.option(
    "--web-auth",
    type=click.Choice(["deny", "allow", "prompt"]),
    default="deny",
    show_default=True,
    help="Web Profile registration policy (prompt: ask on this terminal, as samp_hub).",
)
@click.option("--web-port", type=int, default=21012, show_default=True, help="Web Profile port.")
@click.option("--lockfile", "-f", type=click.Path(dir_okay=False), help="Lockfile to write.")
@click.option("--timeout", "-t", type=float, default=0,
              help="Stop after S idle seconds (0: never).")  # fmt: skip
@click.option("--addr", "-d", default=None, help="Address to bind (default 127.0.0.1).")
# samp_hub's other options (astropy's hub_script), same short and long names
@click.option("--secret", "-k", default=None, help="Custom registration secret.")
@click.option("--port", "-p", type=int, default=0, help="Standard Profile port (0: any).")
@click.option("--pool-size", "-P", type=int, default=20, show_default=True,
              help="Connections kept per callback endpoint.")  # fmt: skip
@click.option("--client-timeout", "-c", type=float, default=0,
              help="Unregister clients idle for S seconds (0: never).")  # fmt: skip
@click.option("--log-level", "-L", type=click.Choice(LOG_LEVELS, case_sensitive=False),
              default=None, help="Level of the sciwire.samp loggers.")  # fmt: skip
@click.option("--log-output", "-O", type=click.Path(dir_okay=False), default=None,
              help="Write the hub's log messages to FILE.")  # fmt: skip
@click.option("--label", "-l", default="", help="hub.label for the lockfile.")
@click.option("--multi", "-m", is_flag=True,
              help="Multi-instance mode: a lockfile in ~/.samp-1/.")  # fmt: skip
def hub(
    no_web: bool,
    web_auth: str,
    web_port: int,
    lockfile: str | None,
    timeout: float,
    addr: str | None,
    secret: str | None,
    port: int,
    pool_size: int,
    client_timeout: float,
    log_level: str | None,
    log_output: str | None,
    label: str,
    multi: bool,
) -> None:
    """Run a SAMP hub until Ctrl-C, SIGTERM or the idle timeout."""
    from sciwire.samp import SAMPHubError, SAMPHubServer
    from sciwire.samp.hub_script import log, log_to
    from sciwire.samp.web_profile import TerminalConsent

    if log_level is not None:
        log.setLevel(log_level.upper())
    server = SAMPHubServer(
        secret=secret,
        addr=addr,
        port=port,
        lockfile=lockfile,
        timeout=timeout,
        client_timeout=client_timeout,
        mode="multiple" if multi else "single",
        label=label,
        web_profile=not no_web,
        web_port=web_port,
        pool_size=pool_size,
        web_auth=TerminalConsent() if web_auth == "prompt" else web_auth,
    )
    with log_to(log_output or ""):
        try:
            server.start()
        except SAMPHubError as exc:
            click.echo(f"sciwire samp hub: {exc}", err=True)
            sys.exit(1)
        web = f", web profile on port {server.web_port}" if not no_web else ""
        click.echo(f"SAMP hub {server.url} (lockfile {server.lockfile}{web})", err=True)
        server.wait()  # until Ctrl-C, SIGTERM or the idle timeout; removes the lockfile


@group.command()
@click.argument("mtype")
@click.argument("params", nargs=-1)
@click.option("--to", "recipient", default=None, help="Recipient client id (default: all).")
@click.option(
    "--mode",
    type=click.Choice(["notify", "call", "sync"]),
    default="notify",
    show_default=True,
    help="notify, asynchronous call (waits for the responses), or callAndWait.",
)
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait.")
@click.option("--lockfile", type=click.Path(dir_okay=False), help="Hub lockfile to use.")
def send(
    mtype: str,
    params: tuple[str, ...],
    recipient: str | None,
    mode: str,
    timeout: float,
    lockfile: str | None,
) -> None:
    """Send MTYPE with key=value params; print one JSON line per recipient or response."""
    from sciwire.samp import SAMPProxyError

    message = {"samp.mtype": mtype, "samp.params": _parse_params(params)}
    client = _connect("sciwire-send", lockfile)
    failed = False
    try:
        if mode == "notify":
            if recipient:
                client.notify(recipient, message)
                sent = [recipient]
            else:
                sent = client.notify_all(message)
            for rid in sent:
                _emit({"notified": rid})
        elif mode == "sync":
            targets = [recipient] if recipient else sorted(client.get_subscribed_clients(mtype))
            for rid in targets:
                response = client.call_and_wait(rid, message, str(int(timeout)))
                failed |= response.get("samp.status") == "samp.error"
                _emit({"from": rid, "response": response})
        else:
            failed = _call_async(client, message, recipient, timeout)
    except SAMPProxyError as exc:
        raise click.ClickException(f"the hub refused: {exc}") from exc
    finally:
        client.disconnect()
    if failed:
        sys.exit(1)


def _call_async(
    client: Any, message: dict[str, Any], recipient: str | None, timeout: float
) -> bool:
    tag = "sciwire-send"
    lock = threading.Lock()
    pending: set[str] = set()
    done = threading.Event()
    failed = False
    early: list[tuple[str, dict[str, Any]]] = []
    ready = threading.Event()

    def on_response(key: str, responder: str, msg_tag: str, response: dict[str, Any]) -> None:
        nonlocal failed
        ready.wait(timeout)
        with lock:
            early.append((responder, response))
            pending.discard(responder)
            failed |= response.get("samp.status") == "samp.error"
            if not pending:
                done.set()

    client.bind_receive_response(tag, on_response)
    if recipient:
        client.call(recipient, tag, message)
        targets = {recipient}
    else:
        targets = set(client.call_all(tag, message))
    with lock:
        pending.update(targets - {r for r, _ in early})
        if not pending:
            done.set()
    ready.set()
    done.wait(timeout)
    with lock:
        for responder, response in early:
            _emit({"from": responder, "response": response})
        for rid in sorted(pending):
            _emit({"from": rid, "error": "no response within timeout"})
        return failed or bool(pending)


@group.command()
@click.option("--lockfile", type=click.Path(dir_okay=False), help="Hub lockfile to use.")
@click.option("--count", type=int, default=0, help="Exit after N messages (0: run until Ctrl-C).")
def snoop(lockfile: str | None, count: int) -> None:
    """Subscribe to everything and print each message as a JSON line (like jsamp snooper)."""
    seen = 0
    enough = threading.Event()
    lock = threading.Lock()

    def show(record: dict[str, Any]) -> None:
        nonlocal seen
        with lock:
            _emit(record)
            sys.stdout.flush()
            seen += 1
            if count and seen >= count:
                enough.set()

    client = _connect("sciwire-snoop", lockfile)

    def on_notification(key: str, sender: str, mtype: str, params: Any, extra: Any) -> None:
        show({"kind": "notify", "sender": sender, "mtype": mtype, "params": params, "extra": extra})

    def on_call(key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any) -> None:
        if mtype != "samp.app.ping":  # the client answers pings itself
            client.ereply(msg_id, "samp.ok", result={})
        show({"kind": "call", "sender": sender, "mtype": mtype, "params": params, "extra": extra})

    try:
        client.bind_receive_notification("*", on_notification)
        client.bind_receive_call("*", on_call)
        click.echo(f"snooping as {client.get_public_id()}", err=True)
        while not enough.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
