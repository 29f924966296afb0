"""Shared test settings.

Timeouts in tests scale with SCIWIRE_TEST_TIMEOUT_FACTOR (default 1) so a slow CI
machine can stretch them without editing tests: use the ``scaled`` fixture.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import settings

# Hypothesis's per-example deadline is a time asserted in a test: on a loaded CI machine it fails
# tests that are correct. Performance lives in bench/, so no deadline here.
settings.register_profile("sciwire", deadline=None)
settings.load_profile("sciwire")

FACTOR = float(os.environ.get("SCIWIRE_TEST_TIMEOUT_FACTOR", "1"))


def scale(seconds: float) -> float:
    """A test timeout stretched by the environment's factor."""
    return seconds * FACTOR


@pytest.fixture
def scaled() -> Callable[[float], float]:
    """``scaled(2.0)`` -> 2 s times SCIWIRE_TEST_TIMEOUT_FACTOR."""
    return scale


# hardening: `sciwire` picks uvloop when installed, through the process's event loop
# policy; CLI tests run it in-process, where that policy would outlive the test, so
# they keep asyncio's loop (tests/core and tests/adversarial run both loops on purpose).
os.environ.setdefault("SCIWIRE_LOOP", "asyncio")
