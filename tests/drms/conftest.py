"""Fixtures for the drms tests: a JSOC emulator on loopback with a steppable clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sciwire.drms import HttpJsonClient
from sciwire.drms._server import JsocEmulator
from tests.drms.helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[JsocEmulator]:
    emu = JsocEmulator(clock=clock, queue_time=10.0, processing_time=20.0, retention=100.0)
    emu.start_background()
    try:
        yield emu
    finally:
        emu.stop_background()


@pytest.fixture
def client(emulator: JsocEmulator) -> Iterator[HttpJsonClient]:
    c = HttpJsonClient(emulator.server_config(), timeout=10.0)
    try:
        yield c
    finally:
        c.close()
