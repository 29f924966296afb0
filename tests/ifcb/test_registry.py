"""The IFCB client's cached prefix registry behaves exactly like Registry("prefix")."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sciwire.core.patterns import Handler, Registry
from sciwire.ifcb.registry import PrefixRegistry

WORDS = ["valuechanged", "pausestate", "triggercontent", 1, True, 0]
patterns = st.lists(st.sampled_from([*WORDS, None]), min_size=1, max_size=3).map(tuple)
subjects = st.lists(st.sampled_from(WORDS), max_size=4)


@given(st.lists(patterns, max_size=6), st.lists(subjects, max_size=6), st.data())
def test_dispatch_matches_the_base_registry(
    pats: list[tuple[Any, ...]], subs: list[list[Any]], data: st.DataObject
) -> None:
    ours, base = PrefixRegistry(), Registry("prefix")
    calls: dict[str, list[tuple[int, tuple[Any, ...]]]] = {"ours": [], "base": []}
    ids = []
    for i, pattern in enumerate(pats):
        for name, reg in (("ours", ours), ("base", base)):
            ids.append(reg.register(pattern, lambda *f, i=i, n=name: calls[n].append((i, f))))
    for subject in subs:
        assert ours.dispatch(subject, *subject) == base.dispatch(subject, *subject)
        assert [h.id for h in ours.match(subject)] == [h.id for h in base.match(subject)]
        if pats and data.draw(st.booleans()):  # change the registrations between messages
            victim = data.draw(
                st.sampled_from(sorted(set(ids[::2]) & {h.id for h in ours.handlers()}) or [0])
            )
            if victim:
                ours.unregister(victim)
                base.unregister(victim)
    assert calls["ours"] == calls["base"]


def test_once_errors_on_error_and_odd_subjects() -> None:
    seen: list[tuple[Handler, BaseException]] = []
    reg = PrefixRegistry(on_error=lambda h, e: seen.append((h, e)))
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
    reg = PrefixRegistry()
    got: list[str] = []
    reg.register(("x",), lambda *f: got.append("first"))
    reg.dispatch(["x"])
    worker = threading.Thread(target=reg.register, args=(("x",), lambda *f: got.append("late")))
    worker.start()
    worker.join()
    reg.dispatch(["x"])
    assert got == ["first", "first", "late"]


def test_many_unknown_heads_do_not_grow_the_cache_without_bound() -> None:
    reg = PrefixRegistry()
    hits: list[object] = []
    reg.register((None,), hits.append)
    for i in range(2000):
        reg.dispatch([f"unknown{i}"], i)
    assert hits == list(range(2000))
    assert len(reg._cache) <= 512
