"""sciwire.ifcb: IFCB client over SignalR, the IFCB message codec, and an instrument simulator.

Drop-in for pyifcbclient (its modules ``ifcbclient.ifcbclient`` and ``ifcbclient.protocol``
are :mod:`sciwire.ifcb.ifcbclient` and :mod:`sciwire.ifcb.protocol`)::

    from sciwire.ifcb import IFCBClient
    client = IFCBClient("ws://192.168.1.100:8092/ifcbHub", "111-111-111")
    client.on(("valuechanged", "pausestate"), lambda _, __, paused: print(paused))
    client.connect()
"""

from __future__ import annotations

from sciwire.ifcb._client import AsyncIFCBClient
from sciwire.ifcb._codec import (
    DaqValues,
    IFCBProtocolError,
    RoiImage,
    UnknownMessage,
    format_message,
    parse_message,
)
from sciwire.ifcb._server import IFCBSimulator
from sciwire.ifcb._signalr import (
    MAX_MESSAGE_SIZE,
    MAX_RECORD_SIZE,
    HandshakeError,
    NegotiateError,
    RecordTooLarge,
    ServerTimeout,
)
from sciwire.ifcb._transport import HubClient, HubInvocationError, MessageTooLarge
from sciwire.ifcb.ifcbclient import ClientHubConnection, IFCBClient
from sciwire.ifcb.protocol import fixed_length_responses, parse_response

__all__ = [
    "MAX_MESSAGE_SIZE",
    "MAX_RECORD_SIZE",
    "AsyncIFCBClient",
    "ClientHubConnection",
    "DaqValues",
    "HandshakeError",
    "HubClient",
    "HubInvocationError",
    "IFCBClient",
    "IFCBProtocolError",
    "IFCBSimulator",
    "MessageTooLarge",
    "NegotiateError",
    "RecordTooLarge",
    "RoiImage",
    "ServerTimeout",
    "UnknownMessage",
    "fixed_length_responses",
    "format_message",
    "parse_message",
    "parse_response",
]
