"""The IFCB client's handler registry: a prefix :class:`~sciwire.core.patterns.Registry`
with a per-message-type dispatch cache.

Every relayed message is dispatched on its parsed fields, so dispatch is on the
client's hot path. Handlers change rarely and messages start with one of a few dozen
words, so the registry keeps, per leading field, the handlers that can match it
(a tuple, oldest first) and whether any of them needs the rest of the fields
compared. Registering or removing a handler drops the cache. Matching, ``once``
handlers, error counting, logging and ``on_error`` behave as in the base class.

Thread safety: registrations may come from any thread while the event loop
dispatches. Changes and cache fills hold a lock; dispatch itself reads an immutable
snapshot, so a handler registered during a dispatch sees the next message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sciwire.core.patterns import ErrorHook, Handler, Registry

__all__ = ["PrefixRegistry"]

logger = logging.getLogger(__name__)

#: a cache entry: the candidate handlers, and whether their patterns look past field 0
_Entry = tuple[tuple[Handler, ...], bool]
#: leading fields remembered; unknown message types beyond this use the base path
_CACHE_LIMIT = 512


class PrefixRegistry(Registry):
    """A ``Registry("prefix")`` whose dispatch is cached per leading field.

    Args:
        on_error: called with the handler and the exception when a callback raises.
    """

    def __init__(self, on_error: ErrorHook | None = None) -> None:
        super().__init__("prefix", on_error)
        self._lock = threading.RLock()
        self._cache: dict[Any, _Entry] = {}

    def register(self, pattern: Any, callback: Callable[..., Any], *, once: bool = False) -> int:
        """Add *callback* under the prefix *pattern* and return its id (see Registry)."""
        with self._lock:
            handler_id = super().register(pattern, callback, once=once)
            self._cache = {}
            return handler_id

    def unregister(self, handler_id: int) -> Handler:
        """Remove a registration by id and return it (KeyError if unknown)."""
        with self._lock:
            handler = super().unregister(handler_id)
            self._cache = {}
            return handler

    def clear(self) -> None:
        """Remove every registration."""
        with self._lock:
            super().clear()
            self._cache = {}

    def _entry(self, cache: dict[Any, _Entry], head: Any) -> _Entry | None:
        with self._lock:
            found = []
            deep = False
            for handler in self.handlers():
                want = handler.pattern[0]
                if want is None or want == head:
                    if handler.once:
                        return None  # removal during dispatch: leave it to the base class
                    found.append(handler)
                    if len(handler.pattern) > 1:
                        deep = True
            entry = (tuple(found), deep)
            if len(cache) < _CACHE_LIMIT:
                cache[head] = entry
            return entry

    def dispatch(self, subject: Any, *args: Any, **kwargs: Any) -> int:
        """Call ``callback(*args, **kwargs)`` for every handler matching *subject*.

        A callback that raises is logged, counted in :attr:`errors` and passed to
        ``on_error``; the others still run. Returns how many callbacks ran.
        """
        cache = self._cache
        try:
            head = subject[0]
            entry = cache.get(head)
        except (TypeError, IndexError, KeyError):  # empty or unhashable: the general path
            return super().dispatch(subject, *args, **kwargs)
        if entry is None:
            entry = self._entry(cache, head)
            if entry is None:
                return super().dispatch(subject, *args, **kwargs)
        handlers, deep = entry
        if deep:
            handlers = tuple(h for h in handlers if _matches(h.pattern, subject))
        for handler in handlers:
            try:
                handler.callback(*args, **kwargs)
            except Exception as exc:
                self.errors += 1
                logger.exception("handler %d for %r raised", handler.id, handler.pattern)
                if self.on_error is not None:
                    self.on_error(handler, exc)
        return len(handlers)


def _matches(pattern: tuple[Any, ...], fields: Any) -> bool:
    if len(pattern) > len(fields):
        return False
    # a plain loop: faster than all() over a generator on this hot path
    for want, have in zip(pattern, fields):  # noqa: B905, SIM110 - lengths checked above
        if want is not None and want != have:
            return False
    return True
