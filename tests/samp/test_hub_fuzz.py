"""Hypothesis against the hub's request path (no sockets): whatever arrives, the hub
answers with a well-formed XML-RPC response or fault and its state stays usable."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.samp import _protocol as P
from sciwire.samp._ahub import AsyncSAMPHub
from sciwire.samp.errors import SAMPDataError, SAMPProxyError
from tests.helpers import examples

METHODS = [
    "register",
    "unregister",
    "ping",
    "setXmlrpcCallback",
    "declareMetadata",
    "getMetadata",
    "declareSubscriptions",
    "getSubscriptions",
    "getRegisteredClients",
    "getSubscribedClients",
    "notify",
    "notifyAll",
    "call",
    "callAll",
    "callAndWait",
    "reply",
    "nonsense",
]

_text = st.text(max_size=12)
_values: st.SearchStrategy[Any] = st.recursive(
    _text | st.integers() | st.booleans() | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


def _answer(hub: AsyncSAMPHub, body: bytes) -> Any:
    async def run() -> bytes:
        result = hub.handle_std(body)
        if inspect.isawaitable(result):
            return await asyncio.wait_for(result, 2)
        return result

    data = asyncio.run(run())
    try:
        return P.decode_response(data)
    except SAMPProxyError as fault:
        return fault


def _hub() -> AsyncSAMPHub:
    return AsyncSAMPHub(secret="s", web_profile=False, write_lockfile=False)


@settings(max_examples=examples(200), deadline=None)
@given(
    st.sampled_from(METHODS),
    st.lists(_values, max_size=5),
    st.booleans(),
)
def test_any_call_gets_a_response_or_a_fault(method: str, params: list[Any], keyed: bool) -> None:
    hub = _hub()
    info = _answer(hub, P.encode_call("samp.hub.register", ["s"]))
    key = info["samp.private-key"]
    if keyed:
        params = [key, *params]
    if method == "callAndWait" and len(params) == 4:
        params[3] = "0.01"  # nobody will answer: keep the example short
    try:
        body = P.encode_call("samp.hub." + method, params)
    except SAMPDataError:
        return  # not even encodable as XML-RPC
    answer = _answer(hub, body)
    assert isinstance(answer, SAMPProxyError | str | list | dict)
    # the hub still serves
    assert _answer(hub, P.encode_call("samp.hub.getRegisteredClients", [key])) is not None


@settings(max_examples=examples(200), deadline=None)
@given(st.binary(max_size=300))
def test_any_body_gets_a_fault(body: bytes) -> None:
    hub = _hub()
    answer = _answer(hub, body)
    assert isinstance(answer, SAMPProxyError | str | list | dict)
