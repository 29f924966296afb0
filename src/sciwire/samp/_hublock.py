"""The hub's lockfile: where it goes, whether a live hub owns it, writing and removing it.

The Standard Profile lockfile is the hub's address and registration secret. It is
written owner-only from its first byte (:func:`sciwire.samp._protocol.write_lockfile`),
a lockfile whose hub still answers ``samp.hub.ping`` is never taken over, a stale one
is, and a hub removes only a lockfile that still holds its own secret.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from sciwire.errors import SciwireError
from sciwire.samp import _protocol as P
from sciwire.samp._rpc import RpcCaller
from sciwire.samp._tls import tls_refusal, unverified_client_context
from sciwire.samp.errors import SAMPHubError, SAMPProxyError

__all__ = ["check_existing", "lockfile_path", "remove_lockfile", "write_hub_lockfile"]

logger = logging.getLogger(__name__)

#: Seconds the hub of an existing lockfile has to answer ``samp.hub.ping``.
PING_TIMEOUT = 3.0


def lockfile_path(custom: str | None, mode: str) -> str:
    """The lockfile a hub writes: *custom*, a new file in ``~/.samp-1/`` (mode
    "multiple"), or the one ``SAMP_HUB=std-lockurl:`` or ``~/.samp`` names.

    Raises:
        SAMPHubError: ``SAMP_HUB`` names a lockfile URL that is not a local file.
    """
    if custom is not None:
        return custom
    if mode == "multiple":
        folder = Path.home() / ".samp-1"
        folder.mkdir(mode=0o700, exist_ok=True)
        return str(folder / f"samp-hub-{os.getpid()}-{secrets.token_hex(4)}")
    where = P.locate_lockfile()
    if P.lockurl_to_path(where) is None and "://" in where:
        raise SAMPHubError(f"SAMP_HUB names a lockfile URL the hub cannot write: {where}")
    return where


async def check_existing(path: str) -> None:
    """Refuse to start over a live hub's lockfile; warn when taking over a stale one.

    Raises:
        SAMPHubError: the lockfile's hub answers, or the lockfile cannot be read.
    """
    try:
        fields = P.read_lockfile(path)
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
    P.write_lockfile(path, fields, comment)


def remove_lockfile(path: str, secret: str) -> None:
    """Remove *path* if it still holds *secret* (never another hub's lockfile)."""
    with contextlib.suppress(OSError):
        if P.read_lockfile(path).get("samp.secret") == secret:
            os.unlink(path)
