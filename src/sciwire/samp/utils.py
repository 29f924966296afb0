"""astropy.samp's ``utils`` module: XML-RPC proxies, a proxy pool and handler helpers."""

from __future__ import annotations

import contextlib
import http.client
import inspect
import queue
import traceback
import urllib.request
import xmlrpc.client
from collections.abc import Callable
from typing import Any

from sciwire.errors import Timeout
from sciwire.samp._conf import conf
from sciwire.samp._protocol import (
    MAX_BODY_BYTES,
    SAMP_STATUS_ERROR,  # noqa: F401 - astropy's module offers it
    SAMP_STATUS_OK,
    decode_response,
    make_error_response,
)
from sciwire.samp.errors import SAMPClientError, SAMPDataError, SAMPProxyError

__all__ = ["SAMPMsgReplierWrapper", "SAMPXXEServerProxy", "safe_xmlrpc_loads"]

#: The address :func:`internet_on` tries when none is given.
INTERNET_PROBE_URL = "http://www.ivoa.net/"


def internet_on(url: str | None = None, timeout: float = 1.0) -> bool:
    """Whether *url* (by default a public site) answers, unless ``conf.use_internet`` is off.

    sciwire's hub and clients never call this (they always bind and advertise
    127.0.0.1); it is kept for code that used astropy's.
    """
    if not conf.use_internet:
        return False
    try:
        with urllib.request.urlopen(url or INTERNET_PROBE_URL, timeout=timeout):
            return True
    except Exception:
        return False


def safe_xmlrpc_loads(
    data: bytes | str, use_datetime: bool = False, use_builtin_types: bool = False
) -> tuple[tuple[Any, ...], str | None]:
    """``xmlrpc.client.loads`` that refuses DOCTYPE and ENTITY declarations (no XXE).

    Raises:
        SAMPDataError: the document declares a DOCTYPE or an entity, or is too large.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    # decode_response runs the same DOCTYPE/ENTITY and size checks as the hub.
    if len(raw) > MAX_BODY_BYTES:
        raise SAMPDataError(f"XML-RPC document of {len(raw)} bytes exceeds {MAX_BODY_BYTES}")
    if b"<!" in raw:
        decode_response(raw)  # raises SAMPDataError on a declaration
    return xmlrpc.client.loads(raw, use_datetime, use_builtin_types)


def get_safe_parser(
    use_datetime: bool = False, use_builtin_types: bool = False
) -> tuple[Any, xmlrpc.client.Unmarshaller]:
    """A parser and unmarshaller pair that refuses DOCTYPE and entity declarations."""
    unmarshaller = xmlrpc.client.Unmarshaller(use_datetime, use_builtin_types)
    return _SafeParser(unmarshaller), unmarshaller


class _SafeParser:
    """Feeds an ExpatParser, refusing any document with a ``<!`` declaration."""

    def __init__(self, target: xmlrpc.client.Unmarshaller) -> None:
        self._parser = xmlrpc.client.ExpatParser(target)
        self._size = 0

    def feed(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > MAX_BODY_BYTES:
            raise SAMPDataError(f"XML-RPC response larger than {MAX_BODY_BYTES} bytes")
        if b"<!" in data:  # XML-RPC has no use for DOCTYPE, ENTITY or CDATA
            raise SAMPDataError("XML-RPC response with a <! declaration refused (XXE)")
        self._parser.feed(data)

    def close(self) -> None:
        self._parser.close()


class _SafeTransport(xmlrpc.client.Transport):
    def getparser(self) -> tuple[Any, xmlrpc.client.Unmarshaller]:
        return get_safe_parser(self._use_datetime, self._use_builtin_types)


class _SafeTlsTransport(xmlrpc.client.SafeTransport):
    def getparser(self) -> tuple[Any, xmlrpc.client.Unmarshaller]:
        return get_safe_parser(self._use_datetime, self._use_builtin_types)


class SAMPXXEServerProxy(xmlrpc.client.ServerProxy):
    """An ``xmlrpc.client.ServerProxy`` whose responses may not declare entities (no XXE).

    Args:
        uri: the server's URL (``http://`` or ``https://``).
        *args: passed to ``ServerProxy``.
        **kwargs: passed to ``ServerProxy``; ``context`` is the TLS context of an
            ``https://`` URL; a given ``transport`` is used as is.
    """

    def __init__(self, uri: str, *args: Any, **kwargs: Any) -> None:
        if "transport" not in kwargs:
            flags = {
                "use_datetime": kwargs.get("use_datetime", False),
                "use_builtin_types": kwargs.get("use_builtin_types", False),
            }
            if uri.lower().startswith("https:"):
                kwargs["transport"] = _SafeTlsTransport(
                    context=kwargs.pop("context", None), **flags
                )
            else:
                kwargs["transport"] = _SafeTransport(**flags)
        super().__init__(uri, *args, **kwargs)


def getattr_recursive(variable: Any, attribute: str) -> Any:
    """``getattr`` along a dotted path: ``getattr_recursive(p, "samp.hub.ping")``."""
    for part in attribute.split("."):
        variable = getattr(variable, part)
    return variable


class _PoolMethod:
    """A (possibly dotted) remote method name bound to a :class:`ServerProxyPool`."""

    def __init__(self, pool: ServerProxyPool, name: str) -> None:
        self._pool = pool
        self._name = name

    def __getattr__(self, name: str) -> _PoolMethod:
        return _PoolMethod(self._pool, f"{self._name}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._pool.call(self._name, *args, **kwargs)


class ServerProxyPool:
    """A thread-safe pool of *size* XML-RPC proxies: ``pool.samp.hub.ping()``.

    Each call borrows one proxy (waiting at most :attr:`timeout` seconds for a free
    one) and gives it back. XML-RPC faults are raised as :class:`SAMPProxyError`.

    Args:
        size: how many proxies (connections) to keep.
        proxy_class: builds each proxy (``SAMPXXEServerProxy``, say).
        *args: passed to *proxy_class*.
        **keywords: passed to *proxy_class*.
    """

    #: Seconds a call waits for a free proxy before raising :class:`sciwire.errors.Timeout`.
    timeout = 300.0

    def __init__(
        self, size: int, proxy_class: Callable[..., Any], *args: Any, **keywords: Any
    ) -> None:
        if size < 1:
            raise ValueError(f"pool size must be at least 1, not {size}")
        self._proxies: queue.Queue[Any] = queue.Queue(size)
        for _ in range(size):
            self._proxies.put(proxy_class(*args, **keywords))

    def __getattr__(self, name: str) -> _PoolMethod:
        if name.startswith("__"):
            raise AttributeError(name)
        return _PoolMethod(self, name)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the remote method *name* (dotted) on a free proxy."""
        try:
            proxy = self._proxies.get(timeout=self.timeout)
        except queue.Empty:
            raise Timeout(f"no free XML-RPC proxy within {self.timeout} s") from None
        try:
            return getattr_recursive(proxy, name)(*args, **kwargs)
        except xmlrpc.client.Fault as exc:
            if isinstance(exc, SAMPProxyError):
                raise
            raise SAMPProxyError(exc.faultCode, exc.faultString) from exc
        finally:
            self._proxies.put(proxy)

    def shutdown(self) -> None:
        """Close the connections of the idle proxies (call it once the pool is unused)."""
        while True:
            try:
                proxy = self._proxies.get_nowait()
            except queue.Empty:
                return
            # ServerProxy("close") is the stdlib's way to reach its transport's close
            with contextlib.suppress(TypeError, AttributeError, OSError, http.client.HTTPException):
                proxy("close")()


