"""The ``sciwire`` root: -v/--log-level, the one-line error rule, the demo's layout."""

from __future__ import annotations

import logging

import pytest

from sciwire import clikit
from sciwire.demo import TRY_NEXT, WIDTH, DemoRow, _table, _try_next
from tests.clirun import run, taken_port


def closed_url() -> str:
    with taken_port() as port:
        pass  # closed again: connections are refused
    return f"http://127.0.0.1:{port}/"


@pytest.mark.slow
def test_log_level_and_verbose_show_the_package_loggers() -> None:
    url = closed_url()
    quiet = run("drms", "series", "-s", url).clean(1)
    assert quiet.err.count("\n") == 1  # the error line alone, no retry warnings
    debug = run("--log-level", "debug", "drms", "series", "-s", url).clean(1)
    assert " DEBUG sciwire." in debug.err or " WARNING sciwire." in debug.err
    assert debug.err.strip().splitlines()[-1].startswith("error: ")
    verbose = run("-v", "drms", "series", "-s", url).clean(1)
    assert " WARNING sciwire.drms._transport" in verbose.err  # the retries, now shown


def test_bad_log_level_is_a_usage_error() -> None:
    result = run("--log-level", "loud", "demo").clean(2)
    assert "'loud' is not one of" in result.err


def test_unexpected_errors_are_one_line_without_v() -> None:
    with pytest.raises(clikit.UserError) as err:
        clikit.report(RuntimeError("boom"))
    assert err.value.format_message() == (
        "internal error: RuntimeError: boom (run with -v for the traceback)"
    )
    with pytest.raises(clikit.UserError) as err:
        clikit.report(ConnectionRefusedError(111, "Connection refused"))
    assert err.value.format_message() == "[Errno 111] Connection refused"


def test_in_process_runs_leave_logging_as_they_found_it() -> None:
    from click.testing import CliRunner

    from sciwire.cli import main

    logger = logging.getLogger("sciwire")
    before = (logger.level, list(logger.handlers), logger.propagate)
    CliRunner().invoke(main, ["-vv", "drms", "series", "-s", closed_url()])
    assert (logger.level, list(logger.handlers), logger.propagate) == before
    assert clikit.verbosity() == 0


def test_verbose_report_prints_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    clikit.setup_logging(2, None)
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError as exc:
            with pytest.raises(clikit.UserError):
                clikit.report(exc)
    finally:
        clikit.restore_logging()
    assert "Traceback" in capsys.readouterr().err


def test_emit_json_is_strict(capsys: pytest.CaptureFixture[str]) -> None:
    clikit.emit_json({"a": float("nan"), "b": [float("inf"), 1.5], "c": object})
    out = capsys.readouterr().out
    assert out.startswith('{"a": null, "b": [null, 1.5], "c": "<class ')


def test_demo_table_fits_the_width() -> None:
    long = "a server and a client " * 20
    rows = [DemoRow(p, long, long, ok=p != "rig", seconds=1.5) for p in TRY_NEXT]
    lines = _table(rows).splitlines() + _try_next(TRY_NEXT)
    assert max(len(line) for line in lines) <= WIDTH
    assert lines[2].startswith("command  ok      1.50 s  ran a server")
    assert any(line.startswith("rig      FAILED") for line in lines)


def test_demo_ends_with_a_summary_and_what_to_try() -> None:
    result = run("demo", "--only", "command", "--only", "rig").clean(0)
    lines = result.out.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    at = lines.index("2/2 ok")
    assert lines[at + 1] == "try next:"
    assert lines[at + 2].startswith("  command ") and lines[at + 3].startswith("  rig ")
