"""A lean, thread-safe, keep-alive HTTP/1.1 transport for the blocking client.

Every request goes through the shared blocking pool of :mod:`sciwire.core.http.client`
(raw sockets and the sans-I/O codec): the request goes out in one ``sendall`` on a
pooled keep-alive connection. The hot path (:meth:`Transport.exchange`, every JSON-RPC
call) parses the response as it arrives; :meth:`Transport.open` (for ``make_request``,
which yields a streaming response) reads it with :mod:`http.client` on the same
connection. The pool keeps a small LIFO stack of idle connections; an idle connection
that the server has closed meanwhile (it is readable: EOF or stray bytes) is dropped
before use, which covers a server restart.

Retry rule: a request is re-sent only when it surely was not received - the connection
could not be made (refused, unreachable, name not found), or the request could not be
written whole (a server cannot act on a request whose body it never fully received).
Once the request is written, any failure (timeout, reset, close) is raised, never
retried: a non-idempotent call (``enqueue_job``) must not run twice.
"""

from __future__ import annotations

import http.client
import io
import logging
import os
import re
import socket
import time
from collections.abc import Iterator, Mapping
from typing import Any

from sciwire.command._errors import CommandConnectionClosed, CommandError, CommandTimeout
from sciwire.core.http._foreign import is_real
from sciwire.core.http.client import Endpoint, HttpPool, header_block
from sciwire.core.http.codec import encode_request

__all__ = [
    "MAX_ERROR_BODY",
    "Endpoint",
    "Transport",
    "env_retries",
    "env_retry_seconds",
    "read_failure",
]

logger = logging.getLogger(__name__)

# what http.client refuses in a request target (control characters and space)
_BAD_TARGET = re.compile("[\x00-\x20\x7f]")

_CHUNKED = {"Transfer-Encoding": "chunked"}
#: bytes read from a request body file at a time
_BLOCK = 64 * 1024
#: the most of an HTTP error response's body make_request reads (into CommandError.data)
MAX_ERROR_BODY = 1 << 20


def _pieces(body: Any) -> Iterator[bytes]:
    """A streamed request body's bytes, as ``http.client`` takes them: a file is read in
    blocks (text encoded as ISO-8859-1, as http.client does), anything else iterated.
    Checked here, before anything is sent; the pieces come later.

    Raises:
        TypeError: *body* is neither (its items are checked as they come).
    """
    read = getattr(body, "read", None)
    if read is not None:
        return _blocks(read)
    try:
        items = iter(body)
    except TypeError:
        raise TypeError(
            "request data must be bytes, a file object or an iterable of bytes, "
            f"not {type(body).__name__}"
        ) from None
    return _items(items)


def _blocks(read: Any) -> Iterator[bytes]:
    while block := read(_BLOCK):
        yield block.encode("iso-8859-1") if isinstance(block, str) else bytes(block)


def _items(items: Iterator[Any]) -> Iterator[bytes]:
    for item in items:
        if isinstance(item, str):
            item = item.encode("iso-8859-1")
        elif not isinstance(item, (bytes, bytearray, memoryview)):
            raise TypeError(f"request data items must be bytes, not {type(item).__name__}")
        yield bytes(item)


def env_retries() -> int:
    """Attempts per request from ``CRYOSPARC_COMMAND_RETRIES`` (default 3, at least 1)."""
    try:
        return max(1, int(os.environ.get("CRYOSPARC_COMMAND_RETRIES", "3")))
    except ValueError:
        logger.warning("CRYOSPARC_COMMAND_RETRIES is not an integer; using 3")
        return 3


def env_retry_seconds() -> float:
    """Pause between attempts from ``CRYOSPARC_COMMAND_RETRY_SECONDS`` (default 30;
    an int when whole, as the original's ``RETRY_INTERVAL`` is)."""
    try:
        value = max(0.0, float(os.environ.get("CRYOSPARC_COMMAND_RETRY_SECONDS", "30")))
    except ValueError:
        logger.warning("CRYOSPARC_COMMAND_RETRY_SECONDS is not a number; using 30")
        return 30
    return int(value) if value.is_integer() else value


def read_failure(
    exc: BaseException, url: str, timeout: float | None, *, head: bool
) -> CommandError:
    """An :mod:`http.client` read failure (a timeout, a dropped connection, a broken
    response) as the command error: one wording for a response's head, its body and a
    streamed read.

    Args:
        exc: what the read raised.
        url: the URL requested.
        timeout: the socket timeout in force.
        head: the head was being read (the request may have been acted on, and is not
            re-sent).
    """
    if head:
        note = "request not re-sent: it may have been processed"
        if isinstance(exc, TimeoutError):
            return CommandTimeout(
                f"command did not reply within timeout of {timeout} seconds ({note})", url=url
            )
        return CommandConnectionClosed(
            f"connection closed before a response ({type(exc).__name__}: {exc}); {note}",
            url=url,
        )
    if isinstance(exc, TimeoutError):
        return CommandTimeout(
            f"response body not received within timeout of {timeout} seconds", url=url
        )
    return CommandConnectionClosed(
        f"connection closed while reading the response ({type(exc).__name__}: {exc})", url=url
    )


class _DeadlineReader(io.RawIOBase):
    """A socket as :class:`http.client.HTTPResponse` reads it (``makefile("rb")``),
    whose reads all end by *deadline* while that is set, and then each get the
    socket's own timeout."""

    def __init__(self, sock: socket.socket, deadline: float | None) -> None:
        super().__init__()
        self._sock = sock
        self.deadline = deadline

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        """The buffered reader http.client takes."""
        return io.BufferedReader(self)

    def readable(self) -> bool:
        """True."""
        return True

    def readinto(self, buffer: Any) -> int:
        """One ``recv_into``, waiting no later than the deadline."""
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("response head not received by the deadline")
            self._sock.settimeout(left)
        return self._sock.recv_into(buffer)

    def fileno(self) -> int:
        """The socket's descriptor."""
        return self._sock.fileno()


