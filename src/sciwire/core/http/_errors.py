"""How the pools turn a failure into an exception: the :data:`ErrorFactory` a package
may replace to raise its own subclasses, and the plain default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sciwire.errors import ConnectError, RemoteProtocolError, Timeout

__all__ = [
    "DEFAULT",
    "ErrorFactory",
    "connect_failure",
    "default_error",
    "invalid_response",
    "response_timeout",
]


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


def connect_failure(
    exc: BaseException, timed_out: bool, attempt: int, retries: int
) -> tuple[type[Exception], str]:
    """The kind and message of a failed connection attempt, alike in both pools."""
    if timed_out:
        return Timeout, f"Timeout Error connecting (attempt {attempt} of {retries})"
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return ConnectError, f"URL Error {reason} (attempt {attempt} of {retries})"


def response_timeout(name: str, limit: float | None) -> str:
    """The message of a response that did not come in time (never re-sent)."""
    return (
        f"{name} did not reply within timeout of {limit} seconds "
        "(request not re-sent: it may have been processed)"
    )


def invalid_response(exc: BaseException) -> str:
    """The message of a response that is not valid HTTP."""
    return f"invalid HTTP response: {exc}"
