"""The exceptions of :mod:`sciwire.command`, under cryosparc-tools' names.

:class:`CommandError` keeps the original signature ``CommandError(reason, *args,
url="", code=500, data=None)`` and message shape ``*** (url, code N) reason``, and
sits in the sciwire tree as a :class:`~sciwire.errors.RemoteError`. Transport
failures are raised as subclasses that are *also* the matching sciwire transport
error, so ``except CommandError``, ``except OSError`` and ``except TimeoutError``
all keep working.
"""

from __future__ import annotations

from typing import Any

from sciwire.errors import ConnectError, ConnectionClosed, RemoteError, Timeout

__all__ = [
    "CommandConnectError",
    "CommandConnectionClosed",
    "CommandError",
    "CommandTimeout",
    "command_error",
]


class CommandError(RemoteError):
    """Raised by a failed request to a CryoSPARC command server.

    Attributes:
        code: the HTTP status or JSON-RPC error code (500 when none was given).
        data: the server's error data (``{"traceback": ...}`` for JSON-RPC errors,
            the response body for HTTP errors), or None.
        url: the URL that was requested.
    """

    def __init__(
        self, reason: str, *args: object, url: str = "", code: Any = 500, data: Any = None
    ) -> None:
        msg = f"*** ({url}, code {code}) {reason}"
        super().__init__(msg, code=code, data=data)
        # keep the extra positional args in .args like the original does
        self.args = (msg, *args)
        self.reason = reason
        self.url = url


class CommandConnectError(CommandError, ConnectError):
    """Could not connect to the command server (also an :class:`OSError`)."""

    def __init__(
        self, reason: str, *args: object, url: str = "", code: Any = 500, data: Any = None
    ) -> None:
        CommandError.__init__(self, reason, *args, url=url, code=code, data=data)


class CommandTimeout(CommandError, Timeout):
    """The command server did not answer in time (also a :class:`TimeoutError`)."""

    def __init__(
        self, reason: str, *args: object, url: str = "", code: Any = 500, data: Any = None
    ) -> None:
        CommandError.__init__(self, reason, *args, url=url, code=code, data=data)


class CommandConnectionClosed(CommandError, ConnectionClosed):
    """The server closed the connection before answering."""


def command_error(kind: type[Exception], message: str, url: str, data: Any) -> Exception:
    """The core pools' failures under cryosparc-tools' exception names (their
    ``error_factory``)."""
    if kind is ConnectError:
        return CommandConnectError(message, url=url)
    if kind is Timeout:
        return CommandTimeout(message, url=url)
    if kind is ConnectionClosed:
        return CommandConnectionClosed(message, url=url)
    return CommandError(message, url=url, data=data)
