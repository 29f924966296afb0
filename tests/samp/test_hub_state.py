"""The hub state machine without sockets: registration, events, subscriptions, msg-ids."""

from __future__ import annotations

from typing import Any

import pytest

from sciwire.samp import _protocol as P
from sciwire.samp._hubstate import Client, Delivery, HubFault, HubState, Resolve


def _state(**kw: Any) -> HubState:
    return HubState("s3cret", **kw)


def _reg(state: HubState, *, url: str | None = "http://127.0.0.1:1/") -> Client:
    client, _ = state.register("s3cret")
    if url is not None:
        state.set_callback(client.private_key, url)
    return client


def _deliveries(effects: list[Any], method: str | None = None) -> list[Delivery]:
    return [e for e in effects if isinstance(e, Delivery) and method in (None, e.method)]


def test_register_checks_the_secret_and_hands_out_fresh_ids_and_keys() -> None:
    state = _state()
    with pytest.raises(HubFault, match="secret"):
        state.register("wrong")
    with pytest.raises(HubFault):
        state.register(5)
    a, b = _reg(state), _reg(state)
    assert a.public_id != b.public_id
    assert a.private_key != b.private_key
    assert len(a.private_key) > 20
    info = state.reg_info(a)
    assert info == {
        "samp.private-key": a.private_key,
        "samp.self-id": a.public_id,
        "samp.hub-id": "hub",
    }
    state.unregister(a.private_key)
    c = _reg(state)
    assert c.public_id not in (a.public_id, b.public_id)  # ids are never reused


def test_unknown_keys_and_ids_fault() -> None:
    state = _state()
    a = _reg(state)
    with pytest.raises(HubFault, match="private key"):
        state.get_registered_clients("nope")
    with pytest.raises(HubFault, match="private key"):
        state.declare_metadata(state.hub.private_key, {})  # the hub's key is not a client's
    with pytest.raises(HubFault, match="no client"):
        state.get_metadata(a.private_key, "c999")
    with pytest.raises(HubFault, match="no client"):
        state.get_subscriptions(a.private_key, ["c1"])


def test_registered_clients_exclude_the_caller_and_include_the_hub() -> None:
    state = _state()
    a, b = _reg(state), _reg(state)
    assert sorted(state.get_registered_clients(a.private_key)) == sorted(["hub", b.public_id])
    assert state.get_metadata(a.private_key, "hub")["samp.name"] == "sciwire hub"
    assert state.get_subscriptions(a.private_key, "hub") == {"samp.app.ping": {}}


def test_events_go_to_subscribers_including_the_client_concerned() -> None:
    state = _state()
    watcher = _reg(state)
    state.declare_subscriptions(watcher.private_key, {"samp.hub.event.*": {}})
    other, effects = state.register("s3cret")
    [event] = _deliveries(effects)
    assert event.recipient is watcher
    assert event.args == ("hub", P.make_message(P.HUB_EVENT_REGISTER, {"id": other.public_id}))

    effects = state.declare_metadata(watcher.private_key, {"samp.name": "w"})
    [event] = _deliveries(effects)
    assert event.recipient is watcher
    assert event.args[1]["samp.params"] == {"id": watcher.public_id, "metadata": {"samp.name": "w"}}

    effects = state.unregister(other.private_key)
    [event] = _deliveries(effects)
    assert event.args[1]["samp.mtype"] == P.HUB_EVENT_UNREGISTER


def test_uncallable_clients_get_no_events() -> None:
    state = _state()
    quiet = _reg(state, url=None)
    state.declare_subscriptions(quiet.private_key, {"*": {}})
    _, effects = state.register("s3cret")
    assert effects == []


def test_subscriptions_wildcards_and_annotations() -> None:
    state = _state()
    a, b, c = _reg(state), _reg(state), _reg(state)
    state.declare_subscriptions(
        a.private_key, {"table.*": {"x": "wild"}, "table.load.votable": {"x": "exact"}}
    )
    state.declare_subscriptions(b.private_key, {"*": {}})
    state.declare_subscriptions(c.private_key, {"table.load.fits": {}})
    subs = state.get_subscribed_clients(c.private_key, "table.load.votable")
    assert subs == {a.public_id: {"x": "exact"}, b.public_id: {}}
    subs = state.get_subscribed_clients(b.private_key, "table.highlight.row")
    assert subs == {a.public_id: {"x": "wild"}}  # the caller is excluded
    # "table.*" does not cover "table" itself
    assert a.public_id not in state.get_subscribed_clients(c.private_key, "table")
    # redeclaring replaces
    state.declare_subscriptions(a.private_key, {})
    assert a.public_id not in state.get_subscribed_clients(c.private_key, "table.load.votable")


