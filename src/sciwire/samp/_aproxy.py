"""The asyncio hub proxy: every ``samp.hub.*`` Standard Profile method, awaitable.

:class:`AsyncSAMPHubProxy` mirrors astropy's ``SAMPHubProxy`` method for method
(same names and arguments; the method table is
:class:`sciwire.samp._ahubmethods.AsyncHubMethods`, the source of the blocking twin),
but each method returns a coroutine and every outgoing int, float and bool is turned
into a string first so strict hubs (JSAMP) accept it.
"""

from __future__ import annotations

import copy
import logging
import os
import ssl
import warnings
from collections.abc import Mapping
from typing import Any

from sciwire.samp._acaller import RpcCaller
from sciwire.samp._ahubmethods import AsyncHubMethods
from sciwire.samp._common import HubLike, call_and_wait_limit
from sciwire.samp._hublock import locate_lockfile, read_lockfile
from sciwire.samp._protocol import parse_lockfile
from sciwire.samp._rpc import ArgsPolicy
from sciwire.samp.errors import SAMPHubError, SAMPProxyError, SAMPWarning

__all__ = ["AsyncSAMPHubProxy", "HubLike", "call_and_wait_limit", "get_main_running_hub"]

logger = logging.getLogger(__name__)


def _read_lockfile_any(location: str) -> dict[str, str]:
    """Read a lockfile from a path, or from an http(s) URL with the stdlib."""
    if location.startswith(("http://", "https://")):
        import urllib.request

        with urllib.request.urlopen(location, timeout=10) as resp:
            return parse_lockfile(resp.read().decode("ascii", "replace"))
    return read_lockfile(location)


def get_main_running_hub(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The lockfile contents of the hub ``SAMP_HUB`` or ``~/.samp`` points to.

    Unlike astropy this does not ping the hub (connect does that) and does not
    scan ``~/.samp-1/`` multi-hub directories.

    Raises:
        SAMPHubError: no lockfile, an unsupported ``SAMP_HUB`` profile, or a lockfile
            missing ``samp.hub.xmlrpc.url`` / ``samp.secret``.
    """
    env = os.environ if environ is None else environ
    hub_env = env.get("SAMP_HUB")
    if hub_env and not hub_env.startswith("std-lockurl:"):
        raise SAMPHubError(f"SAMP Hub profile not supported: SAMP_HUB={hub_env!r}")
    location = locate_lockfile(env)
    try:
        params = _read_lockfile_any(location)
    except OSError as exc:
        raise SAMPHubError(
            f"Unable to find a running SAMP Hub (no lockfile at {location})"
        ) from exc
    for key in ("samp.hub.xmlrpc.url", "samp.secret"):
        if key not in params:
            raise SAMPHubError(f"lockfile {location} has no {key}: not a running hub")
    return params


class AsyncSAMPHubProxy(AsyncHubMethods):
    """An asyncio proxy to a SAMP hub's Standard Profile XML-RPC interface.

    Attributes:
        lockfile: the hub's lockfile contents once connected (else empty).
    """

    def __init__(self) -> None:
        self.lockfile: dict[str, str] = {}
        self._rpc: RpcCaller | None = None
        self._connected = False
        #: how values are sent (as given until the hub refuses non-strings)
        self.args_policy = ArgsPolicy()

    @property
    def is_connected(self) -> bool:
        """Whether the proxy is connected to a hub."""
        return self._connected

    async def connect(
        self,
        hub: HubLike | None = None,
        hub_params: Mapping[str, str] | None = None,
        pool_size: int = 20,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Connect to a hub: the one given, the one in *hub_params*, or the running one.

        Args:
            hub: a running hub object (``SAMPHubServer``) to connect to.
            hub_params: lockfile contents (``{token: value}``) of the hub.
            pool_size: how many HTTP connections to the hub to keep open.
            ssl_context: TLS settings for an ``https`` hub (default: the system's).

        Raises:
            ValueError: both *hub* and *hub_params* given.
            SAMPHubError: the hub is not running, cannot be found or does not answer.
        """
        await self.disconnect()
        if hub is not None and hub_params is not None:
            raise ValueError("Cannot specify both hub and hub_params")
        if hub_params is None:
            if hub is not None:
                if not hub.is_running:
                    raise SAMPHubError("Hub is not running")
                hub_params = hub.params
            else:
                hub_params = get_main_running_hub()
        try:
            url = str(hub_params["samp.hub.xmlrpc.url"]).replace("\\", "")
        except KeyError:
            raise SAMPHubError("hub parameters have no samp.hub.xmlrpc.url") from None
        rpc = RpcCaller(url, pool_size, ssl_context=ssl_context)
        try:
            await rpc.call("samp.hub.ping")
        except BaseException:
            await rpc.close()
            raise
        self._rpc = rpc
        self.args_policy = ArgsPolicy()  # a new hub: learn its strictness afresh
        self.lockfile = dict(copy.deepcopy(dict(hub_params)))
        self._connected = True

    async def disconnect(self) -> None:
        """Disconnect from the hub (closes the kept-alive connections)."""
        rpc, self._rpc = self._rpc, None
        self._connected = False
        self.lockfile = {}
        if rpc is not None:
            await rpc.close()

    async def notify_all(self, private_key: str, message: Mapping[str, Any]) -> list[str]:
        """Proxy to ``notifyAll``: the ids notified (a :class:`SAMPWarning` when none)."""
        ids: list[str] = await self._call("notifyAll", private_key, message)
        if not ids:
            warnings.warn("No client was able to receive this message", SAMPWarning, stacklevel=2)
        return ids

    async def _call(self, method: str, *args: Any, timeout: float | str | None = "default") -> Any:
        rpc = self._rpc
        if rpc is None:
            raise SAMPHubError("Hub proxy not connected")
        policy = self.args_policy
        try:
            return await rpc.call("samp.hub." + method, *policy.first(args), timeout=timeout)
        except SAMPProxyError as fault:
            again = policy.retry(args, fault)
            if again is None:
                raise
            return await rpc.call("samp.hub." + method, *again, timeout=timeout)
