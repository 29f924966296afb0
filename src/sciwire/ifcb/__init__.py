"""sciwire.ifcb: IFCB client over SignalR, the IFCB message codec, and an instrument simulator.

Drop-in for pyifcbclient::

    from sciwire.ifcb import IFCBClient
    client = IFCBClient("ws://192.168.1.100:8092/ifcbHub", "111-111-111")
    client.on(("valuechanged", "pausestate"), lambda _, __, paused: print(paused))
    client.connect()
"""

from __future__ import annotations

from sciwire.ifcb.client import AsyncIFCBClient, IFCBClient
from sciwire.ifcb.protocol import (
    DaqValues,
    IFCBProtocolError,
    RoiImage,
    UnknownMessage,
    format_message,
    parse_message,
    parse_response,
)
from sciwire.ifcb.server import IFCBSimulator
from sciwire.ifcb.signalr import HandshakeError, NegotiateError, ServerTimeout
from sciwire.ifcb.transport import HubClient, HubInvocationError

__all__ = [
    "AsyncIFCBClient",
    "DaqValues",
    "HandshakeError",
    "HubClient",
    "HubInvocationError",
    "IFCBClient",
    "IFCBProtocolError",
    "IFCBSimulator",
    "NegotiateError",
    "RoiImage",
    "ServerTimeout",
    "UnknownMessage",
    "format_message",
    "parse_message",
    "parse_response",
]
