"""XML-RPC over HTTP for SAMP clients: what both callers share, and the callback server.

The callers (:class:`sciwire.samp._acaller.RpcCaller` and its generated blocking twin
:class:`sciwire.samp._caller.BlockingRpcCaller`) keep their HTTP connections alive and
map every failure at this boundary onto the sciwire/SAMP exception tree through the
functions here: XML-RPC faults become :class:`SAMPProxyError` (still an
:class:`xmlrpc.client.Fault`), refused connections :class:`SAMPHubConnectError` (a
:class:`SAMPHubError` and an :class:`OSError`), timeouts :class:`sciwire.errors.Timeout`,
and unreadable replies :class:`SAMPHubProtocolError`. The value helpers
(:func:`stringify`, :func:`plain`, :class:`ArgsPolicy`) decide how arguments travel.

The callback server answers ``samp.client.*`` calls from the hub: it decodes the
request, hands the method name and parameters to a dispatch function and encodes the
return value (or a fault for an exception).
"""

from __future__ import annotations

import asyncio
import logging
import numbers
import re
import ssl
import urllib.parse
import xmlrpc.client
from collections.abc import Callable, Mapping
from typing import Any

from sciwire.errors import ConnectError, RemoteProtocolError, Timeout
from sciwire.samp._http import Accepted, HttpMessage, HttpServerProtocol, stop_serving
from sciwire.samp._protocol import decode_call, decode_response, encode_fault, encode_response
from sciwire.samp.errors import SAMPDataError, SAMPHubError

__all__ = [
    "MAX_BODY",
    "ArgsPolicy",
    "CallbackServer",
    "SAMPHubConnectError",
    "SAMPHubProtocolError",
    "call_failed",
    "call_limit",
    "call_result",
    "context_for",
    "has_non_strings",
    "plain",
    "split_url",
    "stringify",
]

logger = logging.getLogger(__name__)

#: The largest XML-RPC body the callback server accepts (a SAMP message is small;
#: tables travel by URL).
MAX_BODY = 16 * 1024 * 1024


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


