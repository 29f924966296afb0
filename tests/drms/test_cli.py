"""``sciwire drms`` subcommands against the emulator."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sciwire.cli import main
from sciwire.drms._server import JsocEmulator

from .helpers import FakeClock


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["drms", *args])
    return result.exit_code, result.stdout, result.stderr


def test_series_and_query(emulator: JsocEmulator) -> None:
    code, out, _ = run("series", "hmi", "-s", emulator.url)
    assert code == 0 and out.split() == ["hmi.v_45s", "hmi.m_720s"]
    code, out, _ = run("series", "--full", "-s", emulator.url)
    assert "T_REC, WAVELNTH" in out
    code, out, _ = run("query", "hmi.v_45s[2016.04.01/5m]", "-s", emulator.url, "-k", "QUALITY")
    assert code == 0 and out.splitlines()[0] == "QUALITY" and "0x00000400" in out
    code, out, _ = run("query", "hmi.v_45s[2016.04.01/1h]", "-s", emulator.url, "--count")
    assert out.strip() == "80"
    code, out, _ = run("query", "hmi.v_45s[$]", "-s", emulator.url, "--raw", "-n", "1")
    assert out.startswith('{"keywords"')
    code, _, err = run("query", "hmi.nothing", "-s", emulator.url)
    assert code == 1 and "Unknown series" in err
    code, _, err = run("series", "-s", "nowhere")
    assert code == 2 and "Unknown DRMS server" in err


def test_export(emulator: JsocEmulator, clock: FakeClock, tmp_path: Path) -> None:
    base = ["export", "hmi.v_45s[2016.04.01/2m]", "-s", emulator.url, "-e", "user@example.com"]
    code, out, _ = run(*base)
    assert code == 0 and out.count("/Dopplergram.fits") == 3
    code, out, _ = run(*base, "--method", "url", "--no-wait")
    assert code == 0 and "status 2" in out
    code, _, err = run("export", "hmi.v_45s[$]", "-s", emulator.url, "-e", "x@y.org")
    assert code == 1 and "not registered" in err


def test_export_wait_and_download(tmp_path: Path) -> None:
    emu = JsocEmulator(queue_time=0.05, processing_time=0.05).start_background()
    try:
        code, out, err = run(
            "export",
            "hmi.v_45s[2016.04.01/2m]",
            "-s",
            emu.url,
            "-e",
            "user@example.com",
            "--method",
            "url",
            "--max-wait",
            "30",
            "--dest",
            str(tmp_path),
        )
    finally:
        emu.stop_background()
    assert code == 0 and "queued, waiting" in err
    assert len(out.split()) == 3
    assert all(Path(p).stat().st_size == 5760 for p in out.split())
