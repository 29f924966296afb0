"""AsyncCommandClient: the command client on asyncio.

Same discovery as :class:`~sciwire.command.CommandClient` (``system.describe`` on
entry, one coroutine method per procedure, ``await cli()`` re-discovers), same
errors, same retry rule: only a request that could not be sent (the connection could
not be made) is tried again. It runs on :class:`~sciwire.core.http.aioclient.AsyncHttpPool` (asyncio
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

from sciwire.command._calls import CallCore
from sciwire.command._errors import CommandError
from sciwire.command._protocol import ProcInfo
from sciwire.core.http.aioclient import AsyncHttpPool

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
        core = CallCore(
            service, host, port, url, cls, timeout, headers, retries, retry_seconds, opened=False
        )
        self._core = core
        self.service = service
        self._url = core.url
        self._transport = AsyncHttpPool(
            core.endpoint, limit=limit, pipeline=pipeline, **core.pool_options(ssl_context)
        )
        # a client dropped without close(): abort its connections when collected
        self._finalizer = weakref.finalize(self, self._transport.abort_all)
        self._finalizer.atexit = False

    async def connect(self) -> AsyncCommandClient:
        """Discover the procedures (connections open as calls need them).

        Raises:
            CommandError: discovery failed, or the client was closed (closing is final,
                as for the blocking client).
        """
        self._core.open()
        await self._reload()
        return self

    async def close(self) -> None:
        """Close the client and its connections (idempotent); later calls raise
        :class:`CommandError` ("client is closed"), as the blocking client's do."""
        self._core.close()
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

    async def _call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        core = self._core
        data, shown = core.request(method, args, kwargs)
        try:
            resp = await self._transport.exchange(data, core.api_path)
        except CommandError as err:
            raise core.failed(method, shown, err) from err
        return core.result(method, shown, resp)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a procedure by name (discovered or not)."""
        return await self._call(method, args, kwargs)

    def _get_callable(
        self, key: str, info: ProcInfo | None = None
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        call = self._call

        async def func(*args: Any, **kwargs: Any) -> Any:
            return await call(key, args, kwargs)

        self._core.dress(func, type(self).__name__, key, info)
        return func

    @property
    def _endpoints(self) -> list[str]:
        """The procedure names the last discovery found."""
        return list(self._core.procs)

    async def _reload(self) -> None:
        ticket, method = self._core.describe_request()
        self._core.install(ticket, await self._call(method, (), {}), self)

    async def __call__(self) -> None:
        """Discover the server's procedures again."""
        await self._reload()
