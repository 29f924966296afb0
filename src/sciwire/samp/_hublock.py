"""Lockfile I/O, and the hub's lockfile: where it goes, whether a live hub owns it.

Reading, writing and locating lockfiles live here (the sans-I/O
:mod:`sciwire.samp._protocol` only parses and formats their text).

The Standard Profile lockfile is the hub's address and registration secret. It is
written owner-only from its first byte (:func:`write_lockfile`),
a lockfile whose hub still answers ``samp.hub.ping`` is never taken over, a stale one
is, and a hub removes only a lockfile that still holds its own secret.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

from sciwire.errors import SciwireError
from sciwire.samp import _protocol as P
from sciwire.samp._acaller import RpcCaller
from sciwire.samp._tls import tls_refusal, unverified_client_context
from sciwire.samp.errors import SAMPHubError, SAMPProxyError

__all__ = [
    "check_existing",
    "locate_lockfile",
    "lockfile_path",
    "multi_lockfile_dir",
    "read_lockfile",
    "remove_lockfile",
    "write_hub_lockfile",
    "write_lockfile",
]

logger = logging.getLogger(__name__)

#: Seconds the hub of an existing lockfile has to answer ``samp.hub.ping``.
PING_TIMEOUT = 3.0


def read_lockfile(lockfilename: str | os.PathLike[str]) -> dict[str, str]:
    """Read and parse a lockfile (a path or a ``file:`` URL).

    Raises:
        OSError: the file cannot be read.
    """
    path = P.lockurl_to_path(os.fspath(lockfilename)) or os.fspath(lockfilename)
    with open(path, encoding="ascii", errors="replace") as handle:
        return P.parse_lockfile(handle.read())


def write_lockfile(
    lockfilename: str | os.PathLike[str],
    lockfiledict: Mapping[str, str],
    comment: str | None = None,
) -> None:
    """Write a lockfile atomically, owner-only (0600) from its first byte.

    The text goes to a temporary file created with mode 0600 in the same directory,
    which is then renamed over *lockfilename*; the file is never readable by others,
    not even briefly, and a reader never sees half a file.
    """
    text = P.format_lockfile(lockfiledict, comment)
    target = Path(lockfilename)
    fd, tmp = tempfile.mkstemp(prefix=".samp-", suffix=".tmp", dir=target.parent or ".")
    try:  # mkstemp creates the file O_EXCL with mode 0600
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def locate_lockfile(
    environ: Mapping[str, str] | None = None, home: str | os.PathLike[str] | None = None
) -> str:
    """Where the Standard Profile lockfile lives: a path, or a URL that is not ``file:``.

    ``SAMP_HUB=std-lockurl:<url>`` wins; otherwise ``$HOME/.samp`` (*home* overrides).
    """
    env = os.environ if environ is None else environ
    hub = env.get("SAMP_HUB", "")
    if hub.startswith("std-lockurl:"):
        url = hub[len("std-lockurl:") :]
        return P.lockurl_to_path(url) or url
    base = Path(home) if home is not None else Path(env.get("HOME") or Path.home())
    return str(base / P.DEFAULT_LOCKFILE_NAME)


def multi_lockfile_dir() -> Path:
    """``~/.samp-1``: where hubs run in "multiple" mode write their lockfiles."""
    return Path.home() / ".samp-1"


def lockfile_path(custom: str | None, mode: str) -> str:
    """The lockfile a hub writes: *custom*, a new file in ``~/.samp-1/`` (mode
    "multiple"), or the one ``SAMP_HUB=std-lockurl:`` or ``~/.samp`` names.

    Raises:
        SAMPHubError: ``SAMP_HUB`` names a lockfile URL that is not a local file.
    """
    if custom is not None:
        return custom
    if mode == "multiple":
        folder = multi_lockfile_dir()
        folder.mkdir(mode=0o700, exist_ok=True)
        return str(folder / f"samp-hub-{os.getpid()}-{secrets.token_hex(4)}")
    where = locate_lockfile()
    if P.lockurl_to_path(where) is None and "://" in where:
        raise SAMPHubError(f"SAMP_HUB names a lockfile URL the hub cannot write: {where}")
    return where


async def check_existing(path: str) -> None:
    """Refuse to start over a live hub's lockfile; warn when taking over a stale one.

    Raises:
        SAMPHubError: the lockfile's hub answers, or the lockfile cannot be read.
    """
    try:
        fields = read_lockfile(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SAMPHubError(f"cannot read the existing lockfile {path}: {exc}") from exc
    url = fields.get("samp.hub.xmlrpc.url")
    if url and await _answers_ping(url):
        raise SAMPHubError(
            f"another SAMP hub is already running at {url} (lockfile {path}); "
            "stop it first or use a different lockfile"
        )
    logger.warning("taking over the stale SAMP lockfile %s", path)


async def _answers_ping(url: str) -> bool:
    # a liveness probe: an answer means alive, whatever certificate a TLS hub shows
    try:
        rpc = RpcCaller(url, 1, PING_TIMEOUT, unverified_client_context())
    except SAMPHubError:
        return False  # not an http(s) URL: nothing we could ask
    try:
        await rpc.call("samp.hub.ping")
        return True
    except SAMPProxyError:
        return True  # it answered, with a fault: still a live server
    except (OSError, SciwireError) as exc:
        # a TLS hub that wants a client certificate refuses the handshake: alive too
        return url.lower().startswith("https:") and tls_refusal(exc)
    finally:
        await rpc.close()


def write_hub_lockfile(path: str, params: Mapping[str, str]) -> None:
    """Write the hub's lockfile (its parameters and start date), owner-only."""
    fields = dict(params)
    fields["hub.start.date"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    comment = "SAMP Standard Profile lockfile written by sciwire.samp\nNote contact info."
    write_lockfile(path, fields, comment)


def remove_lockfile(path: str, secret: str) -> None:
    """Remove *path* if it still holds *secret* (never another hub's lockfile)."""
    with contextlib.suppress(OSError):
        if read_lockfile(path).get("samp.secret") == secret:
            os.unlink(path)
