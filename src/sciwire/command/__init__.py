"""CryoSPARC command RPC: a drop-in ``cryosparc.command`` client, an asyncio client,
and a JSON-RPC command server with a simulated command_core.

    from sciwire.command import CommandClient
    cli = CommandClient(host="localhost", port=39002, headers={"License-ID": lic})
    cli.hello_world()  # {'hello': 'world'}
"""

from __future__ import annotations

from sciwire.command._aio import AsyncCommandClient
from sciwire.command._calls import set_module_defaults
from sciwire.command._client import CommandClient, Response, make_json_request, make_request
from sciwire.command._errors import (
    CommandConnectError,
    CommandConnectionClosed,
    CommandError,
    CommandTimeout,
)
from sciwire.command._protocol import NumpyEncoder, format_server_error
from sciwire.command._server import CommandServer, RouteRequest, RouteResponse
from sciwire.command._transport import env_retries, env_retry_seconds

#: Attempts per request when the server cannot be reached, from the environment's
#: ``CRYOSPARC_COMMAND_RETRIES`` at import (default 3); clients made later use the value
#: this holds then (their ``retries`` argument overrides it).
MAX_ATTEMPTS: int = env_retries()
#: Seconds between those attempts, from ``CRYOSPARC_COMMAND_RETRY_SECONDS`` at import
#: (default 30); read when a client is made, like :data:`MAX_ATTEMPTS`.
RETRY_INTERVAL: float = env_retry_seconds()

# clients read the two above when they are made (this module's current values)
set_module_defaults(lambda: (MAX_ATTEMPTS, RETRY_INTERVAL))

__all__ = [
    "MAX_ATTEMPTS",
    "RETRY_INTERVAL",
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
