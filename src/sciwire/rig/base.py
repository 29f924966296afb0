"""iblutil's ``iblutil.io.net.base``: addresses, events, statuses and the communicator base.

Change ``from iblutil.io.net import base`` to ``from sciwire.rig import base``; every
public name is here with iblutil's signature. :func:`external_ip` also takes the
address to ask and a timeout, so that it can be pointed at a local server (tests,
networks without internet access).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from sciwire.rig._communicator import Communicator, is_success
from sciwire.rig._errors import RigValueError
from sciwire.rig._protocol import LISTEN_PORT, PROTOCOL_VERSION, ExpMessage, ExpStatus, Service
from sciwire.rig._uri import hostname2ip, is_valid_ip, validate_uri

__all__ = [
    "EXTERNAL_IP_URL",
    "LISTEN_PORT",
    "PROTOCOL_VERSION",
    "Communicator",
    "ExpMessage",
    "ExpStatus",
    "Service",
    "external_ip",
    "hostname2ip",
    "is_success",
    "is_valid_ip",
    "validate_uri",
]

#: the service iblutil asks for this machine's public address (answers it as plain text)
EXTERNAL_IP_URL = "https://ident.me"
#: an address is a few dozen bytes: anything longer is not an answer
_MAX_ANSWER = 256


def external_ip(
    url: str = EXTERNAL_IP_URL, timeout: float = 10.0
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """This computer's public (WAN) IP address, as a web service sees it.

    Needs that service to be reachable (iblutil's default needs the internet).

    Args:
        url: an ``http``/``https`` URL answering ``GET`` with the address as text.
        timeout: seconds to connect and for the whole answer.

    Raises:
        RigValueError: bad URL, an answer other than 200, or not an IP address
            (also ValueError).
        sciwire.errors.TransportError: the service could not be reached in time.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RigValueError(f"external_ip needs an http(s) URL, got {url!r}")
    # here, not at the top: the HTTP stack is for this one rare call, and
    # ``import sciwire.rig`` (UDP/TCP only) should not pay for it
    from sciwire.core.http.client import Endpoint, HttpPool

    default_port = 443 if parts.scheme == "https" else 80
    endpoint = Endpoint(parts.scheme, parts.hostname, parts.port or default_port)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    pool = HttpPool(endpoint, timeout=timeout, max_body=_MAX_ANSWER, name=endpoint.origin)
    try:
        resp = pool.call("GET", target, None, {"Accept": "text/plain"})
    finally:
        pool.close()
    text = resp.body.decode("ascii", "replace").strip()
    if resp.status != 200:
        raise RigValueError(f"{url} answered {resp.status}: {text[:80]!r}")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise RigValueError(f"{url} did not answer an IP address: {text[:80]!r}") from None
