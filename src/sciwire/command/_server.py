"""CommandServer: expose Python functions or an object's methods as a CryoSPARC-style
JSON-RPC service (``POST {url}/api``), plus plain HTTP routes.

It runs on the shared asyncio HTTP/1.1 server of :mod:`sciwire.core.http.server`
(one event loop, no thread per request, TCP_NODELAY, one send per response). Plain
functions run inline on the loop and are answered without creating a task; coroutine
procedures run concurrently; ``to_thread=True`` sends plain functions to the default
executor instead.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import ssl
import traceback
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sciwire.command._protocol import (
    DESCRIBE,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    SERVER_ERROR,
    Call,
    NumpyEncoder,
    ProcInfo,
    RpcFault,
    decode_call,
    default_encoder,
    describe_result,
    encode_error,
    encode_result,
)
from sciwire.core.http.codec import ParsedRequest, encode_response
from sciwire.core.http.server import HttpServer, Reply, RouteRequest, RouteResponse
from sciwire.core.jsonfast import reused_encoder
from sciwire.core.patterns import Registry

__all__ = ["CommandServer", "RouteHandler", "RouteRequest", "RouteResponse"]

logger = logging.getLogger(__name__)

#: A plain route: gets a :class:`RouteRequest`, returns a :class:`RouteResponse`, bytes, str or a
#: JSON value (or an awaitable of one of those).
RouteHandler = Callable[[RouteRequest], Any]

_JSON = "application/json"

#: results that are never awaitable (skips the inspect.isawaitable check)
_PLAIN = frozenset({dict, list, str, int, float, bool, type(None)})
#: encoders whose replies :meth:`CommandServer._ok` may assemble from pieces
_STOCK = frozenset({json.JSONEncoder, NumpyEncoder})


def _param_names(fn: Callable[..., Any]) -> tuple[str, ...]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return ()
    return tuple(
        p.name
        for p in sig.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    )


class CommandServer(HttpServer):
    """A JSON-RPC command service (``POST {url}/api``) plus plain HTTP routes.

    Args:
        target: an object whose public methods to expose (optional).
        host: the address to bind.
        port: the port to bind (0 picks a free one; read :attr:`port` after start).
        url: a path prefix for every route (like the client's ``url``).
        license_id: when set, every request must carry ``License-ID: <license_id>``
            (missing -> 401, wrong -> 403, both with a JSON error body).
        name: the service name reported by ``system.describe``.
        cls: the JSON encoder for replies (numpy-aware by default when numpy is there).
        to_thread: run plain (non-coroutine) procedures in the default executor
            instead of inline on the loop.
        max_body: the largest request body accepted, in bytes.
        ssl_context: serve HTTPS with these TLS settings.
        shutdown_timeout: seconds :meth:`stop` waits for calls in progress before
            cancelling them.
        keepalive_timeout: idle keep-alive connections are closed after this long.
    """

    def __init__(
        self,
        target: object | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 39002,
        url: str = "",
        license_id: str | None = None,
        name: str = "command",
        cls: type[json.JSONEncoder] | None = None,
        to_thread: bool = False,
        max_body: int = 256 * 1024 * 1024,
        ssl_context: ssl.SSLContext | None = None,
        shutdown_timeout: float = 5.0,
        keepalive_timeout: float = 75.0,
    ) -> None:
        super().__init__(
            host=host,
            port=port,
            ssl_context=ssl_context,
            max_body=max_body,
            shutdown_timeout=shutdown_timeout,
            keepalive_timeout=keepalive_timeout,
            name=name,
        )
        self.prefix = url.rstrip("/")
        self._api_path = self.prefix + "/api"
        self.license_id = license_id
        self.cls = cls or default_encoder()
        self._json = self.cls()
        self._stock = self.cls in _STOCK
        self._encode = reused_encoder(self._json)
        self.to_thread = to_thread
        self._procs = Registry("key")
        self._docs: dict[str, ProcInfo] = {}
        self._routes: dict[tuple[str, str], RouteHandler] = {}
        if target is not None:
            self.expose_object(target)

    # -- registration -----------------------------------------------------------------

    def expose(self, fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
        """Expose *fn* as a procedure (also usable as a decorator, with or without name).

        Exposing a name again replaces the earlier procedure.
        """

        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            key = name or f.__name__
            if key == DESCRIBE:
                raise ValueError(f"{DESCRIBE} is provided by the server")
            for old in self._procs.match(key):
                self._procs.unregister(old.id)
            self._procs.register(key, f)
            self._docs[key] = ProcInfo(key, _param_names(f), inspect.getdoc(f) or "")
            return f

        if fn is None:
            return register
        return register(fn)

    def expose_object(self, obj: object, *, names: Iterable[str] | None = None) -> None:
        """Expose *obj*'s public callables (or just *names*) under their own names."""
        for attr in names if names is not None else dir(obj):
            if attr.startswith("_"):
                continue
            value = getattr(obj, attr)
            if callable(value) and not isinstance(value, type):
                self.expose(value, name=attr)

    def unexpose(self, name: str) -> None:
        """Remove a procedure (``KeyError`` if unknown)."""
        found = self._procs.match(name)
        if not found:
            raise KeyError(name)
        for old in found:
            self._procs.unregister(old.id)
        del self._docs[name]

    def route(self, method: str, path: str, handler: RouteHandler) -> None:
        """Serve *handler* for ``method path`` (path under the url prefix, e.g. "/get_file")."""
        self._routes[(method.upper(), self.prefix + path)] = handler

    @property
    def procedures(self) -> list[ProcInfo]:
        """The exposed procedures, as ``system.describe`` lists them."""
        return list(self._docs.values())

    @property
    def url(self) -> str:
        """The base URL clients use (``http://host:port{prefix}``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}{self.prefix}"

    # -- request handling -------------------------------------------------------------

    def _error(self, status: int, name: str, message: str, keep_alive: bool) -> bytes:
        self.errors += 1
        body = json.dumps({"error": {"code": status, "name": name, "message": message}})
        return encode_response(status, body.encode(), keep_alive=keep_alive)

    def respond(self, req: ParsedRequest, remote: str | None) -> Reply:
        """Answer one HTTP request (bytes now, or an awaitable of bytes)."""
        keep = req.keep_alive
        if self.license_id is not None:
            given = req.headers.get("license-id")
            if given != self.license_id:
                if not given:
                    logger.debug("%s: request without License-ID from %s", self.name, remote)
                    return self._error(401, "Unauthorized", "License-ID header required", keep)
                logger.debug("%s: wrong License-ID from %s", self.name, remote)
                return self._error(403, "Forbidden", "License-ID not accepted", keep)
        target = req.target
        if req.method == "POST" and (
            target == self._api_path or target.startswith(self._api_path + "?")
        ):
            reply = self.dispatch(req.body)
            if isinstance(reply, bytes):
                return encode_response(200, reply, keep_alive=keep)
            return self._finish_rpc(reply, keep)
        request = RouteRequest.from_parsed(req, remote)
        head = request.method == "HEAD"
        handler = self._routes.get((request.method, request.path))
        if handler is None and head:
            handler = self._routes.get(("GET", request.path))
        if handler is None:
            if request.method in ("GET", "HEAD") and request.path in (self.prefix + "/", "/", ""):
                text = f"Hello World from sciwire {self.name} server".encode()
                return encode_response(
                    200, text, "text/plain; charset=utf-8", keep_alive=keep, head_only=head
                )
            return self._error(404, "NotFound", f"{request.method} {request.path}", keep)
        return self._run_route(handler, request, keep)

    async def _finish_rpc(self, reply: Awaitable[bytes], keep: bool) -> bytes:
        return encode_response(200, await reply, keep_alive=keep)

    def _route_reply(self, out: Any, keep: bool, head: bool) -> bytes:
        if isinstance(out, RouteResponse):
            return encode_response(
                out.status,
                out.body,
                out.content_type,
                keep_alive=keep,
                headers=out.headers,
                head_only=head,
            )
        if isinstance(out, bytes | bytearray):
            return encode_response(
                200, bytes(out), "application/octet-stream", keep_alive=keep, head_only=head
            )
        if isinstance(out, str):
            return encode_response(
                200, out.encode(), "text/plain; charset=utf-8", keep_alive=keep, head_only=head
            )
        return encode_response(
            200, json.dumps(out, cls=self.cls).encode(), _JSON, keep_alive=keep, head_only=head
        )

    def _route_failed(self, request: RouteRequest, exc: Exception, keep: bool) -> bytes:
        self.errors += 1
        logger.debug("route %s %s raised", request.method, request.path, exc_info=True)
        body = {
            "error": {
                "code": 500,
                "name": type(exc).__name__,
                "message": str(exc),
                "data": {"traceback": "".join(traceback.format_exception(exc))},
            }
        }
        return encode_response(500, json.dumps(body).encode(), keep_alive=keep)

    def _run_route(self, handler: RouteHandler, request: RouteRequest, keep: bool) -> Reply:
        head = request.method == "HEAD"
        try:
            out = handler(request)
        except Exception as exc:
            return self._route_failed(request, exc, keep)
        if not inspect.isawaitable(out):
            try:
                return self._route_reply(out, keep, head)
            except (TypeError, ValueError) as exc:
                return self._route_failed(request, exc, keep)

        async def finish(awaitable: Awaitable[Any]) -> bytes:
            try:
                return self._route_reply(await awaitable, keep, head)
            except Exception as exc:
                return self._route_failed(request, exc, keep)

        return finish(out)

    # -- JSON-RPC ---------------------------------------------------------------------

    def dispatch(self, body: bytes) -> bytes | Awaitable[bytes]:
        """Run one JSON-RPC request body: the reply body now (plain procedures), or an
        awaitable of it (coroutine procedures, ``to_thread``). Never raises."""
        try:
            call = decode_call(body)
            if call.method == DESCRIBE:
                return self._ok(call, describe_result(self.name, self.procedures))
            found = self._procs.match(call.method)
            if not found:
                raise RpcFault(
                    METHOD_NOT_FOUND,
                    f"Method not found: {call.method}",
                    name="MethodNotFound",
                    request_id=call.request_id,
                )
        except RpcFault as fault:
            return self._fault(fault, None)
        fn = found[-1].callback
        if self.to_thread and not inspect.iscoroutinefunction(fn):
            return self._threaded(call, fn)
        try:
            out = fn(*call.args, **call.kwargs)
        except Exception as exc:
            return self._raised(call, exc)
        if type(out) not in _PLAIN and inspect.isawaitable(out):
            return self._awaited(call, out)
        return self._ok(call, out)

    async def handle_body(self, body: bytes) -> bytes:
        """Like :meth:`dispatch`, always as a coroutine."""
        reply = self.dispatch(body)
        return reply if isinstance(reply, bytes) else await reply

    async def _awaited(self, call: Call, out: Awaitable[Any]) -> bytes:
        try:
            result = await out
        except Exception as exc:
            return self._raised(call, exc, direct=False)
        return self._ok(call, result)

    async def _threaded(self, call: Call, fn: Callable[..., Any]) -> bytes:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(None, lambda: fn(*call.args, **call.kwargs))
        except Exception as exc:
            return self._raised(call, exc, direct=False)
        return self._ok(call, result)

    def _ok(self, call: Call, result: Any) -> bytes:
        try:
            if self._stock:  # the same bytes as encode_result, without the wrapper dict
                enc = self._encode
                rid = call.request_id
                text = "null" if rid is None else enc(rid)
                return f'{{"jsonrpc": "2.0", "id": {text}, "result": {enc(result)}}}'.encode()
            return encode_result(call.request_id, result, encoder=self._json)
        except (TypeError, ValueError, RecursionError) as exc:
            self.errors += 1
            return encode_error(
                call.request_id,
                INTERNAL_ERROR,
                type(exc).__name__,
                f"result not JSON-serialisable: {exc}",
                "".join(traceback.format_exception(exc)),
            )

    def _fault(self, fault: RpcFault, request_id: Any) -> bytes:
        self.errors += 1
        logger.debug("%s: %s", self.name, fault.message)
        rid = fault.request_id if fault.request_id is not None else request_id
        return encode_error(rid, fault.code, fault.name, fault.message)

    def _raised(self, call: Call, exc: Exception, direct: bool = True) -> bytes:
        tb = exc.__traceback__
        if direct and isinstance(exc, TypeError) and tb is not None and tb.tb_next is None:
            # Raised by the call itself (no deeper frame): the params do not fit.
            fault = RpcFault(
                INVALID_PARAMS,
                f"Invalid params: {exc}",
                name="TypeError",
                request_id=call.request_id,
            )
            return self._fault(fault, call.request_id)
        self.errors += 1
        logger.debug("%s: procedure %s raised", self.name, call.method, exc_info=True)
        code = getattr(exc, "code", None)
        return encode_error(
            call.request_id,
            code if isinstance(code, int) and not isinstance(code, bool) else SERVER_ERROR,
            type(exc).__name__,
            str(exc),
            "".join(traceback.format_exception(exc)),
        )
