"""Where a client talks to (:class:`Endpoint`) and the header helpers that need only
that: the bottom layer of :mod:`sciwire.core.http`, shared by both pools."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Endpoint", "header_block", "host_header"]


@dataclass(frozen=True)
class Endpoint:
    """Where a client talks to: scheme, host, port and path prefix."""

    scheme: str
    host: str
    port: int
    prefix: str = ""

    @classmethod
    def parse(cls, host: str, port: int, url: str = "") -> Endpoint:
        """From a ``host`` (optionally ``https://host``), a ``port`` and a path prefix."""
        scheme = "http"
        for candidate in ("https://", "http://"):
            if host.lower().startswith(candidate):
                scheme = candidate[:-3]
                host = host[len(candidate) :]
                break
        host = host.rstrip("/")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(scheme, host, int(port), url.rstrip("/"))

    @property
    def origin(self) -> str:
        """``scheme://host:port`` (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``scheme://host:port/prefix``."""
        return self.origin + self.prefix


def host_header(endpoint: Endpoint) -> str:
    """The ``Host`` header value for *endpoint* (port left out when it is the default)."""
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    default = 443 if endpoint.scheme == "https" else 80
    return host if endpoint.port == default else f"{host}:{endpoint.port}"


def header_block(headers: Mapping[str, str]) -> bytes:
    """Header lines as bytes, each ending CRLF, plus the blank line ending the head.

    Raises:
        ValueError: a name or value holds a line break.
    """
    lines = []
    for name, value in headers.items():
        if "\r" in name + value or "\n" in name + value:
            raise ValueError(f"invalid header {name!r}")
        lines.append(f"{name}: {value}\r\n")
    return ("".join(lines) + "\r\n").encode("latin-1")
