"""Helpers any test may import (fixtures stay in the conftest.py files)."""

from __future__ import annotations

import os

FACTOR = float(os.environ.get("SCIWIRE_TEST_TIMEOUT_FACTOR", "1"))


def scale(seconds: float) -> float:
    """A test timeout stretched by the environment's factor."""
    return seconds * FACTOR


#: make check runs hypothesis's property tests with fewer examples (0.25); make test with all
EXAMPLES = float(os.environ.get("SCIWIRE_TEST_EXAMPLES", "1"))


def examples(n: int) -> int:
    """Hypothesis's ``max_examples``: *n* times SCIWIRE_TEST_EXAMPLES, at least 10."""
    return max(10, round(n * EXAMPLES))
