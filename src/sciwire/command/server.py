"""CommandServer: expose Python functions or an object's methods as a CryoSPARC-style
JSON-RPC service on aiohttp.

One event loop serves every connection (no thread per request); coroutine procedures
run concurrently, plain functions run inline on the loop (or in the default executor
with ``to_thread=True``). Replies are written in one send and TCP_NODELAY is set, so
keep-alive clients never hit the Nagle/delayed-ACK stall.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import socket
import ssl
import traceback
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from sciwire.command.protocol import (
    DESCRIBE,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    SERVER_ERROR,
    ProcInfo,
    RpcFault,
    decode_call,
    default_encoder,
    describe_result,
    encode_error,
    encode_result,
)
from sciwire.core.patterns import Registry
from sciwire.core.portal import Portal

__all__ = ["CommandServer", "RouteHandler"]

logger = logging.getLogger(__name__)

#: A plain route: gets the aiohttp request, returns a response, bytes, str or JSON value.
RouteHandler = Callable[[web.BaseRequest], Any]

_JSON = "application/json"


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


class CommandServer:
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
    ) -> None:
        self.shutdown_timeout = shutdown_timeout
        self.ssl_context = ssl_context
        self.host = host
        self.port = port
        self.prefix = url.rstrip("/")
        self.license_id = license_id
        self.name = name
        self.cls = cls or default_encoder()
        self.to_thread = to_thread
        self.max_body = max_body
        self._procs = Registry("key")
        self._docs: dict[str, ProcInfo] = {}
        self._routes: dict[tuple[str, str], RouteHandler] = {}
        self._runner: web.ServerRunner | None = None
        self._portal: Portal | None = None
        #: requests answered with a JSON-RPC or HTTP error (counted, logged at debug).
        self.errors = 0
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

    # -- life cycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL clients use (``http://host:port{prefix}``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}{self.prefix}"

    async def start(self) -> None:
        """Bind and start serving (port 0 binds a free port, readable from :attr:`port`)."""
        if self._runner is not None:
            return
        loop = asyncio.get_running_loop()
        max_body = self.max_body

        def make_request(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: RequestHandler,
            writer: Any,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            return web.BaseRequest(
                message, payload, protocol, writer, task, loop, client_max_size=max_body
            )

        server = web.Server(self._handle, request_factory=make_request, access_log=None)
        runner = web.ServerRunner(
            server, handle_signals=False, shutdown_timeout=self.shutdown_timeout
        )
        await runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            await runner.cleanup()
            raise
        site = web.SockSite(runner, sock, ssl_context=self.ssl_context)
        await site.start()
        self.port = sock.getsockname()[1]
        self._runner = runner
        logger.debug("command server %s listening on %s", self.name, self.url)

    async def stop(self) -> None:
        """Stop serving and close every connection (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> CommandServer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def start_background(self) -> CommandServer:
        """Start serving on a background event-loop thread (blocking API)."""
        if self._portal is None:
            self._portal = Portal(f"sciwire-command-server-{self.name}")
            self._portal.start()
        self._portal.call(self.start())
        return self

    def stop_background(self) -> None:
        """Stop a server started with :meth:`start_background` (idempotent)."""
        portal, self._portal = self._portal, None
        if portal is not None:
            try:
                portal.call(self.stop())
            finally:
                portal.stop()

    def __enter__(self) -> CommandServer:
        return self.start_background()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_background()

    # -- request handling -------------------------------------------------------------

    def _json(self, status: int, body: Any) -> web.Response:
        return web.Response(status=status, body=json.dumps(body).encode(), content_type=_JSON)

    def _check_license(self, request: web.BaseRequest) -> web.Response | None:
        given = request.headers.get("License-ID")
        if given == self.license_id:
            return None
        self.errors += 1
        if not given:
            status, name, message = 401, "Unauthorized", "License-ID header required"
        else:
            status, name, message = 403, "Forbidden", "License-ID not accepted"
        logger.debug("command server %s: %s from %s", self.name, message, request.remote)
        return self._json(status, {"error": {"code": status, "name": name, "message": message}})

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if self.license_id is not None:
            refused = self._check_license(request)
            if refused is not None:
                return refused
        method, path = request.method, request.path
        if method == "POST" and path == self.prefix + "/api":
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge as exc:
                self.errors += 1
                return self._json(
                    413, {"error": {"code": 413, "name": "TooLarge", "message": str(exc)}}
                )
            reply = await self.handle_body(body)
            return web.Response(body=reply, content_type=_JSON)
        handler = self._routes.get((method, path))
        if handler is None:
            if method == "GET" and path in (self.prefix + "/", self.prefix, "/"):
                return web.Response(text=f"Hello World from sciwire {self.name} server")
            self.errors += 1
            return self._json(
                404, {"error": {"code": 404, "name": "NotFound", "message": f"{method} {path}"}}
            )
        return await self._run_route(handler, request)

    async def _run_route(
        self, handler: RouteHandler, request: web.BaseRequest
    ) -> web.StreamResponse:
        try:
            out = handler(request)
            if inspect.isawaitable(out):
                out = await out
        except web.HTTPException:
            raise
        except Exception as exc:
            self.errors += 1
            logger.debug("route %s %s raised", request.method, request.path, exc_info=True)
            return self._json(
                500,
                {
                    "error": {
                        "code": 500,
                        "name": type(exc).__name__,
                        "message": str(exc),
                        "data": {"traceback": traceback.format_exc()},
                    }
                },
            )
        if isinstance(out, web.StreamResponse):
            return out
        if isinstance(out, bytes | bytearray):
            return web.Response(body=bytes(out), content_type="application/octet-stream")
        if isinstance(out, str):
            return web.Response(text=out)
        return web.Response(body=json.dumps(out, cls=self.cls).encode(), content_type=_JSON)

    async def handle_body(self, body: bytes) -> bytes:
        """Run one JSON-RPC request body and return the reply body (never raises)."""
        request_id: Any = None
        try:
            call = decode_call(body)
            request_id = call.request_id
            if call.method == DESCRIBE:
                result: Any = describe_result(self.name, self.procedures)
            else:
                found = self._procs.match(call.method)
                if not found:
                    raise RpcFault(
                        METHOD_NOT_FOUND,
                        f"Method not found: {call.method}",
                        name="MethodNotFound",
                        request_id=request_id,
                    )
                result = await self._invoke(found[-1].callback, call.args, call.kwargs)
            try:
                return encode_result(request_id, result, self.cls)
            except (TypeError, ValueError) as exc:
                self.errors += 1
                return encode_error(
                    request_id,
                    INTERNAL_ERROR,
                    type(exc).__name__,
                    f"result not JSON-serialisable: {exc}",
                    traceback.format_exc(),
                )
        except RpcFault as fault:
            self.errors += 1
            logger.debug("command server %s: %s", self.name, fault.message)
            rid = fault.request_id if fault.request_id is not None else request_id
            return encode_error(rid, fault.code, fault.name, fault.message)
        except Exception as exc:
            self.errors += 1
            logger.debug("procedure raised", exc_info=True)
            code = getattr(exc, "code", None)
            return encode_error(
                request_id,
                code if isinstance(code, int) and not isinstance(code, bool) else SERVER_ERROR,
                type(exc).__name__,
                str(exc),
                traceback.format_exc(),
            )

    async def _invoke(self, fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
        try:
            if self.to_thread and not inspect.iscoroutinefunction(fn):
                loop = asyncio.get_running_loop()
                out = await loop.run_in_executor(None, lambda: fn(*args, **kwargs))
            else:
                out = fn(*args, **kwargs)
        except TypeError as exc:
            # Raised by the call itself (no deeper frame): the params do not fit.
            tb = exc.__traceback__
            if tb is not None and tb.tb_next is None:
                raise RpcFault(INVALID_PARAMS, f"Invalid params: {exc}", name="TypeError") from exc
            raise
        if inspect.isawaitable(out):
            awaitable: Awaitable[Any] = out
            out = await awaitable
        return out
