"""How the pools turn a failure into an exception: the :data:`ErrorFactory` a package
may replace to raise its own subclasses, and the plain default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sciwire.errors import RemoteProtocolError

__all__ = ["DEFAULT", "ErrorFactory", "default_error"]


#: "use the pool's timeout" (per-call timeout argument)
DEFAULT: Any = "default"

#: ``factory(kind, message, url, data) -> exception``: *kind* is one of ConnectError,
#: Timeout, ConnectionClosed, RemoteProtocolError.
ErrorFactory = Callable[[type[Exception], str, str, Any], Exception]


def default_error(kind: type[Exception], message: str, url: str, data: Any) -> Exception:
    """The plain :mod:`sciwire.errors` exception for a failure."""
    if kind is RemoteProtocolError:
        return RemoteProtocolError(message, data)
    return kind(f"{message} ({url})")
