"""The registry's candidate cache and lock: dispatch from the cache agrees with an uncached
registry, registrations from other threads apply, and the cache stays bounded."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sciwire.core.patterns import CACHE_LIMIT, Handler, Registry

WORDS = ["valuechanged", "pausestate", "triggercontent", 1, True, 0]
patterns = st.lists(st.sampled_from([*WORDS, None]), min_size=1, max_size=3).map(tuple)
subjects = st.lists(st.sampled_from(WORDS), max_size=4)


def brute_force(reg: Registry, subject: list[Any]) -> list[int]:
    """The ids a prefix registry must match, by scanning every handler (no index, no cache)."""
    return [
        h.id
        for h in reg.handlers()
        if len(h.pattern) <= len(subject)
        and all(
            want is None or want == have for want, have in zip(h.pattern, subject, strict=False)
        )
    ]


@given(st.lists(patterns, max_size=6), st.lists(subjects, max_size=6), st.data())
def test_cached_dispatch_agrees_with_a_full_scan(
    pats: list[tuple[Any, ...]], subs: list[list[Any]], data: st.DataObject
) -> None:
    reg = Registry("prefix")
    calls: list[tuple[int, tuple[Any, ...]]] = []
    expected: list[tuple[int, tuple[Any, ...]]] = []
    ids = {}
    for i, pattern in enumerate(pats):
        hid = reg.register(pattern, lambda *f, i=i: calls.append((i, f)))
        ids[hid] = i
    for subject in subs:
        want = brute_force(reg, subject)
        assert [h.id for h in reg.match(subject)] == want
        expected.extend((ids[hid], tuple(subject)) for hid in want)
        assert reg.dispatch(subject, *subject) == len(want)
        if reg.handlers() and data.draw(st.booleans()):  # change registrations between messages
            victim = data.draw(st.sampled_from([h.id for h in reg.handlers()]))
            reg.unregister(victim)
    assert calls == expected


def test_once_errors_on_error_and_odd_subjects() -> None:
    seen: list[tuple[Handler, BaseException]] = []
    reg = Registry("prefix", on_error=lambda h, e: seen.append((h, e)))
    got: list[Any] = []
    once = reg.register(("a",), lambda *f: got.append(("once", f)), once=True)

    def bad(*f: Any) -> None:
        raise ValueError("bug")

    bad_id = reg.register((None,), bad)
    reg.register(("a", "b"), lambda *f: got.append(("ab", f)))
    assert reg.dispatch(["a", "b"], "a", "b") == 3
    assert reg.dispatch(["a", "b"], "a", "b") == 2  # the once handler is gone
    assert once not in reg
    assert got == [("once", ("a", "b")), ("ab", ("a", "b")), ("ab", ("a", "b"))]
    assert reg.errors == 2 and [h.id for h, _ in seen] == [bad_id, bad_id]
    assert reg.dispatch([]) == 0
    assert reg.dispatch([["unhashable"]], 1) == 1  # only the wildcard
    reg.clear()
    assert reg.dispatch(["a", "b"]) == 0
    with pytest.raises(KeyError):
        reg.unregister(bad_id)


def test_registration_from_another_thread_is_seen_by_the_next_dispatch() -> None:
    reg = Registry("prefix")
    got: list[str] = []
    reg.register(("x",), lambda *f: got.append("first"))
    reg.dispatch(["x"])
    worker = threading.Thread(target=reg.register, args=(("x",), lambda *f: got.append("late")))
    worker.start()
    worker.join()
    reg.dispatch(["x"])
    assert got == ["first", "first", "late"]


def test_many_unknown_heads_do_not_grow_the_cache_without_bound() -> None:
    reg = Registry("prefix")
    hits: list[object] = []
    reg.register((None,), hits.append)
    for i in range(2000):
        reg.dispatch([f"unknown{i}"], i)
    assert hits == list(range(2000))
    assert len(reg._cache) <= CACHE_LIMIT
