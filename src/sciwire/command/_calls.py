"""What CommandClient and AsyncCommandClient decide, in one sans-I/O object.

:class:`CallCore` holds everything both clients decide: the settings (and the retry
rule and error factory their pools get), a call's request bytes, whether the client
may send at all (open or closed), how a failure is worded, how a reply is decoded, and
the method table from ``system.describe`` (ordered, under one lock). Each client holds
one core and only moves bytes (a blocking socket pool or asyncio), so the two cannot
drift apart on any of these: a scenario gives the same result or the same exception
on both (tests/command/test_twins.py runs each on both).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sciwire.command._errors import (
    CommandConnectError,
    CommandConnectionClosed,
    CommandError,
    command_error,
)
from sciwire.command._protocol import (
    DESCRIBE,
    NumpyEncoder,
    ProcInfo,
    default_encoder,
    encode_request,
    http_error,
    make_params,
    new_id,
    parse_describe,
    parse_response,
)
from sciwire.core.http.client import Endpoint, host_header
from sciwire.core.http.codec import ParsedResponse
from sciwire.core.http.codec import encode_request as encode_http_request

__all__ = [
    "CLOSED_REASON",
    "NOT_CONNECTED_REASON",
    "CallCore",
    "MethodHost",
    "procedure_signature",
    "set_module_defaults",
]

logger = logging.getLogger(__name__)

#: why a call on a closed client fails (both clients)
CLOSED_REASON = "client is closed"
#: why a call on an asyncio client not yet connected fails
NOT_CONNECTED_REASON = "client is not connected (use 'async with' or connect())"
#: what a connection that ended before its whole reply means, on either pool
_CLOSED_EARLY = (
    "connection closed before a complete response (request not re-sent: it may have been processed)"
)


def _env_defaults() -> tuple[Any, Any]:
    # the package replaces this (set_module_defaults) once its settings exist
    return 3, 30


_module_defaults: Callable[[], tuple[Any, Any]] = _env_defaults


def set_module_defaults(read: Callable[[], tuple[Any, Any]]) -> None:
    """Where clients read ``MAX_ATTEMPTS`` and ``RETRY_INTERVAL`` from when made.

    The package calls this with a reader of its own module attributes, so that an
    assignment to ``sciwire.command.MAX_ATTEMPTS`` applies to clients made later
    without this module importing its importer.
    """
    global _module_defaults
    _module_defaults = read


def module_defaults() -> tuple[int, float]:
    """The current ``MAX_ATTEMPTS`` and ``RETRY_INTERVAL``, checked.

    Raises:
        TypeError: they were set to something that is not a number.
    """
    attempts, interval = _module_defaults()
    try:
        return max(1, int(attempts)), max(0.0, float(interval))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            "sciwire.command.MAX_ATTEMPTS must be an int and RETRY_INTERVAL a number "
            f"(got {attempts!r}, {interval!r})"
        ) from exc


def procedure_signature(info: ProcInfo) -> inspect.Signature | None:
    """A signature for a discovered procedure, from the names ``system.describe`` gave."""
    if not info.params:
        return None
    try:
        return inspect.Signature(
            [
                inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
                for n in info.params
            ]
        )
    except ValueError:  # names that are not identifiers
        return None


class MethodHost(Protocol):
    """The client a core installs discovered procedures on."""

    def _get_callable(self, key: str, info: ProcInfo | None = None) -> Callable[..., Any]: ...


#: encoders whose output for a request object :meth:`CallCore.request` reproduces
_STOCK = (json.JSONEncoder, NumpyEncoder)
_MAX_HEADS = 1024

# open is 0 so that the per-call check is one truth test
_OPEN, _NEW, _CLOSED = 0, 1, 2


def _body_head(method: str) -> bytes:
    """A call body up to its params: ``{"jsonrpc": "2.0", "method": ..., "params": ``."""
    return b'{"jsonrpc": "2.0", "method": %s, "params": ' % json.dumps(method).encode()


def _connect_reason(err: CommandConnectError) -> str:
    """The reason with the system's words for the connect error's errno: asyncio words
    a refused connection "Connect call failed ('host', port)" where the socket module
    says "Connection refused"."""
    cause = err.__cause__
    if (
        isinstance(cause, OSError)
        and cause.errno
        and isinstance(cause.strerror, str)
        and cause.strerror.startswith("Connect call failed")
    ):
        return err.reason.replace(cause.strerror, os.strerror(cause.errno), 1)
    return err.reason


class CallCore:
    """The I/O-free half of a command client; both clients hold one.

    Args:
        service: the service label (in HTTP error messages).
        host: host name or address; ``https://host`` selects TLS.
        port: the service port.
        url: a path prefix for every request.
        cls: the ``json.JSONEncoder`` subclass for request bodies (None: the default).
        timeout: the client's timeout in seconds.
        headers: HTTP headers for every request.
        retries: attempts per request when the server cannot be reached (None: the
            package's ``MAX_ATTEMPTS``).
        retry_seconds: pause between those attempts (None: ``RETRY_INTERVAL``).
        opened: the client may call at once (else after :meth:`open`).
    """

    def __init__(
        self,
        service: str,
        host: str,
        port: int,
        url: str,
        cls: type[json.JSONEncoder] | None,
        timeout: float,
        headers: Mapping[str, str] | None,
        retries: int | None,
        retry_seconds: float | None,
        *,
        opened: bool = True,
    ) -> None:
        self.service = service
        self.endpoint = Endpoint.parse(host, port, url)
        self.url = self.endpoint.base_url
        self.api_url = self.url + "/api"
        self.api_path = self.endpoint.prefix + "/api"
        self.encoder = cls or default_encoder()
        self._json = self.encoder()  # one instance, reused: encode() keeps no state
        # The stock encoders write the request object the same way every time: keep
        # each method's body head, fill in params and id (same bytes as json.dumps).
        self._heads: dict[str, bytes] | None = {} if self.encoder in _STOCK else None
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.call_headers = {
            "Originator": "client",
            **self.headers,
            "Content-Type": "application/json",
        }
        # every call has the same head but for Content-Length: encode it once
        head = encode_http_request(
            "POST", self.api_path, host_header(self.endpoint), self.call_headers, b""
        )
        self.call_prefix = head[: -len(b"0\r\n\r\n")]
        if retries is None or retry_seconds is None:
            attempts, interval = module_defaults()
            retries = attempts if retries is None else retries
            retry_seconds = interval if retry_seconds is None else retry_seconds
        self.retries = max(1, int(retries))
        self.retry_seconds = retry_seconds
        self._state = _OPEN if opened else _NEW
        self.procs: dict[str, ProcInfo] = {}
        # Discovery answers are applied in the order they were asked for, under a lock:
        # two reloads that overlap (threads, or tasks) never leave a mix of both tables,
        # and an older answer arriving last does not undo a newer one.
        self._table_lock = threading.Lock()
        self._asked = 0
        self._applied = 0

    # -- settings both pools take ------------------------------------------------------

    def pool_options(self, ssl_context: ssl.SSLContext | None) -> dict[str, Any]:
        """The settings both transports give the core pools: the one retry rule (only
        a request surely not received is re-sent), the errors, the name."""
        return {
            "timeout": self.timeout,
            "retries": self.retries,
            "retry_seconds": self.retry_seconds,
            "ssl_context": ssl_context,
            "retry": "unsent",
            "error_factory": command_error,
            "name": "command server",
        }

    # -- open and closed ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._state == _CLOSED

    def open(self) -> None:
        """Allow calls (an asyncio client's connect()).

        Raises:
            CommandError: the client was closed (a closed client stays closed).
        """
        if self._state == _CLOSED:
            raise CommandError(CLOSED_REASON, url=self.url)
        self._state = _OPEN

    def close(self) -> None:
        """Refuse every later call (idempotent)."""
        self._state = _CLOSED

    def ensure_open(self) -> None:
        """Raise the error a call on this client would raise if it may not send.

        Raises:
            CommandError: the client is closed, or not connected yet.
        """
        if self._state != _OPEN:
            raise self._refusal()

    def _refusal(self) -> CommandError:
        reason = CLOSED_REASON if self._state == _CLOSED else NOT_CONNECTED_REASON
        return CommandError(reason, url=self.url)

    # -- one call ----------------------------------------------------------------------

    def request(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[bytes, Any]:
        """The call's whole HTTP request, and the params as messages show them.

        Raises:
            CommandError: the client may not send (closed, or not connected).
            TypeError: positional and keyword params mixed, or a param not encodable.
        """
        if self._state:  # not open
            raise self.failed(method, kwargs if kwargs else args, self._refusal())
        heads = self._heads
        if heads is None:
            body = encode_request(method, make_params(args, kwargs), encoder=self._json)
        else:
            head = heads.get(method)
            if head is None:
                head = _body_head(method)
                if len(heads) < _MAX_HEADS:  # call(name) may use any number of names
                    heads[method] = head
            if kwargs or args:
                params = self._json.encode(make_params(args, kwargs)).encode()
            else:
                params = b"[]"
            body = b'%s%s, "id": "%s"}' % (head, params, new_id().encode())
        shown = kwargs if kwargs else args  # shown in messages as the original does
        return b"%s%d\r\n\r\n%s" % (self.call_prefix, len(body), body), shown

    def failed(self, method: str, shown: Any, err: CommandError) -> CommandError:
        """A transport failure restated with the call, as the original words it.

        A connection that ended before the whole reply, or one that could not be made,
        reads the same from both pools (their own words stay on the ``__cause__``)."""
        kind: type[CommandError] = type(err)
        reason, data = err.reason, err.data
        if isinstance(err, CommandConnectionClosed):
            kind, reason, data = CommandConnectionClosed, _CLOSED_EARLY, None
        elif isinstance(err, CommandConnectError):
            reason = _connect_reason(err)
        return kind(
            f'Encountered error from JSONRPC function "{method}" with params {shown}: {reason}',
            url=self.url,
            code=err.code,
            data=data,
        )

    def result(self, method: str, shown: Any, resp: ParsedResponse) -> Any:
        """The call's result, or CommandError for an HTTP or JSON-RPC error."""
        if resp.status < 400:
            return parse_response(resp.body, method, shown, self.url)
        ctype = resp.headers.get("content-type", "")
        herr = http_error(resp.status, resp.reason, resp.body, ctype, self.api_url, self.service)
        raise self.failed(method, shown, herr) from herr

    # -- the method table --------------------------------------------------------------

    def describe_request(self) -> tuple[int, str]:
        """Start a discovery: its ticket (pass it to :meth:`install`) and the method."""
        with self._table_lock:
            self._asked += 1
            return self._asked, DESCRIBE

    def install(self, ticket: int, result: Any, host: MethodHost) -> None:
        """Apply a ``system.describe`` *result*: one method on *host* per procedure,
        vanished ones removed; an answer older than one already applied is dropped.

        Raises:
            CommandError: the result is not a procedure list.
        """
        fresh = {p.name: p for p in parse_describe(result, self.url)}
        with self._table_lock:
            if ticket < self._applied:
                logger.debug("an older system.describe answer came last; dropped")
                return
            attrs = vars(host)
            for gone in set(self.procs) - set(fresh):
                attrs.pop(gone, None)
            reserved = set(dir(type(host)))
            for name, info in fresh.items():
                if name in reserved or name.startswith("__"):
                    logger.debug("procedure %r would shadow a client attribute; skipped", name)
                    continue
                attrs[name] = host._get_callable(name, info)
            self.procs = fresh
            self._applied = ticket

    def dress(self, func: Callable[..., Any], owner: str, key: str, info: ProcInfo | None) -> None:
        """Name, doc and signature of a per-procedure method of class *owner*."""
        func.__name__ = key
        func.__qualname__ = f"{owner}.{key}"
        if info is not None:
            func.__doc__ = info.doc or None
            sig = procedure_signature(info)
            if sig is not None:
                func.__signature__ = sig  # type: ignore[attr-defined]
