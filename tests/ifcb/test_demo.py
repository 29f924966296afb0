"""The IFCB demo row runs and its checks hold."""

from __future__ import annotations

from sciwire.ifcb.demo import run


def test_demo_row_ok() -> None:
    row = run()
    assert row.ok, row.checked
    assert row.package == "ifcb" and "12 triggers" in row.checked
