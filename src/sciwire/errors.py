"""The one exception tree of sciwire.

Every error sciwire raises on purpose derives from :class:`SciwireError`. Transport
errors are also the built-in exceptions existing code already catches:
:class:`ConnectError` is an :class:`OSError` and :class:`Timeout` is a
:class:`TimeoutError`. Each protocol package subclasses these under the original
library's public names (``CommandError``, ``DrmsQueryError``, ``SAMPHubError``...).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConnectError",
    "ConnectionClosed",
    "LocalProtocolError",
    "PortalError",
    "ProtocolError",
    "RemoteError",
    "RemoteProtocolError",
    "SciwireError",
    "Timeout",
    "TransportError",
    "trim",
]

#: How much of an offending input an error keeps.
TRIM_AT = 200


def trim(data: object, limit: int = TRIM_AT) -> str:
    """Return a short printable form of *data* for an error message."""
    if isinstance(data, bytes | bytearray):
        text = bytes(data).decode("utf-8", "replace")
    elif isinstance(data, str):
        text = data
    else:
        text = repr(data)
    if len(text) > limit:
        return f"{text[:limit]}... ({len(text)} chars)"
    return text


class SciwireError(Exception):
    """Base of every exception sciwire raises on purpose."""


class ProtocolError(SciwireError):
    """A message broke the protocol.

    Attributes:
        data: the offending input, trimmed to a printable excerpt (or None).
    """

    def __init__(self, message: str, data: object = None) -> None:
        self.data: str | None = None if data is None else trim(data)
        if self.data is not None:
            message = f"{message}: {self.data}"
        super().__init__(message)


class LocalProtocolError(ProtocolError):
    """We were asked to send something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


class TransportError(SciwireError):
    """The connection to the peer failed."""


class ConnectError(TransportError, OSError):
    """Could not connect to the peer (also an :class:`OSError`)."""


class Timeout(TransportError, TimeoutError):
    """The peer did not answer in time (also the built-in :class:`TimeoutError`)."""


class ConnectionClosed(TransportError):
    """The connection closed while we still expected data."""


class RemoteError(SciwireError):
    """The peer answered with an error.

    Attributes:
        code: the peer's error code (HTTP status, JSON-RPC code, JSOC status...).
        message: the peer's error text.
        data: any further data the peer sent with the error.
    """

    def __init__(self, message: str, code: Any = None, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.data = data


class PortalError(SciwireError, RuntimeError):
    """The blocking facade was misused: not started, stopped, or called from its own loop."""
