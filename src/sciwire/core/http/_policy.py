"""What both pools decide the same way, without I/O: whether to send a request again
after a failure (:class:`Resend`), and whether an idle pooled connection is stale
(:func:`is_stale`, :class:`StaleProbe`).

One meaning of ``retry`` and ``retries`` for the blocking and the asyncio pool:

* ``retries`` is the most attempts one request gets (>= 1), counting failed
  connection attempts and re-sends together.
* A connection that could not be made is tried again (after ``retry_seconds``) while
  attempts remain, whatever the policy; a connect timeout or a TLS failure is not.
* ``"unsent"`` (POST and anything not idempotent): once the request was written it is
  never sent again.
* ``"stale"``: also re-send once, at once, when a kept-alive connection closes before
  any byte of the response (the server closed it as the request left).
* ``"idempotent"`` (GET): as ``"stale"``, and also re-send after any dropped connection
  (closed or reset, fresh or kept, before or during the response) while attempts
  remain.

A response timeout is never re-sent, nor an invalid response.

Before an idle kept-alive connection is reused, both pools ask :attr:`Resend.probe`
whether to probe it for staleness (one ``poll``): not under ``"idempotent"``, where a
connection the server closed is simply re-sent on a new one.
"""

from __future__ import annotations

import select
import socket
from typing import Any, Literal

__all__ = ["ANY", "EARLY", "NEVER", "Resend", "RetryPolicy", "StaleProbe", "is_stale"]

RetryPolicy = Literal["unsent", "stale", "idempotent"]

#: what :meth:`Resend.allows` answers: re-send after any drop, only after a drop before
#: the first response byte, or never
ANY = "any"
EARLY = "early"
NEVER = ""


class Resend:
    """The retry decision both pools ask (see the module docstring).

    Args:
        policy: ``"unsent"``, ``"stale"`` or ``"idempotent"``.
        retries: the most attempts per request (values below 1 count as 1).
    """

    __slots__ = ("policy", "probe", "retries")

    def __init__(self, policy: RetryPolicy, retries: int) -> None:
        if policy not in ("unsent", "stale", "idempotent"):
            raise ValueError(f"unknown retry policy {policy!r}")
        self.policy = policy
        self.retries = max(1, int(retries))
        #: probe an idle connection for staleness before reusing it (see the module
        #: docstring): a closed one found by the probe costs no re-send
        self.probe = policy != "idempotent"

    def allows(self, reused: bool, attempt: int) -> str:
        """What may follow a drop of attempt *attempt* (1-based) on a fresh or *reused*
        connection: :data:`ANY`, :data:`EARLY` (only before any response byte) or
        :data:`NEVER`. Asked once per attempt, before the response is read."""
        policy = self.policy
        if policy == "unsent":
            return NEVER
        if policy == "idempotent" and attempt < self.retries:
            return ANY
        return EARLY if reused and attempt == 1 else NEVER

    @staticmethod
    def again(allowed: str, early: bool) -> bool:
        """Send again after a dropped connection? *allowed* is what :meth:`allows`
        said; *early*: no byte of the response had arrived."""
        return allowed == ANY or (allowed == EARLY and early)

    def after_connect_failure(self, attempt: int, timed_out: bool, tls: bool) -> bool:
        """Try to connect again after attempt *attempt* failed to connect?"""
        return not timed_out and not tls and attempt < self.retries


def is_stale(sock: socket.socket | int | None) -> bool:
    """True when an idle pooled socket was closed by the server, sent stray bytes, or is
    unusable (a socket or its file descriptor).

    Uses poll() where there is one: select() cannot watch descriptors above 1023, which a
    process with a few hundred connections soon has (every kept connection would then
    look stale and be replaced by a new one).
    """
    if sock is None:
        return True
    try:
        fd = sock if isinstance(sock, int) else sock.fileno()
        if fd < 0:
            return True
        if _HAS_POLL:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([fd], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


_HAS_POLL = hasattr(select, "poll")


class StaleProbe:
    """:func:`is_stale` with one registered poll object per descriptor, reused: the
    per-request probe of a pooled connection then costs a single poll() call."""

    def __init__(self) -> None:
        self._pollers: dict[int, Any] = {}

    def __call__(self, sock: socket.socket | int | None) -> bool:
        """True when the idle socket is closed, readable or unusable."""
        if sock is None or not _HAS_POLL:
            return is_stale(sock)
        try:
            fd = sock if isinstance(sock, int) else sock.fileno()
            poller = self._pollers.get(fd)
            if poller is None:
                if fd < 0:
                    return True
                poller = self._pollers[fd] = select.poll()
                poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True
