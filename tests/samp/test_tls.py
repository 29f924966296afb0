"""TLS (astropy's https, key_file, cert_file, cert_reqs, ca_certs, ssl_version) on the
hub and the clients, with certificates made at test time, on loopback."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sciwire.samp import (
    AsyncSAMPIntegratedClient,
    SAMPClientError,
    SAMPHubError,
    SAMPHubProxy,
    SAMPHubServer,
    SAMPIntegratedClient,
)
from sciwire.samp.lockfile_helpers import check_running_hub
from tests.samp.clientkit import Inbox
from tests.samp.tlskit import Cert, make_cert


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cert]:
    folder = tmp_path_factory.mktemp("tls")
    return {name: make_cert(folder, name) for name in ("hub", "client")}


@pytest.fixture
def tls_hub(tmp_path: Path, certs: dict[str, Cert]) -> Iterator[SAMPHubServer]:
    with SAMPHubServer(
        web_profile=False,
        lockfile=tmp_path / "tls.lock",
        https=True,
        key_file=certs["hub"].key,
        cert_file=certs["hub"].cert,
        ca_certs=certs["client"].cert,  # to check the clients' https callbacks
        cert_reqs=ssl.CERT_REQUIRED,  # ... and their client certificates
    ) as hub:
        yield hub


def _client(certs: dict[str, Cert], name: str, **extra: Any) -> SAMPIntegratedClient:
    return SAMPIntegratedClient(
        name=name,
        https=True,
        key_file=certs["client"].key,
        cert_file=certs["client"].cert,
        cert_reqs=ssl.CERT_REQUIRED,
        ca_certs=certs["hub"].cert,
        **extra,
    )


@pytest.fixture
def clients(tls_hub: SAMPHubServer, certs: dict[str, Cert]) -> Iterator[list[SAMPIntegratedClient]]:
    made: list[SAMPIntegratedClient] = []
    try:
        for name in ("rx", "tx"):
            client = _client(certs, name)
            made.append(client)
            client.connect(hub=tls_hub)
        yield made
    finally:
        for client in made:
            client.disconnect()


def test_hub_and_clients_talk_tls_both_ways(
    tls_hub: SAMPHubServer, clients: list[SAMPIntegratedClient]
) -> None:
    assert tls_hub.url.startswith("https://127.0.0.1:")
    assert tls_hub.params["samp.hub.xmlrpc.url"] == tls_hub.url
    rx, tx = clients
    assert rx.client.core.callback_url is not None
    assert rx.client.core.callback_url.startswith("https://")
    inbox = Inbox()
    rx.bind_receive_notification("test.tls", inbox.notification_handler())

    def on_call(key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any) -> None:
        rx.ereply(msg_id, "samp.ok", result={"got": params["x"]})

    rx.bind_receive_call("test.tls.call", on_call)
    tx.enotify(rx.get_public_id(), "test.tls", x="1")
    assert inbox.wait(1)[0][1] == "test.tls"
    reply = tx.ecall_and_wait(rx.get_public_id(), "test.tls.call", "10", x="2")
    assert reply["samp.result"] == {"got": "2"}
    running, _ = check_running_hub(tls_hub.lockfile or "")
    assert running  # the liveness probe speaks TLS too (and is refused: still alive)
    second = SAMPHubServer(web_profile=False, lockfile=tls_hub.lockfile)
    with pytest.raises(SAMPHubError, match="already running"):
        second.start()


def test_hub_refuses_a_client_without_a_certificate(
    tls_hub: SAMPHubServer, certs: dict[str, Cert]
) -> None:
    proxy = SAMPHubProxy()
    with pytest.raises(SAMPHubError):
        proxy.connect(hub=tls_hub, cert_reqs=ssl.CERT_REQUIRED, ca_certs=certs["hub"].cert)
    assert not proxy.is_connected


def test_client_checks_the_hub_certificate(tmp_path: Path, certs: dict[str, Cert]) -> None:
    hub = SAMPHubServer(
        web_profile=False,
        lockfile=tmp_path / "l",
        https=True,
        key_file=certs["hub"].key,
        cert_file=certs["hub"].cert,
    )
    hub.start()
    proxy = SAMPHubProxy()
    try:
        # the hub's certificate is not signed by the CA we trust: refused
        with pytest.raises(SAMPHubError):
            proxy.connect(hub=hub, cert_reqs=ssl.CERT_REQUIRED, ca_certs=certs["client"].cert)
        # astropy's default cert_reqs=CERT_NONE: no check
        proxy.connect(hub=hub)
        assert proxy.is_connected and proxy.ping() == ""
        proxy.disconnect()
        # ssl_version pins the protocol
        proxy.connect(
            hub=hub,
            cert_reqs=ssl.CERT_REQUIRED,
            ca_certs=certs["hub"].cert,
            ssl_version=ssl.TLSVersion.TLSv1_2,
        )
        assert proxy.ping() == ""
    finally:
        proxy.disconnect()
        hub.stop()


def test_bad_tls_arguments_are_clear_errors(tmp_path: Path, certs: dict[str, Cert]) -> None:
    with pytest.raises(SAMPClientError, match="cert_file"):
        SAMPIntegratedClient(https=True)
    with pytest.raises(SAMPClientError, match="cannot load"):
        SAMPIntegratedClient(https=True, cert_file=str(tmp_path / "missing.pem"))
    with pytest.raises(SAMPClientError, match="ssl_version"):
        SAMPIntegratedClient(https=True, cert_file=certs["client"].cert,
                             key_file=certs["client"].key, ssl_version="tls9")  # fmt: skip
    with pytest.raises(SAMPClientError, match="ca_certs"):
        SAMPIntegratedClient(https=True, cert_file=certs["client"].cert,
                             key_file=certs["client"].key, cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
    with pytest.raises(SAMPHubError, match="cert_file"):
        SAMPHubServer(web_profile=False, https=True)


async def test_asyncio_client_over_tls(tls_hub: SAMPHubServer, certs: dict[str, Cert]) -> None:
    tls = {
        "https": True,
        "key_file": certs["client"].key,
        "cert_file": certs["client"].cert,
        "cert_reqs": ssl.CERT_REQUIRED,
        "ca_certs": certs["hub"].cert,
    }
    a = AsyncSAMPIntegratedClient(name="a", **tls)
    await a.connect(hub=tls_hub)
    try:
        assert a.client.callback_url is not None and a.client.callback_url.startswith("https:")
        assert await a.ping() == ""
    finally:
        await a.disconnect()
