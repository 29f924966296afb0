"""The blocking consumer API: :class:`Fleet`, an :class:`AsyncFleet` on a portal thread."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sciwire.core.portal import Portal
from sciwire.fleet._consumer import AsyncFleet, Since
from sciwire.fleet._schema import FleetEvent

__all__ = ["Fleet"]


class Fleet:
    """The blocking :class:`AsyncFleet`: the same arguments, handlers run on a
    background event-loop thread.

    Example::

        with Fleet("nats://127.0.0.1:4222") as fleet:
            fleet.on(("triggercontent",), lambda ev: print(ev.instrument, ev.fields[1]["PeakA"]))
            fleet.replay(since="all")
            fleet.relay_message_to_host("111-111-111", "routine:runsample")
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.afleet = AsyncFleet(*args, **kwargs)
        self._portal = Portal("sciwire-fleet")

    def connect(self) -> Fleet:
        """Connect in a background thread."""
        self._portal.start()
        try:
            self._portal.call(self.afleet.connect(), self.afleet.timeout + 5)
        except BaseException:
            self._portal.stop()
            raise
        return self

    def close(self) -> None:
        """Disconnect and stop the thread (idempotent)."""
        if self._portal.running:
            try:
                self._portal.call(self.afleet.close(), 10)
            finally:
                self._portal.stop()

    def __enter__(self) -> Fleet:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def on(
        self, pattern: Any, handler: Callable[[FleetEvent], Any], *, instrument: str | None = None
    ) -> int:
        """See :meth:`AsyncFleet.on` (handlers run on the background thread)."""
        return self.afleet.on(pattern, handler, instrument=instrument)

    def unregister(self, handler_id: int) -> None:
        """See :meth:`AsyncFleet.unregister`."""
        self.afleet.unregister(handler_id)

    def start(self, since: Since = "new", durable: str | None = None) -> None:
        """See :meth:`AsyncFleet.start`."""
        self._call(self.afleet.start(since, durable))

    def replay(self, since: Since = "all", durable: str | None = None) -> None:
        """See :meth:`AsyncFleet.replay`."""
        self._call(self.afleet.replay(since, durable))

    def request(
        self, kind: str, instrument: str, op: str, body: Any = None, timeout: float = 10.0
    ) -> Any:
        """See :meth:`AsyncFleet.request`."""
        return self._call(self.afleet.request(kind, instrument, op, body, timeout), timeout + 5)

    def relay_message_to_host(self, serial: str, message: str, timeout: float = 10.0) -> None:
        """See :meth:`AsyncFleet.relay_message_to_host`."""
        self._call(self.afleet.relay_message_to_host(serial, message, timeout), timeout + 5)

    def rig(self, name: str, op: str, *args: Any, timeout: float = 30.0, **kwargs: Any) -> Any:
        """See :meth:`AsyncFleet.rig`."""
        return self._call(self.afleet.rig(name, op, *args, timeout=timeout, **kwargs), timeout + 5)

    def bridges(self, wait: float = 0.5) -> list[dict[str, Any]]:
        """See :meth:`AsyncFleet.bridges`."""
        reports: list[dict[str, Any]] = self._call(self.afleet.bridges(wait), wait + 10)
        return reports

    def stream_info(self) -> dict[str, Any]:
        """See :meth:`AsyncFleet.stream_info`."""
        info: dict[str, Any] = self._call(self.afleet.stream_info())
        return info

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """See :meth:`AsyncFleet.wait_for`."""
        self._call(self.afleet.wait_for(predicate, timeout), timeout + 5)

    def _call(self, coro: Awaitable[Any], timeout: float | None = None) -> Any:
        return self._portal.call(coro, timeout or self.afleet.timeout + 5)  # type: ignore[arg-type]
