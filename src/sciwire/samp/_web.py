"""The SAMP Web Profile of the hub: CORS, consent, pull queues and the URL translator.

Web clients (scripts in browser pages) call ``samp.webhub.*`` on port 21012 (loopback
only). Registration needs consent: the hub's ``web_auth`` policy ("deny", "allow" or
a callable shown the request and its Origin). Callbacks wait in a per-client queue
that ``pullCallbacks`` drains as a true long poll. The URL translator fetches only
URLs the client was sent by the hub (in messages or responses), so a page cannot use
the hub to read arbitrary local files. HTTP is :mod:`sciwire.samp._webhttp` (core.http);
remote documents are fetched with the hub's aiohttp session.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import mimetypes
import os
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from sciwire.samp import _protocol as P
from sciwire.samp._hubstate import Client, Delivery, Effect, HubFault, HubState
from sciwire.samp._webhttp import WebReply, WebRequest, WebServer
from sciwire.samp.errors import SAMPDataError

__all__ = ["WebHubHost", "WebProfile"]

logger = logging.getLogger(__name__)

#: Most callbacks kept for a web client that does not poll; older ones are dropped.
MAX_QUEUE = 10_000
#: Most URLs remembered per web client for the translator.
MAX_URLS = 10_000
#: Largest document the translator relays.
MAX_TRANSLATED = 256 * 1024 * 1024

_LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
_URL_SCHEMES = ("http://", "https://", "ftp://", "file:")

CROSSDOMAIN_XML = b"""<?xml version="1.0"?>
<cross-domain-policy>
  <site-control permitted-cross-domain-policies="all"/>
  <allow-access-from domain="*"/>
  <allow-http-request-headers-from domain="*" headers="*"/>
</cross-domain-policy>
"""

CLIENTACCESSPOLICY_XML = b"""<?xml version="1.0" encoding="utf-8"?>
<access-policy>
  <cross-domain-access>
    <policy>
      <allow-from http-request-headers="*">
        <domain uri="*"/>
      </allow-from>
      <grant-to>
        <resource path="/" include-subpaths="true"/>
      </grant-to>
    </policy>
  </cross-domain-access>
</access-policy>
"""


@dataclass
class _Queue:
    items: list[dict[str, Any]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    urls: set[str] = field(default_factory=set)
    dropped: int = 0
    polling: int = 0  # long polls now held
    last_poll: float = 0.0  # loop time the last poll ended (or the queue was made)


def xml_response(body: bytes, headers: dict[str, str] | None = None) -> WebReply:
    """An HTTP 200 carrying an XML-RPC body."""
    return WebReply(200, body, "text/xml", dict(headers or {}))


class WebHubHost(Protocol):
    """What the Web Profile needs of its hub (``AsyncSAMPHub`` fits).

    The seam between the two: the hub imports this module, so this module names
    the hub only through this protocol and reads none of its private attributes.
    """

    @property
    def state(self) -> HubState:
        """The hub's registry of clients and messages."""

    @property
    def web_auth(self) -> object:
        """The consent policy: "deny", "allow" or a callable."""

    @property
    def max_body(self) -> int:
        """Largest request body the hub accepts, in bytes."""

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The hub's HTTP client session (None when stopped), for the URL translator."""

    def touch(self, client: Client) -> None:
        """Note activity of *client* (for the idle timeouts)."""

    def apply(self, effects: list[Effect]) -> None:
        """Carry out what a state change asks for (deliveries, resolved waits)."""

    async def rpc(self, body: bytes, prefix: str, web_context: dict[str, Any] | None) -> bytes:
        """Answer one XML-RPC request body of the profile with *prefix*."""

    async def common(self, name: str, params: tuple[Any, ...]) -> Any:
        """Run a hub method both profiles share."""


