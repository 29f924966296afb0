"""HTTP proxies from the environment, the way ``urllib`` finds and uses them.

``http_proxy`` / ``https_proxy`` (and their upper-case forms) name the proxy for each
scheme and ``no_proxy`` the hosts reached directly, read by ``urllib.request``'s own
``getproxies()`` and ``proxy_bypass()`` so that the rules are exactly urllib's (which
the original clients use). A plain-HTTP target is asked of the proxy in absolute form
(``GET http://host:port/path``); an HTTPS target goes through a ``CONNECT`` tunnel,
TLS running end to end inside it. ``user:password@`` in the proxy URL becomes a
``Proxy-Authorization: Basic`` header. Sans-I/O: the pools do the connecting.
"""

from __future__ import annotations

import base64
import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from sciwire.core.http.limits import MAX_HEAD
from sciwire.errors import ConnectError, LocalProtocolError

__all__ = ["Proxy", "absolute_form", "proxy_for", "tunnel_reply", "tunnel_request"]


@dataclass(frozen=True)
class Proxy:
    """Where to send requests instead of the target, and how.

    Attributes:
        host: the proxy's host.
        port: the proxy's port (80 when its URL names none, as in ``http.client``).
        auth: the ``Proxy-Authorization`` header line (with CRLF), or empty.
    """

    host: str
    port: int
    auth: bytes = b""


def proxy_for(scheme: str, host: str, port: int) -> Proxy | None:
    """The proxy for ``scheme://host:port`` under the environment, or None (no proxy
    configured for that scheme, or ``no_proxy`` matches the host).

    Raises:
        LocalProtocolError: the proxy URL is not an ``http://`` URL.
    """
    url = urllib.request.getproxies().get(scheme)
    if not url or urllib.request.proxy_bypass(f"{host}:{port}"):
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise LocalProtocolError(f"unsupported {scheme}_proxy (only http:// proxies)", url)
    auth = b""
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        token = base64.b64encode(pair.encode("utf-8"))
        auth = b"Proxy-Authorization: Basic " + token + b"\r\n"
    return Proxy(parts.hostname, parts.port or 80, auth)


def absolute_form(data: bytes, origin: bytes, proxy: Proxy) -> bytes:
    """An encoded origin-form request (``GET /path HTTP/1.1...``) rewritten for a
    proxy: the target in absolute form, and the proxy's credentials if any."""
    space = data.index(b" ") + 1
    if not proxy.auth:
        return b"".join((data[:space], origin, data[space:]))
    eol = data.index(b"\r\n") + 2
    return b"".join((data[:space], origin, data[space:eol], proxy.auth, data[eol:]))


def tunnel_request(host: str, port: int, proxy: Proxy) -> bytes:
    """The ``CONNECT`` request that opens a tunnel to ``host:port``."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (
        f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n".encode("idna")
        + proxy.auth
        + b"\r\n"
    )


def tunnel_reply(buf: bytes) -> bool:
    """Judge the proxy's answer to ``CONNECT`` so far: True once a whole 2xx head
    arrived (the tunnel is open), False while it is incomplete.

    Raises:
        ConnectError: the proxy refused (any other status), sent a body with its
            head, or a head larger than MAX_HEAD (an ``OSError``, so the pools treat
            it as a failed connect).
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise ConnectError("proxy's answer to CONNECT too large")
        return False
    line = buf[: buf.find(b"\r\n")].decode("latin-1")
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].startswith("2"):
        raise ConnectError(f"proxy refused the tunnel: {line[:200]}")
    if len(buf) > end + 4:
        raise ConnectError("proxy sent data before the tunnel was used")
    return True