@pytest.mark.parametrize("subs", [{"a.*.b": {}}, {"": {}}, {"a": "not a map"}, ["a"]])
def test_bad_subscriptions_fault(subs: object) -> None:
    state = _state()
    a = _reg(state)
    with pytest.raises(HubFault):
        state.declare_subscriptions(a.private_key, subs)


def test_notify_rules() -> None:
    state = _state()
    a, b = _reg(state), _reg(state)
    state.declare_subscriptions(b.private_key, {"x.y": {}})
    msg = {"samp.mtype": "x.y", "samp.params": {"n": 1}}
    [d] = state.notify(a.private_key, b.public_id, msg)
    assert (d.recipient, d.method) == (b, "receiveNotification")
    assert d.args == (a.public_id, {"samp.mtype": "x.y", "samp.params": {"n": 1}})
    coercing = _state(coerce=True)
    c, e = _reg(coercing), _reg(coercing)
    coercing.declare_subscriptions(e.private_key, {"x.y": {}})
    [d] = coercing.notify(c.private_key, e.public_id, msg)
    assert d.args[1]["samp.params"] == {"n": "1"}
    with pytest.raises(HubFault, match="not subscribed"):
        state.notify(a.private_key, b.public_id, {"samp.mtype": "x.z"})
    with pytest.raises(HubFault, match="no client"):
        state.notify(a.private_key, "c77", msg)
    with pytest.raises(HubFault):
        state.notify(
            a.private_key, b.public_id, {"samp.mtype": "x.y", "samp.params": {"k": "\x00"}}
        )
    ids, effects = state.notify_all(a.private_key, msg)
    assert ids == [b.public_id]
    assert len(_deliveries(effects)) == 1
    ids, effects = state.notify_all(b.private_key, msg)  # the sender never gets its own
    assert (ids, effects) == ([], [])


def test_strict_hub_refuses_numbers() -> None:
    state = _state(strict=True)
    a, b = _reg(state), _reg(state)
    state.declare_subscriptions(b.private_key, {"x.y": {}})
    with pytest.raises(HubFault, match="not a SAMP type"):
        state.notify(a.private_key, b.public_id, {"samp.mtype": "x.y", "samp.params": {"n": 1}})


def test_call_registers_the_msg_id_before_delivery_and_routes_the_reply() -> None:
    state = _state()
    a, b = _reg(state), _reg(state)
    state.declare_subscriptions(b.private_key, {"x.y": {}})
    msg_id, effects = state.call(a.private_key, b.public_id, "t1", {"samp.mtype": "x.y"})
    assert msg_id in state.pending  # known before the effect is even carried out
    [d] = effects
    assert d.method == "receiveCall" and d.msg_id == msg_id
    assert d.args == (a.public_id, msg_id, {"samp.mtype": "x.y"})
    with pytest.raises(HubFault, match="msg-id"):
        state.reply(a.private_key, msg_id, P.make_ok_response())  # only the recipient replies
    with pytest.raises(HubFault, match="msg-id"):
        state.reply(b.private_key, "bogus", P.make_ok_response())
    with pytest.raises(HubFault):
        state.reply(b.private_key, msg_id, {"samp.status": "maybe"})
    [r] = state.reply(b.private_key, msg_id, P.make_ok_response({"v": "1"}))
    assert isinstance(r, Delivery) and r.recipient is a and r.method == "receiveResponse"
    assert r.args == (b.public_id, "t1", P.make_ok_response({"v": "1"}))
    with pytest.raises(HubFault):  # a second reply to the same call
        state.reply(b.private_key, msg_id, P.make_ok_response())


def test_call_all_and_call_and_wait() -> None:
    state = _state()
    a, b, c = _reg(state), _reg(state), _reg(state)
    for x in (b, c):
        state.declare_subscriptions(x.private_key, {"x.*": {}})
    ids, _effects = state.call_all(a.private_key, "tag", {"samp.mtype": "x.y"})
    assert set(ids) == {b.public_id, c.public_id}
    assert all(i in state.pending for i in ids.values())
    msg_id, _ = state.call_and_wait(a.private_key, b.public_id, {"samp.mtype": "x.q"})
    [r] = state.reply(b.private_key, msg_id, P.make_ok_response())
    assert r == Resolve(msg_id, P.make_ok_response())
    msg_id, _ = state.call_and_wait(a.private_key, c.public_id, {"samp.mtype": "x.q"})
    state.abandon(msg_id)  # timed out
    with pytest.raises(HubFault):
        state.reply(c.private_key, msg_id, P.make_ok_response())


def test_the_hub_answers_ping_itself() -> None:
    state = _state()
    a = _reg(state)
    msg_id, effects = state.call_and_wait(a.private_key, "hub", {"samp.mtype": "samp.app.ping"})
    assert effects == [Resolve(msg_id, P.make_ok_response({}))]
    assert msg_id not in state.pending
    msg_id, effects = state.call(a.private_key, "hub", "p", {"samp.mtype": "samp.app.ping"})
    [d] = effects
    assert d.method == "receiveResponse" and d.args[0] == "hub"
    assert state.notify(a.private_key, "hub", {"samp.mtype": "samp.app.ping"}) == []


