"""Helpers any test may import (fixtures stay in the conftest.py files)."""

from __future__ import annotations

import os

FACTOR = float(os.environ.get("SCIWIRE_TEST_TIMEOUT_FACTOR", "1"))


def scale(seconds: float) -> float:
    """A test timeout stretched by the environment's factor."""
    return seconds * FACTOR
