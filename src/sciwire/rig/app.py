"""iblutil's ``iblutil.io.net.app``: the echo communicator, Services, and an example entry point.

Change ``from iblutil.io.net import app`` to ``from sciwire.rig import app``.
``app.asyncio`` and ``app.socket`` are the modules, as there: a test that patches
``app.asyncio.wait_for`` has :meth:`EchoProtocol.confirmed_send` wait through the
patched function, as iblutil's does (unpatched, it waits under one shared timer).

    python -m sciwire.rig.app server --host 127.0.0.1     # a server for an hour
    python -m sciwire.rig.app client --host 127.0.0.1     # sends one EXPSTART
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket  # noqa: F401  (``app.socket``, as in iblutil's module)
from typing import Any

from sciwire.rig._client import EchoProtocol
from sciwire.rig._errors import RigValueError
from sciwire.rig._services import Services

__all__ = ["EchoProtocol", "Services", "main"]

logger = logging.getLogger(__name__)


async def main(
    role: str,
    server_uri: Any,
    name: str | None = None,
    duration: float = 3600.0,
    **kwargs: Any,
) -> None:
    """The example entry point: serve (for *duration* seconds), or send one EXPSTART.

    Args:
        role: ``"server"`` or ``"client"``.
        server_uri: the local (server) or remote (client) address.
        name: a label for the communicator.
        duration: how long a server serves (iblutil's one hour).
        kwargs: passed to :meth:`EchoProtocol.server`.

    Raises:
        RigValueError: an unknown role (also ValueError).
    """
    if role == "server":
        logger.info("Starting server")
        com = await EchoProtocol.server(server_uri, name=name, **kwargs)
        try:
            await asyncio.sleep(duration)
        finally:
            com.close()
    elif role == "client":
        logger.info("Starting client")
        com = await EchoProtocol.client(server_uri, name=name)
        try:
            await com.start("2022-01-01_1_subject")
        finally:
            com.close()
    else:
        raise RigValueError(f'Unknown role "{role}"')


def _cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="UDP Experiment Communicator.")
    parser.add_argument("role", choices=("server", "client"), help="communicator role")
    parser.add_argument("--host", "-H", help="the host address (default: this host's IP)")
    args = parser.parse_args(argv)
    if args.host is None:
        from sciwire.rig._uri import hostname2ip

        args.host = str(hostname2ip())
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(args.role, args.host))


if __name__ == "__main__":
    _cli()
