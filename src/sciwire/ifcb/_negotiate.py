"""SignalR negotiate (``POST {hub}/negotiate``), versions 0 and 1, redirects and errors.

Version 1 replies carry a ``connectionToken`` that goes on the WebSocket URL as
``?id=``; version 0 replies use the ``connectionId`` there. A reply may instead
redirect (``{url, accessToken}``) or refuse (``{error}``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sciwire.errors import RemoteError, RemoteProtocolError

__all__ = ["NegotiateError", "NegotiateResult", "negotiate_response", "parse_negotiate"]


class NegotiateError(RemoteError):
    """The negotiate endpoint answered with an error or an unusable reply."""


# --- replies --------------------------------------------------------------------


@dataclass(slots=True)
class NegotiateResult:
    """What a negotiate reply says: either a connection, or a redirect."""

    connection_id: str | None = None
    connection_token: str | None = None
    negotiate_version: int = 0
    transports: list[dict[str, Any]] = field(default_factory=list)
    url: str | None = None
    access_token: str | None = None

    @property
    def is_redirect(self) -> bool:
        """True when the reply sends the client to another URL."""
        return self.url is not None

    @property
    def ws_id(self) -> str | None:
        """The id to put on the WebSocket URL (the token in version 1, the id in 0)."""
        return self.connection_token if self.negotiate_version >= 1 else self.connection_id


def parse_negotiate(body: Any) -> NegotiateResult:
    """Interpret a negotiate reply (versions 0 and 1, redirect, error).

    Raises:
        NegotiateError: the reply carries ``error``.
        RemoteProtocolError: the reply is not a negotiate reply, or offers no WebSockets.
    """
    if not isinstance(body, dict):
        raise RemoteProtocolError("negotiate reply is not a JSON object", body)
    if "error" in body:
        raise NegotiateError(str(body["error"]), data=body)
    if "url" in body:
        url = body["url"]
        token = body.get("accessToken")
        if not isinstance(url, str) or (token is not None and not isinstance(token, str)):
            raise RemoteProtocolError("negotiate redirect is malformed", body)
        return NegotiateResult(url=url, access_token=token)
    version = body.get("negotiateVersion", 0)
    cid = body.get("connectionId")
    token = body.get("connectionToken")
    transports = body.get("availableTransports", [])
    if not isinstance(version, int) or not isinstance(cid, str) or not isinstance(transports, list):
        raise RemoteProtocolError("negotiate reply is malformed", body)
    if version >= 1 and not isinstance(token, str):
        raise RemoteProtocolError("negotiate version 1 reply lacks connectionToken", body)
    if transports and not any(
        isinstance(t, dict) and t.get("transport") == "WebSockets" for t in transports
    ):
        raise NegotiateError("server offers no WebSockets transport", data=body)
    return NegotiateResult(cid, token if version >= 1 else None, version, transports)


def negotiate_response(connection_id: str, connection_token: str, version: int) -> dict[str, Any]:
    """A server's negotiate reply; "Text" is listed first so no client picks MessagePack."""
    body: dict[str, Any] = {"connectionId": connection_id}
    if version >= 1:
        body["negotiateVersion"] = 1
        body["connectionToken"] = connection_token
    else:
        body["negotiateVersion"] = 0
    body["availableTransports"] = [
        {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}
    ]
    return body
