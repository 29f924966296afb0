from __future__ import annotations

import asyncio
import threading

import pytest

from sciwire.core.portal import Portal
from sciwire.errors import PortalError, Timeout


class Boom(Exception):
    pass


def portal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("test-portal")]


@pytest.fixture
def portal() -> object:
    p = Portal("test-portal")
    p.start()
    yield p
    p.stop()


async def add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


def test_call_returns_result(portal: Portal) -> None:
    assert portal.call(add(2, 3), timeout=5) == 5


def test_exception_keeps_its_type(portal: Portal) -> None:
    async def fail() -> None:
        raise Boom("inner")

    with pytest.raises(Boom, match="inner"):
        portal.call(fail(), timeout=5)


def test_coroutine_timeout_error_is_not_confused_with_call_timeout(portal: Portal) -> None:
    async def fail() -> None:
        raise TimeoutError("from the coroutine")

    with pytest.raises(TimeoutError, match="from the coroutine"):
        portal.call(fail(), timeout=5)


def test_call_timeout_cancels_the_coroutine(portal: Portal, scaled: object) -> None:
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(Timeout) as info:
        portal.call(slow(), timeout=0.05)
    assert isinstance(info.value, TimeoutError)
    assert cancelled.wait(5)


def test_call_from_loop_thread_is_a_clear_error(portal: Portal) -> None:
    async def nested() -> str:
        inner = add(1, 1)
        try:
            portal.call(inner)
        except PortalError as exc:
            return str(exc)
        return "no error"

    assert "own event-loop thread" in portal.call(nested(), timeout=5)


def test_stop_from_loop_thread_is_a_clear_error(portal: Portal) -> None:
    async def nested() -> None:
        portal.stop()

    with pytest.raises(PortalError):
        portal.call(nested(), timeout=5)


def test_call_before_start_and_after_stop() -> None:
    p = Portal("test-portal-idle")
    with pytest.raises(PortalError, match="not started"):
        p.call(add(1, 2))
    p.start()
    p.stop()
    with pytest.raises(PortalError, match="not started"):
        p.call(add(1, 2))
    with pytest.raises(PortalError):
        _ = p.loop


def test_stop_cancels_pending_tasks_and_joins() -> None:
    p = Portal("test-portal-pending")
    p.start()
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    future = p.submit(forever())
    loop = p.loop
    p.stop()
    assert cancelled.is_set()
    assert future.cancelled()
    assert loop.is_closed()
    assert not p.running
    assert portal_threads() == []


def test_stop_is_idempotent_and_restart_works() -> None:
    p = Portal("test-portal-restart")
    p.stop()  # never started: nothing to do
    p.start()
    p.start()  # already running: nothing to do
    first = p.loop
    assert p.call(add(1, 1), timeout=5) == 2
    p.stop()
    p.stop()
    p.start()
    assert p.loop is not first
    assert p.call(add(2, 2), timeout=5) == 4
    p.stop()
    assert portal_threads() == []


def test_context_manager_leaves_no_thread() -> None:
    before = set(threading.enumerate())
    with Portal("test-portal-ctx") as p:
        assert p.running
        assert p.call(add(3, 4), timeout=5) == 7
        assert any(t.name == "test-portal-ctx" for t in threading.enumerate())
    assert set(threading.enumerate()) <= before


def test_many_portals_leave_no_thread() -> None:
    for _ in range(20):
        with Portal("test-portal-many") as p:
            p.call(add(0, 0), timeout=5)
    assert portal_threads() == []


def test_call_soon_and_run_sync(portal: Portal) -> None:
    done = threading.Event()
    seen: list[threading.Thread] = []

    def mark() -> None:
        seen.append(threading.current_thread())
        done.set()

    portal.call_soon(mark)
    assert done.wait(5)
    assert seen[0].name == "test-portal"

    async def answer() -> int:
        return 42

    assert portal.run_sync(answer, timeout=5) == 42


def test_concurrent_callers(portal: Portal) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        value = portal.call(add(i, i), timeout=5)
        with lock:
            results.append(value)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [2 * i for i in range(16)]
