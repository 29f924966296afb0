"""TLS settings from astropy's (pre-2.0) SSL arguments: https, key_file, cert_file,
cert_reqs, ca_certs, ssl_version.

``cert_reqs`` says what a side asks of its peer: ``ssl.CERT_NONE`` (0, the default:
no check), ``CERT_OPTIONAL`` or ``CERT_REQUIRED`` (the peer's certificate must chain
to ``ca_certs``). A client context that verifies also checks the host name, so a
hub's certificate must name the address in its URL (``IP:127.0.0.1``).
``ssl_version`` pins one protocol version: an ``ssl.TLSVersion`` or one of the
``ssl.PROTOCOL_TLSv1*`` numbers (``PROTOCOL_TLS``/``SSLv23`` mean "negotiate").
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from sciwire.samp.errors import SAMPClientError

__all__ = ["TlsOptions"]

_PINNED = {
    getattr(ssl, "PROTOCOL_TLSv1", -1): ssl.TLSVersion.TLSv1,
    getattr(ssl, "PROTOCOL_TLSv1_1", -2): ssl.TLSVersion.TLSv1_1,
    getattr(ssl, "PROTOCOL_TLSv1_2", -3): ssl.TLSVersion.TLSv1_2,
}


@dataclass(frozen=True)
class TlsOptions:
    """One side's SSL arguments, as astropy named them.

    The context builders raise :attr:`error` (``SAMPClientError`` by default) when a
    file cannot be read or an argument makes no sense.
    """

    key_file: str | None = None
    cert_file: str | None = None
    cert_reqs: int = ssl.CERT_NONE
    ca_certs: str | None = None
    ssl_version: Any = None
    #: what a bad argument raises (SAMPHubError for a hub)
    error: type[Exception] = SAMPClientError

    def _base(self, purpose: int) -> ssl.SSLContext:
        ctx = ssl.SSLContext(purpose)
        version = self.ssl_version
        pinned: ssl.TLSVersion | None
        if version is None or version in (ssl.PROTOCOL_TLS, ssl.PROTOCOL_TLS_CLIENT,
                                          ssl.PROTOCOL_TLS_SERVER):  # fmt: skip
            pinned = None
        elif isinstance(version, ssl.TLSVersion):
            pinned = version
        elif version in _PINNED:
            pinned = _PINNED[version]
        else:
            raise self.error(f"unsupported ssl_version {version!r}")
        if pinned is not None:
            try:
                ctx.minimum_version = ctx.maximum_version = pinned
            except (ValueError, ssl.SSLError) as exc:
                raise self.error(f"ssl_version {version!r} is not available: {exc}") from exc
        try:
            if self.cert_file is not None:
                ctx.load_cert_chain(self.cert_file, self.key_file)
            if self.ca_certs is not None:
                ctx.load_verify_locations(self.ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise self.error(f"cannot load the TLS key or certificates: {exc}") from exc
        return ctx

    def server_context(self) -> ssl.SSLContext:
        """The context of a server (hub or callback server) with these settings.

        Raises:
            Exception: :attr:`error`, when there is no ``cert_file`` or a file cannot
                be loaded.
        """
        if self.cert_file is None:
            raise self.error("https=True needs a cert_file (and its key_file)")
        ctx = self._base(ssl.PROTOCOL_TLS_SERVER)
        if self.cert_reqs not in (ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED):
            raise self.error(f"bad cert_reqs {self.cert_reqs!r}")
        if self.cert_reqs != ssl.CERT_NONE and self.ca_certs is None:
            raise self.error("cert_reqs asks for client certificates: give ca_certs")
        ctx.verify_mode = ssl.VerifyMode(self.cert_reqs)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """The context for calling an ``https`` peer with these settings."""
        ctx = self._base(ssl.PROTOCOL_TLS_CLIENT)
        if self.cert_reqs == ssl.CERT_NONE:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            if self.ca_certs is None:
                ctx.load_default_certs()
            ctx.verify_mode = ssl.VerifyMode(self.cert_reqs)
            ctx.check_hostname = self.cert_reqs == ssl.CERT_REQUIRED
        return ctx


def unverified_client_context() -> ssl.SSLContext:
    """A client context that checks nothing: only to ask "does anything answer here?".

    It offers TLS 1.2 at most: a server that wants a client certificate then refuses
    inside the handshake (an ``ssl.SSLError`` here, see :func:`tls_refusal`), where
    under TLS 1.3 it would just close the connection after it, like a dead service.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def tls_refusal(exc: BaseException) -> bool:
    """Whether *exc* (or what caused it) is a refusal during the TLS handshake.

    The blocking pool sees the server's alert as an ``ssl.SSLError``; asyncio's TLS
    transport reports the same refusal as a reset connection. Either way something
    accepted the TCP connection and spoke (or refused) TLS: a live server.
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLError | ConnectionResetError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False
