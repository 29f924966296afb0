"""A blocking facade over asyncio: one background event-loop thread per owner.

Blocking APIs (the ones the original libraries offer) own a :class:`Portal` and run
their asyncio implementation on it::

    with Portal() as portal:
        result = portal.call(client.fetch(), timeout=5)

The loop runs in a daemon thread under :func:`asyncio.run`, so stopping cancels
pending tasks, finalises async generators, shuts the default executor down and
closes the loop, and then the thread is joined.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from sciwire.errors import PortalError, Timeout

__all__ = ["Portal"]

T = TypeVar("T")


class Portal:
    """An asyncio event loop in a background thread, driven from blocking code.

    Args:
        name: the thread's name (shows in debuggers and thread dumps).
    """

    def __init__(self, name: str = "sciwire-portal") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    # -- life cycle -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._thread is not None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop. Raises :class:`PortalError` when not started."""
        if self._loop is None:
            raise PortalError(f"portal {self.name!r} is not started")
        return self._loop

    def start(self) -> None:
        """Start the loop thread; does nothing if it already runs. A stopped portal restarts."""
        with self._lock:
            if self._thread is not None:
                return
            ready = threading.Event()
            failure: list[BaseException] = []
            thread = threading.Thread(
                target=self._run, args=(ready, failure), name=self.name, daemon=True
            )
            thread.start()
            ready.wait()
            if failure:
                thread.join()
                raise PortalError(f"portal {self.name!r} failed to start") from failure[0]
            self._thread = thread

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the loop: cancel pending tasks, close the loop, join the thread.

        Idempotent. Must not be called from the loop's own thread.
        """
        with self._lock:
            thread, loop, stop = self._thread, self._loop, self._stop
            if thread is None or loop is None or stop is None:
                return
            if threading.current_thread() is thread:
                raise PortalError("Portal.stop() called from the portal's own loop thread")
            with contextlib.suppress(RuntimeError):  # the loop already closed on its own
                loop.call_soon_threadsafe(stop.set)
            thread.join(timeout)
            if thread.is_alive():
                raise Timeout(f"portal {self.name!r} did not stop within {timeout} s")
            self._thread = self._loop = self._stop = None

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready.set()
            await self._stop.wait()

        try:
            asyncio.run(main())
        except BaseException as exc:  # pragma: no cover - only if asyncio itself fails
            failure.append(exc)
            ready.set()

    def __enter__(self) -> Portal:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- calls --------------------------------------------------------------------

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule *coro* on the loop and return a concurrent future for its result."""
        try:
            loop = self._loop_for_caller()
        except PortalError:
            coro.close()  # never awaited: close it so Python does not warn
            raise
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run *coro* on the loop and block until it returns.

        Exceptions raised by the coroutine propagate with their original type. On
        timeout the coroutine is cancelled and :class:`sciwire.errors.Timeout` (a
        :class:`TimeoutError`) is raised.

        Raises:
            PortalError: the portal is not running, or this is the loop's own thread
                (blocking there would deadlock).
        """
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():  # the coroutine itself raised a TimeoutError
                raise
            future.cancel()
            raise Timeout(f"call did not finish within {timeout} s") from None

    def call_soon(self, func: Callable[..., Any], *args: Any) -> None:
        """Schedule a plain callable on the loop thread (thread-safe, does not wait)."""
        self._loop_for_caller().call_soon_threadsafe(func, *args)

    def run_sync(self, func: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """Call an async function with no arguments on the loop and wait for it."""

        async def wrapper() -> T:
            return await func()

        return self.call(wrapper(), timeout)

    def _loop_for_caller(self) -> asyncio.AbstractEventLoop:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            raise PortalError(f"portal {self.name!r} is not started; call start() first")
        if threading.current_thread() is thread:
            raise PortalError(
                "blocking call made from the portal's own event-loop thread; "
                "await the coroutine instead (blocking here would deadlock)"
            )
        return loop
