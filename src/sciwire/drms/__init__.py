"""JSOC DRMS HTTP/JSON client (drop-in for ``drms.HttpJsonClient``) and a JSOC emulator.

Blocking :class:`HttpJsonClient` and asyncio :class:`AsyncHttpJsonClient` speak the
JSOC CGIs (show_series, showextseries, jsoc_info, jsoc_fetch, checkAddress.sh);
:class:`ServerConfig` and :func:`register_server` keep the drms server registry;
:class:`JsocEmulator` serves a small synthetic catalog on loopback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sciwire.drms._protocol import JsocInfoConstants, keyword_columns
from sciwire.drms.config import ServerConfig, UnknownServerError, register_server
from sciwire.drms.exceptions import (
    DrmsError,
    DrmsExportError,
    DrmsHttpError,
    DrmsOperationNotSupported,
    DrmsQueryError,
)
from sciwire.drms.json import AsyncHttpJsonClient, HttpJsonClient, HttpJsonRequest

if TYPE_CHECKING:
    from sciwire.drms._server import JsocEmulator

__all__ = [
    "AsyncHttpJsonClient",
    "DrmsError",
    "DrmsExportError",
    "DrmsHttpError",
    "DrmsOperationNotSupported",
    "DrmsQueryError",
    "HttpJsonClient",
    "HttpJsonRequest",
    "JsocEmulator",
    "JsocInfoConstants",
    "ServerConfig",
    "UnknownServerError",
    "keyword_columns",
    "register_server",
]


def __getattr__(name: str) -> Any:
    # The emulator pulls in the server side; load it only when asked for.
    if name == "JsocEmulator":
        from sciwire.drms._server import JsocEmulator

        return JsocEmulator
    raise AttributeError(name)
