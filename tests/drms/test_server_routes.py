"""The emulator's routing as plain HTTP sees it, on its own server and as an aiohttp app."""

from __future__ import annotations

import gzip
import http.client
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from sciwire.drms._server import CGI_PATH, JsocEmulator

from .helpers import FakeClock

RS = "hmi.v_45s[2016.04.01_00:00:00_TAI/1h]"
SUMMARY = CGI_PATH + "jsoc_info?op=rs_summary&ds=" + RS.replace("[", "%5B").replace("]", "%5D")


def _get(
    emu: JsocEmulator, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_status_codes_and_methods(emulator: JsocEmulator) -> None:
    status, headers, body = _get(emulator, SUMMARY)
    assert status == 200 and json.loads(body)["count"] == 80
    assert headers["content-type"] == "application/json"
    status, headers, body = _get(emulator, SUMMARY, "HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    assert _get(emulator, "/nowhere")[0] == 404
    assert _get(emulator, CGI_PATH + "no_such_cgi")[0] == 404
    assert _get(emulator, "/SUM1/D1/S00000/missing.fits")[0] == 404
    status, headers, _ = _get(emulator, SUMMARY, "POST")
    assert status == 405 and "GET" in headers["allow"]


def test_first_query_value_wins_and_gzip(emulator: JsocEmulator) -> None:
    path = CGI_PATH + "jsoc_info?op=rs_summary&op=nonsense&ds=" + RS
    assert json.loads(_get(emulator, path)[2])["count"] == 80
    big = CGI_PATH + "jsoc_info?op=rs_list&key=T_REC,DATAMEAN&ds=" + RS
    status, headers, body = _get(emulator, big, headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(body))["count"] == 80
    assert emulator.requests[-1] == big


@pytest.fixture
async def aio_app(clock: FakeClock) -> AsyncIterator[tuple[JsocEmulator, str]]:
    emu = JsocEmulator(clock=clock)
    runner = web.AppRunner(emu.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield emu, f"http://127.0.0.1:{port}"
    finally:
        await emu.stop()
        await runner.cleanup()


async def test_aiohttp_app_serves_the_same_routes(aio_app: tuple[JsocEmulator, str]) -> None:
    emu, base = aio_app
    async with aiohttp.ClientSession() as session:
        async with session.get(base + SUMMARY) as resp:
            assert resp.status == 200 and (await resp.json())["count"] == 80
        async with session.get(base + "/nowhere") as resp:
            assert resp.status == 404
        emu.faults[:] = ["http500"]
        async with session.get(base + SUMMARY) as resp:
            assert resp.status == 500
        req = {
            "op": "exp_request",
            "ds": "hmi.m_720s[2016.04.01/1h]",
            "notify": "user@example.com",
            "method": "url_quick",
            "protocol": "as-is",
        }
        async with session.get(base + CGI_PATH + "jsoc_fetch", params=req) as resp:
            data = await resp.json(content_type=None)
        assert data["status"] == 0 and data["data"]
        file = data["data"][0]["filename"]
        async with session.get(base + file, headers={"Range": "bytes=0-5"}) as resp:
            assert resp.status == 206 and await resp.read() == b"SIMPLE"
    assert emu.requests[-1] == file
