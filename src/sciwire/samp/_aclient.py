"""The asyncio SAMP client core: callback server, bindings, registration.

:class:`AsyncSAMPClient` is what both APIs run on. The asyncio API uses it directly
(handlers run on the event loop; coroutine handlers become tasks). The blocking
``SAMPClient`` wraps it and passes a *runner* that moves each incoming message to a
worker thread, so blocking handlers can call back into the hub as astropy users do.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sciwire.core.patterns import Handler as Bound
from sciwire.core.patterns import Registry
from sciwire.samp._aproxy import AsyncSAMPHubProxy
from sciwire.samp._common import Handler, Receiver
from sciwire.samp._protocol import SAMP_STATUS_ERROR, client_env_response, make_ok_response
from sciwire.samp._rpc import CallbackServer
from sciwire.samp.errors import SAMPClientError

__all__ = ["AsyncSAMPClient", "Receiver", "Runner"]

logger = logging.getLogger(__name__)

Runner = Callable[[Callable[[], Any]], None]


def _positional_count(function: Handler) -> int:
    """How many positional arguments *function* takes (bound ``self`` excluded)."""
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 5
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 5
    return sum(1 for p in params if p.kind in kinds)


def _inline(job: Callable[[], Any]) -> None:
    job()


class _BindingTable:
    """The bindings of one kind (calls or notifications): ``{mtype: [function, metadata]}``
    and the :class:`Registry` matching incoming mtypes, changed under a shared lock."""

    def __init__(self, lock: threading.Lock) -> None:
        self.bindings: dict[str, list[Any]] = {}
        self._registry = Registry("mtype")
        self._ids: dict[str, int] = {}
        self._lock = lock

    def set(
        self, mtype: str, function: Handler, metadata: Any, target: Handler | None = None
    ) -> None:
        """Bind *mtype* to *function* (dispatching to *target* if given), replacing any."""
        with self._lock:
            old = self._ids.pop(mtype, None)
            if old is not None:
                self._registry.unregister(old)
            self._ids[mtype] = self._registry.register(mtype, target or function)
            self.bindings[mtype] = [function, metadata or {}]

    def remove(self, mtype: str) -> None:
        """Remove the binding of *mtype* (KeyError if none)."""
        with self._lock:
            del self.bindings[mtype]
            self._registry.unregister(self._ids.pop(mtype))

    def match(self, mtype: str) -> list[Bound]:
        """The handlers bound to patterns matching *mtype*, oldest first."""
        with self._lock:
            return self._registry.match(mtype)


class AsyncSAMPClient:
    """A SAMP client application: its XML-RPC callback server and its bindings.

    Args:
        hub: the connected :class:`AsyncSAMPHubProxy` to talk through.
        name: ``samp.name`` metadata.
        description: ``samp.description.text`` metadata.
        metadata: further metadata.
        addr: the address the callback server listens on (default 127.0.0.1; astropy
            probes the internet and uses the host name, we never do).
        port: the callback server's port (0: the system chooses).
        callable: whether the client receives calls and notifications.
        runner: runs each incoming callback job; the default runs it on the loop.
        ssl_context: serve the callbacks over TLS (an ``https`` callback URL).
        receiver: the object whose ``receive_*`` methods handle callbacks (default
            this client; the blocking facade passes itself so subclass overrides work).
    """

    def __init__(
        self,
        hub: AsyncSAMPHubProxy,
        name: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        addr: str | None = None,
        port: int = 0,
        callable: bool = True,
        *,
        runner: Runner | None = None,
        receiver: Receiver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.hub = hub
        self._ssl = ssl_context
        meta: dict[str, Any] = dict(metadata or {})
        if name is not None:
            meta["samp.name"] = name
        if description is not None:
            meta["samp.description.text"] = description
        self._metadata = meta
        self._addr = addr
        self._port = port
        self._callable = callable
        self._runner: Runner = runner or _inline
        self._receiver: Receiver = receiver if receiver is not None else self
        self._server: CallbackServer | None = None
        self._xmlrpcAddr: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._is_running = False
        self._is_registered = False
        self._public_id: str | None = None
        self._private_key: str | None = None
        self._hub_id: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: incoming callbacks dropped (wrong private key, malformed message)
        self.dropped = 0
        #: handlers that raised
        self.handler_errors = 0
        self._response_bindings: dict[str, Handler] = {}
        # bindings change on the loop while worker threads match against them
        lock = threading.Lock()
        self._notifications = _BindingTable(lock)
        self._calls = _BindingTable(lock)
        self._calls.set("samp.app.ping", self._ping, {})
        self._calls.set("client.env.get", self._client_env_get, {})

    # -- state ---------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """Whether the client is started (its callback server serving, if callable)."""
        return self._is_running

    @property
    def is_registered(self) -> bool:
        """Whether the client is registered with the hub."""
        return self._is_registered

    @property
    def callback_url(self) -> str | None:
        """The URL of the callback server (None until started, or when not callable)."""
        return self._xmlrpcAddr

    @property
    def bad_requests(self) -> int:
        """Callback requests refused as malformed (bad HTTP or XML-RPC)."""
        return self._server.bad_requests if self._server is not None else 0

    def get_private_key(self) -> str | None:
        """The private key the hub gave at registration (``samp.private-key``)."""
        return self._private_key

    def get_public_id(self) -> str | None:
        """The public id the hub gave at registration (``samp.self-id``)."""
        return self._public_id

    def get_hub_id(self) -> str | None:
        """The hub's own client id (``samp.hub-id``)."""
        return self._hub_id

    # -- life cycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Start the callback server (callable clients) and mark the client running."""
        self._loop = asyncio.get_running_loop()
        if self._is_running:
            return
        if self._callable:
            server = CallbackServer(self._dispatch, self._addr, self._port, self._ssl)
            await server.start()
            self._server = server
            scheme = "https" if self._ssl is not None else "http"
            self._xmlrpcAddr = f"{scheme}://{server.addr}:{server.port}"
            if ":" in server.addr:
                self._xmlrpcAddr = f"{scheme}://[{server.addr}]:{server.port}"
        self._is_running = True

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the callback server and cancel running handler tasks."""
        self._is_running = False
        server, self._server = self._server, None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if server is not None:
            try:
                await asyncio.wait_for(server.stop(), timeout)
            except asyncio.TimeoutError as exc:
                raise SAMPClientError(
                    f"Client was not shut down successfully (timeout={timeout}s)"
                ) from exc
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def register(self) -> None:
        """Register with the hub, set the callback URL, declare subscriptions and metadata.

        Raises:
            SAMPClientError: already registered, hub not connected, or a bad answer.
        """
        if not self.hub.is_connected:
            raise SAMPClientError("Unable to register to the SAMP Hub. Hub proxy not connected.")
        if self._private_key is not None:
            raise SAMPClientError("Client already registered")
        result = await self.hub.register(self.hub.lockfile["samp.secret"])
        if not isinstance(result, dict) or not result.get("samp.self-id"):
            raise SAMPClientError("Registration failed - samp.self-id was not set by the hub.")
        if not result.get("samp.private-key"):
            raise SAMPClientError("Registration failed - samp.private-key was not set by the hub.")
        self._public_id = result["samp.self-id"]
        self._private_key = result["samp.private-key"]
        self._hub_id = result.get("samp.hub-id")
        try:
            if self._callable:
                if not self._is_running or self._xmlrpcAddr is None:
                    await self.start()
                assert self._xmlrpcAddr is not None
                await self.hub.set_xmlrpc_callback(self._private_key, self._xmlrpcAddr)
                await self._declare_subscriptions()
            if self._metadata:
                await self.declare_metadata()
        except BaseException:
            # half registered: leave the hub as we found it so connect() can be retried
            key = self._private_key
            self._hub_id = self._public_id = self._private_key = None
            try:
                await self.hub.unregister(key)
            except Exception:
                logger.debug("unregister after a failed registration failed", exc_info=True)
            raise
        self._is_registered = True

    async def unregister(self) -> None:
        """Unregister from the hub.

        Raises:
            SAMPClientError: the hub proxy is not connected.
        """
        if not self.hub.is_connected:
            raise SAMPClientError(
                "Unable to unregister from the SAMP Hub. Hub proxy not connected."
            )
        key = self._private_key
        self._is_registered = False
        try:
            if key is not None:
                await self.hub.unregister(key)
        finally:
            self._hub_id = self._public_id = self._private_key = None

    # -- metadata and subscriptions -----------------------------------------------------

    async def declare_metadata(self, metadata: Mapping[str, Any] | None = None) -> None:
        """Declare the client's metadata (merged into what was given before).

        Raises:
            SAMPClientError: not connected or not registered.
        """
        if not (self.hub.is_connected and self._private_key is not None):
            raise SAMPClientError(
                "Unable to declare metadata. Hub unreachable or not connected or client "
                "not registered."
            )
        if metadata is not None:
            self._metadata.update(metadata)
        await self.hub.declare_metadata(self._private_key, self._metadata)

    async def declare_subscriptions(self, subscriptions: Mapping[str, Any] | None = None) -> None:
        """Declare the bound mtypes, plus *subscriptions* (``{mtype: annotations}``).

        Raises:
            SAMPClientError: the client is not callable, not connected or not registered.
        """
        if not self._callable:
            raise SAMPClientError("Client not callable.")
        if not (self.hub.is_connected and self._private_key is not None):
            raise SAMPClientError(
                "Unable to declare subscriptions. Hub unreachable or not connected or "
                "client not registered."
            )
        await self._declare_subscriptions(subscriptions)

    def subscriptions(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The subscription map the bindings imply (plus *extra*)."""
        mtypes: dict[str, Any] = {}
        for table in (self._notifications, self._calls):
            for mtype, (_, meta) in table.bindings.items():
                mtypes[mtype] = copy.deepcopy(meta)
        if extra:
            mtypes.update(copy.deepcopy(dict(extra)))
        return mtypes

    async def _declare_subscriptions(self, subscriptions: Mapping[str, Any] | None = None) -> None:
        if self._private_key is None or not self.hub.is_connected:
            return  # declared at registration
        await self.hub.declare_subscriptions(self._private_key, self.subscriptions(subscriptions))

    # -- bindings ------------------------------------------------------------------

    def _require_callable(self) -> None:
        if not self._callable:
            raise SAMPClientError("Client not callable.")

    async def _bind(
        self,
        tables: tuple[_BindingTable, ...],
        mtype: str,
        function: Handler,
        declare: bool,
        metadata: Mapping[str, Any] | None,
    ) -> None:
        self._require_callable()
        for table in tables:
            target = function
            if table is self._notifications and _positional_count(function) >= 6:
                # astropy passes msg_id=None to notification handlers taking six arguments
                def target(key: str, sender: str, mtype_: str, params: Any, extra: Any) -> Any:
                    return function(key, sender, None, mtype_, params, extra)

            table.set(mtype, function, metadata, target)
        if declare:
            await self._declare_subscriptions()

    async def _unbind(self, table: _BindingTable, mtype: str, declare: bool) -> None:
        self._require_callable()
        table.remove(mtype)
        if declare:
            await self._declare_subscriptions()

    async def bind_receive_message(
        self,
        mtype: str,
        function: Handler,
        declare: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind *mtype* calls and notifications to *function* (see bind_receive_call)."""
        await self._bind((self._calls, self._notifications), mtype, function, declare, metadata)

    async def bind_receive_notification(
        self,
        mtype: str,
        function: Handler,
        declare: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind notifications of *mtype* (``*`` and ``a.*`` allowed) to *function*.

        *function* is called as ``function(private_key, sender_id, mtype, params,
        extra)`` (or with ``msg_id=None`` after ``sender_id`` if it takes six
        arguments). With *declare* the client's subscriptions are re-declared.
        """
        await self._bind((self._notifications,), mtype, function, declare, metadata)

    async def bind_receive_call(
        self,
        mtype: str,
        function: Handler,
        declare: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind calls of *mtype* to ``function(private_key, sender_id, msg_id, mtype, params,
        extra)``; the function answers with ``reply``/``ereply``."""
        await self._bind((self._calls,), mtype, function, declare, metadata)

    def bind_receive_response(self, msg_tag: str, function: Handler) -> None:
        """Bind responses tagged *msg_tag* to ``function(private_key, responder_id, msg_tag,
        response)``."""
        self._require_callable()
        self._response_bindings[msg_tag] = function

    async def unbind_receive_notification(self, mtype: str, declare: bool = True) -> None:
        """Remove the notification binding of *mtype* (KeyError if none)."""
        await self._unbind(self._notifications, mtype, declare)

    async def unbind_receive_call(self, mtype: str, declare: bool = True) -> None:
        """Remove the call binding of *mtype* (KeyError if none)."""
        await self._unbind(self._calls, mtype, declare)

    def unbind_receive_response(self, msg_tag: str) -> None:
        """Remove the response binding of *msg_tag* (KeyError if none)."""
        self._require_callable()
        del self._response_bindings[msg_tag]

    # -- incoming ------------------------------------------------------------------

    def _dispatch(self, method: str, params: tuple[Any, ...]) -> str:
        """Check an incoming ``samp.client.*`` call and hand it to the runner."""
        receiver = self._receiver
        if method == "samp.client.receiveNotification" and len(params) == 3:
            key, sender, message = params
            self._check_message(message)
            self._runner(lambda: receiver.receive_notification(key, sender, message))
        elif method == "samp.client.receiveCall" and len(params) == 4:
            key, sender, msg_id, message = params
            self._check_message(message)
            self._runner(lambda: receiver.receive_call(key, sender, msg_id, message))
        elif method == "samp.client.receiveResponse" and len(params) == 4:
            key, responder, tag, response = params
            if not isinstance(response, dict):
                self.dropped += 1
                raise SAMPClientError("samp.client.receiveResponse: response is not a map")
            self._runner(lambda: receiver.receive_response(key, responder, tag, response))
        else:
            self.dropped += 1
            raise SAMPClientError(f"unknown method or wrong arguments: {method}/{len(params)}")
        return ""

    def _check_message(self, message: object) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("samp.mtype"), str):
            self.dropped += 1
            raise SAMPClientError("message is not a map with a samp.mtype string")

    def _key_ok(self, private_key: str) -> bool:
        if private_key == self._private_key and private_key is not None:
            return True
        self.dropped += 1
        if self._private_key is None:
            logger.debug("callback while not registered dropped")
        else:
            logger.warning("callback with a wrong private key dropped")
        return False

    def _route(
        self, private_key: str, message: dict[str, Any], table: _BindingTable
    ) -> tuple[str, Any, dict[str, Any], list[Bound]] | None:
        """Split an incoming message into mtype, params, the other keys and its handlers
        (None: a wrong private key, counted, or no mtype)."""
        if not self._key_ok(private_key) or "samp.mtype" not in message:
            return None
        extra = dict(message)
        mtype = extra.pop("samp.mtype")
        params = extra.pop("samp.params", {})
        return mtype, params, extra, table.match(mtype)

    def receive_notification(
        self, private_key: str, sender_id: str, message: dict[str, Any]
    ) -> str:
        """Dispatch a notification to the handlers bound to its mtype."""
        routed = self._route(private_key, message, self._notifications)
        if routed is None:
            return ""
        mtype, params, extra, handlers = routed
        for handler in handlers:
            self._invoke(handler.callback, (private_key, sender_id, mtype, params, extra), None)
        return ""

    def receive_call(
        self, private_key: str, sender_id: str, msg_id: str, message: dict[str, Any]
    ) -> str:
        """Dispatch a call to the handlers bound to its mtype; answer an error if none."""
        routed = self._route(private_key, message, self._calls)
        if routed is None:
            return ""
        mtype, params, extra, handlers = routed
        if not handlers:  # astropy stays silent and the caller waits forever
            self._spawn(self._error_reply(msg_id, f"no handler for {mtype}"))
        for handler in handlers:
            args = (private_key, sender_id, msg_id, mtype, params, extra)
            self._invoke(handler.callback, args, msg_id)
        return ""

    def receive_response(
        self, private_key: str, responder_id: str, msg_tag: str, response: dict[str, Any]
    ) -> str:
        """Dispatch a response to the handler bound to its msg-tag."""
        if not self._key_ok(private_key):
            return ""
        function = self._response_bindings.get(msg_tag)
        if function is not None:
            self._invoke(function, (private_key, responder_id, msg_tag, response), None)
        else:
            logger.debug("response with unbound tag %r ignored", msg_tag)
        return ""

    def _invoke(self, function: Handler, args: tuple[Any, ...], msg_id: str | None) -> None:
        try:
            result = function(*args)
        except Exception as exc:
            self._handler_failed(function, exc, msg_id)
            return
        if inspect.isawaitable(result):
            self._spawn(self._guard(result, function, msg_id))

    async def _guard(
        self, awaitable: Awaitable[Any], function: Handler, msg_id: str | None
    ) -> None:
        try:
            await awaitable
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._handler_failed(function, exc, msg_id)

    def _handler_failed(self, function: Handler, exc: BaseException, msg_id: str | None) -> None:
        self.handler_errors += 1
        logger.error("SAMP handler %r raised", function, exc_info=exc)
        if msg_id is not None:
            self._spawn(self._error_reply(msg_id, f"{type(exc).__name__}: {exc}"))

    async def _error_reply(self, msg_id: str, text: str) -> None:
        key = self._private_key
        if key is None:
            return
        try:
            await self.hub.reply(
                key,
                msg_id,
                {"samp.status": SAMP_STATUS_ERROR, "samp.error": {"samp.errortxt": text}},
            )
        except Exception:  # the handler may have replied before it raised
            logger.debug("error reply to %s not accepted", msg_id, exc_info=True)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        """Run *coro* on the client's loop, from the loop or from any other thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            if inspect.iscoroutine(coro):
                coro.close()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task = loop.create_task(_as_coro(coro))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            tracked = self._track(coro)
            try:
                asyncio.run_coroutine_threadsafe(tracked, loop)
            except RuntimeError:  # the loop closed meanwhile (client stopping)
                tracked.close()
                if inspect.iscoroutine(coro):
                    coro.close()

    async def _track(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.gather(task, return_exceptions=True)

    # -- built-in handlers -------------------------------------------------------------

    async def _ping(
        self, private_key: str, sender_id: str, msg_id: str, mtype: str, params: Any, extra: Any
    ) -> None:
        await self.hub.reply(private_key, msg_id, make_ok_response())

    async def _client_env_get(
        self, private_key: str, sender_id: str, msg_id: str, mtype: str, params: Any, extra: Any
    ) -> None:
        name = params.get("name") if isinstance(params, dict) else None
        reply = client_env_response(name if isinstance(name, str) else None)
        await self.hub.reply(private_key, msg_id, reply)


async def _as_coro(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
