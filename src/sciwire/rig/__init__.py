"""The IBL rig echo protocol, wire-compatible with ``iblutil.io.net``.

Drop-in names: :class:`EchoProtocol`, :class:`Services`, :class:`ExpMessage`,
:class:`ExpStatus`, :func:`validate_uri` and friends. Every message is confirmed by
its byte-for-byte echo. UDP is wire-identical to iblutil; TCP works with several
clients and with glued or split messages; IPv6 works on both.

Deliberate differences from iblutil 1.20 (its bugs fixed, not copied):

- Only valid messages are echoed; empty, oversized, non-UTF-8, non-JSON or wrongly
  shaped input is logged, counted in ``EchoProtocol.dropped`` and not echoed.
- TCP: one splitter and echo state per connection (glued/split messages, many clients).
- A server is not closed by one peer's echo timeout or mismatch (a client still is).
- Confirmed sends to one address queue; a late echo after a timeout is swallowed once
  (re-echoing it would start an endless ping-pong).
- A raising callback does not stop the other callbacks for that event; async callbacks
  run as tasks. UDP messages over one datagram raise at once instead of timing out.
- Services registers for replies before sending (iblutil's sequential mode can miss a
  fast reply), sends concurrently, names the silent rigs in ``ServicesTimeoutError``
  and cancels what it no longer waits for.
- ``EchoProtocol.server`` accepts port 0; the default logger (``logging.getLogger(name)``,
  as iblutil's) gets no handler, so nothing prints.

The modules are iblutil's: :mod:`sciwire.rig.app` and :mod:`sciwire.rig.base`.
"""

from __future__ import annotations

from sciwire.rig import app, base
from sciwire.rig._blocking import BlockingEchoProtocol, BlockingServices
from sciwire.rig._client import EchoProtocol
from sciwire.rig._communicator import Communicator, is_success
from sciwire.rig._errors import (
    EchoMismatchError,
    EchoTimeoutError,
    MessageTooLargeError,
    RigTypeError,
    RigValueError,
    ServicesTimeoutError,
    UnsupportedTransportError,
)
from sciwire.rig._protocol import (
    LISTEN_PORT,
    PROTOCOL_VERSION,
    ExpMessage,
    ExpStatus,
    Service,
    decode,
    encode,
)
from sciwire.rig._server import RemoteRig, serve
from sciwire.rig._services import Services
from sciwire.rig._uri import hostname2ip, is_valid_ip, validate_uri
from sciwire.rig.base import external_ip

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
    "UnsupportedTransportError",
    "app",
    "base",
    "decode",
    "encode",
    "external_ip",
    "hostname2ip",
    "is_success",
    "is_valid_ip",
    "serve",
    "validate_uri",
]