class Transport(HttpPool):
    """Blocking keep-alive HTTP for one endpoint, safe to share between threads.

    The hot path (:meth:`call`, :meth:`exchange`) is the shared
    :class:`~sciwire.core.http.client.HttpPool`; :meth:`open` adds a streaming
    :mod:`http.client` response reader on the same pooled connections, for
    ``make_request``.

    Takes :class:`~sciwire.core.http.client.HttpPool`'s arguments; the command
    client passes its :meth:`~sciwire.command._calls.CallCore.pool_options`.
    """

    log = logger

    def release(self, sock: socket.socket) -> None:
        """Give a connection whose response was read whole back to the pool."""
        self._release_raw(sock)

    # -- requests -----------------------------------------------------------------

    def open(
        self, method: str, path: str, body: Any, headers: Mapping[str, str]
    ) -> tuple[socket.socket, http.client.HTTPResponse]:
        """Send one request and return its connection and (unread) response.

        The request goes out on the pool's connections under its retry rule; the
        response is read with :mod:`http.client`. The caller reads the response, then
        calls :meth:`release` (whole body read, keep-alive) or closes both.

        Args:
            method: the HTTP method.
            path: the request target.
            body: None, bytes-like, or - as ``urllib`` takes them - a binary file or an
                iterable of bytes, streamed with chunked transfer coding (or as is when
                *headers* give a Content-Length).
            headers: the request headers (Host and the body's framing are added).

        Raises:
            CommandConnectError: no connection after every attempt.
            CommandTimeout: the server did not answer within the timeout.
            CommandConnectionClosed: the connection failed after the request was sent.
        """
        if _BAD_TARGET.search(path):
            raise http.client.InvalidURL(f"URL can't contain control characters. {path!r}")
        url = self.endpoint.origin + path
        stream = None
        chunked = False
        if body is None or isinstance(body, (bytes, bytearray, memoryview)):
            data = encode_request(
                method, path, self._host_header, headers, None if body is None else bytes(body)
            )
        else:
            stream = _pieces(body)
            # chunked, unless the caller framed the body with a Content-Length of its
            # own (as http.client decides)
            chunked = not any(k.lower() == "content-length" for k in headers)
            data = self._stream_head(method, path, {**headers, **_CHUNKED} if chunked else headers)
        sock, _reused, _attempt = self._send(data, url, 0)
        if stream is not None:
            # A streamed body cannot be re-sent (an iterator is spent), and a server can
            # act on part of it: a failure from here on is raised, never retried.
            self._send_body(sock, stream, url, chunked)
        if sock.gettimeout() != self.timeout:
            sock.settimeout(self.timeout)  # the pool's, for each read of http.client
        reader: _DeadlineReader | None = None
        if is_real(sock) and self.timeout is not None:
            # the head must arrive whole within the timeout (a server sending it a
            # byte at a time would otherwise hold the call for ever); the body's reads
            # then each get the timeout, as http.client's do
            reader = _DeadlineReader(sock, time.monotonic() + self.timeout)
        resp = http.client.HTTPResponse(reader or sock, method=method)  # type: ignore[arg-type]
        try:
            resp.begin()
        except (OSError, http.client.HTTPException) as exc:
            resp.close()
            sock.close()
            raise read_failure(exc, url, self.timeout, head=True) from exc
        if reader is not None:
            reader.deadline = None
            sock.settimeout(self.timeout)
        return sock, resp

    def _stream_head(self, method: str, path: str, headers: Mapping[str, str]) -> bytes:
        """The head of a request whose body follows in pieces (framed by *headers*)."""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self._host_header}\r\n"
        return head.encode("latin-1") + header_block(headers)

    def _send_body(
        self, sock: socket.socket, body: Iterator[bytes], url: str, chunked: bool
    ) -> None:
        """Write a file's or an iterable's bytes after the head, closing on failure."""
        try:
            for piece in body:
                if piece:  # an empty chunk would end a chunked body early
                    sock.sendall(b"%X\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except TimeoutError as exc:
            sock.close()
            raise CommandTimeout(
                f"request body not sent within timeout of {self.timeout} seconds "
                "(not re-sent: the server may have acted on part of it)",
                url=url,
            ) from exc
        except OSError as exc:
            sock.close()
            raise CommandConnectionClosed(
                f"connection failed while sending the request body ({type(exc).__name__}: "
                f"{exc}); not re-sent: the server may have acted on part of it",
                url=url,
            ) from exc
        except BaseException:
            sock.close()  # the caller's file or iterator failed: the request is incomplete
            raise

    def read_error_body(
        self, sock: socket.socket, resp: http.client.HTTPResponse, url: str
    ) -> bytes:
        """An error response's body, at most :data:`MAX_ERROR_BODY` bytes (the rest is
        not read and the connection is closed); release or close the connection.

        Raises:
            CommandTimeout: the body did not arrive within the timeout.
            CommandConnectionClosed: the connection failed while it was read.
        """
        try:
            data = resp.read(MAX_ERROR_BODY + 1)
        except (OSError, http.client.HTTPException) as exc:
            resp.close()
            sock.close()
            raise read_failure(exc, url, self.timeout, head=False) from exc
        if len(data) > MAX_ERROR_BODY or not resp.isclosed() or resp.will_close:
            resp.close()  # (what is left unread would be taken for the next response)
            sock.close()
        else:
            self.release(sock)
        return data[:MAX_ERROR_BODY]
