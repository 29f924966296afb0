"""A bare SAMP client for the hub tests: XML-RPC by hand over aiohttp.

It uses only the sans-I/O codec, not sciwire's SAMP client, so hub tests check the
hub against the wire format alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from sciwire.samp import _protocol as P

Reply = Callable[["RawClient", str, str, dict[str, Any]], Awaitable[None]]


async def echo_inline(client: RawClient, sender: str, msg_id: str, msg: dict[str, Any]) -> None:
    """Reply to a call before the receiveCall HTTP response goes back (the fast path)."""
    await client.h("reply", msg_id, P.make_ok_response(msg.get("samp.params", {})))


class RawClient:
    """One registered client: hub calls, and a callback server filling :attr:`inbox`."""

    def __init__(self, session: aiohttp.ClientSession, url: str, *, web: bool = False) -> None:
        self.session = session
        self.url = url
        self.prefix = "samp.webhub." if web else "samp.hub."
        self.key = ""
        self.id = ""
        self.hub_id = ""
        self.inbox: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
        self.on_call: Reply | None = echo_inline
        #: when set, every callback is answered with this fault
        self.fault_text: str | None = None
        self._runner: web.BaseRunner | None = None
        self.headers: dict[str, str] = {"Content-Type": "text/xml"}

    async def call(self, method: str, *params: Any) -> Any:
        """Call ``<prefix><method>`` and return the result (faults raise SAMPProxyError)."""
        body = P.encode_call(self.prefix + method, params)
        async with self.session.post(self.url, data=body, headers=self.headers) as reply:
            assert reply.status == 200, reply.status
            return P.decode_response(await reply.read())

    async def h(self, method: str, *params: Any) -> Any:
        """Call a hub method with this client's private key first."""
        return await self.call(method, self.key, *params)

    async def register(self, credential: Any) -> dict[str, str]:
        """Register (secret for the Standard Profile, identity map for the Web Profile)."""
        info: dict[str, str] = await self.call("register", credential)
        self.key, self.id, self.hub_id = (
            info["samp.private-key"],
            info["samp.self-id"],
            info["samp.hub-id"],
        )
        return info

    async def listen(self) -> str:
        """Serve callbacks on 127.0.0.1:0 and declare the URL to the hub."""
        self._runner = web.ServerRunner(web.Server(self._serve), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/xmlrpc"
        await self.h("setXmlrpcCallback", url)
        return url

    async def stop_listening(self) -> None:
        """Close the callback server (the client then looks dead to the hub)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, request: web.BaseRequest) -> web.Response:
        method, params = P.decode_call(await request.read())
        assert params[0] == self.key, "callback without our private key"
        name = method.removeprefix("samp.client.")
        self.inbox.put_nowait((name, params[1:]))
        if self.fault_text is not None:
            return web.Response(body=P.encode_fault(1, self.fault_text), content_type="text/xml")
        if name == "receiveCall" and self.on_call is not None:
            await self.on_call(self, params[1], params[2], params[3])
        return web.Response(body=P.encode_response(""), content_type="text/xml")

    async def expect(
        self, method: str, mtype: str | None = None, timeout: float = 5.0
    ) -> tuple[Any, ...]:
        """Wait for the next callback of *method* (and *mtype*), skipping others."""

        async def wait() -> tuple[Any, ...]:
            while True:
                name, args = await self.inbox.get()
                if name != method:
                    continue
                if mtype is not None:
                    msg = args[-1]
                    if not isinstance(msg, dict) or msg.get("samp.mtype") != mtype:
                        continue
                return args

        return await asyncio.wait_for(wait(), timeout)

    async def close(self) -> None:
        """Stop the callback server (the hub registration is left to the test)."""
        with contextlib.suppress(Exception):
            await self.stop_listening()
