"""SAMP exceptions under astropy.samp's names, rooted in the sciwire exception tree.

``SAMPHubError``, ``SAMPClientError`` and ``SAMPProxyError`` keep the names (and, for
``SAMPProxyError``, the :class:`xmlrpc.client.Fault` base with ``faultCode`` and
``faultString``) that astropy.samp code catches, and are also :mod:`sciwire.errors`
classes so ``except SciwireError`` catches them too.
"""

from __future__ import annotations

import xmlrpc.client
from typing import Any

from sciwire.errors import ProtocolError, RemoteError, SciwireError

__all__ = ["SAMPClientError", "SAMPDataError", "SAMPHubError", "SAMPProxyError", "SAMPWarning"]


class SAMPWarning(UserWarning):
    """A SAMP-specific warning (astropy's is an AstropyUserWarning, itself a UserWarning)."""


class SAMPHubError(SciwireError):
    """The hub failed, refused, or could not be found or started."""


class SAMPClientError(SciwireError):
    """A SAMP client was misused or failed (not connected, no callable client...)."""


class SAMPProxyError(RemoteError, xmlrpc.client.Fault):
    """The hub (or a client) answered an XML-RPC call with a fault.

    Args:
        faultCode: the XML-RPC fault code (SAMP gives it no meaning).
        faultString: the fault text.
    """

    def __init__(self, faultCode: int, faultString: str, **extra: Any) -> None:
        # RemoteError.__init__ would reach Fault.__init__ through the MRO with the
        # wrong arguments: set both bases' attributes here instead.
        Exception.__init__(self, faultCode, faultString)
        self.message = faultString
        self.code: Any = faultCode
        self.data: Any = extra or None
        self.faultCode = faultCode
        self.faultString = faultString

    def __str__(self) -> str:
        return str(self.faultString)

    def __repr__(self) -> str:
        return f"<SAMPProxyError {self.faultCode}: {self.faultString!r}>"


class SAMPProxyTimeoutError(SAMPProxyError):
    """A call through a hub proxy timed out (astropy's name, kept for ``except``)."""


class SAMPDataError(ProtocolError, ValueError):
    """A value breaks the SAMP data model (type, characters, mtype syntax, lockfile).

    Also a :class:`ValueError`. Not in astropy (which mostly lets such data through).
    """
