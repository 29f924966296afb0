"""Which asyncio event loop the ``sciwire`` command's servers and clients run on.

uvloop (the optional ``uvloop`` extra) measured 1.19-1.20x faster on rig UDP/TCP and
drms GETs; nothing in sciwire assumes asyncio's own loop or transport classes, so
the command line uses it when it is installed. ``SCIWIRE_LOOP=asyncio`` (or
``sciwire --loop asyncio``) keeps asyncio's own loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os

__all__ = ["LOOP_KINDS", "choose_loop"]

#: what :func:`choose_loop` accepts
LOOP_KINDS = ("auto", "asyncio", "uvloop")


def choose_loop(kind: str | None = None) -> str:
    """Make new event loops of this process uvloop's or asyncio's (through the event
    loop policy, so ``asyncio.run`` and the Portal threads follow).

    Args:
        kind: ``auto`` (uvloop when installed), ``asyncio`` or ``uvloop``; None reads
            the ``SCIWIRE_LOOP`` environment variable (default ``auto``).

    Returns:
        The loop chosen: ``"uvloop"`` or ``"asyncio"``.

    Raises:
        ValueError: an unknown kind, or ``uvloop`` asked for but not installed.
    """
    kind = kind or os.environ.get("SCIWIRE_LOOP") or "auto"
    if kind not in LOOP_KINDS:
        raise ValueError(f"unknown event loop {kind!r}: use one of {', '.join(LOOP_KINDS)}")
    if kind == "asyncio":
        return "asyncio"
    if importlib.util.find_spec("uvloop") is None:
        if kind == "uvloop":
            raise ValueError("uvloop is not installed: pip install 'sciwire[uvloop]'")
        return "asyncio"
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
