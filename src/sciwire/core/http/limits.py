"""The limits every HTTP connection is held to, as named settings.

A server takes a :class:`ServerLimits`; the client pools take ``max_body`` (default
:data:`MAX_RESPONSE_BODY`). What each one bounds, and its default, is listed in
docs/limits.md. A limit that is hit is logged by :func:`limit_hit` at WARNING, once
per limit and peer address (later hits from the same peer at DEBUG, so an attack does
not flood the log), always with the limit's name.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

__all__ = ["MAX_HEAD", "MAX_RESPONSE_BODY", "ServerLimits", "limit_hit", "response_body_cap"]

#: the largest request or response head (start line and fields) accepted
MAX_HEAD = 64 * 1024


def response_body_cap(default: int) -> int:
    """A whole-body cap: SCIWIRE_MAX_RESPONSE_BODY (bytes) when set, else *default*
    (the pools' 256 MiB; drms keeps a larger one for its answers)."""
    return int(os.environ.get("SCIWIRE_MAX_RESPONSE_BODY") or default)


#: the largest response body a client pool gathers in memory unless its ``max_body``
#: says otherwise (streamed downloads are not gathered and take no cap); the
#: environment variable SCIWIRE_MAX_RESPONSE_BODY (bytes) sets it for drop-in
#: clients whose constructors have no such argument. Read once, when this module is
#: first imported: set the variable before sciwire is imported.
MAX_RESPONSE_BODY = response_body_cap(256 * 1024 * 1024)


@dataclass(frozen=True)
class ServerLimits:
    """The bounds an HTTP server keeps on its clients (see docs/limits.md).

    Attributes:
        max_head: the largest request line + header fields (and chunk trailer),
            in bytes; beyond it the answer is 431 and the connection closes.
        head_timeout: seconds a started request head may take to arrive whole
            (a slowloris client is answered 408 and closed).
        body_timeout: seconds a request body may take to arrive whole once its
            head was read (408 and closed).
        max_connections: open connections at most; at the cap a new connection
            replaces an idle or half-sent one, else it is answered 503 and closed.
        max_inflight_body: bytes of request bodies still arriving, summed over all
            connections; the connection that goes past it is answered 503 and closed.
    """

    max_head: int = MAX_HEAD
    head_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 1024
    max_inflight_body: int = 512 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_head", "max_connections", "max_inflight_body"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("head_timeout", "body_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")


_WARNED: set[tuple[str, str]] = set()
_WARNED_MAX = 4096


def limit_hit(log: logging.Logger, limit: str, peer: object, detail: str = "") -> None:
    """Log that *peer* hit the limit named *limit*: WARNING the first time for this
    limit and peer, DEBUG after that (bounded memory: past 4096 pairs, DEBUG only)."""
    key = (limit, str(peer))
    first = key not in _WARNED and len(_WARNED) < _WARNED_MAX
    if first:
        _WARNED.add(key)
    log.log(
        logging.WARNING if first else logging.DEBUG,
        "limit %s hit by %s%s",
        limit,
        peer,
        f": {detail}" if detail else "",
    )
