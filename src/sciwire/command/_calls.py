"""What CommandClient and AsyncCommandClient share: everything but the I/O.

:class:`CallCore` builds a call's request bytes, maps transport and HTTP failures to
cryosparc-tools' messages, decodes the response, makes the per-procedure methods and
applies a ``system.describe`` answer. The two clients only move the bytes (blocking
socket pool or asyncio) and wrap a call as a plain function or a coroutine function.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sciwire.command._errors import CommandError
from sciwire.command._protocol import (
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
from sciwire.command._transport import module_defaults
from sciwire.core.http.client import Endpoint
from sciwire.core.http.codec import ParsedResponse

__all__ = ["CallCore", "procedure_signature"]

logger = logging.getLogger(__name__)


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


#: encoders whose output for a request object :func:`_body_head` reproduces
_STOCK = (json.JSONEncoder, NumpyEncoder)
_MAX_HEADS = 1024


def _body_head(method: str) -> bytes:
    """A call body up to its params: ``{"jsonrpc": "2.0", "method": ..., "params": ``."""
    return b'{"jsonrpc": "2.0", "method": %s, "params": ' % json.dumps(method).encode()


def _failed(method: str, shown: Any, err: CommandError, url: str) -> CommandError:
    return type(err)(
        f'Encountered error from JSONRPC function "{method}" with params {shown}: {err.reason}',
        url=url,
        code=err.code,
        data=err.data,
    )


class CallCore:
    """The I/O-free half of a command client (mixed into both clients).

    Subclasses call :meth:`_setup`, set ``_call_prefix`` (the request head
    every call shares, but for Content-Length) from their transport, and implement
    ``_call`` and ``_get_callable`` with their own I/O.
    """

    service: str
    _endpoint: Endpoint
    _url: str
    _api_url: str
    _api_path: str
    _encoder: type[json.JSONEncoder]
    _json: json.JSONEncoder
    _call_prefix: bytes
    _timeout: float
    _headers: dict[str, str]
    _call_headers: dict[str, str]
    _retries: int
    _retry_seconds: float
    _procs: dict[str, ProcInfo]

    def _setup(
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
    ) -> None:
        """The settings both clients take, resolved (defaults: ``MAX_ATTEMPTS`` and
        ``RETRY_INTERVAL`` of :mod:`sciwire.command`)."""
        self.service = service
        self._endpoint = Endpoint.parse(host, port, url)
        self._url = self._endpoint.base_url
        self._api_url = self._url + "/api"
        self._api_path = self._endpoint.prefix + "/api"
        self._encoder = cls or default_encoder()
        self._json = self._encoder()  # one instance, reused: encode() keeps no state
        # The stock encoders write the request object the same way every time: keep
        # each method's body head, fill in params and id (same bytes as json.dumps).
        self._heads: dict[str, bytes] | None = {} if self._encoder in _STOCK else None
        self._timeout = timeout
        self._headers = dict(headers or {})
        self._call_headers = {
            "Originator": "client",
            **self._headers,
            "Content-Type": "application/json",
        }
        if retries is None or retry_seconds is None:
            attempts, interval = module_defaults()
            retries = attempts if retries is None else retries
            retry_seconds = interval if retry_seconds is None else retry_seconds
        self._retries = max(1, int(retries))
        self._retry_seconds = retry_seconds
        self._procs = {}

    def _request(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[bytes, Any]:
        """The call's whole HTTP request, and the params as messages show them."""
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
        return b"%s%d\r\n\r\n%s" % (self._call_prefix, len(body), body), shown

    def _send_failed(self, method: str, shown: Any, err: CommandError) -> CommandError:
        """A transport failure restated with the call, as the original words it."""
        return _failed(method, shown, err, self._url)

    def _decode(self, method: str, shown: Any, resp: ParsedResponse) -> Any:
        """The call's result, or CommandError for an HTTP or JSON-RPC error."""
        if resp.status >= 400:
            ctype = resp.headers.get("content-type", "")
            herr = http_error(
                resp.status, resp.reason, resp.body, ctype, self._api_url, self.service
            )
            raise _failed(method, shown, herr, self._url) from herr
        return parse_response(resp.body, method, shown, self._url)

    def _dress(self, func: Callable[..., Any], key: str, info: ProcInfo | None) -> None:
        """Name, doc and signature of a per-procedure method."""
        func.__name__ = key
        func.__qualname__ = f"{type(self).__name__}.{key}"
        if info is not None:
            func.__doc__ = info.doc or None
            sig = procedure_signature(info)
            if sig is not None:
                func.__signature__ = sig  # type: ignore[attr-defined]

    def _get_callable(self, key: str, info: ProcInfo | None = None) -> Callable[..., Any]:
        raise NotImplementedError

    def _apply_describe(self, result: Any) -> None:
        """Install the methods a ``system.describe`` result names; drop vanished ones."""
        procs = parse_describe(result, self._url)
        fresh = {p.name: p for p in procs}
        for gone in set(self._procs) - set(fresh):
            self.__dict__.pop(gone, None)
        reserved = set(dir(type(self)))
        for name, info in fresh.items():
            if name in reserved or name.startswith("__"):
                logger.debug("procedure %r would shadow a client attribute; skipped", name)
                continue
            setattr(self, name, self._get_callable(name, info))
        self._procs = fresh
