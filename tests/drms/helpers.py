"""Helpers for the drms tests; the fixtures built on them are in tests/drms/conftest.py."""

from __future__ import annotations


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
