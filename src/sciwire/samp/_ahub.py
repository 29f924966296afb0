"""The asyncio SAMP hub: Standard Profile and Web Profile on one event loop.

:class:`AsyncSAMPHub` runs on the caller's loop (the blocking
:class:`sciwire.samp.hub.SAMPHubServer` runs one on a portal thread). Its
Standard Profile server (:mod:`sciwire.samp._hubhttp`), its Web Profile
(:mod:`sciwire.samp._web` over :mod:`sciwire.samp._webhttp`) and its callback delivery
(:mod:`sciwire.samp._delivery`) are all on :mod:`sciwire.core.http`; only the Web
Profile's URL translator fetches remote documents with aiohttp. No thread per message. The hub
state (:mod:`sciwire.samp._hubstate`) registers a msg-id before its call is delivered;
``callAndWait`` awaits a future and honours its timeout. A recipient whose callback
endpoint refuses connections is unregistered and the calls pending on it are
answered with an error response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from sciwire.errors import ConnectError, SciwireError
from sciwire.samp import _protocol as P
from sciwire.samp._delivery import Courier
from sciwire.samp._http import Accepted, stop_serving
from sciwire.samp._hubhttp import StdConnection
from sciwire.samp._hublock import check_existing, lockfile_path, remove_lockfile, write_hub_lockfile
from sciwire.samp._hubstate import Client, Delivery, Effect, HubFault, HubState, Resolve
from sciwire.samp._tls import TlsOptions
from sciwire.samp._web import WebProfile
from sciwire.samp._webhttp import STOP_GRACE
from sciwire.samp.errors import SAMPDataError, SAMPHubError

__all__ = ["AsyncSAMPHub", "WebAuth"]

logger = logging.getLogger(__name__)

#: A Web Profile consent policy: "deny", "allow", or a callable given the
#: registration request (``samp.name``, origin, address...) returning a bool (or an
#: awaitable of one).
WebAuth = str | Callable[[dict[str, Any]], "bool | Awaitable[bool]"]

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}  # where the hub binds without a warning


class AsyncSAMPHub:
    """A SAMP hub on the running asyncio loop.

    Args:
        secret: the registration secret (random from :mod:`secrets` if None).
        addr: address to bind (127.0.0.1 if None; the hub is loopback-only by default).
        port: Standard Profile port (0 picks a free one).
        lockfile: lockfile path; None means ``SAMP_HUB=std-lockurl:`` or ``~/.samp``
            (mode "single") or a new file in ``~/.samp-1/`` (mode "multiple").
        timeout: stop the hub after this many seconds without any call (0 = never).
        client_timeout: disconnect a client silent this long (0 = never).
        mode: "single" (the user's one hub) or "multiple".
        label: a label written to the lockfile.
        web_profile: also serve the Web Profile.
        web_auth: Web Profile consent policy: "deny" (default: a headless hub has no
            one to ask), "allow", or a callable (see :data:`WebAuth`).
        web_port: the Web Profile port (21012 by the spec; 0 picks a free one).
        pool_size: concurrent outgoing callback connections per client endpoint.
        strict: refuse XML-RPC ints/floats/bools (JSAMP's behaviour). By default they
            are relayed as sent, as astropy's hub does.
        coerce: turn XML-RPC ints/floats/bools into SAMP strings before relaying them
            (for recipients that refuse them, such as JSAMP clients).
        web_restrict: limit Web Profile clients to safe mtypes toward desktop clients.
        max_body: the largest XML-RPC body accepted, in bytes.
        write_lockfile: write (and later remove) the lockfile.
        web_idle: unregister a Web Profile client that takes callbacks but has not
            polled for this many seconds (a closed page); 0 = never.
        https: serve the Standard Profile over TLS (``https://`` in the lockfile).
        key_file, cert_file: the hub's TLS key and certificate (PEM).
        cert_reqs: ``ssl.CERT_NONE`` (default), ``CERT_OPTIONAL`` or ``CERT_REQUIRED``:
            what the hub asks of clients' certificates, and whether it checks the
            certificates of ``https`` callback endpoints.
        ca_certs: the CA certificates (PEM) those checks trust.
        ssl_version: pin one TLS version (see :mod:`sciwire.samp._tls`).
    """

    def __init__(
        self,
        secret: str | None = None,
        addr: str | None = None,
        port: int = 0,
        lockfile: str | os.PathLike[str] | None = None,
        timeout: float = 0,
        client_timeout: float = 0,
        mode: str = "single",
        label: str = "",
        web_profile: bool = True,
        web_auth: WebAuth = "deny",
        web_port: int = 21012,
        pool_size: int = 20,
        *,
        strict: bool = False,
        coerce: bool = False,
        web_restrict: bool = True,
        max_body: int = P.MAX_BODY_BYTES,
        write_lockfile: bool = True,
        web_idle: float = 120.0,
        https: bool = False,
        key_file: str | None = None,
        cert_file: str | None = None,
        cert_reqs: int = 0,
        ca_certs: str | None = None,
        ssl_version: Any = None,
    ) -> None:
        if mode not in ("single", "multiple"):
            raise ValueError(f"mode must be 'single' or 'multiple', not {mode!r}")
        if isinstance(web_auth, str) and web_auth not in ("deny", "allow"):
            raise ValueError(f"web_auth must be 'deny', 'allow' or a callable, not {web_auth!r}")
        self.id = f"sciwire-{uuid.uuid4().hex}"
        self._secret = secret or secrets.token_urlsafe(24)
        self._addr = addr or "127.0.0.1"
        self._port = port
        self._custom_lockfile = None if lockfile is None else os.fspath(lockfile)
        self._timeout = float(timeout or 0)
        self._client_timeout = float(client_timeout or 0)
        self._mode = mode
        self._label = label
        self._web_profile = web_profile
        self.web_auth: WebAuth = web_auth
        self._web_port = web_port
        self._pool_size = max(1, int(pool_size))
        self._max_body = max_body
        self._write_lockfile = write_lockfile
        self._web_idle = float(web_idle)
        self.state = HubState(self._secret, strict=strict, coerce=coerce, web_restrict=web_restrict)
        tls = TlsOptions(key_file, cert_file, cert_reqs, ca_certs, ssl_version, SAMPHubError)
        # built now so that bad TLS arguments fail in the constructor, not at start()
        self._ssl = tls.server_context() if https else None
        self._server: asyncio.Server | None = None
        self._conns: set[StdConnection] = set()
        self._accepted = Accepted()  # from accept to close, for stop (issue #13)
        #: malformed HTTP or XML-RPC requests answered with an error (counted)
        self.bad_requests = 0
        self._session: aiohttp.ClientSession | None = None
        self._courier = Courier(self._pool_size, max_body)
        self._courier.ssl_context = tls.client_context()
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped: asyncio.Event | None = None
        self._running = False
        self._lockfile: str | None = None
        self._url = ""
        self._activity: dict[str, float] = {}
        self._last_activity = 0.0
        self.web: WebProfile | None = None  # when enabled
        #: deliveries that failed (counted, logged at debug)
        self.failed_deliveries = 0

    # -- properties ---------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._running

    @property
    def url(self) -> str:
        """The Standard Profile XML-RPC endpoint."""
        return self._url

    @property
    def port(self) -> int:
        """The Standard Profile port actually bound."""
        return self._port

    @property
    def web_port(self) -> int:
        """The Web Profile port actually bound (0 when disabled)."""
        return self.web.port if self.web is not None else 0

    @property
    def lockfile(self) -> str | None:
        """The lockfile path written at start (None before, or when not writing one)."""
        return self._lockfile

    @property
    def params(self) -> dict[str, str]:
        """The hub parameters, as written to the lockfile."""
        return {
            "samp.secret": self._secret,
            "samp.hub.xmlrpc.url": self._url,
            "samp.profile.version": P.PROFILE_VERSION,
            "hub.id": self.id,
            "hub.label": self._label or f"Hub {self.id}",
        }

    # -- life cycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Check the lockfile, bind the servers and write the lockfile.

        Raises:
            SAMPHubError: already running, another live hub owns the lockfile, or a
                port cannot be bound.
        """
        if self._running:
            raise SAMPHubError("Hub is already running")
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=self._pool_size)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
        )
        accepted = self._accepted = Accepted()
        try:
            path = self._lockfile_path()
            if path is not None:
                await check_existing(path)
            self._server = await loop.create_server(
                lambda: StdConnection(
                    self.handle_std,
                    self._max_body,
                    self._conns,
                    self._bad,
                    accepted,
                    early=self._ssl is None,
                ),
                self._addr,
                self._port,
                backlog=1024,
                ssl=self._ssl,
            )
            self._port = int(self._server.sockets[0].getsockname()[1])
            scheme = "https" if self._ssl is not None else "http"
            self._url = f"{scheme}://{_url_host(self._addr)}:{self._port}/xmlrpc"
            if self._web_profile:
                self.web = WebProfile(self, self._addr, self._web_port)
                try:
                    await self.web.start()
                except OSError as exc:
                    raise OSError(
                        f"Web Profile port {self._web_port} unavailable ({exc.strerror or exc}); "
                        "another hub may hold it: disable the Web Profile (--no-web, "
                        "web_profile=False) or choose web_port"
                    ) from exc
            if path is not None:
                write_hub_lockfile(path, self.params)
                self._lockfile = path
        except OSError as exc:
            await self._close()
            raise SAMPHubError(f"cannot start the SAMP hub: {exc}") from exc
        except BaseException:
            await self._close()
            raise
        if self._addr not in _LOOPBACK:
            logger.warning(
                "SAMP hub bound to %s: reachable beyond this machine (the secret still gates "
                "registration; the Web Profile refuses non-loopback callers)",
                self._addr,
            )
        self._running = True
        self._last_activity = loop.time()
        if self._timeout > 0 or self._client_timeout > 0:
            self._spawn(self._watchdog())
        if self.web is not None and self._web_idle > 0:
            self._spawn(self.web.reap(self._web_idle, min(10.0, self._web_idle / 2)))
        logger.info("SAMP hub %s listening at %s", self.id, self._url)

    async def stop(self) -> None:
        """Tell the clients, close the servers and remove the lockfile. Idempotent."""
        if not self._running:
            return
        self._running = False
        deliveries: list[Delivery] = []
        for effect in self.state.shutdown():
            if isinstance(effect, Delivery) and effect.recipient.profile != "web":
                deliveries.append(effect)
            else:
                self._apply([effect])
        if deliveries:  # give the shutdown event a short chance to reach the clients
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.gather(*(self._deliver(d) for d in deliveries), return_exceptions=True),
                    2.0,
                )
        await self._close()
        logger.info("SAMP hub %s stopped", self.id)

    async def wait_stopped(self) -> None:
        """Wait until the hub stops (by :meth:`stop` or its inactivity timeout)."""
        if self._stopped is not None:
            await self._stopped.wait()

    async def _close(self) -> None:
        self._running = False
        for future in self._waiters.values():
            if not future.done():
                future.set_result(P.make_error_response("hub shut down"))
        self._waiters.clear()
        if self.web is not None:
            await self.web.stop()
        if self._server is not None:
            server, self._server = self._server, None
            await stop_serving(server, self._accepted, STOP_GRACE)
            self._conns.clear()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._courier.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._remove_lock()
        if self._stopped is not None:
            self._stopped.set()

    def _lockfile_path(self) -> str | None:
        if not self._write_lockfile:
            return None
        return lockfile_path(self._custom_lockfile, self._mode)

    def _remove_lock(self) -> None:
        path, self._lockfile = self._lockfile, None
        if path is not None:
            remove_lockfile(path, self._secret)

    # -- Standard Profile HTTP ------------------------------------------------------

    def _bad(self) -> None:
        self.bad_requests += 1

    def handle_std(self, body: bytes) -> bytes | Awaitable[bytes]:
        """Answer one Standard Profile XML-RPC body: at once, or later for callAndWait."""
        try:
            method, params = P.decode_call(body, max_size=self._max_body)
        except SAMPDataError as exc:
            self.bad_requests += 1
            return P.encode_fault(1, f"bad XML-RPC request: {exc}")
        if not method.startswith("samp.hub."):
            return P.encode_fault(1, f"unknown method {method[:100]!r}")
        name = method[len("samp.hub.") :]
        if name == "callAndWait":
            return self._guarded(method, self.common(name, params))
        try:
            return P.encode_response(self.dispatch_sync(name, params))
        except Exception as exc:
            return self._fault(method, exc)

    async def _guarded(self, method: str, work: Awaitable[Any]) -> bytes:
        try:
            return P.encode_response(await work)
        except Exception as exc:
            return self._fault(method, exc)

    @staticmethod
    def _fault(method: str, exc: Exception) -> bytes:
        if isinstance(exc, HubFault | SAMPDataError):
            return P.encode_fault(1, str(exc))
        logger.exception("hub method %s failed", method)
        return P.encode_fault(1, f"internal hub error in {method}: {type(exc).__name__}")

    async def rpc(self, body: bytes, prefix: str, web_context: dict[str, Any] | None) -> bytes:
        """Decode one XML-RPC call, run it, and encode its result or fault."""
        try:
            method, params = P.decode_call(body, max_size=self._max_body)
        except SAMPDataError as exc:
            self.bad_requests += 1
            return P.encode_fault(1, f"bad XML-RPC request: {exc}")
        if not method.startswith(prefix):
            return P.encode_fault(1, f"unknown method {method[:100]!r}")
        name = method[len(prefix) :]
        if web_context is not None:
            if self.web is None:  # only the Web Profile passes a context
                return P.encode_fault(1, "the Web Profile is not running")
            work = self.web.dispatch(name, params, web_context)
        else:
            work = self.common(name, params)
        return await self._guarded(method, work)

    def dispatch_sync(self, name: str, params: tuple[Any, ...]) -> Any:
        """Run a Standard Profile hub method that needs no waiting (all but callAndWait)."""
        if name == "register":
            _arity(name, params, 1)
            client, effects = self.state.register(params[0])
            self._touch(client)
            self._apply(effects)
            return self.state.reg_info(client)
        if name == "ping":
            return ""
        if name == "setXmlrpcCallback":
            _arity(name, params, 2)
            self.state.set_callback(params[0], params[1])
            self._touch_key(params[0])
            return ""
        return self.common_sync(name, params)

    async def common(self, name: str, params: tuple[Any, ...]) -> Any:
        """Run a hub method both profiles share (the private key comes first)."""
        if name == "callAndWait":
            _arity(name, params, 4)
            self._touch_key(params[0])
            return await self._call_and_wait(*params)
        return self.common_sync(name, params)

    def common_sync(self, name: str, params: tuple[Any, ...]) -> Any:
        """Run a shared hub method that needs no waiting."""
        spec = _COMMON.get(name)
        if spec is None or name == "callAndWait":
            raise HubFault(f"unknown hub method {name[:100]!r}")
        _arity(name, params, spec)
        state = self.state
        key = params[0]
        self._touch_key(key)
        if name == "unregister":
            client = state.client_by_key(key)
            self._apply(state.unregister(key))
            self._forget(client)
            return ""
        if name == "declareMetadata":
            self._apply(state.declare_metadata(key, params[1]))
            return ""
        if name == "getMetadata":
            return state.get_metadata(key, params[1])
        if name == "declareSubscriptions":
            self._apply(state.declare_subscriptions(key, params[1]))
            return ""
        if name == "getSubscriptions":
            return state.get_subscriptions(key, params[1])
        if name == "getRegisteredClients":
            return state.get_registered_clients(key)
        if name == "getSubscribedClients":
            return state.get_subscribed_clients(key, params[1])
        if name == "notify":
            self._apply(state.notify(key, params[1], params[2]))
            return ""
        if name == "notifyAll":
            ids, effects = state.notify_all(key, params[1])
            self._apply(effects)
            return ids
        if name == "call":
            msg_id, effects = state.call(key, params[1], params[2], params[3])
            self._apply(effects)
            return msg_id
        if name == "callAll":
            ids_map, effects = state.call_all(key, params[1], params[2])
            self._apply(effects)
            return ids_map
        if name == "reply":
            self._apply(state.reply(key, params[1], params[2]))
            return ""
        raise HubFault(f"unknown hub method {name!r}")  # pragma: no cover

    async def _call_and_wait(self, key: Any, recipient: Any, message: Any, timeout: Any) -> Any:
        seconds = _timeout_seconds(timeout)
        msg_id, effects = self.state.call_and_wait(key, recipient, message)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[msg_id] = future  # before any effect can resolve it
        self._apply(effects)
        try:
            if seconds is None:
                return await future
            return await asyncio.wait_for(future, seconds)
        except asyncio.TimeoutError:
            raise HubFault(f"callAndWait timed out after {seconds} s (msg-id {msg_id})") from None
        finally:
            self._waiters.pop(msg_id, None)
            self.state.abandon(msg_id)

    # -- effects ------------------------------------------------------------------

    def _apply(self, effects: list[Effect]) -> None:
        cache: dict[int, bytes] = {}  # shared args (a broadcast) are encoded once
        for effect in effects:
            if isinstance(effect, Resolve):
                future = self._waiters.get(effect.msg_id)
                if future is not None and not future.done():
                    future.set_result(effect.response)
            elif effect.recipient.profile == "web":
                if self.web is not None:
                    self.web.enqueue(effect)
            elif self._running:
                self._spawn(self._deliver(effect, self._courier.encode(effect, cache)))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery, body: bytes | None = None) -> None:
        client = delivery.recipient
        url = client.callback_url
        if url is None:
            return
        if body is None:
            body = self._courier.encode(delivery)
        try:
            await self._courier.post(url, body)
        except ConnectError as exc:
            self.failed_deliveries += 1
            if self.state.client_by_id_or_none(client.public_id) is client:
                logger.info(
                    "client %s is unreachable (%s): unregistering it", client.public_id, exc
                )
                self._apply(self.state.remove(client, "became unreachable"))
                self._forget(client)
        except (SciwireError, asyncio.TimeoutError) as exc:
            self.failed_deliveries += 1
            logger.debug("delivery of %s to %s failed: %s", delivery.method, client.public_id, exc)
            self._apply(self.state.delivery_failed(delivery, str(exc) or type(exc).__name__))
        except Exception as exc:  # a bug: log it, answer the call, keep serving
            self.failed_deliveries += 1
            logger.exception("delivery of %s to %s failed", delivery.method, client.public_id)
            self._apply(self.state.delivery_failed(delivery, type(exc).__name__))

    def _forget(self, client: Client) -> None:
        if client.profile == "web" and self.web is not None:
            self.web.forget(client)
        self._activity.pop(client.public_id, None)
        url = client.callback_url
        if url is not None and all(c.callback_url != url for c in self.state.clients):
            self._spawn(self._courier.drop(url))

    # -- activity and timeouts ----------------------------------------------------------

    # -- the Web Profile's seam (sciwire.samp._web.WebHubHost) ----------------------

    @property
    def max_body(self) -> int:
        """Largest request body the hub accepts, in bytes."""
        return self._max_body

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The hub's HTTP client session while it runs (the URL translator's)."""
        return self._session

    def touch(self, client: Client) -> None:
        """Note activity of *client* (for the idle timeouts)."""
        self._touch(client)

    def apply(self, effects: list[Effect]) -> None:
        """Carry out what a state change asks for (deliveries, resolved waits)."""
        self._apply(effects)

    def _touch(self, client: Client) -> None:
        now = asyncio.get_running_loop().time()
        self._last_activity = now
        self._activity[client.public_id] = now

    def _touch_key(self, key: object) -> None:
        client = self.state.client_by_key_or_none(key)
        if client is not None:
            self._touch(client)

    async def _watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        period = min(t for t in (self._timeout, self._client_timeout, 1.0) if t > 0)
        while self._running:
            await asyncio.sleep(period)
            now = loop.time()
            if self._timeout > 0 and now - self._last_activity > self._timeout:
                logger.info("SAMP hub idle for %.0f s: stopping", self._timeout)
                self._spawn(self.stop())
                return
            if self._client_timeout > 0:
                for client in self.state.clients:
                    seen = self._activity.get(client.public_id, now)
                    if now - seen > self._client_timeout:
                        self._apply(self.state.disconnect(client, "client timed out"))
                        self._forget(client)


def _arity(name: str, params: tuple[Any, ...], count: int) -> None:
    if len(params) != count:
        raise HubFault(f"{name} takes {count} argument(s), {len(params)} given")


def _timeout_seconds(value: object) -> float | None:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise HubFault(f"callAndWait timeout must be a number string, not {value!r}") from None
    return None if seconds <= 0 else seconds


def _url_host(addr: str) -> str:
    return f"[{addr}]" if ":" in addr else addr


_COMMON: dict[str, int] = {
    "unregister": 1,
    "declareMetadata": 2,
    "getMetadata": 2,
    "declareSubscriptions": 2,
    "getSubscriptions": 2,
    "getRegisteredClients": 1,
    "getSubscribedClients": 2,
    "notify": 3,
    "notifyAll": 2,
    "call": 4,
    "callAll": 3,
    "callAndWait": 4,
    "reply": 3,
}
