"""The ``sciwire`` command: one subcommand group per protocol package, plus ``demo``.

Package groups are found by module name (``sciwire.<package>.cli`` exposing a
``click.Group`` called ``group``) and imported only when used, so ``sciwire --help``
stays fast and a package that has not landed yet says so instead of faking output.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from sciwire import __version__, clikit

__all__ = ["PACKAGES", "main"]

#: The protocol packages, in the order the CLI and the demo list them.
PACKAGES: dict[str, str] = {
    "command": "CryoSPARC command_core/vis/rtp JSON-RPC client and simulated server",
    "drms": "JSOC DRMS HTTP/JSON client and JSOC emulator",
    "samp": "SAMP hub and clients (Standard and Web Profile)",
    "ifcb": "IFCB SignalR client and instrument simulator",
    "rig": "IBL rig echo protocol over UDP/TCP",
    "fleet": "many instruments and consumers across machines on NATS JetStream",
}


def package_landed(package: str) -> bool:
    """True when ``sciwire.<package>`` ships a CLI module."""
    try:
        return importlib.util.find_spec(f"sciwire.{package}.cli") is not None
    except ModuleNotFoundError:
        return False


def _not_landed(package: str) -> click.Command:
    @click.command(
        name=package,
        help=f"{PACKAGES[package]} (not available yet).",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
    def placeholder() -> None:
        click.echo(f"sciwire {package}: this package has not landed yet.", err=True)
        sys.exit(2)

    return placeholder


class _Root(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*PACKAGES, "demo"]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "demo":
            return demo
        if cmd_name not in PACKAGES:
            return None
        if not package_landed(cmd_name):
            return _not_landed(cmd_name)
        module = importlib.import_module(f"sciwire.{cmd_name}.cli")
        group: click.Command = module.group
        return group

    def invoke(self, ctx: click.Context) -> Any:
        # The one place where a failure becomes one line for the user (and a traceback
        # only with -v): every subcommand runs inside this call.
        try:
            return self._invoke(ctx)
        finally:
            clikit.restore_logging()  # an in-process run (a test) leaves no logging behind

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(130) from None
        except BrokenPipeError:
            # the reader went away (`sciwire ... | head`): stop quietly, and keep Python
            # from complaining again when it flushes stdout at exit
            clikit.silence_stdout()
            raise click.exceptions.Exit(1) from None
        except Exception as exc:
            clikit.report(exc)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sciwire")
@click.option(
    "-v", "--verbose", count=True, help="Log what happens (-v: info, -vv: debug, tracebacks)."
)
@click.option(
    "--log-level",
    type=click.Choice(clikit.LOG_LEVELS, case_sensitive=False),
    default=None,
    help="Level of the sciwire loggers (overrides -v).",
)
@click.option(
    "--loop",
    type=click.Choice(["auto", "asyncio", "uvloop"]),
    default=None,
    help="Event loop: uvloop when installed (auto), or asyncio's own. [env: SCIWIRE_LOOP]",
)
def main(verbose: int, log_level: str | None, loop: str | None) -> None:
    """Talk to scientific instruments and facility services, and stand them up locally."""
    from sciwire.core.loops import choose_loop

    clikit.setup_logging(verbose, log_level)
    try:
        choose_loop(loop)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


@click.command()
@click.option("--only", multiple=True, type=click.Choice(list(PACKAGES)), help="Run these rows.")
def demo(only: tuple[str, ...]) -> None:
    """Start every package's server side on loopback, run its client, print one row each."""
    from sciwire.demo import run_demo

    sys.exit(run_demo(list(only) or list(PACKAGES)))
