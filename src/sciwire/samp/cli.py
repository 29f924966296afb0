"""``sciwire samp``: run a hub, send a message, snoop on the traffic.

    sciwire samp hub [--no-web] [--web-auth deny|allow] [--lockfile PATH] [--timeout S]
    sciwire samp send MTYPE key=value... [--to ID] [--mode notify|call|sync]
    sciwire samp snoop

``send`` and ``snoop`` find the hub like every SAMP client (``SAMP_HUB`` or
``~/.samp``) unless ``--lockfile`` names one.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import click

from sciwire.clikit import describe, fail, sigterm_as_interrupt

__all__ = ["group"]

T = TypeVar("T")
LOG_LEVELS = ["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]
logger = logging.getLogger("sciwire.samp.cli")

# send and snoop always print JSON lines; --json is accepted as on every other command
_JSON_LINES = click.option(
    "--json", "as_json", is_flag=True, help="Accepted for uniformity: the output is JSON lines."
)


def _hub_params(lockfile: str | None) -> dict[str, str]:
    from sciwire.samp._aproxy import get_main_running_hub
    from sciwire.samp._hublock import read_lockfile
    from sciwire.samp.errors import SAMPHubError

    if lockfile is None:
        try:
            return dict(get_main_running_hub())
        except SAMPHubError as exc:
            fail(f"no SAMP hub: {describe(exc)} (start one with: sciwire samp hub)")
    try:
        return read_lockfile(lockfile)
    except OSError as exc:
        fail(f"cannot read lockfile {lockfile}: {describe(exc)}")


def _bounded(seconds: float, what: str, fn: Callable[[], T]) -> T:
    """*fn*'s result, or a one-line failure after *seconds* (a hub that never answers).

    The work runs on a daemon thread: a hub that accepted the connection and then went
    silent cannot be interrupted politely, and the process is about to exit anyway.
    """
    box: list[Any] = []
    done = threading.Event()

    def work() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:
            box.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=work, name="sciwire-samp-cli", daemon=True).start()
    if not done.wait(seconds):
        fail(f"{what}: no answer within {seconds:g} s")
    ok, value = box[0]
    if not ok:
        raise value
    result: T = value
    return result


def _connect(name: str, lockfile: str | None, timeout: float = 10.0) -> Any:
    from sciwire.samp.errors import SAMPHubError
    from sciwire.samp.integrated_client import SAMPIntegratedClient

    params = _hub_params(lockfile)
    url = params.get("samp.hub.xmlrpc.url", "?")
    client = SAMPIntegratedClient(name=name, description=f"sciwire samp {name.split('-')[-1]}")
    try:
        _bounded(timeout, f"the SAMP hub at {url}", lambda: client.connect(hub_params=params))
    except SAMPHubError as exc:
        fail(f"no SAMP hub at {url}: {describe(exc)}")
    return client


def _disconnect(client: Any) -> None:
    # the hub may be gone (that is often why we stop): nothing left to clean up there
    try:
        _bounded(5.0, "disconnecting", client.disconnect)
    except Exception:
        logger.debug("disconnect failed", exc_info=True)


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
    click.echo(json.dumps(record, sort_keys=True, default=str))
    sys.stdout.flush()


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
    from sciwire.samp.errors import SAMPHubError
    from sciwire.samp.hub import SAMPHubServer
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
    # SIGTERM is Ctrl-C from the start (the hub then leaves SIGTERM to us): a signal that
    # lands before wait() took over still stops the hub, removes the lockfile, exits 0
    with sigterm_as_interrupt(), log_to(log_output or ""):
        try:
            server.start()
        except SAMPHubError as exc:
            click.echo(f"sciwire samp hub: {exc}", err=True)
            sys.exit(1)
        web = f", web profile on port {server.web_port}" if not no_web else ""
        try:
            click.echo(f"SAMP hub {server.url} (lockfile {server.lockfile}{web})", err=True)
            server.wait()  # until Ctrl-C, SIGTERM or the idle timeout; removes the lockfile
        except KeyboardInterrupt:
            server.stop()


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
@_JSON_LINES
def send(
    mtype: str,
    params: tuple[str, ...],
    recipient: str | None,
    mode: str,
    timeout: float,
    lockfile: str | None,
    as_json: bool,
) -> None:
    """Send MTYPE with key=value params; print one JSON line per recipient or response.

    Exit status 1 when no client received the message, a response was an error, or the
    hub did not answer within --timeout.
    """
    from sciwire.samp.errors import SAMPProxyError, SAMPWarning

    message = {"samp.mtype": mtype, "samp.params": _parse_params(params)}
    client = _connect("sciwire-send", lockfile, timeout)
    reached: list[str] = []

    def deliver() -> bool:
        failed = False
        if mode == "notify":
            if recipient:
                client.notify(recipient, message)
                sent = [recipient]
            else:
                # nobody subscribed: the command says so in its one error line below,
                # so the library's SAMPWarning for the same fact is not printed too
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", SAMPWarning)
                    sent = client.notify_all(message)
            for rid in sent:
                reached.append(rid)
                _emit({"notified": rid})
        elif mode == "sync":
            targets = [recipient] if recipient else sorted(client.get_subscribed_clients(mtype))
            for rid in targets:
                reached.append(rid)
                response = client.call_and_wait(rid, message, str(max(1, int(timeout))))
                failed |= response.get("samp.status") == "samp.error"
                _emit({"from": rid, "response": response})
        else:
            failed = _call_async(client, message, recipient, timeout, reached)
        return failed

    try:
        # a response may take the whole --timeout; the hub's own answers come well before
        failed = _bounded(timeout + 2.0, "the SAMP hub", deliver)
    except SAMPProxyError as exc:
        fail(f"the hub refused: {describe(exc)}")
    finally:
        _disconnect(client)
    if not reached:
        fail(
            f"no client received {mtype}: none is subscribed to it"
            + ("" if recipient is None else f" (or {recipient} is not registered)")
        )
    if failed:
        sys.exit(1)


def _call_async(
    client: Any,
    message: dict[str, Any],
    recipient: str | None,
    timeout: float,
    reached: list[str],
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
    reached.extend(sorted(targets))
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
@_JSON_LINES
def snoop(lockfile: str | None, count: int, as_json: bool) -> None:
    """Subscribe to everything and print each message as a JSON line (like jsamp snooper).

    The hub's events about this snooper itself are not shown. Stops after --count
    messages, when the hub shuts down or goes away, or on Ctrl-C or SIGTERM.
    """
    seen = 0
    enough = threading.Event()
    hub_gone = threading.Event()
    lock = threading.Lock()

    def show(record: dict[str, Any]) -> None:
        nonlocal seen
        with lock:
            if count and seen >= count:
                return
            _emit(record)
            seen += 1
            if count and seen >= count:
                enough.set()

    def about_me(mtype: str, params: Any) -> bool:
        return (
            mtype.startswith("samp.hub.event.")
            and isinstance(params, dict)
            and params.get("id") is not None
            # asked live: our subscriptions event can arrive before connect() returns
            and params.get("id") == client.get_public_id()
        )

    def on_notification(key: str, sender: str, mtype: str, params: Any, extra: Any) -> None:
        if about_me(mtype, params):
            return  # our own registration: not what the user asked to see
        show({"kind": "notify", "sender": sender, "mtype": mtype, "params": params, "extra": extra})
        if mtype == "samp.hub.event.shutdown":
            hub_gone.set()

    def on_call(key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any) -> None:
        if mtype != "samp.app.ping":  # the client answers pings itself
            client.ereply(msg_id, "samp.ok", result={})
        show({"kind": "call", "sender": sender, "mtype": mtype, "params": params, "extra": extra})

    from sciwire.samp.integrated_client import SAMPIntegratedClient

    params = _hub_params(lockfile)
    url = params.get("samp.hub.xmlrpc.url", "?")
    client = SAMPIntegratedClient(name="sciwire-snoop", description="sciwire samp snoop")
    # bound before connecting (bindings survive connect), so no early message is missed
    client.bind_receive_notification("*", on_notification)
    client.bind_receive_call("*", on_call)
    with sigterm_as_interrupt():
        try:
            try:
                _bounded(10.0, f"the SAMP hub at {url}", lambda: client.connect(hub_params=params))
            except Exception as exc:
                fail(f"no SAMP hub at {url}: {describe(exc)}")
            click.echo(f"snooping as {client.get_public_id()} on {url}", err=True)
            _watch(client, enough, hub_gone)
            if hub_gone.is_set():
                click.echo("the SAMP hub shut down; stopping", err=True)
        except KeyboardInterrupt:
            pass
        finally:
            if not hub_gone.is_set():
                _disconnect(client)


def _watch(client: Any, enough: threading.Event, hub_gone: threading.Event) -> None:
    """Wait for --count messages or the hub's shutdown; notice a hub that vanished."""
    ticks = 0
    while not (enough.wait(0.2) or hub_gone.is_set()):
        ticks += 1
        if ticks % 25:  # ping every 5 s
            continue
        try:
            _bounded(5.0, "the SAMP hub", client.ping)
        except Exception as exc:
            hub_gone.set()
            fail(f"lost the SAMP hub: {describe(exc)}")
