"""Rig test fixtures (defined in helpers.py so interop tests can share them)."""

from __future__ import annotations

from tests.rig.helpers import make, raw_tcp, raw_udp

__all__ = ["make", "raw_tcp", "raw_udp"]
