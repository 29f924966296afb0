"""XML-RPC over HTTP for SAMP clients: an asyncio caller and a callback server.

The caller keeps its HTTP connections alive (one aiohttp session per hub proxy) and
maps every failure at this boundary onto the sciwire/SAMP exception tree: XML-RPC
faults become :class:`SAMPProxyError` (still an :class:`xmlrpc.client.Fault`),
refused connections :class:`SAMPHubConnectError` (a :class:`SAMPHubError` and an
:class:`OSError`), timeouts :class:`sciwire.errors.Timeout`, and unreadable replies
:class:`SAMPHubProtocolError`.

The callback server answers ``samp.client.*`` calls from the hub: it decodes the
request, hands the method name and parameters to a dispatch function and encodes the
return value (or a fault for an exception).
"""

from __future__ import annotations

import asyncio
import logging
import numbers
import xmlrpc.client
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from sciwire.errors import ConnectError, RemoteProtocolError, Timeout
from sciwire.samp.errors import SAMPDataError, SAMPHubError
from sciwire.samp.protocol import (
    decode_call,
    decode_response,
    encode_call,
    encode_fault,
    encode_response,
)

__all__ = [
    "CallbackServer",
    "RpcCaller",
    "SAMPHubConnectError",
    "SAMPHubProtocolError",
    "stringify",
]

logger = logging.getLogger(__name__)

#: The largest XML-RPC body the callback server accepts (a SAMP message is small;
#: tables travel by URL).
MAX_BODY = 16 * 1024 * 1024

_HEADERS = {"Content-Type": "text/xml"}


class SAMPHubConnectError(SAMPHubError, ConnectError):
    """The hub could not be reached (also an :class:`OSError`, like astropy's socket errors)."""


class SAMPHubProtocolError(SAMPHubError, RemoteProtocolError):
    """The hub answered with something that is not a valid XML-RPC response."""


def stringify(value: Any) -> Any:
    """Return *value* in the SAMP data model: ints, floats and bools become strings.

    Booleans become ``"1"``/``"0"`` (SAMP 1.3, section 3.3), tuples become lists, and
    maps and lists are converted recursively. Strings and anything else pass through.
    """
    if isinstance(value, str):
        return value
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        value = value.item()  # a NumPy scalar: np.bool_, np.int64, np.float32...
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        if isinstance(value, numbers.Integral):
            return str(int(value))
        return repr(float(value))  # type: ignore[arg-type]
    if isinstance(value, Mapping):
        return {str(k): stringify(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [stringify(v) for v in value]
    return value


class RpcCaller:
    """Calls XML-RPC methods at one URL over keep-alive HTTP.

    Args:
        url: the endpoint (``samp.hub.xmlrpc.url``).
        pool_size: the most connections kept open at once.
        timeout: default seconds to wait for an answer (None waits forever).
    """

    def __init__(self, url: str, pool_size: int = 20, timeout: float | None = 60.0) -> None:
        self.url = url
        self.pool_size = max(1, int(pool_size))
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.pool_size, force_close=False)
            self._session = aiohttp.ClientSession(
                connector=connector, skip_auto_headers=("User-Agent",)
            )
        return self._session

    async def call(self, method: str, *params: Any, timeout: float | str | None = "default") -> Any:
        """Call *method* with *params* and return its result.

        Args:
            method: the full XML-RPC method name.
            params: the arguments, already in the SAMP data model.
            timeout: seconds to wait, None for no limit; the default is the caller's.

        Raises:
            SAMPProxyError: the peer answered with a fault.
            SAMPHubConnectError: the peer could not be reached.
            SAMPHubError: the peer answered with an HTTP error.
            SAMPHubProtocolError: the answer was not XML-RPC.
            Timeout: no answer in time.
        """
        limit = self.timeout if timeout == "default" else timeout
        body = encode_call(method, params)
        session = self._get_session()
        client_timeout = aiohttp.ClientTimeout(
            total=limit if isinstance(limit, float | int) else None
        )
        try:
            async with session.post(
                self.url, data=body, headers=_HEADERS, timeout=client_timeout
            ) as resp:
                data = await resp.read()
                status, reason = resp.status, resp.reason
        except asyncio.TimeoutError as exc:
            raise Timeout(f"{method}: no answer from {self.url} within {limit} s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise SAMPHubConnectError(f"cannot reach {self.url}: {exc}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise SAMPHubConnectError(f"{method}: connection to {self.url} failed: {exc}") from exc
        if status == 401:
            raise SAMPHubError("Unauthorized access. Basic Authentication required or failed.")
        if status != 200:
            raise SAMPHubError(f"Protocol Error {status}: {reason}")
        try:
            return decode_response(data)
        except SAMPDataError as exc:
            raise SAMPHubProtocolError(f"{method}: bad XML-RPC response", data) from exc

    async def close(self) -> None:
        """Close the kept-alive connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


Dispatch = Callable[[str, tuple[Any, ...]], Awaitable[Any]]


class CallbackServer:
    """The client's own XML-RPC server, receiving ``samp.client.*`` calls from the hub.

    Args:
        dispatch: ``await dispatch(method, params)`` returns the method's result; a
            :class:`xmlrpc.client.Fault` it raises is sent as that fault, any other
            exception as a fault with code 1.
        addr: the address to listen on (default 127.0.0.1).
        port: the port (0 lets the system choose).
    """

    def __init__(self, dispatch: Dispatch, addr: str | None = None, port: int = 0) -> None:
        self._dispatch = dispatch
        self.addr = addr or "127.0.0.1"
        self.port = port
        self._runner: web.AppRunner | None = None
        #: requests that could not be decoded (answered with a fault)
        self.bad_requests = 0

    @property
    def url(self) -> str:
        """The URL the hub should call (valid once started)."""
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/xmlrpc"

    async def start(self) -> None:
        """Bind and start serving."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.addr, self.port, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConnectError(f"cannot listen on {self.addr}:{self.port}: {exc}") from exc
        addresses = runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving and close open connections."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.bad_requests += 1
            return web.Response(body=encode_fault(1, "request too large"), headers=_HEADERS)
        try:
            method, params = decode_call(body, max_size=MAX_BODY)
        except SAMPDataError as exc:
            self.bad_requests += 1
            logger.debug("bad callback request: %s", exc)
            return web.Response(body=encode_fault(1, str(exc)), headers=_HEADERS)
        try:
            result = await self._dispatch(method, params)
            payload = encode_response("" if result is None else result)
        except xmlrpc.client.Fault as fault:
            payload = encode_fault(fault.faultCode, fault.faultString)
        except Exception as exc:
            logger.debug("callback %s failed", method, exc_info=True)
            payload = encode_fault(1, f"{type(exc).__name__}: {exc}")
        return web.Response(body=payload, headers=_HEADERS)
