"""One handler registry for every protocol package.

A :class:`Registry` maps patterns to callbacks and dispatches a message's subject to
the callbacks whose pattern matches it. Four kinds of pattern, one per registry:

``"prefix"`` (IFCB)
    A tuple of constants and ``None`` wildcards, matched against the leading fields
    of a message. A pattern longer than the message does NOT match.
``"key"``
    Exact equality of a hashable key.
``"flag"`` (rig events)
    An int bit flag: a pattern matches a subject when they share a bit, and the
    subject ``0`` matches only the pattern ``0``.
``"mtype"`` (SAMP)
    A dotted name, ``"*"`` (everything), or ``"a.b.*"`` (every mtype under ``a.b.``,
    not ``a.b`` itself).

Dispatch looks only at the candidates an index gives for the subject (the first
field, the key, the subject's bits, or the mtype's dotted prefixes), never at every
pattern, and remembers the candidates per subject (per first field for prefixes) until
the registrations change, so a steady stream of messages costs one dict look-up each.
A callback that raises is logged and counted and the others still run.

Thread safety: registrations may come from any thread while another thread (an event
loop) dispatches. Changes hold a lock and replace the candidate cache; dispatch reads
immutable snapshots, so a change made during a dispatch applies from the next one.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Handler", "Kind", "Registry", "mtype_matches"]

logger = logging.getLogger(__name__)

Kind = Literal["prefix", "key", "flag", "mtype"]
Callback = Callable[..., Any]
ErrorHook = Callable[["Handler", BaseException], None]

_WILD = object()  # index bucket of prefix patterns whose first element is None
_UNCACHED = object()  # cache key of subjects that cannot be cached (unhashable, empty)
#: subjects remembered in the candidate cache; others take the index path every time
CACHE_LIMIT = 512

#: the candidates for one subject, oldest first, and whether their patterns must still
#: be compared past the first field (prefix patterns longer than one element)
_Entry = tuple[tuple["Handler", ...], bool]


@dataclass(eq=False)
class Handler:
    """One registration: its id, pattern and callback."""

    id: int
    pattern: Any
    callback: Callback
    once: bool = False
    buckets: tuple[Hashable, ...] = field(default=(), repr=False)


def mtype_matches(pattern: str, mtype: str) -> bool:
    """Tell whether a SAMP subscription *pattern* (``*``, ``a.*`` or exact) covers *mtype*."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return mtype.startswith(pattern[:-1])
    return pattern == mtype


