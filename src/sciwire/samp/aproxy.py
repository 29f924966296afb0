"""The asyncio hub proxy: every ``samp.hub.*`` Standard Profile method, awaitable.

:class:`AsyncSAMPHubProxy` mirrors astropy's ``SAMPHubProxy`` method for method
(same names and arguments), but each method is a coroutine and every outgoing int,
float and bool is turned into a string first so strict hubs (JSAMP) accept it.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping
from typing import Any, Protocol

from sciwire.samp.errors import SAMPHubError
from sciwire.samp.protocol import locate_lockfile, parse_lockfile, read_lockfile
from sciwire.samp.rpc import RpcCaller, stringify

__all__ = ["AsyncSAMPHubProxy", "HubLike", "call_and_wait_limit", "get_main_running_hub"]

logger = logging.getLogger(__name__)

#: Extra seconds the HTTP request of callAndWait may take beyond the SAMP timeout.
CALL_AND_WAIT_GRACE = 10.0


def call_and_wait_limit(timeout: object) -> float | None:
    """How long the HTTP request of a callAndWait with this SAMP *timeout* may take."""
    try:
        seconds = float(timeout)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = 0.0
    return seconds + CALL_AND_WAIT_GRACE if seconds > 0 else None


class HubLike(Protocol):
    """What ``connect(hub=...)`` needs from a hub object (ours or astropy's)."""

    @property
    def is_running(self) -> bool: ...  # pragma: no cover

    @property
    def params(self) -> Mapping[str, str]: ...  # pragma: no cover


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


class AsyncSAMPHubProxy:
    """An asyncio proxy to a SAMP hub's Standard Profile XML-RPC interface.

    Attributes:
        lockfile: the hub's lockfile contents once connected (else empty).
    """

    def __init__(self) -> None:
        self.lockfile: dict[str, str] = {}
        self._rpc: RpcCaller | None = None
        self._connected = False

    @property
    def is_connected(self) -> bool:
        """Whether the proxy is connected to a hub."""
        return self._connected

    async def connect(
        self,
        hub: HubLike | None = None,
        hub_params: Mapping[str, str] | None = None,
        pool_size: int = 20,
    ) -> None:
        """Connect to a hub: the one given, the one in *hub_params*, or the running one.

        Args:
            hub: a running hub object (``SAMPHubServer``) to connect to.
            hub_params: lockfile contents (``{token: value}``) of the hub.
            pool_size: how many HTTP connections to the hub to keep open.

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
        rpc = RpcCaller(url, pool_size)
        try:
            await rpc.call("samp.hub.ping")
        except BaseException:
            await rpc.close()
            raise
        self._rpc = rpc
        self.lockfile = dict(copy.deepcopy(dict(hub_params)))
        self._connected = True

    async def disconnect(self) -> None:
        """Disconnect from the hub (closes the kept-alive connections)."""
        rpc, self._rpc = self._rpc, None
        self._connected = False
        self.lockfile = {}
        if rpc is not None:
            await rpc.close()

    async def _call(self, method: str, *args: Any, timeout: float | str | None = "default") -> Any:
        rpc = self._rpc
        if rpc is None:
            raise SAMPHubError("Hub proxy not connected")
        return await rpc.call("samp.hub." + method, *stringify(args), timeout=timeout)

    async def ping(self) -> Any:
        """Proxy to the ``ping`` hub method."""
        return await self._call("ping")

    async def set_xmlrpc_callback(self, private_key: str, xmlrpc_addr: str) -> Any:
        """Proxy to ``setXmlrpcCallback``."""
        return await self._call("setXmlrpcCallback", private_key, xmlrpc_addr)

    async def register(self, secret: str) -> dict[str, str]:
        """Proxy to ``register``: returns samp.private-key, samp.self-id, samp.hub-id."""
        result: dict[str, str] = await self._call("register", secret)
        return result

    async def unregister(self, private_key: str) -> Any:
        """Proxy to ``unregister``."""
        return await self._call("unregister", private_key)

    async def declare_metadata(self, private_key: str, metadata: Mapping[str, Any]) -> Any:
        """Proxy to ``declareMetadata``."""
        return await self._call("declareMetadata", private_key, metadata)

    async def get_metadata(self, private_key: str, client_id: str) -> dict[str, Any]:
        """Proxy to ``getMetadata``."""
        result: dict[str, Any] = await self._call("getMetadata", private_key, client_id)
        return result

    async def declare_subscriptions(
        self, private_key: str, subscriptions: Mapping[str, Any]
    ) -> Any:
        """Proxy to ``declareSubscriptions``."""
        return await self._call("declareSubscriptions", private_key, subscriptions)

    async def get_subscriptions(self, private_key: str, client_id: str) -> dict[str, Any]:
        """Proxy to ``getSubscriptions``."""
        result: dict[str, Any] = await self._call("getSubscriptions", private_key, client_id)
        return result

    async def get_registered_clients(self, private_key: str) -> list[str]:
        """Proxy to ``getRegisteredClients`` (every client but the caller, hub included)."""
        result: list[str] = await self._call("getRegisteredClients", private_key)
        return result

    async def get_subscribed_clients(self, private_key: str, mtype: str) -> dict[str, Any]:
        """Proxy to ``getSubscribedClients``: ``{client-id: annotation map}``."""
        result: dict[str, Any] = await self._call("getSubscribedClients", private_key, mtype)
        return result

    async def notify(self, private_key: str, recipient_id: str, message: Mapping[str, Any]) -> Any:
        """Proxy to ``notify``."""
        return await self._call("notify", private_key, recipient_id, message)

    async def notify_all(self, private_key: str, message: Mapping[str, Any]) -> list[str]:
        """Proxy to ``notifyAll``: the ids notified."""
        result: list[str] = await self._call("notifyAll", private_key, message)
        return result

    async def call(
        self, private_key: str, recipient_id: str, msg_tag: str, message: Mapping[str, Any]
    ) -> str:
        """Proxy to ``call``: the msg-id."""
        result: str = await self._call("call", private_key, recipient_id, msg_tag, message)
        return result

    async def call_all(
        self, private_key: str, msg_tag: str, message: Mapping[str, Any]
    ) -> dict[str, str]:
        """Proxy to ``callAll``: ``{recipient-id: msg-id}``."""
        result: dict[str, str] = await self._call("callAll", private_key, msg_tag, message)
        return result

    async def call_and_wait(
        self,
        private_key: str,
        recipient_id: str,
        message: Mapping[str, Any],
        timeout: str | int | float,
    ) -> dict[str, Any]:
        """Proxy to ``callAndWait``: the response (``timeout`` "0" waits forever)."""
        limit = call_and_wait_limit(timeout)
        result: dict[str, Any] = await self._call(
            "callAndWait", private_key, recipient_id, message, timeout, timeout=limit
        )
        return result

    async def reply(self, private_key: str, msg_id: str, response: Mapping[str, Any]) -> Any:
        """Proxy to ``reply``."""
        return await self._call("reply", private_key, msg_id, response)
