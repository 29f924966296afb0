"""What every ``sciwire`` subcommand shares: logging flags, errors, JSON lines, signals.

The rules a user meets on every command:

* a user error or a network failure is one line on stderr and exit status 1 (bad
  options: click's usage line and status 2); a Python traceback appears only with ``-v``;
* ``-v``/``--verbose`` (repeatable) and ``--log-level`` turn on the package loggers;
* ``--json`` prints one JSON object per line on stdout;
* long-running commands stop cleanly, with status 0, on SIGINT and SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import math
import os
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NoReturn, TypeVar

import click

__all__ = [
    "JSON_OPTION",
    "LOG_LEVELS",
    "PORT",
    "UserError",
    "bind_error",
    "describe",
    "emit_json",
    "fail",
    "report",
    "restore_logging",
    "run_until_signal",
    "setup_logging",
    "sigterm_as_interrupt",
    "silence_stdout",
    "verbosity",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: Names ``--log-level`` accepts.
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

_state = {"verbosity": 0}


class UserError(click.ClickException):
    """One line on stderr, exit status 1: a mistake the user can fix, or a failed peer."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def fail(message: str) -> NoReturn:
    """Stop the command with *message* (one line) and exit status 1."""
    raise UserError(message)


def verbosity() -> int:
    """How many ``-v`` the user gave (0 when none, or when the root was not used)."""
    return _state["verbosity"]


def setup_logging(verbose: int, level: str | None) -> None:
    """Send log records to stderr: ``-v`` shows INFO, ``-vv`` DEBUG, ``--log-level`` decides.

    Without either, only warnings of the command's own loggers and of the server it runs
    are shown, one line each (a warning such as "no message from this instrument" still
    reaches the user). Undo with :func:`restore_logging` (the root command does).
    """
    _state["verbosity"] = verbose
    if level is not None:
        chosen = getattr(logging, level.upper())
    elif verbose >= 2:
        chosen = logging.DEBUG
    elif verbose == 1:
        chosen = logging.INFO
    else:
        chosen = logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    fmt = (
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
        if verbose or level
        else ("%(levelname)s: %(message)s")
    )
    handler.setFormatter(logging.Formatter(fmt, "%H:%M:%S"))
    if not (verbose or level):
        handler.addFilter(_quiet)
    # -vvv: the libraries underneath (asyncio, aiohttp) too
    target = logging.getLogger() if verbose >= 3 else logging.getLogger("sciwire")
    _remove_handler()
    _installed.append((target, handler, target.level))
    target.addHandler(handler)
    target.setLevel(chosen)
    if verbose >= 3:
        logging.getLogger("sciwire").setLevel(logging.DEBUG)


_installed: list[tuple[logging.Logger, logging.Handler, int]] = []


def _remove_handler() -> None:
    while _installed:
        logger, handler, level = _installed.pop()
        logger.removeHandler(handler)
        logger.setLevel(level)


def restore_logging() -> None:
    """Undo :func:`setup_logging` (in-process runs, such as tests, leave no trace)."""
    _remove_handler()
    logging.getLogger("sciwire").setLevel(logging.NOTSET)
    _state["verbosity"] = 0


#: Without -v, warnings and errors are shown from these loggers only: the CLI's own (a
#: silent instrument) and the server side a serving command runs (a client asking for the
#: wrong serial). A client library's retry warnings or transport errors would only repeat
#: the one error line the command ends with.
#: (Private module names count too: ``sciwire.ifcb._server``.)
_LOUD = frozenset({"cli", "server", "hub", "simulator", "emulator"})


def _quiet(record: logging.LogRecord) -> bool:
    module = record.name.rsplit(".", 1)[-1].lstrip("_")
    return module in _LOUD


def describe(exc: BaseException) -> str:
    """A one-line description of *exc* for a user: the message, else the type name."""
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and not text and exc.strerror:
        text = exc.strerror
    return text or type(exc).__name__


def report(exc: BaseException) -> NoReturn:
    """Turn an unexpected exception into one line (a traceback too with ``-v``), exit 1."""
    if verbosity():
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    if isinstance(exc, OSError | TimeoutError) or _is_sciwire(exc):
        raise UserError(describe(exc)) from exc
    hint = "" if verbosity() else " (run with -v for the traceback)"
    raise UserError(f"internal error: {type(exc).__name__}: {describe(exc)}{hint}") from exc


def _is_sciwire(exc: BaseException) -> bool:
    from sciwire.errors import SciwireError

    return isinstance(exc, SciwireError)


def bind_error(what: str, host: str, port: int, exc: OSError) -> UserError:
    """The one line for a server that cannot listen on *host*:*port*."""
    if exc.errno == errno.EADDRINUSE or "in use" in str(exc):
        reason = "the port is already in use (is another server running? try another --port)"
    elif exc.errno == errno.EACCES:
        reason = "permission denied (ports below 1024 need privileges)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        reason = "that address is not on this machine"
    else:
        reason = describe(exc)
    shown = f"[{host}]" if ":" in host else host
    return UserError(f"{what}: cannot listen on {shown}:{port}: {reason}")


def silence_stdout() -> None:
    """Point stdout at /dev/null (after a broken pipe, so the exit flush cannot fail)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (a test runner)
        pass


def _plain(value: Any) -> Any:
    # JSON has no NaN or Infinity: a missing value is null, as JSOC's own JSON writes it
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def emit_json(record: Any) -> None:
    """Print *record* as one line of strict JSON (NaN and Infinity become null)."""
    text = json.dumps(_plain(record), default=str, allow_nan=False, ensure_ascii=False)
    click.echo(text)
    sys.stdout.flush()


#: The type of every ``--port`` option: a TCP/UDP port number (0 lets the system pick).
PORT = click.IntRange(0, 65535)

#: The ``--json`` flag of every client command that prints data.
JSON_OPTION = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per line."
)


def run_until_signal(
    start: Callable[[], Awaitable[T]],
    stop: Callable[[T], Awaitable[None]],
    *,
    until: Callable[[T], Awaitable[Any]] | None = None,
) -> None:
    """Run a server: ``start()``, wait for SIGINT/SIGTERM (or ``until``), then ``stop``.

    Exits normally (status 0) on either signal, after ``stop`` has cleaned up.
    """

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stopped.set)
        server = await start()
        try:
            waiters = [asyncio.ensure_future(stopped.wait())]
            if until is not None:
                waiters.append(asyncio.ensure_future(until(server)))
            done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in done:
                task.result()
        finally:
            await stop(server)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises KeyboardInterrupt, as Ctrl-C does (main thread only)."""

    fired: list[int] = []

    def interrupt(signum: int, frame: Any) -> None:
        # once: a second SIGTERM (a supervisor repeating itself) must not break the cleanup
        if not fired:
            fired.append(signum)
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (a test runner): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