def get_num_args(f: Callable[..., Any]) -> int:
    """How many positional arguments function or method *f* takes (``self`` not counted).

    Raises:
        TypeError: *f* is neither a function nor a method.
    """
    if inspect.ismethod(f):
        return int(f.__func__.__code__.co_argcount) - 1
    if inspect.isfunction(f):
        return int(f.__code__.co_argcount)
    raise TypeError("f should be a function or a method")


class SAMPMsgReplierWrapper:
    """Decorator: a bound call handler's return value (a map) becomes its reply.

    The handler has the ``bind_receive_call`` signature ``(private_key, sender_id,
    msg_id, mtype, params, extra)``. What it returns is sent as a ``samp.ok``
    response's ``samp.result`` (nothing returned: an empty result); an exception is
    sent as a ``samp.error`` response carrying its text and traceback. Notifications
    (five arguments, or a ``None`` msg-id) just run the handler.

    Args:
        cli: the client (integrated, or a ``SAMPClient``) that received the call.
    """

    def __init__(self, cli: Any) -> None:
        self.cli = cli

    def __call__(self, f: Callable[..., Any]) -> Callable[..., None]:
        """Wrap handler *f*."""

        def wrapped_f(*args: Any) -> None:
            if len(args) == 5 or args[2] is None:  # a notification: nothing to answer
                f(*args)
                return
            try:
                result = f(*args)
            except Exception as exc:
                response = make_error_response(
                    f"{type(exc).__name__}: {exc}", debugtxt=traceback.format_exc()
                )
            else:
                response = {"samp.status": SAMP_STATUS_OK, "samp.result": result or {}}
            self._reply(args[0], args[2], response)

        wrapped_f.__wrapped__ = f  # type: ignore[attr-defined]
        return wrapped_f

    def _reply(self, private_key: str, msg_id: str, response: dict[str, Any]) -> None:
        key = self.cli.get_private_key() or private_key
        if key is None:
            raise SAMPClientError("cannot reply: the client is not registered")
        self.cli.hub.reply(key, msg_id, response)
