"""CryoSPARC command RPC: a drop-in ``cryosparc.command`` client, an asyncio client,
and a JSON-RPC command server with a simulated command_core.

    from sciwire.command import CommandClient
    cli = CommandClient(host="localhost", port=39002, headers={"License-ID": lic})
    cli.hello_world()  # {'hello': 'world'}
"""

from __future__ import annotations

from sciwire.command._aio import AsyncCommandClient
from sciwire.command._client import CommandClient, Response, make_json_request, make_request
from sciwire.command._errors import (
    CommandConnectError,
    CommandConnectionClosed,
    CommandError,
    CommandTimeout,
)
from sciwire.command._protocol import NumpyEncoder, format_server_error
from sciwire.command._server import CommandServer, RouteRequest, RouteResponse

__all__ = [
    "AsyncCommandClient",
    "CommandClient",
    "CommandConnectError",
    "CommandConnectionClosed",
    "CommandError",
    "CommandServer",
    "CommandTimeout",
    "NumpyEncoder",
    "Response",
    "RouteRequest",
    "RouteResponse",
    "format_server_error",
    "make_json_request",
    "make_request",
]
