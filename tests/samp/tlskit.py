"""Self-signed certificates made at test time with the openssl command."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Cert:
    """A key and a self-signed certificate for 127.0.0.1 (the certificate is its own CA)."""

    key: str
    cert: str


def make_cert(folder: Path, name: str = "hub") -> Cert:
    """Write ``<name>.key`` and ``<name>.pem`` (EC P-256, IP:127.0.0.1) into *folder*."""
    openssl = shutil.which("openssl")
    if openssl is None:  # a system requirement of the test suite, like jsamp
        raise RuntimeError("the openssl command is needed to make test certificates")
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return Cert(str(key), str(cert))
