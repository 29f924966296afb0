"""Services: one experiment step sent to several remote rigs, and their replies gathered.

Each step is a confirmed send to every rig followed by waiting for that rig to send
the same event back as its own message. The listeners are registered before
anything is sent (a reply cannot slip past), concurrent sends really run
concurrently, and a timeout names the rigs that did not answer and cancels what is
no longer awaited.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from sciwire.rig._client import EchoProtocol
from sciwire.rig._communicator import Communicator
from sciwire.rig._errors import RigTypeError, ServicesTimeoutError
from sciwire.rig._protocol import ExpMessage, Service, encode

__all__ = ["Services"]


class Services(Service, Mapping[str, Any]):
    """Several remote rig communicators driven as one.

    A read-only mapping of rig name to communicator, as iblutil's: reads work,
    mutators (``services[k] = v``, ``del``, ``pop``, ``popitem``, ``clear``,
    ``update``, ``setdefault``) raise ``TypeError``.

    Rigs that are not our own communicators (any :class:`Service` with an async
    ``on_event``) are awaited through their ``on_event``, as iblutil awaits them.

    Args:
        remote_rigs: the communicators (``EchoProtocol`` clients), keyed by their name.
        timeout: seconds to wait for every rig's reply (None or 0 waits forever).

    Raises:
        TypeError: a rig is not a rig service.
    """

    def __init__(self, remote_rigs: Any, timeout: float | None = 10.0) -> None:
        rigs = list(remote_rigs)
        if not all(isinstance(x, Service) for x in rigs):
            raise RigTypeError(f"Remote services must be of type {Service}")
        self.data: Mapping[str, Any] = MappingProxyType({rig.name: rig for rig in rigs})
        self.timeout = timeout

    def __getitem__(self, name: str) -> Any:
        return self.data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Services({list(self.data)}, timeout={self.timeout})"

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise RigTypeError("Services is read-only: build a new one to change its rigs")

    __setitem__ = __delitem__ = pop = popitem = clear = update = setdefault = _read_only

    @property
    def is_connected(self) -> bool:
        """True if there are rigs and all of them are connected."""
        return bool(self.data) and all(rig.is_connected for rig in self.values())

    def assign_callback(
        self, event: Any, callback: Callable[..., Any], return_service: bool = False
    ) -> None:
        """Assign *callback* for *event* on every rig.

        With *return_service* the callback gets ``(data, addr, service)``.
        """
        for service in self.values():
            if return_service:
                cb: Any = functools.partial(_with_service, callback, service)
                cb.id = getattr(callback, "id", None) or hash(callback)
                service.assign_callback(event, cb)
            else:
                service.assign_callback(event, callback)

    def clear_callbacks(
        self, event: Any, callback: Callable[..., Any] | None = None
    ) -> dict[str, int]:
        """Clear callbacks for *event* on every rig; return how many each rig removed."""
        return {rig.name: rig.clear_callbacks(event, callback=callback) for rig in self.values()}

    def close(self) -> None:
        """Close every rig."""
        for rig in self.values():
            rig.close()

    # -- waiting -----------------------------------------------------------------------

    def _listen(self, rigs: list[Any], event: ExpMessage) -> dict[str, asyncio.Future[Any]]:
        loop = asyncio.get_running_loop()
        futures: dict[str, asyncio.Future[Any]] = {}
        for rig in rigs:
            if issubclass(type(rig), Communicator):  # ours: a future, no task
                fut: asyncio.Future[Any] = loop.create_future()
                rig.assign_callback(event, fut)
            else:  # another Service: its public on_event, as a task
                fut = asyncio.ensure_future(rig.on_event(event))
            futures[rig.name] = fut
        return futures

    async def _gather(
        self, futures: dict[str, asyncio.Future[Any]], timeout: float | None
    ) -> dict[str, Any]:
        # Await the futures one by one under one deadline: cheaper than asyncio.wait
        # (no per-future completion callbacks), and a reply that is already in costs nothing.
        pending = [f for f in futures.values() if not f.done()]
        if pending:
            expired = False

            def expire() -> None:
                nonlocal expired
                expired = True
                for fut in pending:
                    fut.cancel()  # a cancelled future is "did not answer"

            handle = asyncio.get_running_loop().call_later(timeout, expire) if timeout else None
            try:
                for fut in pending:
                    try:
                        await fut
                    except asyncio.CancelledError:
                        if not expired:
                            raise
            finally:
                if handle is not None:
                    handle.cancel()
            if expired:
                raise ServicesTimeoutError(
                    n for n, f in futures.items() if not f.done() or f.cancelled()
                )
        return {name: fut.result()[0] for name, fut in futures.items()}

    def _drop(self, event: ExpMessage, futures: dict[str, asyncio.Future[Any]]) -> None:
        for name, fut in futures.items():
            if isinstance(fut, asyncio.Task):
                fut.cancel()  # a no-op once done
            elif not fut.done() or fut.cancelled():  # still registered with its rig
                self.data[name].clear_callbacks(event, fut)  # also cancels it

    async def await_all(self, event: Any) -> dict[str, Any]:
        """Wait for every rig to send *event*; return ``{rig_name: data}``.

        Raises:
            ServicesTimeoutError: some rigs did not send it within the timeout (also
                TimeoutError); its ``failed`` names them.
        """
        event = ExpMessage.validate(event)
        futures = self._listen(list(self.values()), event)
        try:
            return await self._gather(futures, self.timeout)
        finally:
            self._drop(event, futures)

    # -- experiment steps ------------------------------------------------------------

    async def init(self, data: Any = None, concurrent: bool = True) -> dict[str, Any]:
        """Send EXPINIT to every rig and gather their EXPINIT replies."""
        return await self._signal(ExpMessage.EXPINIT, "init", data=data, concurrent=concurrent)

    async def cleanup(self, data: Any = None, concurrent: bool = True) -> dict[str, Any]:
        """Send EXPCLEANUP to every rig (reverse order) and gather the replies."""
        return await self._signal(
            ExpMessage.EXPCLEANUP, "cleanup", data=data, reverse=True, concurrent=concurrent
        )

    async def start(
        self, exp_ref: Any, data: Any = None, concurrent: bool = True
    ) -> dict[str, Any]:
        """Send EXPSTART to every rig and gather their EXPSTART replies."""
        return await self._signal(
            ExpMessage.EXPSTART, "start", exp_ref, data=data, concurrent=concurrent
        )

    async def stop(
        self, /, data: Any = None, immediately: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        """Send EXPEND (EXPINTERRUPT if *immediately*) in reverse order; gather replies."""
        event = ExpMessage.EXPINTERRUPT if immediately else ExpMessage.EXPEND
        return await self._signal(
            event, "stop", data=data, immediately=immediately, reverse=True, **kwargs
        )

    async def status(self, /, status: Any, **kwargs: Any) -> dict[str, Any]:
        """Send EXPSTATUS to every rig and gather their EXPSTATUS replies."""
        return await self._signal(ExpMessage.EXPSTATUS, "status", status, **kwargs)

    async def info(self, /, status: Any, data: Any = None, **kwargs: Any) -> dict[str, Any]:
        """Send EXPINFO to every rig and gather their EXPINFO replies."""
        return await self._signal(ExpMessage.EXPINFO, "info", status, data=data, **kwargs)

    async def alyx(self, alyx: Any) -> None:
        """Send the Alyx token to every rig (awaits only the echoes).

        With no logged-in *alyx* each rig is asked for its token; unlike iblutil the
        wait for the answer is bounded by the timeout.
        """
        for service in self.values():
            try:
                await asyncio.wait_for(service.alyx(alyx), self.timeout or None)
            except (TimeoutError, asyncio.TimeoutError) as exc:  # distinct on 3.10
                raise ServicesTimeoutError([service.name]) from exc

    async def _signal(
        self,
        event: Any,
        method: str,
        *args: Any,
        concurrent: bool = True,
        reverse: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Send *method* to each rig and wait for each rig's *event* reply."""
        event = ExpMessage.validate(event, allow_bitwise=False)
        rigs = list(self.values())
        if reverse:
            rigs.reverse()
        if concurrent:
            futures = self._listen(rigs, event)
            try:
                if all(type(rig) is EchoProtocol and not rig.awaiting_response() for rig in rigs):
                    # our own communicators: encode once, send to all, no task per rig
                    message = getattr(Service, method)(rigs[0], *args, **kwargs)
                    await _confirm_all(rigs, encode(message))
                else:
                    await _all(getattr(rig, method)(*args, **kwargs) for rig in rigs)
                replies = await self._gather(futures, self.timeout)
            finally:
                self._drop(event, futures)
            return {name: replies[name] for name in self.data if name in replies}
        responses: dict[str, Any] = dict.fromkeys(self.data)
        for rig in rigs:
            futures = self._listen([rig], event)
            try:
                await getattr(rig, method)(*args, **kwargs)
                responses.update(await self._gather(futures, self.timeout))
            finally:
                self._drop(event, futures)
        return responses


async def _confirm_all(rigs: list[EchoProtocol], payload: bytes) -> None:
    """Confirmed-send *payload* to every rig at once and wait for every echo."""
    echoes: list[tuple[EchoProtocol, asyncio.Future[bool]]] = []
    try:
        for rig in rigs:
            echoes.append((rig, rig._confirm(payload, rig._peer, rig.default_echo_timeout)))
        for _, fut in echoes:
            await fut
    except BaseException:
        for rig, fut in echoes:
            if not fut.done():
                rig._abandon(rig._peer)
            elif not fut.cancelled() and fut.exception() is not None and rig.close_on_failure:
                rig.close()  # as confirmed_send does after a timeout or mismatch
        raise


async def _all(coros: Iterable[Awaitable[Any]]) -> None:
    """Run the sends together; on the first failure cancel the rest and re-raise it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _with_service(callback: Callable[..., Any], service: Any, data: Any, addr: Any) -> Any:
    return callback(data, addr, service)
