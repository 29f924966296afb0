"""A neutral peer over TLS: the stdlib's ``xmlrpc.client.ServerProxy`` (and a stdlib
``SimpleXMLRPCServer`` behind TLS for its callbacks) registers with our hub and calls
a sciwire client, and is called back; mutual TLS with certificates made at test time."""

from __future__ import annotations

import queue
import ssl
import threading
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xmlrpc.server import SimpleXMLRPCServer

import pytest

from sciwire.samp import SAMPHubServer, SAMPIntegratedClient
from tests.samp.tlskit import Cert, make_cert

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cert]:
    folder = tmp_path_factory.mktemp("tls-interop")
    return {name: make_cert(folder, name) for name in ("hub", "peer", "ours")}


@pytest.fixture
def hub(tmp_path: Path, certs: dict[str, Cert]) -> Iterator[SAMPHubServer]:
    ca = tmp_path / "clients-ca.pem"  # the hub trusts both clients' certificates
    ca.write_text(Path(certs["peer"].cert).read_text() + Path(certs["ours"].cert).read_text())
    with SAMPHubServer(
        web_profile=False,
        lockfile=tmp_path / "tls.lock",
        https=True,
        key_file=certs["hub"].key,
        cert_file=certs["hub"].cert,
        cert_reqs=ssl.CERT_REQUIRED,
        ca_certs=str(ca),
    ) as server:
        yield server


@pytest.fixture
def ours(hub: SAMPHubServer, certs: dict[str, Cert]) -> Iterator[SAMPIntegratedClient]:
    client = SAMPIntegratedClient(
        name="sciwire",
        https=True,
        key_file=certs["ours"].key,
        cert_file=certs["ours"].cert,
        cert_reqs=ssl.CERT_REQUIRED,
        ca_certs=certs["hub"].cert,
    )
    client.connect(hub=hub)
    try:
        yield client
    finally:
        client.disconnect()


class _PeerCallbacks:
    """The stdlib peer's ``samp.client.*`` methods: what arrives goes into a queue."""

    def __init__(self) -> None:
        self.inbox: queue.Queue[tuple[str, Any]] = queue.Queue()

    def _dispatch(self, method: str, params: tuple[Any, ...]) -> str:
        self.inbox.put((method, params))
        return ""


@pytest.fixture
def peer_server(certs: dict[str, Cert]) -> Iterator[tuple[str, _PeerCallbacks]]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["peer"].cert, certs["peer"].key)
    server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=True)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    callbacks = _PeerCallbacks()
    server.register_instance(callbacks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", callbacks
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def peer(hub: SAMPHubServer, certs: dict[str, Cert]) -> Iterator[Any]:
    ctx = ssl.create_default_context(cafile=certs["hub"].cert)
    ctx.load_cert_chain(certs["peer"].cert, certs["peer"].key)
    proxy = xmlrpc.client.ServerProxy(hub.url, context=ctx)
    try:
        yield proxy
    finally:
        proxy("close")()


def test_stdlib_peer_registers_and_calls_over_tls(
    hub: SAMPHubServer, ours: SAMPIntegratedClient, peer: Any
) -> None:
    assert hub.url.startswith("https://")
    got: queue.Queue[Any] = queue.Queue()

    def on_call(key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any) -> None:
        got.put((sender, params))
        ours.ereply(msg_id, "samp.ok", result={"echo": params["x"]})

    ours.bind_receive_call("test.tls.echo", on_call)
    reg = peer.samp.hub.register(hub.params["samp.secret"])
    key, me = reg["samp.private-key"], reg["samp.self-id"]
    try:
        peer.samp.hub.declareMetadata(key, {"samp.name": "stdlib"})
        assert ours.get_metadata(me) == {"samp.name": "stdlib"}
        assert ours.get_public_id() in peer.samp.hub.getRegisteredClients(key)
        reply = peer.samp.hub.callAndWait(
            key,
            ours.get_public_id(),
            {"samp.mtype": "test.tls.echo", "samp.params": {"x": "7"}},
            "10",
        )
        assert reply == {"samp.status": "samp.ok", "samp.result": {"echo": "7"}}
        assert got.get(timeout=5) == (me, {"x": "7"})
    finally:
        peer.samp.hub.unregister(key)


def test_hub_calls_the_stdlib_peer_back_over_tls(
    hub: SAMPHubServer,
    ours: SAMPIntegratedClient,
    peer: Any,
    peer_server: tuple[str, _PeerCallbacks],
) -> None:
    url, callbacks = peer_server
    reg = peer.samp.hub.register(hub.params["samp.secret"])
    key, me = reg["samp.private-key"], reg["samp.self-id"]
    try:
        peer.samp.hub.setXmlrpcCallback(key, url)
        peer.samp.hub.declareSubscriptions(key, {"test.tls.note": {}})
        assert ours.enotify_all("test.tls.note", v="1") == [me]
        method, params = callbacks.inbox.get(timeout=10)
        while method != "samp.client.receiveNotification":  # hub events may come first
            method, params = callbacks.inbox.get(timeout=10)
        assert params[0] == key and params[1] == ours.get_public_id()
        assert params[2]["samp.mtype"] == "test.tls.note"
        assert params[2]["samp.params"] == {"v": "1"}
    finally:
        peer.samp.hub.unregister(key)