class WebProfile:
    """The Web Profile server of an asyncio SAMP hub (seen as a :class:`WebHubHost`)."""

    def __init__(self, hub: WebHubHost, addr: str, port: int) -> None:
        self.hub = hub
        self._addr = addr
        self.port = port
        self._queues: dict[str, _Queue] = {}
        self._polls: set[asyncio.Event] = set()  # events of the long polls now held
        self._closed = False
        self._server = WebServer(self._handle, hub.max_body)

    async def start(self) -> None:
        """Bind the Web Profile HTTP server (OSError when the port is taken)."""
        await self._server.start(self._addr, self.port)
        self.port = self._server.port

    def close(self) -> None:
        """Wake every long poll (the hub is stopping)."""
        self._closed = True
        for event in self._polls:
            event.set()

    async def stop(self) -> None:
        """Close the listener and the connections (after :meth:`close`)."""
        self.close()
        await self._server.stop()

    def forget(self, client: Client) -> None:
        """Drop a departed web client's queue.

        A long poll it still holds is left to its timeout (or to :meth:`close`): woken
        now, JSAMP's poller would poll again with the dead key and log a fault.
        """
        self._queues.pop(client.private_key, None)

    @property
    def base_url(self) -> str:
        """The Web Profile endpoint."""
        return f"http://127.0.0.1:{self.port}/"

    # -- HTTP -----------------------------------------------------------------------

    async def _handle(self, request: WebRequest) -> WebReply:
        if request.remote not in _LOOPBACK:
            return WebReply(403, b"SAMP Web Profile: loopback clients only")
        cors = _cors_headers(request)
        if request.method == "OPTIONS":
            return WebReply(200, headers=_preflight_headers(request, cors))
        path = request.path
        if request.method == "GET" and path == "/crossdomain.xml":
            return WebReply(200, CROSSDOMAIN_XML, "text/x-cross-domain-policy", cors)
        if request.method == "GET" and path == "/clientaccesspolicy.xml":
            return WebReply(200, CLIENTACCESSPOLICY_XML, "text/xml", cors)
        if path.startswith("/translator/") and request.method in ("GET", "HEAD"):
            return await self._translate(request, path[len("/translator/") :], cors)
        if request.method != "POST":
            return WebReply(405, headers={"Allow": "POST, OPTIONS", **cors})
        context = {"origin": request.headers.get("origin", ""), "remote": request.remote}
        return xml_response(await self.hub.rpc(request.body, "samp.webhub.", context), cors)

    # -- methods ------------------------------------------------------------------------

    async def dispatch(self, name: str, params: tuple[Any, ...], context: dict[str, Any]) -> Any:
        """Run the Web Profile hub method *name* (without the ``samp.webhub.`` prefix)."""
        state = self.hub.state
        if name == "register":
            if len(params) != 1:
                raise HubFault("register takes 1 argument")
            return await self._register(params[0], context)
        if name == "ping":
            return ""
        if name in ("setXmlrpcCallback",):
            raise HubFault(f"{name} is not a Web Profile method")
        if name == "allowReverseCallbacks":
            if len(params) != 2:
                raise HubFault("allowReverseCallbacks takes 2 arguments")
            client = self._web_client(params[0])
            state.allow_reverse_callbacks(params[0], params[1])
            self.hub.touch(client)
            return ""
        if name == "pullCallbacks":
            if len(params) != 2:
                raise HubFault("pullCallbacks takes 2 arguments")
            return await self._pull(params[0], params[1])
        if len(params) >= 1:
            self._web_client(params[0])  # the key must belong to a web client
        return await self.hub.common(name, params)

    def _web_client(self, key: object) -> Client:
        client = self.hub.state.client_by_key(key)
        if client.profile != "web":
            raise HubFault("unknown private key")
        return client

    async def _register(self, identity: object, context: dict[str, Any]) -> dict[str, str]:
        if isinstance(identity, str):  # Web Profile drafts sent the bare name
            identity = {"samp.name": identity}
        if not isinstance(identity, dict) or not isinstance(identity.get("samp.name"), str):
            raise HubFault("registration refused: samp.name missing from the identity map")
        try:
            P.check_value(identity, where="identity")
        except SAMPDataError as exc:
            raise HubFault(str(exc)) from None
        request = {**identity, "origin": context.get("origin", ""), "remote": context.get("remote")}
        if not await self._consent(request):
            raise HubFault("registration refused by the hub's Web Profile policy")
        client, effects = self.hub.state.register_web(identity)
        self._queue(client)
        self.hub.touch(client)
        self.hub.apply(effects)
        info = self.hub.state.reg_info(client)
        info["samp.url-translator"] = (
            f"http://127.0.0.1:{self.port}/translator/{client.private_key}?ref="
        )
        return info

    async def _consent(self, request: dict[str, Any]) -> bool:
        policy = self.hub.web_auth
        if policy == "allow":
            return True
        if policy == "deny" or not callable(policy):
            logger.info("Web Profile registration of %r refused (policy deny)", request)
            return False
        try:
            if inspect.iscoroutinefunction(policy):
                answer = await policy(request)
            else:  # a blocking dialog must not stall the hub's loop
                answer = await asyncio.to_thread(policy, request)
                if inspect.isawaitable(answer):
                    answer = await answer
        except Exception:
            logger.exception("Web Profile consent callback failed: registration refused")
            return False
        return bool(answer)

    async def _pull(self, key: object, timeout: object) -> list[dict[str, Any]]:
        client = self._web_client(key)
        self.hub.touch(client)
        try:
            seconds = float(timeout)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise HubFault(f"pullCallbacks timeout must be a number string: {timeout!r}") from None
        queue = self._queue(client)
        if not queue.items and seconds > 0 and not self._closed:
            queue.ready.clear()
            self._polls.add(queue.ready)
            queue.polling += 1
            try:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(queue.ready.wait(), min(seconds, 3600.0))
            finally:
                queue.polling -= 1
                self._polls.discard(queue.ready)
        items, queue.items = queue.items, []
        queue.ready.clear()
        queue.last_poll = asyncio.get_running_loop().time()
        self.hub.touch(client)
        return items

    def _queue(self, client: Client) -> _Queue:
        queue = self._queues.get(client.private_key)
        if queue is None:
            queue = self._queues[client.private_key] = _Queue()
            queue.last_poll = asyncio.get_running_loop().time()
        return queue

    async def reap(self, idle: float, period: float) -> None:
        """Unregister web clients that take callbacks but stopped polling for *idle* s.

        A page that closes never says goodbye; without this its callbacks would pile
        up and other clients would keep seeing it registered.
        """
        loop = asyncio.get_running_loop()
        while not self._closed:
            await asyncio.sleep(period)
            now = loop.time()
            for client in list(self.hub.state.clients):
                if client.profile != "web" or not client.reverse_callbacks:
                    continue
                queue = self._queue(client)
                if queue.polling == 0 and now - queue.last_poll > idle:
                    logger.info("web client %s stopped polling: unregistering it", client.public_id)
                    self.hub.apply(self.hub.state.disconnect(client, "stopped polling"))
                    self.forget(client)

    def enqueue(self, delivery: Delivery) -> None:
        """Queue a callback for a web client's next ``pullCallbacks``."""
        client = delivery.recipient
        if self.hub.state.client_by_key_or_none(client.private_key) is not client:
            return
        queue = self._queue(client)
        if len(queue.items) >= MAX_QUEUE:
            queue.items.pop(0)
            queue.dropped += 1
            logger.debug("web client %s is not polling: dropped a callback", client.public_id)
        _collect_urls(delivery.args, queue.urls)
        queue.items.append({"samp.methodName": delivery.method, "samp.params": list(delivery.args)})
        queue.ready.set()

    # -- URL translator -------------------------------------------------------------------

    async def _translate(self, request: WebRequest, key: str, cors: dict[str, str]) -> WebReply:
        queue = self._queues.get(key)
        client = self.hub.state.client_by_key_or_none(key)
        if queue is None or client is None or client.profile != "web":
            return WebReply(403, b"unknown web client", headers=cors)
        ref = request.query.get("ref", "")
        if ref not in queue.urls:
            return WebReply(403, b"the hub only translates URLs it sent to you", headers=cors)
        path = P.lockurl_to_path(ref)
        if path is not None:
            return await _read_file(path, cors)
        parsed = urllib.parse.urlparse(ref)
        if parsed.scheme not in ("http", "https"):
            return WebReply(403, b"unsupported URL scheme", headers=cors)
        session = self.hub.session
        if session is None:
            return WebReply(503, headers=cors)
        try:
            async with session.get(ref, timeout=aiohttp.ClientTimeout(total=300)) as upstream:
                body = bytearray()  # read(n) gives what is buffered, not n bytes: loop
                async for chunk in upstream.content.iter_any():
                    body += chunk
                    if len(body) > MAX_TRANSLATED:
                        return WebReply(413, headers=cors)
                kind = upstream.headers.get("Content-Type", "application/octet-stream")
                return WebReply(upstream.status, bytes(body), kind, dict(cors))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return WebReply(502, f"fetch failed: {exc}".encode(), headers=cors)


