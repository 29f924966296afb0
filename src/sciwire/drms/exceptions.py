"""The drms package's exception names, rooted in :mod:`sciwire.errors`.

``DrmsError`` is a :class:`~sciwire.errors.RemoteError` (JSOC answered with a failure
status) and also a :class:`RuntimeError`, as in the original, so both
``except drms.DrmsError`` and ``except RuntimeError`` style code keeps working.
"""

from __future__ import annotations

from typing import Any

from sciwire.errors import RemoteError

__all__ = [
    "DrmsError",
    "DrmsExportError",
    "DrmsHttpError",
    "DrmsOperationNotSupported",
    "DrmsQueryError",
]


class DrmsError(RemoteError, RuntimeError):
    """Unspecified DRMS run-time error (``code`` is the JSOC status when known)."""

    def __init__(self, message: str = "", code: Any = None, data: Any = None) -> None:
        # the message is optional: drms's errors can be raised bare (``raise DrmsError``)
        super().__init__(message, code, data)


class DrmsQueryError(DrmsError):
    """A DRMS query (series list, series info, record-set query) failed."""


class DrmsExportError(DrmsError):
    """A DRMS data export request failed, expired, or was not found."""


class DrmsOperationNotSupported(DrmsError):
    """The configured server does not offer this operation (e.g. exports on ``kis``)."""


class DrmsHttpError(DrmsError):
    """The CGI or the file server answered with an HTTP error status (``code``)."""