class Registry:
    """Patterns of one kind mapped to callbacks, indexed for dispatch.

    Args:
        kind: the kind of every pattern this registry holds (see the module doc).
        on_error: called with the handler and the exception when a callback raises,
            after it has been logged and counted.
    """

    def __init__(self, kind: Kind, on_error: ErrorHook | None = None) -> None:
        if kind not in ("prefix", "key", "flag", "mtype"):
            raise ValueError(f"unknown pattern kind {kind!r}")
        self.kind: Kind = kind
        self.on_error = on_error
        #: how many callbacks raised during dispatch
        self.errors = 0
        self._ids = itertools.count(1)
        self._handlers: dict[int, Handler] = {}
        self._index: dict[Hashable, dict[int, Handler]] = {}
        self._lock = threading.RLock()
        self._cache: dict[Any, _Entry] = {}

    def __len__(self) -> int:
        return len(self._handlers)

    def __contains__(self, handler_id: object) -> bool:
        return handler_id in self._handlers

    def handlers(self) -> list[Handler]:
        """Every registration, oldest first."""
        return list(self._handlers.values())

    def register(self, pattern: Any, callback: Callback, *, once: bool = False) -> int:
        """Add *callback* under *pattern* and return its id.

        Args:
            pattern: a pattern of this registry's kind.
            callback: what dispatch calls on a match.
            once: remove the handler after its first match.

        Raises:
            TypeError: the pattern is not of this registry's kind.
            ValueError: the pattern is malformed (an empty prefix or mtype).
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        buckets = self._buckets(pattern)
        with self._lock:
            handler = Handler(next(self._ids), pattern, callback, once, buckets)
            self._handlers[handler.id] = handler
            for bucket in buckets:
                self._index.setdefault(bucket, {})[handler.id] = handler
            self._cache = {}
        return handler.id

    def unregister(self, handler_id: int) -> Handler:
        """Remove a registration by id and return it.

        Raises:
            KeyError: no handler has that id (never registered, or already removed).
        """
        with self._lock:
            try:
                handler = self._handlers.pop(handler_id)
            except KeyError:
                raise KeyError(f"no handler with id {handler_id!r} is registered") from None
            for bucket in handler.buckets:
                entries = self._index[bucket]
                del entries[handler_id]
                if not entries:
                    del self._index[bucket]
            self._cache = {}
        return handler

    def clear(self) -> None:
        """Remove every registration."""
        with self._lock:
            self._handlers.clear()
            self._index.clear()
            self._cache = {}

    def match(self, subject: Any) -> list[Handler]:
        """The handlers whose pattern matches *subject*, oldest first."""
        return list(self._hits(subject))

    def dispatch(self, subject: Any, *args: Any, **kwargs: Any) -> int:
        """Call ``callback(*args, **kwargs)`` for every handler matching *subject*.

        A callback that raises is logged, counted in :attr:`errors` and passed to
        ``on_error``; the remaining callbacks still run. Returns how many callbacks ran.
        """
        ran = 0
        for handler in self._hits(subject):
            if handler.once:
                try:
                    self.unregister(handler.id)
                except KeyError:  # a concurrent dispatch fired it already
                    continue
            ran += 1
            try:
                handler.callback(*args, **kwargs)
            except Exception as exc:
                self.errors += 1
                logger.exception("handler %d for %r raised", handler.id, handler.pattern)
                if self.on_error is not None:
                    self.on_error(handler, exc)
        return ran

    def _hits(self, subject: Any) -> Sequence[Handler]:
        # The hot path: one cache look-up, then (prefixes only) the per-field compare.
        cache = self._cache
        key: Any = _UNCACHED
        if self.kind == "prefix":
            if subject:
                key = subject[0]
        else:
            key = subject
        try:
            entry = cache.get(key)
        except TypeError:  # unhashable: not cacheable
            key = _UNCACHED
            entry = None
        if entry is None:
            with self._lock:
                entry = self._lookup(subject)
                if key is not _UNCACHED and cache is self._cache and len(cache) < CACHE_LIMIT:
                    cache[key] = entry
        handlers, deep = entry
        if deep:
            return [h for h in handlers if _prefix_matches(h.pattern, subject)]
        return handlers

    def _lookup(self, subject: Any) -> _Entry:
        """The candidates for *subject* from the index (caller holds the lock)."""
        index = self._index
        if self.kind == "prefix":
            if not subject:
                return ((), False)
            groups = [index.get(_WILD)]
            with contextlib.suppress(TypeError):  # unhashable first field: wildcards only
                groups.append(index.get(subject[0]))
            found = sorted((h for g in groups if g for h in g.values()), key=_by_id)
            # The cache is keyed by the first field only, so one-element patterns always
            # match; longer ones are compared per message (lengths differ per message).
            return (tuple(found), any(len(h.pattern) > 1 for h in found))
        merged: dict[int, Handler] = {}
        for bucket in self._candidate_buckets(subject):
            group = index.get(bucket)
            if group:
                merged.update(group)
        return (tuple(sorted(merged.values(), key=_by_id)), False)

    # -- indexing -----------------------------------------------------------------

    def _buckets(self, pattern: Any) -> tuple[Hashable, ...]:
        kind = self.kind
        if kind == "prefix":
            if not isinstance(pattern, tuple):
                raise TypeError(f"a prefix pattern is a tuple, not {type(pattern).__name__}")
            if not pattern:
                raise ValueError("a prefix pattern needs at least one element")
            return (_WILD if pattern[0] is None else pattern[0],)
        if kind == "key":
            if not isinstance(pattern, Hashable):
                raise TypeError(f"a key pattern must be hashable, not {type(pattern).__name__}")
            return (pattern,)
        if kind == "flag":
            if isinstance(pattern, bool) or not isinstance(pattern, int):
                raise TypeError(f"a flag pattern is an int, not {type(pattern).__name__}")
            if pattern < 0:
                raise ValueError(f"a flag pattern is a non-negative int, not {pattern}")
            return tuple(_bits(pattern)) or (0,)
        if not isinstance(pattern, str):
            raise TypeError(f"an mtype pattern is a str, not {type(pattern).__name__}")
        # Buckets are the pattern itself: exact mtypes never contain "*", so an exact
        # mtype and a wildcard ("*", "a.b.*") never share a bucket.
        base = pattern[:-2] if pattern.endswith(".*") else pattern
        if pattern != "*" and (
            not base or "*" in base or base.startswith(".") or base.endswith(".")
        ):
            raise ValueError(f"malformed mtype pattern {pattern!r}")
        return (pattern,)

    def _candidate_buckets(self, subject: Any) -> Iterable[Hashable]:
        kind = self.kind
        if kind == "key":
            return (subject,) if isinstance(subject, Hashable) else ()
        if kind == "flag":
            return _bits(int(subject)) or (0,)
        mtype: str = subject
        buckets: list[Hashable] = [mtype, "*"]
        start = 0
        while (dot := mtype.find(".", start)) != -1:
            buckets.append(mtype[: dot + 1] + "*")
            start = dot + 1
        return buckets


def _bits(value: int) -> list[int]:
    bits = []
    while value:
        low = value & -value
        bits.append(low)
        value ^= low
    return bits


def _by_id(handler: Handler) -> int:
    return handler.id


def _prefix_matches(pattern: tuple[Any, ...], fields: Sequence[Any]) -> bool:
    if len(pattern) > len(fields):
        return False
    # A plain loop: measurably faster than all() over a generator on the IFCB hot path.
    for want, have in zip(pattern, fields):  # noqa: B905, SIM110 - lengths checked above
        if want is not None and want != have:
            return False
    return True
