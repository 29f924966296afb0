"""Rig addresses: iblutil's ``validate_uri`` rules, plus IPv6.

``udp://host:port`` is the default; ``tcp``, ``ws`` and ``wss`` all mean plain TCP
(iblutil's spelling; no websocket handshake, no TLS). IPv6 addresses are written
``[::1]:11001`` or bare (``::1``, default port); output always brackets them.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

from sciwire.rig._errors import RigTypeError, RigValueError
from sciwire.rig._protocol import LISTEN_PORT

__all__ = ["STREAM_SCHEMES", "hostname2ip", "is_valid_ip", "parse_uri", "validate_uri"]

#: schemes iblutil runs over TCP
STREAM_SCHEMES = frozenset({"tcp", "ws", "wss"})

_SCHEME = re.compile(r"^[a-zA-Z]+(?=://)")
_BARE_HOST = re.compile(r"^[a-z0-9-]+$")


def is_valid_ip(ip_address: Any) -> bool:
    """True if *ip_address* is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(ip_address)
    except ValueError:
        return False
    return True


def hostname2ip(hostname: str | None = None) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Resolve a host name (default: this machine's) to an IP address.

    Raises:
        RigValueError: the name does not resolve (also ValueError).
    """
    hostname = hostname or socket.gethostname()
    try:
        return ipaddress.ip_address(socket.gethostbyname(hostname))
    except OSError:
        pass
    try:  # an IPv6-only name
        info = socket.getaddrinfo(hostname, None, socket.AF_INET6, socket.SOCK_DGRAM)
        return ipaddress.ip_address(info[0][4][0])
    except (OSError, IndexError, ValueError):
        raise RigValueError(f'Failed to resolve IP for hostname "{hostname}"') from None


def parse_uri(
    uri: Any,
    resolve_host: bool = True,
    default_port: int | str = LISTEN_PORT,
    default_proc: str = "udp",
    allow_port_zero: bool = False,
) -> tuple[str, str, int]:
    """Split a rig URI into ``(scheme, host, port)``; host is unbracketed.

    Args:
        allow_port_zero: accept port 0 (bind any free port; servers only).

    Raises:
        RigTypeError: *uri* is not a str or an IP address.
        RigValueError: bad host name, unresolvable host or port out of range.
    """
    if isinstance(uri, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return default_proc, str(uri), _port(None, default_port, allow_port_zero)
    if not isinstance(uri, str):
        raise RigTypeError(f'Unsupported URI "{uri}" of type {type(uri)}')
    proc = default_proc
    if match := _SCHEME.match(uri):
        proc = match.group()
        uri = uri[len(proc) + 3 :]
    port: str | None
    if uri.startswith("["):
        host, sep, rest = uri[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")) or not _is_ipv6(host):
            raise RigValueError(f'Invalid IPv6 address in URI "{uri}"')
        port = rest[1:] or None
    elif uri.count(":") > 1 and _is_ipv6(uri):
        host, port = uri, None
    elif ":" in uri:
        host, port = uri.split(":", 1)
    else:
        host, port = uri, None
    if not is_valid_ip(host):
        if resolve_host:
            host = str(hostname2ip(host))
        elif not _BARE_HOST.match(host):
            raise RigValueError(f'Invalid hostname "{host}"')
    return proc, host, _port(port, default_port, allow_port_zero)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _port(port: str | None, default: int | str, allow_zero: bool) -> int:
    raw = port or default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise RigValueError(f"Invalid port number: {raw}") from None
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise RigValueError(f"Invalid port number: {raw}")
    return value


def format_uri(proc: str, host: str, port: int) -> str:
    """``proc://host:port``, bracketing an IPv6 host."""
    if ":" in host:
        host = f"[{host}]"
    return f"{proc}://{host}:{port}"


def validate_uri(
    uri: Any,
    resolve_host: bool = True,
    default_port: int | str = LISTEN_PORT,
    default_proc: str = "udp",
) -> str:
    """Return the complete URI ``scheme://host:port`` (iblutil's rules, plus IPv6).

    Args:
        uri: a URI, host name, ``host:port``, IPv4/IPv6 address (str or ipaddress object).
        resolve_host: resolve a host name to an IP address; if false a name must be
            lowercase letters, digits and hyphens.
        default_port: the port when none is given.
        default_proc: the scheme when none is given.

    Raises:
        RigTypeError: unsupported URI type (also TypeError).
        RigValueError: unresolvable or invalid host, port not in 1-65535 (also ValueError).
    """
    return format_uri(*parse_uri(uri, resolve_host, default_port, default_proc))
