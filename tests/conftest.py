"""Shared test settings.

Timeouts in tests scale with SCIWIRE_TEST_TIMEOUT_FACTOR (default 1) so a slow CI
machine can stretch them without editing tests: use the ``scaled`` fixture.

Tiers: tests under tests/interop/ are marked ``interop`` and tests under tests/adversarial/
``adversarial`` here, by path, so ``make check`` can run the fast unit tier with
``-m "not interop and not slow and not adversarial"``; explicit marks still apply.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

from tests.helpers import examples, scale

# Hypothesis's per-example deadline is a time asserted in a test: on a loaded CI machine it fails
# tests that are correct. Performance lives in bench/, so no deadline here.
# make check lowers max_examples through SCIWIRE_TEST_EXAMPLES (tests/helpers.py)
settings.register_profile("sciwire", deadline=None, max_examples=examples(100))
settings.load_profile("sciwire")


@pytest.fixture
def scaled() -> Callable[[float], float]:
    """``scaled(2.0)`` -> 2 s times SCIWIRE_TEST_TIMEOUT_FACTOR."""
    return scale


#: tier marker for each top-level folder of tests/ whose tests all belong to that tier
TIER_BY_FOLDER = {"interop": "interop", "adversarial": "adversarial"}
TESTS = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/<folder>/ with that folder's tier (see TIER_BY_FOLDER)."""
    for item in items:
        try:
            folder = item.path.relative_to(TESTS).parts[0]
        except ValueError:  # a test outside tests/ (a path given on the command line)
            continue
        tier = TIER_BY_FOLDER.get(folder)
        if tier is not None and item.get_closest_marker(tier) is None:
            item.add_marker(getattr(pytest.mark, tier))


# hardening: `sciwire` picks uvloop when installed, through the process's event loop
# policy; CLI tests run it in-process, where that policy would outlive the test, so
# they keep asyncio's loop (tests/core and tests/adversarial run both loops on purpose).
os.environ.setdefault("SCIWIRE_LOOP", "asyncio")
