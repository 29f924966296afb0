"""``python -m sciwire.drms``: drms's command line (make a client, log it)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

__all__ = ["main", "parse_args"]

logger = logging.getLogger("sciwire.drms")


def parse_args(args: Sequence[str]) -> argparse.Namespace:
    """Parse drms's options: ``[--email ADDRESS] [--version] [server]``."""
    from sciwire.drms.version import version as __version__

    parser = argparse.ArgumentParser(
        prog="python -m sciwire.drms",
        description="drms (sciwire): access HMI, AIA and MDI data at JSOC and DRMS sites",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"sciwire.drms v{__version__}",
        help="show the version and exit",
    )
    parser.add_argument("--email", help="email address for export requests")
    parser.add_argument(
        "server", nargs="?", default="jsoc", help="DRMS server name or base URL (default: jsoc)"
    )
    return parser.parse_args(list(args))


def main(argv: Sequence[str] | None = None) -> None:
    """Create a client for the server named on the command line and log it."""
    from sciwire.drms.client import Client

    args = parse_args(sys.argv[1:] if argv is None else argv)
    client = Client(server=args.server, email=args.email)
    logger.info("client: %s", client)
