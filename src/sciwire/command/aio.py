"""AsyncCommandClient: the command client on asyncio.

Same discovery as :class:`~sciwire.command.CommandClient` (``system.describe`` on
entry, one coroutine method per procedure, ``await cli()`` re-discovers), same
errors, same retry rule: only a request that could not be sent (the connection could
not be made) is tried again. It runs on :mod:`sciwire.command.aiotransport` (asyncio
protocols and the sans-I/O HTTP codec) rather than aiohttp's client, which cost about
four times as much CPU per call here (see bench/command.py).
"""

from __future__ import annotations

import json
import logging
import ssl
import weakref
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sciwire.command.aiotransport import AsyncTransport
from sciwire.command.client import procedure_signature
from sciwire.command.errors import CommandError
from sciwire.command.protocol import (
    DESCRIBE,
    ProcInfo,
    default_encoder,
    encode_request,
    http_error,
    make_params,
    parse_describe,
    parse_response,
)
from sciwire.command.transport import Endpoint, env_retries, env_retry_seconds

__all__ = ["AsyncCommandClient"]

logger = logging.getLogger(__name__)


class AsyncCommandClient:
    """An asyncio JSON-RPC client for CryoSPARC command services.

    Use as ``async with AsyncCommandClient(...) as cli: await cli.hello_world()``,
    or call :meth:`connect` and :meth:`close` yourself. Arguments are those of
    :class:`~sciwire.command.CommandClient`, plus ``limit``: the most connections
    kept to the server, and ``pipeline``: the most requests in flight on one
    connection (1, the default, never pipelines; HTTP/1.1 pipelining is opt-in because
    some servers mishandle it, and a failed pipelined connection fails every call in
    flight on it - none is re-sent). The timeout bounds each whole response.
    """

    Error = CommandError

    def __init__(
        self,
        service: str = "command",
        host: str = "localhost",
        port: int = 39002,
        url: str = "",
        timeout: float = 300,
        headers: dict[str, str] | None = None,
        cls: type[json.JSONEncoder] | None = None,
        *,
        retries: int | None = None,
        retry_seconds: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limit: int = 64,
        pipeline: int = 1,
    ) -> None:
        self.service = service
        self._endpoint = Endpoint.parse(host, port, url)
        self._url = self._endpoint.base_url
        self._api_url = self._url + "/api"
        self._encoder = cls or default_encoder()
        self._json = self._encoder()  # one instance, reused: encode() keeps no state
        self._timeout = timeout
        self._headers = {"Originator": "client", **(headers or {})}
        self._call_headers = {**self._headers, "Content-Type": "application/json"}
        self._retries = max(1, env_retries() if retries is None else int(retries))
        self._retry_seconds = env_retry_seconds() if retry_seconds is None else retry_seconds
        self._transport = AsyncTransport(
            self._endpoint,
            timeout=timeout,
            retries=self._retries,
            retry_seconds=self._retry_seconds,
            ssl_context=ssl_context,
            limit=limit,
            pipeline=pipeline,
        )
        self._api_path = self._endpoint.prefix + "/api"
        self._call_prefix = self._transport.request_prefix(
            "POST", self._api_path, self._call_headers
        )
        self._open = False
        # a client dropped without close(): abort its connections when collected
        self._finalizer = weakref.finalize(self, self._transport.abort_all)
        self._finalizer.atexit = False
        self._procs: dict[str, ProcInfo] = {}

    async def connect(self) -> AsyncCommandClient:
        """Discover the procedures (connections open as calls need them)."""
        self._open = True
        await self._reload()
        return self

    async def close(self) -> None:
        """Close the connections (idempotent); later calls raise CommandError."""
        self._open = False
        await self._transport.close()

    async def __aenter__(self) -> AsyncCommandClient:
        try:
            return await self.connect()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    if TYPE_CHECKING:
        # Procedures are discovered at run time; tell type checkers any name may exist.
        def __getattr__(self, name: str) -> Any: ...

    # -- calls --------------------------------------------------------------------

    async def _post(self, body: bytes) -> tuple[int, str, str, bytes]:
        if not self._open:
            raise CommandError("client is closed (use 'async with' or connect())", url=self._url)
        data = b"%s%d\r\n\r\n%s" % (self._call_prefix, len(body), body)
        resp = await self._transport.exchange(data, self._api_path)
        return resp.status, resp.reason, resp.headers.get("content-type", ""), resp.body

    async def _call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        params = make_params(args, kwargs)
        body = encode_request(method, params, encoder=self._json)
        shown = kwargs if kwargs else args  # shown in messages as the original does
        try:
            status, reason, ctype, data = await self._post(body)
        except CommandError as err:
            raise type(err)(
                f'Encountered error from JSONRPC function "{method}" with params {shown}: '
                f"{err.reason}",
                url=self._url,
                code=err.code,
                data=err.data,
            ) from err
        if status >= 400:
            herr = http_error(status, reason, data, ctype, self._api_url, self.service)
            raise CommandError(
                f'Encountered error from JSONRPC function "{method}" with params {shown}: '
                f"{herr.reason}",
                url=self._url,
                code=herr.code,
                data=herr.data,
            ) from herr
        return parse_response(data, method, shown, self._url)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a procedure by name (discovered or not)."""
        return await self._call(method, args, kwargs)

    def _get_callable(self, key: str, info: ProcInfo) -> Callable[..., Coroutine[Any, Any, Any]]:
        call = self._call

        async def func(*args: Any, **kwargs: Any) -> Any:
            return await call(key, args, kwargs)

        func.__name__ = key
        func.__qualname__ = f"{type(self).__name__}.{key}"
        func.__doc__ = info.doc or None
        sig = procedure_signature(info)
        if sig is not None:
            func.__signature__ = sig  # type: ignore[attr-defined]
        return func

    async def _reload(self) -> None:
        procs = parse_describe(await self._call(DESCRIBE, (), {}), self._url)
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

    async def __call__(self) -> None:
        """Discover the server's procedures again."""
        await self._reload()