async def _read_file(path: str, cors: dict[str, str]) -> WebReply:
    """A local file the client was sent, read whole (at most MAX_TRANSLATED bytes)."""

    def read() -> bytes | None:
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as handle:
            return handle.read(MAX_TRANSLATED + 1)

    try:
        data = await asyncio.to_thread(read)
    except OSError as exc:
        return WebReply(403, f"cannot read the file: {exc.strerror}".encode(), headers=cors)
    if data is None:
        return WebReply(404, headers=cors)
    if len(data) > MAX_TRANSLATED:
        return WebReply(413, headers=cors)
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return WebReply(200, data, kind, dict(cors))


def _collect_urls(value: Any, into: set[str]) -> None:
    if isinstance(value, str):
        if value.startswith(_URL_SCHEMES) and len(into) < MAX_URLS:
            into.add(value)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_urls(item, into)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_urls(item, into)


def _cors_headers(request: WebRequest) -> dict[str, str]:
    origin = request.headers.get("origin")
    if not origin:
        return {}
    # astropy's hub sends these three on every response; browsers and astropy's tests
    # expect them (the hub sets no cookies, so allowing credentials exposes nothing)
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def _preflight_headers(request: WebRequest, cors: dict[str, str]) -> dict[str, str]:
    headers = dict(cors)
    headers["Access-Control-Allow-Methods"] = "POST, GET, OPTIONS"
    headers["Access-Control-Allow-Headers"] = request.headers.get(
        "access-control-request-headers", "Content-Type"
    )
    headers["Access-Control-Max-Age"] = "600"
    if request.headers.get("access-control-request-private-network") == "true":
        headers["Access-Control-Allow-Private-Network"] = "true"
    return headers
