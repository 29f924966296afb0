"""A socket that is not a real socket: a test double put in place of ``socket.socket``.

Test suites fake the network by replacing ``socket.socket`` and
``socket.create_connection`` with objects of their own (httpretty does; cryosparc-tools'
own suite uses it). Such doubles are written for ``http.client`` and ``urllib``, so they
provide the calls those make - ``sendall``, ``makefile``, ``settimeout``, ``close`` -
and often little else (httpretty's has no ``gettimeout``, and its ``recv`` hands out
the whole canned response again on each call).

The blocking pool checks once per *new* connection whether it got a real socket (a
kept-alive connection is never checked again, so the usual call pays nothing). When it
did not, it talks through :class:`ForeignSocket`, which offers the pool the socket
calls it uses and makes them from the ``http.client`` set only: the response is read
from ``makefile("rb")``, as ``http.client`` reads it.
"""

from __future__ import annotations

import _socket
import socket
import ssl
from typing import Any, Protocol, cast

__all__ = ["ForeignSocket", "foreign_socket", "is_real"]


class ForeignSocket:
    """The pool's view of a socket-like test double.

    Args:
        sock: the object ``socket.create_connection`` returned.
        timeout: the timeout it was created with (None: blocking).
    """

    def __init__(self, sock: Any, timeout: float | None) -> None:
        self._sock = sock
        self._timeout = timeout
        self._file: Any = None
        self._fresh = True  # nothing sent yet

    def gettimeout(self) -> float | None:
        """The timeout last set (doubles may not track it)."""
        return self._timeout

    def settimeout(self, timeout: float | None) -> None:
        """Set the timeout on the double too, if it takes one (httpretty bounds its fake
        reply with it)."""
        self._timeout = timeout
        setter = getattr(self._sock, "settimeout", None)
        if setter is not None:
            setter(timeout)

    def sendall(self, data: bytes) -> None:
        """Send a request as ``http.client`` does: the head in one call, the body in a
        second (doubles such as httpretty record what each call carried); its response
        is then read from a fresh ``makefile``."""
        if self._file is not None or self._fresh:  # a new request starts with this write
            self._file = None
            self._fresh = False
            end = data.find(b"\r\n\r\n") + 4
            if 4 <= end < len(data):
                self._sock.sendall(data[:end])
                data = data[end:]
        self._sock.sendall(data)  # (the rest of a streamed body goes as it comes)

    def recv(self, size: int) -> bytes:
        """Up to *size* bytes of the response, read as ``http.client`` reads them."""
        if self._file is None:
            self._file = self._sock.makefile("rb")
        read = getattr(self._file, "read1", None) or self._file.read
        data = read(size)
        return bytes(data) if data else b""

    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        """The double's own file (``http.client.HTTPResponse`` reads from it)."""
        self._fresh = True  # a response is being read: the next write starts a request
        return self._sock.makefile(mode, *args, **kwargs)

    def fileno(self) -> int:
        """The double's descriptor, or -1 (the pool then treats it as closed)."""
        try:
            return int(self._sock.fileno())
        except Exception:  # a double may raise its own error type here
            return -1

    def setsockopt(self, *args: Any) -> None:
        """Ignored: options such as TCP_NODELAY mean nothing to a double."""

    def close(self) -> None:
        """Close the double."""
        self._file = None
        self._sock.close()


class Place(Protocol):
    """Where a connection goes, as far as TLS needs it (an ``Endpoint`` is one; a
    Protocol rather than an import of the pool's module, which imports this one)."""

    @property
    def scheme(self) -> str:
        """``http`` or ``https``."""
        ...

    @property
    def host(self) -> str:
        """The host name (for the TLS server name)."""
        ...


def is_real(sock: object) -> bool:
    """True for a socket of the ``socket`` module (TLS ones included) rather than a
    double. They all derive from the C type ``_socket.socket``, which a double that
    replaces the name ``socket.socket`` at run time does not replace."""
    return isinstance(sock, _socket.socket)


def foreign_socket(
    sock: Any, timeout: float | None, endpoint: Place, ssl_context: ssl.SSLContext | None
) -> socket.socket:
    """*sock*, a double, ready for the pool: TLS-wrapped the way the double's library
    patched ``ssl`` to do it (for ``https``), behind a :class:`ForeignSocket`."""
    try:
        if endpoint.scheme == "https":
            ctx = ssl_context or ssl.create_default_context()
            sock = ctx.wrap_socket(sock, server_hostname=endpoint.host)
    except BaseException:
        sock.close()
        raise
    # typed as a socket for the pool, which makes only the calls ForeignSocket has
    return cast("socket.socket", ForeignSocket(sock, timeout))
