"""Server configurations (``ServerConfig``) and the registry of known DRMS servers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from sciwire.drms.exceptions import DrmsOperationNotSupported

__all__ = [
    "ServerConfig",
    "UnknownServerError",
    "config_from_url",
    "get_server",
    "register_server",
]

_VALID_KEYS = (
    "name",
    "cgi_baseurl",
    "cgi_show_series",
    "cgi_jsoc_info",
    "cgi_jsoc_fetch",
    "cgi_check_address",
    "cgi_show_series_wrapper",
    "show_series_wrapper_dbhost",
    "url_show_series",
    "url_jsoc_info",
    "url_jsoc_fetch",
    "url_check_address",
    "url_show_series_wrapper",
    "encoding",
    "http_download_baseurl",
    "ftp_download_baseurl",
)

_OPERATIONS = ("series", "info", "query", "email", "export")


class ServerConfig:
    """A DRMS server's CGI locations.

    Keys are those of the drms package: ``name`` (required), ``cgi_baseurl``,
    ``cgi_show_series``, ``cgi_jsoc_info``, ``cgi_jsoc_fetch``, ``cgi_check_address``,
    ``cgi_show_series_wrapper``, ``show_series_wrapper_dbhost``, ``url_*`` (derived as
    ``urljoin(cgi_baseurl, cgi_*)`` unless given), ``encoding`` (default ``latin1``),
    ``http_download_baseurl`` and ``ftp_download_baseurl``. Unknown keys raise ValueError.

    Args:
        config: a mapping of config entries.
        **kwargs: further entries, overriding *config*.
    """

    _valid_keys = _VALID_KEYS

    def __init__(self, config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        d: dict[str, Any] = dict(config) if config is not None else {}
        d.update(kwargs)
        for key in d:
            if key not in _VALID_KEYS:
                raise ValueError(f"Invalid server config key: {key}")
        if "name" not in d:
            raise ValueError('Server config entry "name" is missing')
        d.setdefault("encoding", "latin1")
        base = d.get("cgi_baseurl")
        if base is not None:
            for key in _VALID_KEYS:
                if not key.startswith("cgi_") or key == "cgi_baseurl":
                    continue
                url_key = "url" + key[3:]
                if d.get(url_key) is None and d.get(key) is not None:
                    d[url_key] = urljoin(base, d[key])
        object.__setattr__(self, "_d", d)

    def __repr__(self) -> str:
        return f"<ServerConfig: {self._d.get('name')}>"

    def __dir__(self) -> list[str]:
        return sorted({*dir(type(self)), *self.__dict__, *_VALID_KEYS})

    def __getattr__(self, name: str) -> Any:
        if name in _VALID_KEYS:
            return self.__dict__.get("_d", {}).get(name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _VALID_KEYS:
            if not isinstance(value, str):
                raise ValueError(f"{name} config value must be a string")
            self._d[name] = value
        else:
            object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServerConfig) and other._d == self._d

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> ServerConfig:
        """Return an independent copy."""
        return ServerConfig(self._d)

    def to_dict(self) -> dict[str, Any]:
        """Return the config entries (the live dict, as drms does)."""
        d: dict[str, Any] = self._d
        return d

    def check_supported(self, op: str) -> bool:
        """Whether the server supports *op* (series, info, query, email or export)."""
        if op == "series":
            return self.cgi_show_series is not None or self.cgi_show_series_wrapper is not None
        if op in ("info", "query"):
            return self.cgi_jsoc_info is not None
        if op == "email":
            return self.cgi_check_address is not None
        if op == "export":
            return self.cgi_jsoc_info is not None and self.cgi_jsoc_fetch is not None
        raise ValueError(f"Unknown operation: {op!r}")

    def require(self, op: str, url_key: str) -> str:
        """Return the URL for *url_key*, or raise DrmsOperationNotSupported."""
        url = self._d.get(url_key)
        if url is None or (op in _OPERATIONS and not self.check_supported(op)):
            raise DrmsOperationNotSupported(
                f"Server {self.name!r} does not support this operation ({op})"
            )
        return str(url)


class UnknownServerError(KeyError, ValueError):
    """No server of that name is registered (a KeyError, as in drms, and a ValueError)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_server_configs: dict[str, ServerConfig] = {}


def register_server(config: ServerConfig) -> None:
    """Register *config* under its (case-insensitive) name; RuntimeError if taken."""
    name = str(config.name).lower()
    if name in _server_configs:
        raise RuntimeError(f"ServerConfig {name} already registered")
    _server_configs[name] = config


def get_server(server: str | ServerConfig | Any) -> ServerConfig:
    """Return *server* as a ServerConfig (a name is looked up in the registry).

    Objects with a ``to_dict()`` (such as a drms.ServerConfig) are converted.
    """
    if isinstance(server, ServerConfig):
        return server
    to_dict = getattr(server, "to_dict", None)
    if callable(to_dict) and not isinstance(server, str):
        # e.g. a drms.ServerConfig: same keys, so take its entries.
        return ServerConfig(to_dict())
    if not isinstance(server, str):
        raise TypeError(f"server must be a name or a ServerConfig, not {type(server).__name__}")
    if server.startswith(("http://", "https://")):
        return config_from_url(server)
    try:
        return _server_configs[server.lower()]
    except KeyError:
        known = ", ".join(sorted(_server_configs))
        raise UnknownServerError(f"Unknown DRMS server {server!r}; registered: {known}") from None


def config_from_url(url: str) -> ServerConfig:
    """A ServerConfig for the JSOC-like site at *url* (as the CLI's ``--server`` takes it).

    *url* is the site's base (``http://127.0.0.1:8080/``) or its CGI folder
    (``.../cgi-bin/ajax/``, ``.../cgi-bin/ajax/jsoc_info``): the CGIs are looked for under
    ``<base>cgi-bin/ajax/`` and files under ``<base>``.

    Raises:
        ValueError: *url* has no host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"Not a server URL: {url!r}")
    path = parts.path
    cut = path.find("/cgi-bin/")
    if cut >= 0:
        path = path[: cut + 1]
    base = urlunsplit((parts.scheme, parts.netloc, path.rstrip("/") + "/", "", ""))
    return jsoc_layout(base, base)


def jsoc_layout(name: str, base_url: str) -> ServerConfig:
    """A ServerConfig for a site laid out like JSOC: CGIs under ``<base_url>cgi-bin/ajax/``.

    Used for JSOC itself, the emulator and base URLs given on the command line.
    """
    base = base_url.rstrip("/") + "/"
    return ServerConfig(
        name=name,
        cgi_baseurl=base + "cgi-bin/ajax/",
        cgi_show_series="show_series",
        cgi_jsoc_info="jsoc_info",
        cgi_jsoc_fetch="jsoc_fetch",
        cgi_check_address="checkAddress.sh",
        cgi_show_series_wrapper="showextseries",
        show_series_wrapper_dbhost="hmidb2",
        http_download_baseurl=base,
    )


register_server(jsoc_layout("JSOC", "http://jsoc.stanford.edu/"))
register_server(
    ServerConfig(
        name="KIS",
        cgi_baseurl="http://drms.leibniz-kis.de/cgi-bin/",
        cgi_show_series="show_series",
        cgi_jsoc_info="jsoc_info",
    )
)
