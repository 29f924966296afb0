"""Fixtures shared by the blocking SAMP client tests.

``hub`` is a blocking :class:`SAMPHubServer` (Standard Profile only, its own
lockfile) and ``make`` a :class:`ClientFactory` connected to it. The asyncio test
modules define their own ``hub`` (an :class:`AsyncSAMPHub` on the test's loop),
which overrides this one there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sciwire.samp import SAMPHubServer
from tests.samp.clientkit import ClientFactory, factory


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[SAMPHubServer]:
    server = SAMPHubServer(web_profile=False, lockfile=tmp_path / "samp.lock")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make(hub: SAMPHubServer) -> Iterator[ClientFactory]:
    yield from factory(hub=hub)
