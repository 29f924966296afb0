"""The HTTP server and pool tests run twice: on asyncio's own loop and on uvloop (which
the CLI servers use when it is installed; nothing may assume asyncio's transport
classes). Async tests get their loops from pytest-asyncio's loop-factory hook; the
others (servers on Portal threads) run under an event loop policy set for the test."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator, Mapping

import pytest
import uvloop

#: the test modules that run on both loops
_BOTH_LOOPS = {
    "test_http_server",
    "test_http_pools",
    "test_aioclient",
    "test_http_fastpath",
    "test_portal",
}


def _both(node: pytest.Item | pytest.Function | pytest.Metafunc) -> bool:
    module = node.module if isinstance(node, pytest.Metafunc) else getattr(node, "module", None)
    return module is not None and module.__name__.rsplit(".", 1)[-1] in _BOTH_LOOPS


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    if _both(item):
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # plain tests only: the async ones are parametrized by the hook above
    if _both(metafunc) and not inspect.iscoroutinefunction(metafunc.function):
        metafunc.parametrize("loop_kind", ["asyncio", "uvloop"], indirect=True)


@pytest.fixture(autouse=True)
def loop_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """The kind of loop a plain test's Portal threads and asyncio.run calls get."""
    kind: str = getattr(request, "param", "asyncio")
    if kind == "uvloop":
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield kind
    finally:
        if kind == "uvloop":
            asyncio.set_event_loop_policy(None)
