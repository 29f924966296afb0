from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

import sciwire
from sciwire import cli
from sciwire.demo import DemoRow, run_demo


def test_version() -> None:
    result = CliRunner().invoke(cli.main, ["--version"])
    assert result.exit_code == 0
    assert sciwire.__version__ in result.output


def test_help_lists_every_group() -> None:
    result = CliRunner().invoke(cli.main, ["--help"])
    assert result.exit_code == 0
    for name in [*cli.PACKAGES, "demo"]:
        assert name in result.output


def test_unlanded_group_says_so(monkeypatch: object) -> None:
    import pytest

    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(cli, "package_landed", lambda package: False)
        result = CliRunner().invoke(cli.main, ["rig", "serve", "udp://127.0.0.1:0"])
    finally:
        mp.undo()
    assert result.exit_code == 2
    assert "has not landed yet" in result.output


def test_unknown_command_fails() -> None:
    result = CliRunner().invoke(cli.main, ["nonsense"])
    assert result.exit_code != 0


def test_python_dash_m() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sciwire", "--version"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    assert sciwire.__version__ in out.stdout


def test_demo_runner_reports_failures(monkeypatch: object) -> None:
    import pytest

    import sciwire.demo as demo

    mp = pytest.MonkeyPatch()
    rows = {"good": DemoRow("good", "a server", "a reply"), "bad": None}

    def fake_row(package: str) -> DemoRow:
        row = rows[package]
        return row if row is not None else DemoRow(package, "demo raised", "boom", ok=False)

    try:
        mp.setattr(demo, "_has_demo", lambda package: package != "absent")
        mp.setattr(demo, "run_row", fake_row)
        assert run_demo(["good"]) == 0
        assert run_demo(["good", "bad"]) == 1
        assert run_demo(["absent"]) == 0
    finally:
        mp.undo()


def test_run_row_turns_exceptions_into_failed_rows(monkeypatch: object) -> None:
    import importlib

    import pytest

    import sciwire.demo as demo

    mp = pytest.MonkeyPatch()

    class Broken:
        @staticmethod
        def run() -> DemoRow:
            raise RuntimeError("server would not start")

    try:
        mp.setattr(importlib, "import_module", lambda name: Broken)
        row = demo.run_row("rig")
    finally:
        mp.undo()
    assert not row.ok
    assert "server would not start" in row.checked
    assert row.seconds >= 0


def test_choose_loop_picks_uvloop_when_installed_and_asyncio_on_request() -> None:
    import asyncio

    import uvloop

    from sciwire.core.loops import choose_loop

    try:
        assert choose_loop("asyncio") == "asyncio"
        assert not isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
        assert choose_loop("auto") == "uvloop"
        assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
        with pytest.raises(ValueError, match="unknown event loop"):
            choose_loop("trio")
    finally:
        asyncio.set_event_loop_policy(None)


def test_cli_loop_option_is_checked() -> None:
    result = CliRunner().invoke(cli.main, ["--loop", "nope", "demo"])
    assert result.exit_code == 2 and "--loop" in result.output
