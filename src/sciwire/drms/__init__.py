"""JSOC DRMS access, drop-in for the ``drms`` package, and a JSOC emulator.

:class:`Client` (series, info, query into pandas DataFrames, exports and downloads) with
:class:`SeriesInfo` and :class:`ExportRequest`; the CGI-level blocking
:class:`HttpJsonClient` and asyncio :class:`AsyncHttpJsonClient` (show_series,
showextseries, jsoc_info, jsoc_fetch, checkAddress.sh); :class:`ServerConfig` and
:func:`register_server`; :func:`to_datetime`; :class:`JsocEmulator` serves a small
synthetic catalog on loopback. The modules are drms's: ``client``, ``config``,
``exceptions``, ``json``, ``utils``, ``main``, ``version``. pandas (the ``drms`` extra) is
imported only when a DataFrame is built.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sciwire.drms import client, config, exceptions, json, main, utils, version
from sciwire.drms._protocol import JsocInfoConstants, keyword_columns
from sciwire.drms.client import Client, ExportRequest, SeriesInfo
from sciwire.drms.config import ServerConfig, UnknownServerError, register_server
from sciwire.drms.exceptions import (
    DrmsError,
    DrmsExportError,
    DrmsHttpError,
    DrmsOperationNotSupported,
    DrmsQueryError,
)
from sciwire.drms.json import AsyncHttpJsonClient, HttpJsonClient, HttpJsonRequest, const
from sciwire.drms.utils import to_datetime
from sciwire.drms.version import version as __version__

if TYPE_CHECKING:
    from sciwire.drms._server import JsocEmulator

logger = logging.getLogger(__name__)

#: The paper to cite when drms (whose API this package keeps) helped your work.
__citation__ = __bibtex__ = """\
@article{Glogowski2019,
    author = {Glogowski, Kolja and Bobra, Monica G. and Choudhary, Nitin and
              Amezcua, Arthur B. and Mumford, Stuart J.},
    title = {drms: A Python package for accessing HMI and AIA data},
    journal = {Journal of Open Source Software},
    year = {2019},
    volume = {4},
    number = {40},
    pages = {1614},
    doi = {10.21105/joss.01614}
}
"""

__all__ = [
    "AsyncHttpJsonClient",
    "Client",
    "DrmsError",
    "DrmsExportError",
    "DrmsHttpError",
    "DrmsOperationNotSupported",
    "DrmsQueryError",
    "ExportRequest",
    "HttpJsonClient",
    "HttpJsonRequest",
    "JsocEmulator",
    "JsocInfoConstants",
    "Path",
    "SeriesInfo",
    "ServerConfig",
    "UnknownServerError",
    "__bibtex__",
    "__citation__",
    "__version__",
    "client",
    "config",
    "const",
    "exceptions",
    "json",
    "keyword_columns",
    "logger",
    "main",
    "register_server",
    "to_datetime",
    "utils",
    "version",
]


def __getattr__(name: str) -> Any:
    # The emulator pulls in the server side; load it only when asked for.
    if name == "JsocEmulator":
        from sciwire.drms._server import JsocEmulator

        return JsocEmulator
    raise AttributeError(name)
