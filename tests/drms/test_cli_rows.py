"""The ``sciwire drms`` rows of issue #14: exit codes, one-line errors, --json, signals."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sciwire.cli import main
from sciwire.drms import JsocEmulator
from tests.clirun import run, running, taken_port


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["drms", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
def test_emulate_on_a_taken_port_is_one_line() -> None:
    with taken_port() as port:
        result = run("drms", "emulate", "--port", str(port)).clean(1)
    assert result.err.strip() == (
        f"error: JSOC emulator: cannot listen on 127.0.0.1:{port}: the port is already in use"
        " (is another server running? try another --port)"
    )


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_emulate_exits_0_on_signals(signum: int) -> None:
    with running("drms", "emulate") as job:
        url = job.wait_line("JSOC emulator on").split()[3]
        assert run("drms", "series", "-s", url).clean(0).out.split()[0] == "hmi.v_45s"
        job.signal(signum).clean(0)


@pytest.mark.parametrize(
    ("option", "choices"),
    [("--method", "'url_quick', 'url', 'url-tar'"), ("--protocol", "'as-is', 'fits', 'jpg'")],
)
def test_export_bad_choice_lists_the_choices(option: str, choices: str) -> None:
    code, _, err = invoke("export", "hmi.v_45s[$]", "-e", "a@b.org", option, "bogus")
    assert code == 2
    assert "'bogus' is not one of" in err and choices in err


def test_json_lines(emulator: JsocEmulator) -> None:
    code, out, _ = invoke("series", "hmi", "-s", emulator.url, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["name"] for r in rows] == ["hmi.v_45s", "hmi.m_720s"]
    code, out, _ = invoke(
        "query", "hmi.v_45s[2016.04.01/3m]", "-s", emulator.url, "-k", "T_REC,QUALITY", "--json"
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 4 and set(rows[0]) == {"T_REC", "QUALITY"}
    ds = "hmi.v_45s[2016.04.01/1h]"
    code, out, _ = invoke("query", ds, "-s", emulator.url, "--count", "--json")
    assert json.loads(out) == {"count": 80}


def test_export_json(emulator: JsocEmulator) -> None:
    base = ["export", "hmi.v_45s[2016.04.01/2m]", "-s", emulator.url, "-e", "user@example.com"]
    code, out, _ = invoke(*base, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 3 and all(r["filename"].endswith(".fits") for r in rows)
    code, out, _ = invoke(*base, "--method", "url", "--no-wait", "--json")
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and row["status"] == 2 and row["requestid"]


def test_export_download_json(tmp_path: Path) -> None:
    emu = JsocEmulator(queue_time=0.05, processing_time=0.05).start_background()
    try:
        code, out, _ = invoke(
            "export",
            "hmi.v_45s[2016.04.01/2m]",
            "-s",
            emu.url,
            "-e",
            "user@example.com",
            "--method",
            "url",
            "--dest",
            str(tmp_path),
            "--json",
        )
    finally:
        emu.stop_background()
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["size"] for r in rows] == [5760] * 3


def test_unreachable_server_is_one_line() -> None:
    with taken_port() as port:
        pass  # closed again: nothing listens
    code, _, err = invoke("series", "-s", f"http://127.0.0.1:{port}/", "--timeout", "5")
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and f"127.0.0.1:{port}" in err


def _export_to(emu: JsocEmulator, dest: Path) -> list[str]:
    return [
        sys.executable, "-m", "sciwire", "drms", "export", "hmi.v_45s[2016.04.01/2m]",
        "-s", emu.url, "-e", "user@example.com", "--method", "url", "--dest", str(dest),
    ]  # fmt: skip


@pytest.mark.slow
def test_download_progress_bars_on_a_terminal_only(tmp_path: Path) -> None:
    emu = JsocEmulator(queue_time=0.05, processing_time=0.05).start_background()
    try:
        piped = subprocess.run(
            _export_to(emu, tmp_path / "piped"), capture_output=True, text=True, timeout=60
        )
        assert piped.returncode == 0 and "files" not in piped.stderr  # not a terminal: off
        main_fd, term_fd = pty.openpty()
        try:
            proc = subprocess.Popen(
                _export_to(emu, tmp_path / "tty"),
                stdout=subprocess.PIPE,
                stderr=term_fd,
                stdin=subprocess.DEVNULL,
            )
            os.close(term_fd)
            shown = b""
            while True:
                try:
                    chunk = os.read(main_fd, 4096)
                except OSError:  # the terminal's other end closed: the command exited
                    break
                if not chunk:
                    break
                shown += chunk
            assert proc.wait(60) == 0
            assert proc.stdout is not None
            proc.stdout.close()
        finally:
            os.close(main_fd)
    finally:
        emu.stop_background()
    text = shown.decode("utf-8", "replace")
    assert "download 3/3 files" in text  # the total bar, files done in its label
    assert "B/s" in text and "<00:00" in text  # rate and ETA
    assert "5151440" in text  # a per-file bar, named by the end of its file name


def test_a_closed_pipe_stops_quietly(emulator: JsocEmulator) -> None:
    # `sciwire drms query ... | head -1`: the reader leaves long before the output ends
    proc = subprocess.Popen(
        [sys.executable, "-m", "sciwire", "drms", "query", "hmi.v_45s[2016.04.01/4d]",
         "-s", emulator.url, "-k", "T_REC,QUALITY,DATAMEAN", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert json.loads(proc.stdout.readline())["T_REC"]
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(60) in (0, 1)
    assert err == ""  # no traceback, no "Exception ignored ... BrokenPipeError"


def test_a_jsoc_error_is_one_line(emulator: JsocEmulator) -> None:
    code, out, err = invoke("query", "no.such_series[]", "-s", emulator.url)
    assert (code, out) == (1, "")
    assert err == "error: Unknown series: no.such_series [status=1]\n"
