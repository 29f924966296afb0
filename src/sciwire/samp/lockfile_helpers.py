"""astropy.samp's ``lockfile_helpers``: find, check, write and clean SAMP lockfiles.

Differences from astropy (see docs/differences.md): lockfiles are written owner-only
from their first byte; a value may contain ``=``; a lockfile is "running" only if
its hub answers ``samp.hub.ping`` within :data:`PING_TIMEOUT` seconds; a hub
that answers with an HTTP error status still counts as running, as in astropy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

from sciwire.errors import SciwireError
from sciwire.samp._aproxy import _read_lockfile_any
from sciwire.samp._aproxy import get_main_running_hub as _main_hub_params
from sciwire.samp._caller import BlockingRpcCaller
from sciwire.samp._hublock import (
    PING_TIMEOUT,  # seconds a hub named in a lockfile has to answer samp.hub.ping
    locate_lockfile,
    lockfile_path,
    multi_lockfile_dir,
    write_hub_lockfile,
)
from sciwire.samp._hublock import write_lockfile as _write_lockfile
from sciwire.samp._protocol import lockurl_to_path
from sciwire.samp._tls import tls_refusal, unverified_client_context
from sciwire.samp.errors import SAMPHubError, SAMPProxyError, SAMPWarning
from sciwire.samp.utils import SAMPXXEServerProxy  # noqa: F401 - astropy's module offers it

log = logging.getLogger(__name__)  # astropy's module-level name

__all__ = [
    "check_running_hub",
    "create_lock_file",
    "get_main_running_hub",
    "get_running_hubs",
    "read_lockfile",
    "remove_garbage_lock_files",
    "write_lockfile",
]


def read_lockfile(lockfilename: str | os.PathLike[str]) -> dict[str, str]:
    """The ``key=value`` pairs of a lockfile (a path, a ``file:`` or an ``http(s)`` URL).

    Raises:
        OSError: it cannot be read.
    """
    return _read_lockfile_any(os.fspath(lockfilename))


def write_lockfile(lockfilename: str | os.PathLike[str], lockfiledict: Mapping[str, str]) -> None:
    """Write *lockfiledict* to *lockfilename*, owner-only (0600) from the first byte."""
    _write_lockfile(lockfilename, lockfiledict, "SAMP lockfile written by sciwire.samp")


def _single_lockfile() -> str | None:
    """The lockfile ``SAMP_HUB`` or ``~/.samp`` names (None: ``SAMP_HUB`` is another profile)."""
    hub = os.environ.get("SAMP_HUB")
    if hub is not None and not hub.startswith("std-lockurl:"):
        return None
    return locate_lockfile()


def _multi_lockfiles() -> list[str]:
    folder = multi_lockfile_dir()
    if not folder.is_dir():
        return []
    return sorted(str(folder / name) for name in os.listdir(folder) if name.startswith("samp-hub"))


def check_running_hub(lockfilename: str | os.PathLike[str]) -> tuple[bool, dict[str, str]]:
    """Whether the hub of a lockfile answers, and the lockfile's contents.

    Returns:
        ``(is_running, params)``; ``params`` is empty when the file cannot be read.
    """
    try:
        params = read_lockfile(lockfilename)
    except (OSError, ValueError, SciwireError):
        return False, {}
    return _hub_answers(params), params


def _hub_answers(params: Mapping[str, str]) -> bool:
    """Whether the hub at the lockfile's ``samp.hub.xmlrpc.url`` answers a ping."""
    url = params.get("samp.hub.xmlrpc.url")
    if not url:
        return False
    try:  # a liveness probe: whatever certificate it shows, an answer means alive
        caller = BlockingRpcCaller(url, 1, PING_TIMEOUT, unverified_client_context())
    except (ValueError, SciwireError):
        return False
    try:
        caller.call("samp.hub.ping")
    except SAMPProxyError:
        return True  # it answered, with a fault: a live server
    except (OSError, SciwireError) as exc:
        # a TLS hub that wants a client certificate refuses the handshake: alive too
        return url.lower().startswith("https:") and tls_refusal(exc)
    finally:
        caller.close()
    return True


def get_running_hubs() -> dict[str, dict[str, str]]:
    """The lockfile contents of every running hub: ``{lockfile: {key: value}}``.

    Looks at the lockfile ``SAMP_HUB`` or ``~/.samp`` names and at the
    ``~/.samp-1/samp-hub*`` files of hubs run in "multiple" mode.
    """
    hubs: dict[str, dict[str, str]] = {}
    single = _single_lockfile()
    for name in ([single] if single else []) + _multi_lockfiles():
        running, params = check_running_hub(name)
        if running:
            hubs[name] = params
    return hubs


def get_main_running_hub() -> dict[str, str]:
    """The lockfile contents of the hub ``SAMP_HUB`` or ``~/.samp`` names, if it runs.

    Raises:
        SAMPHubError: no such hub answers, or ``SAMP_HUB`` names another profile.
    """
    params = _main_hub_params()
    if not _hub_answers(params):  # the lockfile just read, not read again
        raise SAMPHubError("Unable to find a running SAMP Hub.")
    return params


def remove_garbage_lock_files() -> None:
    """Delete ``~/.samp`` and ``~/.samp-1/samp-hub*`` lockfiles whose hub does not answer."""
    for name in [str(Path.home() / ".samp"), *_multi_lockfiles()]:
        if os.path.isfile(name) and not check_running_hub(name)[0]:
            with contextlib.suppress(OSError):
                os.remove(name)


def create_lock_file(
    lockfilename: str | None = None,
    mode: str | None = None,
    hub_id: str | None = None,
    hub_params: Mapping[str, str] | None = None,
) -> str | bool:
    """Write a hub's lockfile where a hub would, unless a live hub already owns it.

    Args:
        lockfilename: the file to write; by default ``SAMP_HUB``'s, ``~/.samp``
            (mode "single") or ``~/.samp-1/samp-hub-<hub_id>`` (mode "multiple").
        mode: "single" or "multiple".
        hub_id: names the multiple-mode file (a random name when None).
        hub_params: the lockfile's ``key=value`` pairs.

    Returns:
        The lockfile's path, or False (with a :class:`SAMPWarning`) when a live hub
        owns it or ``SAMP_HUB`` names a lockfile URL that is not a local file.
    """
    remove_garbage_lock_files()
    hub_env = os.environ.get("SAMP_HUB", "")
    if hub_env.startswith("std-lockurl:"):
        path = lockurl_to_path(hub_env[len("std-lockurl:") :])
        if path is None:
            warnings.warn(
                f"Unable to start a Hub with lockfile {hub_env}: not a local file",
                SAMPWarning,
                stacklevel=2,
            )
            return False
        lockfilename = path
    elif lockfilename is None:
        if mode == "multiple" and hub_id is not None:
            multi_lockfile_dir().mkdir(mode=0o700, exist_ok=True)
            lockfilename = str(multi_lockfile_dir() / f"samp-hub-{hub_id}")
        else:
            lockfilename = lockfile_path(None, mode or "single")
    if check_running_hub(lockfilename)[0]:
        warnings.warn(
            "Another SAMP Hub is already running. Start-up process aborted.",
            SAMPWarning,
            stacklevel=2,
        )
        return False
    write_hub_lockfile(lockfilename, dict(hub_params or {}))
    return lockfilename
