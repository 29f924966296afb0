"""The rig package's exceptions: iblutil's built-in error types, inside sciwire.errors.

iblutil raises plain ``TimeoutError``, ``RuntimeError``, ``ValueError`` and
``TypeError``. Each class here is also one of those built-ins, so code written for
iblutil keeps catching them, and also a :mod:`sciwire.errors` class.
"""

from __future__ import annotations

from collections.abc import Iterable

from sciwire.errors import (
    ConnectError,
    ConnectionClosed,
    LocalProtocolError,
    RemoteProtocolError,
    Timeout,
)

__all__ = [
    "ConnectError",
    "ConnectionClosed",
    "EchoMismatchError",
    "EchoTimeoutError",
    "MessageTooLargeError",
    "RigTypeError",
    "RigValueError",
    "ServicesTimeoutError",
    "UnsupportedTransportError",
]


class RigValueError(LocalProtocolError, ValueError):
    """A bad argument: unknown event or status, invalid URI or port, bad timeout."""


class RigTypeError(LocalProtocolError, TypeError):
    """An argument of the wrong type, or a missing address in the server role."""


class MessageTooLargeError(RigValueError):
    """A message too large for one UDP datagram (iblutil would send it and time out)."""


class UnsupportedTransportError(LocalProtocolError, RuntimeError):
    """A transport whose socket type does not match the URI's scheme (also ``RuntimeError``)."""


class EchoTimeoutError(Timeout):
    """The peer did not echo a confirmed message in time (also ``TimeoutError``)."""


class EchoMismatchError(RemoteProtocolError, RuntimeError):
    """The peer's echo differed from the bytes sent (also ``RuntimeError``)."""


class ServicesTimeoutError(Timeout):
    """Some rigs of a :class:`~sciwire.rig.Services` did not answer in time.

    Attributes:
        failed: the names of the rigs that did not answer.
    """

    def __init__(self, failed: Iterable[str]) -> None:
        self.failed: set[str] = set(failed)
        super().__init__(f"The following services failed to respond in time: {self.failed}")
