"""TLS between bridge, consumers and nats-server, with a throwaway CA made by openssl."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sciwire.errors import ConnectError
from sciwire.fleet import AsyncFleet, NatsServer
from tests.fleet.helpers import bridge_config
from tests.helpers import scale


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, str]:
    """A CA and a server certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.fail("the TLS test needs the openssl command")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
             "-subj", "/CN=sciwire test CA", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=tmp_path)  # fmt: skip
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
             cwd=tmp_path)  # fmt: skip
    # the extensions Python 3.13's strict verification (VERIFY_X509_STRICT) asks of a leaf
    (tmp_path / "san.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nauthorityKeyIdentifier=keyid,issuer\n"
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "san.cnf",
             cwd=tmp_path)  # fmt: skip
    return {name: str(tmp_path / name) for name in ("ca.pem", "server.pem", "server.key")}


@pytest.fixture
def tls_server(certs: dict[str, str]) -> Iterator[NatsServer]:
    extra = (
        f'tls {{ cert_file: "{certs["server.pem"]}", key_file: "{certs["server.key"]}",'
        " timeout: 2 }"
    )
    server = NatsServer("tls", extra=extra).start()
    yield server
    server.close()


async def test_bridge_and_consumer_over_tls(
    tls_server: NatsServer, certs: dict[str, str], sims: list, make_bridge: Any, make_fleet: Any
) -> None:
    config = bridge_config([tls_server.url], sims[:1], [], nats={"tls_ca": certs["ca.pem"]})
    bridge = await make_bridge(config)
    fleet: AsyncFleet = await make_fleet(tls_server.url, tls={"ca": certs["ca.pem"]})
    seen: list[Any] = []
    fleet.on(("triggercontent",), seen.append)
    await fleet.replay("all")
    await fleet.relay_message_to_host(sims[0].serial, "routine:runsample")
    await fleet.wait_for(lambda: len(seen) >= 10, scale(20))
    assert bridge.health()["nats_connected"]
    # without the CA the server's certificate is not trusted: no connection
    untrusted = AsyncFleet(tls_server.url, tls={}, timeout=scale(3))
    with pytest.raises(ConnectError):
        await untrusted.connect()
    await untrusted.close()
