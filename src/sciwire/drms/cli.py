"""``sciwire drms``: run the JSOC emulator, list series, query records, export data."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from sciwire.clikit import (
    JSON_OPTION,
    PORT,
    bind_error,
    describe,
    emit_json,
    fail,
    run_until_signal,
)
from sciwire.drms._protocol import check_export_status, check_query_status
from sciwire.drms.config import ServerConfig, get_server, jsoc_layout
from sciwire.drms.exceptions import DrmsError
from sciwire.drms.json import HttpJsonClient
from sciwire.errors import SciwireError

__all__ = ["group"]

# JSOC's export methods and protocols (jsoc_fetch's op=exp_request), offered as choices so
# a typo is a usage error listing them rather than a request JSOC refuses.
EXPORT_METHODS = ("url_quick", "url", "url-tar", "ftp", "ftp-tar")
EXPORT_PROTOCOLS = ("as-is", "fits", "jpg", "mpg", "mp4")


def _server(value: str) -> ServerConfig:
    """A registered name, or the base URL of a JSOC-like site (emulator layout)."""
    if value.startswith(("http://", "https://")):
        base = value.rstrip("/") + "/"
        return jsoc_layout(base, base)
    return get_server(value)


_SERVER = click.option(
    "--server",
    "-s",
    default="jsoc",
    show_default=True,
    help="Registered server name (jsoc, kis) or base URL such as http://127.0.0.1:8080/.",
)
_TIMEOUT = click.option("--timeout", default=60.0, show_default=True, help="Seconds per request.")


def _client(server: str, timeout: float) -> HttpJsonClient:
    try:
        return HttpJsonClient(_server(server), timeout=timeout)
    except (KeyError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--server") from exc


@click.group(name="drms")
def group() -> None:
    """JSOC DRMS client and JSOC emulator."""


@group.command(short_help="Serve the JSOC emulator on loopback.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", "-p", type=PORT, default=0, show_default=True, help="Port (0 picks a free one)."
)
def emulate(host: str, port: int) -> None:
    """Serve the JSOC emulator until interrupted."""
    from sciwire.drms._server import JsocEmulator

    async def start() -> JsocEmulator:
        emu = JsocEmulator(host, port)
        try:
            await emu.start()
        except OSError as exc:
            raise bind_error("JSOC emulator", host, port, exc) from exc
        click.echo(f"JSOC emulator on {emu.url} (CGIs under {emu.url}cgi-bin/ajax/)")
        click.echo(f"try: sciwire drms series --server {emu.url}")
        sys.stdout.flush()
        return emu

    async def stop(emu: JsocEmulator) -> None:
        await emu.stop()

    run_until_signal(start, stop)


@group.command(short_help="List data series.")
@click.argument("regex", required=False)
@_SERVER
@_TIMEOUT
@click.option("--full", is_flag=True, help="Show primekeys and descriptions.")
@JSON_OPTION
def series(regex: str | None, server: str, timeout: float, full: bool, as_json: bool) -> None:
    """List data series, optionally those matching REGEX."""
    with _client(server, timeout) as c:
        try:
            d = check_query_status(c.show_series(regex))
        except (DrmsError, SciwireError) as exc:
            fail(describe(exc))
    for item in d.get("names", []):
        if as_json:
            emit_json(item)
        elif full:
            click.echo(f"{item['name']}\t{item.get('primekeys', '')}\t{item.get('note', '')}")
        else:
            click.echo(item["name"])


@group.command(short_help="Query keywords and segments of a record set.")
@click.argument("ds")
@_SERVER
@_TIMEOUT
@click.option("--key", "-k", default=None, help="Keywords, comma separated.")
@click.option("--seg", default=None, help="Segments, comma separated.")
@click.option("-n", "limit", type=int, default=None, help="First n (or last -n) records.")
@click.option("--count", is_flag=True, help="Only count the records (rs_summary).")
@JSON_OPTION
@click.option("--raw", is_flag=True, help="Print JSOC's JSON answer as it came.")
def query(
    ds: str,
    server: str,
    timeout: float,
    key: str | None,
    seg: str | None,
    limit: int | None,
    count: bool,
    as_json: bool,
    raw: bool,
) -> None:
    """Query the record set DS (e.g. 'hmi.v_45s[2016.04.01_00:00:00_TAI/1h]')."""
    with _client(server, timeout) as c:
        try:
            if count:
                d: dict[str, Any] = dict(check_query_status(c.rs_summary(ds)))
            else:
                d = dict(check_query_status(c.rs_list(ds, key=key or "T_REC", seg=seg, n=limit)))
        except (DrmsError, SciwireError) as exc:
            fail(describe(exc))
    if raw:
        click.echo(json.dumps(d))
        return
    if count:
        if as_json:
            emit_json({"count": d["count"]})
        else:
            click.echo(str(d["count"]))
        return
    columns = [*d.get("keywords", []), *d.get("segments", [])]
    if not columns:
        return
    if as_json:
        names = [col["name"] for col in columns]
        for row in zip(*(col["values"] for col in columns), strict=True):
            emit_json(dict(zip(names, row, strict=True)))
        return
    click.echo("\t".join(col["name"] for col in columns))
    for row in zip(*(col["values"] for col in columns), strict=True):
        click.echo("\t".join(row))


@group.command(short_help="Request an export, wait for it, download its files.")
@click.argument("ds")
@click.option("--email", "-e", required=True, help="Registered notification address.")
@_SERVER
@_TIMEOUT
@click.option(
    "--method",
    type=click.Choice(EXPORT_METHODS),
    default="url_quick",
    show_default=True,
    help="JSOC export method (url_quick: files as stored, at once when possible).",
)
@click.option(
    "--protocol",
    type=click.Choice(EXPORT_PROTOCOLS),
    default="as-is",
    show_default=True,
    help="File format JSOC writes.",
)
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Download the files here once the export has finished.",
)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the export.")
@click.option("--max-wait", default=600.0, show_default=True, help="Hard deadline, seconds.")
@JSON_OPTION
def export(
    ds: str,
    email: str,
    server: str,
    timeout: float,
    method: str,
    protocol: str,
    dest: Path | None,
    wait: bool,
    max_wait: float,
    as_json: bool,
) -> None:
    """Request an export of DS; optionally wait for it and download the files."""
    with _client(server, timeout) as c:
        try:
            d = c.exp_request(ds, email, method=method, protocol=protocol)
            status = check_export_status(d)
            if status != 0 and wait:
                click.echo(f"export {d.get('requestid')} queued, waiting...", err=True)
                d = c.wait_for_export(str(d.get("requestid")), timeout=max_wait)
                status = 0
            if status != 0:
                if as_json:
                    emit_json({"requestid": d.get("requestid"), "status": status})
                else:
                    click.echo(f"{d.get('requestid')}\tstatus {status}")
                return
            if dest is None:
                for item in d.get("data", []):
                    if as_json:
                        emit_json({"record": item.get("record"), "filename": item.get("filename")})
                    else:
                        click.echo(f"{item.get('record')}\t{item.get('filename')}")
                return
            for path in c.download(d, dest):
                if as_json:
                    emit_json({"path": str(path), "size": path.stat().st_size})
                else:
                    click.echo(str(path))
        except (DrmsError, SciwireError, OSError) as exc:
            fail(describe(exc))
