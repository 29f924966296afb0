"""The IBL rig echo protocol, wire-compatible with ``iblutil.io.net``.

Drop-in names: :class:`EchoProtocol`, :class:`Services`, :class:`ExpMessage`,
:class:`ExpStatus`, :func:`validate_uri` and friends. Every message is confirmed by
its byte-for-byte echo. UDP is wire-identical to iblutil; TCP works with several
clients and with glued or split messages; IPv6 works on both.
"""

from __future__ import annotations

from sciwire.rig.blocking import BlockingEchoProtocol, BlockingServices
from sciwire.rig.client import EchoProtocol
from sciwire.rig.communicator import Communicator
from sciwire.rig.errors import (
    EchoMismatchError,
    EchoTimeoutError,
    MessageTooLargeError,
    RigTypeError,
    RigValueError,
    ServicesTimeoutError,
)
from sciwire.rig.protocol import (
    LISTEN_PORT,
    PROTOCOL_VERSION,
    ExpMessage,
    ExpStatus,
    Service,
    decode,
    encode,
)
from sciwire.rig.server import RemoteRig, serve
from sciwire.rig.services import Services
from sciwire.rig.uri import hostname2ip, is_valid_ip, validate_uri

__all__ = [
    "LISTEN_PORT",
    "PROTOCOL_VERSION",
    "BlockingEchoProtocol",
    "BlockingServices",
    "Communicator",
    "EchoMismatchError",
    "EchoProtocol",
    "EchoTimeoutError",
    "ExpMessage",
    "ExpStatus",
    "MessageTooLargeError",
    "RemoteRig",
    "RigTypeError",
    "RigValueError",
    "Service",
    "Services",
    "ServicesTimeoutError",
    "decode",
    "encode",
    "hostname2ip",
    "is_valid_ip",
    "serve",
    "validate_uri",
]
