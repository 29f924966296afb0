"""Fuzzing the receive path of a server: random datagrams and TCP chunks never raise,
and only valid messages are ever echoed (byte for byte)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciwire.rig import EchoProtocol, ExpMessage
from sciwire.rig._protocol import Message, parse_message
from tests.helpers import examples


class StubTransport:
    """Records what the protocol sends instead of touching a socket."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.sent.append((data, addr))

    def write(self, data: bytes) -> None:
        self.sent.append((data, None))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return None


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def make(loop: asyncio.AbstractEventLoop, uri: str, role: str) -> EchoProtocol:
    async def build() -> EchoProtocol:
        return EchoProtocol(uri, role)

    com = loop.run_until_complete(build())
    com._transport = StubTransport()
    com.assign_callback(ExpMessage.any(), lambda d, a, e: None)
    return com


MESSAGES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"[1, null]", b'[0, "E: x", 2]', b'["expinit", 1]', b"[3, 1]", b""]),
    st.lists(st.integers(-1, 300) | st.text(max_size=5) | st.none(), max_size=4).map(
        lambda v: repr(v).replace("'", '"').replace("None", "null").encode()
    ),
)


# invalid input warns (as iblutil warns); these tests check the echoes and counts
@pytest.mark.filterwarnings("ignore:Expected a list:RuntimeWarning")
@settings(max_examples=examples(300), deadline=None)
@given(st.lists(MESSAGES, max_size=10))
def test_udp_server_only_echoes_valid_messages(
    loop: asyncio.AbstractEventLoop, datagrams: list[bytes]
) -> None:
    com = make(loop, "udp://127.0.0.1:5", "server")
    addr = ("127.0.0.1", 40000)
    for data in datagrams:
        com.datagram_received(data, addr)
    echoed = [data for data, _ in com._transport.sent]
    assert echoed == [d for d in datagrams if type(parse_message(d)) is Message]
    assert com.callback_errors == 0 and "internal" not in com.dropped
    com.close()


# invalid input warns (as iblutil warns); these tests check the echoes and counts
@pytest.mark.filterwarnings("ignore:Expected a list:RuntimeWarning")
@settings(max_examples=examples(200), deadline=None)
@given(st.lists(MESSAGES, max_size=8), st.data())
def test_tcp_client_survives_any_chunking(
    loop: asyncio.AbstractEventLoop, messages: list[bytes], data: st.DataObject
) -> None:
    com = make(loop, "tcp://127.0.0.1:5", "client")
    stream = b"".join(messages)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=10)))
    start = 0
    for cut in [*cuts, len(stream)]:
        com.data_received(stream[start:cut])
        start = cut
    for sent, _ in com._transport.sent:
        assert type(parse_message(sent)) is Message  # nothing invalid is ever echoed
    assert "internal" not in com.dropped
    com.close()