def test_removing_a_recipient_answers_its_pending_calls() -> None:
    state = _state()
    a, b = _reg(state), _reg(state)
    state.declare_subscriptions(b.private_key, {"x.y": {}})
    sync_id, _ = state.call_and_wait(a.private_key, b.public_id, {"samp.mtype": "x.y"})
    _async_id, _ = state.call(a.private_key, b.public_id, "t", {"samp.mtype": "x.y"})
    effects = state.remove(b, "died")
    resolves = [e for e in effects if isinstance(e, Resolve)]
    assert [r.msg_id for r in resolves] == [sync_id]
    assert resolves[0].response["samp.status"] == P.SAMP_STATUS_ERROR
    [resp] = _deliveries(effects, "receiveResponse")
    assert resp.args[1] == "t" and resp.args[2]["samp.status"] == P.SAMP_STATUS_ERROR
    assert state.pending == {}
    assert state.remove(b) == []  # idempotent


def test_failed_delivery_answers_the_call() -> None:
    state = _state()
    a, b = _reg(state), _reg(state)
    state.declare_subscriptions(b.private_key, {"x.y": {}})
    _msg_id, [d] = state.call_and_wait(a.private_key, b.public_id, {"samp.mtype": "x.y"})
    assert isinstance(d, Delivery)
    [r] = state.delivery_failed(d, "fault")
    assert isinstance(r, Resolve) and r.response["samp.status"] == P.SAMP_STATUS_ERROR
    assert state.delivery_failed(d, "again") == []


def test_shutdown_and_disconnect() -> None:
    state = _state()
    a, b = _reg(state), _reg(state)
    state.declare_subscriptions(a.private_key, {"samp.hub.*": {}})
    state.declare_subscriptions(b.private_key, {"x.y": {}})
    sync_id, _ = state.call_and_wait(a.private_key, b.public_id, {"samp.mtype": "x.y"})
    effects = state.shutdown()
    assert any(
        isinstance(e, Delivery) and e.args[1]["samp.mtype"] == P.HUB_EVENT_SHUTDOWN for e in effects
    )
    assert any(isinstance(e, Resolve) and e.msg_id == sync_id for e in effects)
    effects = state.disconnect(a, "bye")
    assert effects[0].args[1] == P.make_message(P.HUB_EVENT_DISCONNECT, {"reason": "bye"})  # type: ignore[union-attr]
    assert a not in state.clients


def test_web_clients_are_restricted_to_safe_mtypes_toward_desktop_clients() -> None:
    state = _state()
    desk = _reg(state)
    web, _ = state.register_web({"samp.name": "page"})
    web2, _ = state.register_web({"samp.name": "page2"})
    state.allow_reverse_callbacks(web2.private_key, "1")
    state.declare_subscriptions(
        desk.private_key,
        {"script.run": {}, "table.load.votable": {}, "x.y": {"samp.mostly-harmless": "1"}},
    )
    state.declare_subscriptions(web2.private_key, {"script.run": {}})
    with pytest.raises(HubFault, match="Web Profile"):
        state.notify(web.private_key, desk.public_id, {"samp.mtype": "script.run"})
    assert state.notify(web.private_key, desk.public_id, {"samp.mtype": "table.load.votable"})
    assert state.notify(web.private_key, desk.public_id, {"samp.mtype": "x.y"})
    assert state.notify(web.private_key, web2.public_id, {"samp.mtype": "script.run"})
    assert set(state.get_subscribed_clients(web.private_key, "script.run")) == {web2.public_id}
    ids, _ = state.notify_all(web.private_key, {"samp.mtype": "script.run"})
    assert ids == [web2.public_id]
    with pytest.raises(HubFault):
        state.allow_reverse_callbacks(web.private_key, "yes")
    # desktop clients are not restricted
    assert state.notify(desk.private_key, web2.public_id, {"samp.mtype": "script.run"})


def test_pending_calls_are_bounded() -> None:
    state = _state(max_pending=3)
    a, b = _reg(state), _reg(state)
    state.declare_subscriptions(b.private_key, {"x.y": {}})
    first, _ = state.call(a.private_key, b.public_id, "t0", {"samp.mtype": "x.y"})
    for i in range(1, 3):
        state.call(a.private_key, b.public_id, f"t{i}", {"samp.mtype": "x.y"})
    _, effects = state.call(a.private_key, b.public_id, "t3", {"samp.mtype": "x.y"})
    assert len(state.pending) == 3 and first not in state.pending
    [dropped] = _deliveries(effects, "receiveResponse")
    assert dropped.args[1] == "t0"
    assert dropped.args[2]["samp.status"] == P.SAMP_STATUS_ERROR