#: XML-RPC's int is 32-bit: a larger Python int travels as its decimal string.
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def plain(value: Any) -> Any:
    """*value* ready for XML-RPC with its types kept, as astropy sends them.

    NumPy scalars become the Python ``bool``/``int``/``float`` they hold (astropy
    cannot send them at all), tuples become lists, map keys strings; an int beyond
    XML-RPC's 32 bits becomes its decimal string. Everything else is unchanged.
    """
    if isinstance(value, str):
        return value
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        value = value.item()  # a NumPy scalar: np.bool_, np.int64, np.float32...
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        number = int(value)
        return number if _INT_MIN <= number <= _INT_MAX else str(number)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def has_non_strings(value: Any) -> bool:
    """Whether *value* holds anything but strings, lists and maps."""
    if isinstance(value, str):
        return False
    if isinstance(value, Mapping):
        return any(has_non_strings(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_non_strings(v) for v in value)
    return True


# How strict hubs refuse a value that is not a string, list or map: JSAMP says
# "Bad SAMP object: contains a java.lang.Integer" or "Param is not a SAMP type",
# sciwire's strict hub "int is not a SAMP type (string, list, map)".
_TYPE_REFUSAL = re.compile(r"not a SAMP type|Bad SAMP object")


class ArgsPolicy:
    """How a hub proxy sends values: as given (astropy's way) until the hub refuses
    a number or boolean, then as SAMP strings for the rest of the connection.

    A refusal of the data model comes before the hub does anything with the call,
    so sending the same call again with strings cannot run it twice. Both proxies
    (blocking and asyncio) ask the same object.
    """

    def __init__(self) -> None:
        self.strings = False

    def first(self, args: tuple[Any, ...]) -> list[Any]:
        """The arguments to send first."""
        return stringify(args) if self.strings else plain(args)  # type: ignore[no-any-return]

    def retry(self, args: tuple[Any, ...], fault: BaseException) -> list[Any] | None:
        """The arguments to send again after *fault*, or None to raise it."""
        if self.strings or not has_non_strings(args):
            return None
        if not _TYPE_REFUSAL.search(str(getattr(fault, "faultString", ""))):
            return None
        self.strings = True
        logger.info("the SAMP hub refuses numbers and booleans: sending them as strings")
        return stringify(args)  # type: ignore[no-any-return]


def call_limit(default: float | None, timeout: float | str | None) -> float | None:
    """The seconds a call waits: the caller's *default* for ``"default"``, else *timeout*."""
    limit = default if timeout == "default" else timeout
    return limit if isinstance(limit, float | int) else None


def call_failed(method: str, url: str, limit: float | None, exc: Exception) -> Exception:
    """What a failed call raises, the same from both callers: a timeout stays a Timeout,
    an unreachable peer is SAMPHubConnectError, a bad answer SAMPHubProtocolError."""
    if isinstance(exc, Timeout):
        return Timeout(f"{method}: no answer from {url} within {limit} s")
    if isinstance(exc, ConnectError):
        return SAMPHubConnectError(f"{method}: cannot reach {url}: {exc}")
    data = exc.data if isinstance(exc, RemoteProtocolError) else None
    return SAMPHubProtocolError(f"{method}: bad HTTP response", data)


def context_for(url: str, ssl_context: ssl.SSLContext | None) -> ssl.SSLContext | None:
    """The TLS context for *url*: *ssl_context*, the system's defaults for an https
    URL without one, None for plain http."""
    if not url.lower().startswith("https:"):
        return None
    return ssl_context if ssl_context is not None else ssl.create_default_context()


def split_url(url: str) -> tuple[str, int, str]:
    """``(host, port, path)`` of an http or https URL.

    Raises:
        SAMPHubError: not an http(s) URL.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SAMPHubError(f"unsupported hub URL {url!r}: only http:// and https://")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise SAMPHubError(f"bad hub URL {url!r}") from exc
    return parts.hostname, port, path


def call_result(method: str, msg: HttpMessage) -> Any:
    """The result of *method* read from the HTTP response *msg* (the same for both callers).

    Raises:
        SAMPProxyError: the answer is an XML-RPC fault.
        SAMPHubError: an HTTP error status.
        SAMPHubProtocolError: the body is not an XML-RPC response.
    """
    status = msg.start[1]
    if status == "401":
        raise SAMPHubError("Unauthorized access. Basic Authentication required or failed.")
    if status != "200":
        raise SAMPHubError(f"Protocol Error {status}: {msg.start[2]}")
    try:
        return decode_response(msg.body, max_size=MAX_BODY)
    except SAMPDataError as exc:
        raise SAMPHubProtocolError(f"{method}: bad XML-RPC response", msg.body) from exc


Dispatch = Callable[[str, tuple[Any, ...]], Any]


class CallbackServer:
    """The client's own XML-RPC server, receiving ``samp.client.*`` calls from the hub.

    Args:
        dispatch: ``dispatch(method, params)`` returns the method's result (it runs on
            the loop and must not block); a :class:`xmlrpc.client.Fault` it raises is
            sent as that fault, any other exception as a fault with code 1.
        addr: the address to listen on (default 127.0.0.1).
        port: the port (0 lets the system choose).
        ssl_context: serve ``https`` with this server context.
    """

    def __init__(
        self,
        dispatch: Dispatch,
        addr: str | None = None,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._dispatch = dispatch
        self._ssl = ssl_context
        self.addr = addr or "127.0.0.1"
        self.port = port
        self._server: asyncio.Server | None = None
        self._connections: set[HttpServerProtocol] = set()
        # every connection from accept to close, including those whose protocol or
        # connection_made comes after stop() began: stop() waits for all of them
        self._accepted = Accepted()
        # set at stop: a connection made after it closes itself at once
        self._stopping = False
        #: requests that could not be decoded (answered with a fault or an HTTP error)
        self.bad_requests = 0

    @property
    def url(self) -> str:
        """The URL the hub should call (valid once started)."""
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{host}:{self.port}/xmlrpc"

    async def start(self) -> None:
        """Bind and start serving."""
        loop = asyncio.get_running_loop()
        self._stopping = False
        accepted = self._accepted = Accepted()
        try:
            server = await loop.create_server(
                lambda: HttpServerProtocol(
                    self._handle,
                    MAX_BODY,
                    self._count_bad,
                    self._connections,
                    is_stopping=lambda: self._stopping,
                    accepted=accepted,
                    early=self._ssl is None,
                ),
                self.addr,
                self.port,
                backlog=1024,
                ssl=self._ssl,
            )
        except OSError as exc:
            raise ConnectError(f"cannot listen on {self.addr}:{self.port}: {exc}") from exc
        self.port = int(server.sockets[0].getsockname()[1])
        self._server = server

    async def stop(self, grace: float = 5.0) -> None:
        """Stop serving; return once every connection it accepted is closed.

        Args:
            grace: seconds the answers already written get to leave before their
                connections are aborted.
        """
        server, self._server = self._server, None
        if server is not None:
            self._stopping = True
            await stop_serving(server, self._accepted, grace)
            self._connections.clear()

    def _count_bad(self) -> None:
        self.bad_requests += 1

    def _handle(self, body: bytes) -> bytes:
        try:
            method, params = decode_call(body, max_size=MAX_BODY)
        except SAMPDataError as exc:
            self.bad_requests += 1
            logger.debug("bad callback request: %s", exc)
            return encode_fault(1, str(exc))
        try:
            result = self._dispatch(method, params)
            return encode_response("" if result is None else result)
        except xmlrpc.client.Fault as fault:
            return encode_fault(fault.faultCode, fault.faultString)
        except Exception as exc:
            logger.debug("callback %s failed", method, exc_info=True)
            return encode_fault(1, f"{type(exc).__name__}: {exc}")
