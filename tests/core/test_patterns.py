from __future__ import annotations

import logging
from enum import IntFlag
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sciwire.core.patterns import Handler, Registry, mtype_matches


class Ev(IntFlag):
    INIT = 1
    START = 2
    END = 4
    STATUS = 32


def collect(reg: Registry, subject: Any) -> list[Any]:
    return [h.pattern for h in reg.match(subject)]


# -- prefix ---------------------------------------------------------------------------


def test_prefix_constants_and_wildcards() -> None:
    reg = Registry("prefix")
    reg.register(("valuechanged", "pausestate"), print)
    reg.register(("valuechanged", None, 1), print)
    reg.register((None,), print)
    reg.register(("triggerchanged",), print)
    assert collect(reg, ("valuechanged", "pausestate", 0)) == [
        ("valuechanged", "pausestate"),
        (None,),
    ]
    assert collect(reg, ("valuechanged", "switchx", 1)) == [("valuechanged", None, 1), (None,)]
    assert collect(reg, ("triggerchanged", 5)) == [(None,), ("triggerchanged",)]


def test_prefix_longer_than_message_does_not_match() -> None:
    reg = Registry("prefix")
    reg.register(("a", "b", "c"), print)
    reg.register(("a", None, None), print)
    assert collect(reg, ("a", "b")) == []
    assert collect(reg, ("a", "b", "c")) == [("a", "b", "c"), ("a", None, None)]


def test_prefix_empty_message_and_bad_patterns() -> None:
    reg = Registry("prefix")
    reg.register((None,), print)
    assert collect(reg, ()) == []
    with pytest.raises(TypeError):
        reg.register("abc", print)
    with pytest.raises(ValueError):
        reg.register((), print)


def test_prefix_dispatch_passes_arguments() -> None:
    reg = Registry("prefix")
    seen: list[tuple[Any, ...]] = []
    reg.register(("x", None), lambda *a: seen.append(a))
    fields = ("x", 1, 2.5)
    assert reg.dispatch(fields, *fields) == 1
    assert seen == [("x", 1, 2.5)]


def test_prefix_index_skips_unrelated_patterns() -> None:
    """Dispatch only evaluates the bucket of the first field plus the wildcard bucket."""
    reg = Registry("prefix")
    for i in range(1000):
        reg.register((f"kind{i}", None), print)
    reg.register(("hit", None), print)
    evaluated = []
    import sciwire.core.patterns as mod

    original = mod._prefix_matches

    def spy(pattern: tuple[Any, ...], fields: Any) -> bool:
        evaluated.append(pattern)
        return original(pattern, fields)

    mod._prefix_matches = spy
    try:
        assert collect(reg, ("hit", 1)) == [("hit", None)]
        assert collect(reg, ("hit", 2)) == [("hit", None)]  # now from the cache
    finally:
        mod._prefix_matches = original
    assert evaluated == [("hit", None), ("hit", None)]


# -- key and flag -----------------------------------------------------------------------


def test_exact_keys() -> None:
    reg = Registry("key")
    reg.register("expinit", print)
    reg.register(("a", 1), print)
    assert collect(reg, "expinit") == ["expinit"]
    assert collect(reg, ("a", 1)) == [("a", 1)]
    assert collect(reg, "expstart") == []
    assert collect(reg, ["unhashable"]) == []
    with pytest.raises(TypeError):
        reg.register(["list"], print)


def test_flags_share_bits() -> None:
    reg = Registry("flag")
    reg.register(Ev.INIT, print)
    reg.register(Ev.INIT | Ev.START, print)
    reg.register(255, print)
    reg.register(0, print)
    assert collect(reg, Ev.INIT) == [Ev.INIT, Ev.INIT | Ev.START, 255]
    assert collect(reg, Ev.START) == [Ev.INIT | Ev.START, 255]
    assert collect(reg, Ev.STATUS) == [255]
    assert collect(reg, 0) == [0]
    with pytest.raises(TypeError):
        reg.register("init", print)
    with pytest.raises(TypeError):
        reg.register(True, print)
    with pytest.raises(ValueError):
        reg.register(-1, print)


def test_compound_flag_matches_once_per_handler() -> None:
    reg = Registry("flag")
    calls: list[int] = []
    reg.register(Ev.INIT | Ev.START, lambda: calls.append(1))
    assert reg.dispatch(Ev.INIT | Ev.START) == 1
    assert calls == [1]


