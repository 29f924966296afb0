"""Helpers for the SAMP client tests: collecting handlers and a client factory."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sciwire.samp import SAMPIntegratedClient


class Inbox:
    """Collects what handlers receive and lets a test wait for it (no sleeps)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._cond = threading.Condition()

    def put(self, item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait(self, count: int = 1, timeout: float = 5.0) -> list[Any]:
        """Block until *count* items arrived; return them (AssertionError on timeout)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.items) >= count, timeout)
            assert ok, f"only {len(self.items)} of {count} items arrived: {self.items!r}"
            return list(self.items)

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        """Block until an item satisfying *predicate* arrived and return it."""
        with self._cond:
            found: list[Any] = []

            def check() -> bool:
                found[:] = [i for i in self.items if predicate(i)]
                return bool(found)

            assert self._cond.wait_for(check, timeout), f"no matching item in {self.items!r}"
            return found[0]

    def notification_handler(self) -> Callable[..., None]:
        def handler(key: str, sender: str, mtype: str, params: Any, extra: Any) -> None:
            self.put((sender, mtype, params, extra))

        return handler

    def response_handler(self) -> Callable[..., None]:
        def handler(key: str, responder: str, tag: str, response: Any) -> None:
            self.put((responder, tag, response))

        return handler


def poll(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for an external process's side effect (a file, a port) within *timeout*."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class ClientFactory:
    """Makes connected SAMPIntegratedClients and disconnects them all at the end."""

    def __init__(self, **connect: Any) -> None:
        self.connect_args = connect
        self.clients: list[SAMPIntegratedClient] = []

    def __call__(self, name: str = "test", connect: bool = True, **kw: Any) -> SAMPIntegratedClient:
        client = SAMPIntegratedClient(name=name, **kw)
        self.clients.append(client)
        if connect:
            client.connect(**self.connect_args)
        return client

    def close(self) -> None:
        for client in self.clients:
            try:
                client.disconnect()
            except Exception:  # the hub may be gone already; stop the client anyway
                if client.client.is_running:
                    client.client.stop()
                client.hub.disconnect()


def factory(**connect: Any) -> Iterator[ClientFactory]:
    made = ClientFactory(**connect)
    try:
        yield made
    finally:
        made.close()
