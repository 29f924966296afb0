"""astropy.samp's ``hub_script``: the ``samp_hub`` command (also ``sciwire samp hub``).

``hub_script()`` reads ``sys.argv`` with ``samp_hub``'s options, runs a hub until
it stops (Ctrl-C, SIGTERM, its idle ``--timeout``) or for *timeout* seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from sciwire.samp.errors import SAMPHubError
from sciwire.samp.hub import SAMPHubServer

__all__ = ["hub_script"]

#: The logger ``--log-level`` and ``--log-output`` act on: every sciwire.samp logger.
log = logging.getLogger("sciwire.samp")

LOG_LEVELS = ["CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "NOTSET"]


def make_parser() -> argparse.ArgumentParser:
    """``samp_hub``'s argument parser (astropy's option names, short and long)."""
    parser = argparse.ArgumentParser(prog="samp_hub", description="Run a SAMP hub.")
    add = parser.add_argument
    add("-k", "--secret", dest="secret", metavar="CODE", help="custom secret code.")
    add("-d", "--addr", dest="addr", metavar="ADDR", help="listening address (or IP).")
    add("-p", "--port", dest="port", metavar="PORT", type=int, default=0, help="listening port.")
    add("-f", "--lockfile", dest="lockfile", metavar="FILE", help="custom lockfile.")
    add(
        "-w",
        "--no-web-profile",
        dest="web_profile",
        action="store_false",
        default=True,
        help="run the Hub without the Web Profile.",
    )
    add("-P", "--pool-size", dest="pool_size", metavar="SIZE", type=int, default=20,
        help="the socket connections pool size.")  # fmt: skip
    times = parser.add_argument_group("Timeout group")
    times.add_argument("-t", "--timeout", dest="timeout", metavar="SECONDS", type=int, default=0,
                       help="stop the hub after SECONDS idle (0: never).")  # fmt: skip
    times.add_argument("-c", "--client-timeout", dest="client_timeout", metavar="SECONDS",
                       type=int, default=0,
                       help="unregister clients idle for SECONDS (0: never).")  # fmt: skip
    logs = parser.add_argument_group("Logging options")
    logs.add_argument("-L", "--log-level", dest="loglevel", metavar="LEVEL", type=str,
                      choices=LOG_LEVELS, default="INFO",
                      help=f"the hub's log level ({', '.join(LOG_LEVELS)}).")  # fmt: skip
    logs.add_argument("-O", "--log-output", dest="logout", metavar="FILE", default="",
                      help="write the log messages to FILE.")  # fmt: skip
    adv = parser.add_argument_group("Advanced group")
    adv.add_argument("-l", "--label", dest="label", metavar="LABEL", default="",
                     help="assign a LABEL to the Hub (hub.label).")  # fmt: skip
    adv.add_argument("-m", "--multi", dest="mode", action="store_const", const="multiple",
                     default="single",
                     help="multi-instance mode: a lockfile in ~/.samp-1/.")  # fmt: skip
    return parser


@contextlib.contextmanager
def log_to(path: str) -> Iterator[None]:
    if not path:
        yield
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()


def run_hub(options: dict[str, Any], timeout: float = 0) -> int:
    """Run a hub built from *options* (SAMPHubServer's arguments); the exit status.

    Args:
        options: ``SAMPHubServer`` keyword arguments.
        timeout: stop after this many seconds (0: until the hub stops by itself or
            Ctrl-C).
    """
    hub = SAMPHubServer(**options)
    try:
        hub.start(False)
        if timeout:
            stopped = threading.Event()
            with contextlib.suppress(KeyboardInterrupt):
                stopped.wait(timeout)
            hub.stop()
        else:
            hub.wait()
    except KeyboardInterrupt:
        hub.stop()
    except (SAMPHubError, OSError) as exc:
        hub.stop()
        print(f"[SAMP] Error: {exc}", file=sys.stderr)
        return 1
    return 0


def hub_script(timeout: float = 0, argv: Sequence[str] | None = None) -> None:
    """Run a hub with ``samp_hub``'s command-line options (``sys.argv`` by default).

    Args:
        timeout: stop after this many seconds (0: run until the hub stops).
        argv: the arguments instead of ``sys.argv[1:]``.

    Raises:
        SystemExit: status 1 when the hub cannot start (another live hub, a busy port).
    """
    options = vars(make_parser().parse_args(argv))
    log.setLevel(options.pop("loglevel"))
    logout = options.pop("logout")
    with log_to(logout):
        status = run_hub(options, timeout)
    if status:
        sys.exit(status)