# -- mtype ------------------------------------------------------------------------------


def test_mtype_wildcards() -> None:
    reg = Registry("mtype")
    reg.register("*", print)
    reg.register("samp.app.*", print)
    reg.register("samp.*", print)
    reg.register("samp.app.ping", print)
    reg.register("table.load.votable", print)
    assert collect(reg, "samp.app.ping") == ["*", "samp.app.*", "samp.*", "samp.app.ping"]
    assert collect(reg, "samp.app") == ["*", "samp.*"]
    assert collect(reg, "samp.application.x") == ["*", "samp.*"]
    assert collect(reg, "table.load.votable") == ["*", "table.load.votable"]
    assert collect(reg, "image.load.fits") == ["*"]


@pytest.mark.parametrize("bad", ["", ".*", "a.*.b", "a*", "*.a", "a.", 3])
def test_mtype_bad_patterns(bad: Any) -> None:
    reg = Registry("mtype")
    with pytest.raises((TypeError, ValueError)):
        reg.register(bad, print)


@given(
    st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4),
    st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4),
    st.booleans(),
)
def test_mtype_index_agrees_with_direct_match(
    pattern_atoms: list[str], mtype_atoms: list[str], wild: bool
) -> None:
    pattern = ".".join(pattern_atoms) + (".*" if wild else "")
    mtype = ".".join(mtype_atoms)
    reg = Registry("mtype")
    reg.register(pattern, print)
    assert bool(reg.match(mtype)) == mtype_matches(pattern, mtype)


# -- registration life cycle --------------------------------------------------------------


def test_unregister_and_unknown_id() -> None:
    reg = Registry("prefix")
    a = reg.register(("x",), print)
    b = reg.register(("x",), print)
    assert a != b and len(reg) == 2 and a in reg
    handler = reg.unregister(a)
    assert isinstance(handler, Handler) and handler.id == a
    assert [h.id for h in reg.match(("x",))] == [b]
    with pytest.raises(KeyError, match="no handler with id"):
        reg.unregister(a)
    with pytest.raises(KeyError):
        reg.unregister(12345)
    reg.unregister(b)
    assert reg.match(("x",)) == [] and len(reg) == 0


def test_once_handlers_fire_once() -> None:
    reg = Registry("key")
    calls: list[str] = []
    reg.register("k", lambda: calls.append("once"), once=True)
    reg.register("k", lambda: calls.append("always"))
    reg.dispatch("k")
    reg.dispatch("k")
    assert calls == ["once", "always", "always"]


def test_raising_callback_is_logged_counted_and_others_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    errors: list[tuple[int, BaseException]] = []
    reg = Registry("prefix", on_error=lambda h, e: errors.append((h.id, e)))
    calls: list[str] = []

    def bad(*_: Any) -> None:
        raise ValueError("handler bug")

    first = reg.register(("m",), lambda *_: calls.append("first"))
    bad_id = reg.register(("m",), bad)
    reg.register(("m",), lambda *_: calls.append("last"))
    del first
    with caplog.at_level(logging.ERROR, logger="sciwire.core.patterns"):
        assert reg.dispatch(("m",), "m") == 3
    assert calls == ["first", "last"]
    assert reg.errors == 1
    assert errors[0][0] == bad_id and isinstance(errors[0][1], ValueError)
    assert "handler bug" in caplog.text


def test_handler_may_unregister_itself_during_dispatch() -> None:
    reg = Registry("key")
    calls: list[int] = []
    hid = 0

    def once() -> None:
        calls.append(1)
        reg.unregister(hid)

    hid = reg.register("k", once)
    reg.dispatch("k")
    reg.dispatch("k")
    assert calls == [1]


def test_unknown_kind_and_non_callable() -> None:
    with pytest.raises(ValueError):
        Registry("regex")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Registry("key").register("k", "not callable")  # type: ignore[arg-type]


def test_clear_and_handlers() -> None:
    reg = Registry("flag")
    reg.register(1, print)
    reg.register(2, print)
    assert [h.pattern for h in reg.handlers()] == [1, 2]
    reg.clear()
    assert len(reg) == 0 and reg.match(3) == []
