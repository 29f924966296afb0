"""IFCBSimulator: an IFCB hub at ``/ifcbHub`` with a simulated instrument behind it.

Clients call ``startAsClient(serial)`` and ``relayMessageToHost(serial, text)`` as they
would on a real hub; the simulated host answers in the IFCB vocabulary with
``messageRelayed(sender_id, smsgsrc, seqno, msg)``: its full state on ``refresh``,
plausible sequences for ``routine:<name>`` (with real small PNG ROI images and data
files), state changes for ``daq:<setting>:<value>`` and ``interactive:...``, and a
heartbeat. Fault controls (``drop_connections``, ``freeze_connections``, ``restart``)
and HTTP control routes under ``/sim/`` serve fault tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import struct
import zlib
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from sciwire.ifcb._codec import (
    VALUECHANGED_TYPES,
    RoiImage,
    format_message,
)
from sciwire.ifcb._hub import HubConnection, HubServer
from sciwire.ifcb._signalr import RS

__all__ = ["IFCBSimulator", "make_png", "sample_messages"]

logger = logging.getLogger(__name__)

HUB_PATH = "/ifcbHub"
_json_str = json.JSONEncoder(ensure_ascii=False).encode
_BLAST_BATCH = 256  # messages queued between waits for the sockets
HOST_VERSION = "sciwire-sim 1.0"


def make_png(width: int, height: int, pixels: bytes) -> bytes:
    """Encode 8-bit grayscale *pixels* (row-major) as a PNG."""
    if len(pixels) != width * height:
        raise ValueError("pixel count does not match the size")

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    rows = b"".join(b"\x00" + pixels[y * width : (y + 1) * width] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _blob_png(rng: random.Random) -> bytes:
    width, height = rng.randint(12, 32), rng.randint(10, 24)
    cx, cy = width / 2, height / 2
    radius = min(width, height) / 2.5
    pixels = bytes(
        200
        - int(120 * max(0.0, 1 - ((x - cx) ** 2 + (y - cy) ** 2) / radius**2))
        + rng.randint(0, 8)
        for y in range(height)
        for x in range(width)
    )
    return make_png(width, height, pixels)


def _initial_state() -> dict[str, Any]:
    state: dict[str, Any] = {}
    for key, forms in VALUECHANGED_TYPES.items():
        if key.startswith("switch"):
            state[key] = key in ("switchstirrer", "switchcamera", "switchtriggering")
        elif key.startswith("set") and forms == ["f"]:
            state[key] = 1.0
        elif key.startswith("set") and forms == ["i"]:
            state[key] = 10
    state["setdatafolder"] = "C:\\IFCB\\data"
    state["setfilecomment"] = ""
    state["setzoomsize"] = (640, 480)
    state["getenvironment"] = (21.5, 48.0)
    state["uvmodulepresent"] = False
    state["fpsrate"] = 0.0
    return state


def sample_messages(count: int, seed: int = 1) -> list[str]:
    """A realistic mix of host messages: 45% triggercontent with ROIs, 20% valuechanged,
    20% syringetrack, 10% triggerchanged, 5% graphchanged."""
    rng = random.Random(seed)
    pngs = [_blob_png(rng) for _ in range(8)]
    out: list[str] = []
    for i in range(count):
        r = i % 20
        if r < 9:
            daq = _daq(rng, i)
            rois = [(rng.randint(0, 900), rng.randint(0, 1300), rng.choice(pngs))]
            if rng.random() < 0.3:
                rois.append((rng.randint(0, 900), rng.randint(0, 1300), rng.choice(pngs)))
            out.append(format_message("triggercontent", daq, rois))
        elif r < 13:
            key = rng.choice(("pausestate", "switchstirrer", "setpmta", "fpsrate", "setcameragain"))
            value: Any = {
                "pausestate": rng.random() < 0.5,
                "switchstirrer": rng.random() < 0.5,
                "setpmta": round(rng.uniform(0.3, 0.8), 3),
                "fpsrate": round(rng.uniform(1, 20), 1),
                "setcameragain": rng.randint(0, 20),
            }[key]
            out.append(format_message("valuechanged", key, value))
        elif r < 17:
            out.append(format_message("syringetrack", round(rng.uniform(0, 5), 4)))
        elif r < 19:
            out.append(format_message("triggerchanged", i, "processed", 1, i // 2, i))
        else:
            out.append("graphchanged:0.12:0.34:0.56:0.78:12:34:56:1.5:2.5:3.5:4.5:2024-06-01|12-30")
    return out


def _daq(rng: random.Random, trigger: int) -> dict[str, float]:
    adc = round(trigger * 0.25 + rng.random(), 3)
    return {
        "ADCTime": adc,
        "GrabTimeStart": adc,
        "GrabTimeEnd": round(adc + 0.04, 3),
        "PeakA": round(rng.random(), 3),
        "PeakB": round(rng.random(), 3),
        "PeakC": round(rng.random() / 10, 3),
        "PeakD": round(rng.random() / 10, 3),
        "IntegratedA": round(rng.random() / 10, 3),
        "IntegratedB": round(rng.random() / 10, 3),
        "IntegratedC": 0.0,
        "IntegratedD": 0.001,
        "TimeOfFlight": round(rng.uniform(20, 90), 3),
        "RunTime": round(trigger * 0.25, 3),
        "InhibitTime": round(rng.random(), 3),
    }


class IFCBSimulator(HubServer):
    """An IFCB hub plus a simulated instrument host.

    Args:
        serial: the simulated instrument's serial number.
        rate: triggers per second while a routine runs (0: as fast as possible).
        triggers: triggers per ``runsample`` routine.
        heartbeat_interval: seconds between ``heartbeat`` calls (0 disables).
        seed: random seed for reproducible images and values.
        **hub_options: keep-alive, timeout and size-limit settings (``max_message_size``,
            ``max_record_size``) for :class:`HubServer`.
    """

    def __init__(
        self,
        serial: str = "111-111-111",
        *,
        rate: float = 20.0,
        triggers: int = 10,
        heartbeat_interval: float = 5.0,
        seed: int = 0,
        **hub_options: Any,
    ) -> None:
        super().__init__(HUB_PATH, **hub_options)
        self.serial = serial
        self.rate = rate
        self.triggers = triggers
        self.heartbeat_interval = heartbeat_interval
        self.state = _initial_state()
        self.acquisition = "idle"
        self.interactive_routine: Any = None
        #: every command the simulated host received, oldest first
        self.commands: list[str] = []
        self.clients: dict[str, HubConnection] = {}
        self._seq = itertools.count(1)
        self._rng = random.Random(seed)
        self._pngs = [_blob_png(self._rng) for _ in range(6)]
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._mix: list[str] | None = None
        self._mix_json: list[str] = []
        self._relay_head = (
            '{"type":1,"target":"messageRelayed","arguments":[' + _json_str(serial) + ',"host",'
        )
        self.method("startAsClient", self._start_as_client)
        self.method("relayMessageToHost", self._relay_to_host)
        for name, handler in (
            ("drop", self._http_drop),
            ("freeze", self._http_freeze),
            ("blast", self._http_blast),
            ("push", self._http_push),
        ):
            self.app.router.add_post("/sim/" + name, handler)

    # -- life cycle -------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on *host*:*port* and start the heartbeat."""
        await super().start(host, port)
        if self.heartbeat_interval > 0:
            self._heartbeat = asyncio.create_task(self._beat())

    async def stop(self, graceful: bool = False) -> None:
        """Stop routines and the heartbeat, drop every client, stop listening."""
        tasks = [*self._tasks, *([self._heartbeat] if self._heartbeat else [])]
        self._heartbeat = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self.clients.clear()
        await super().stop(graceful)

    async def restart(self) -> None:
        """Drop everything and listen again on the same port (clients must re-register)."""
        host, port = self.host, self.port
        await self.stop()
        await self.start(host, port)

    def on_disconnected(self, conn: HubConnection) -> None:
        """Forget a client that went away."""
        self.clients.pop(conn.id, None)

    # -- hub methods ------------------------------------------------------------------

    def _start_as_client(self, conn: HubConnection, serial: Any) -> None:
        if not isinstance(serial, str):
            raise TypeError("startAsClient takes the instrument serial as a string")
        conn.items["serial"] = serial
        if serial == self.serial:
            self.clients[conn.id] = conn
        else:
            # the client will hear nothing: say why on this side too
            logger.warning(
                "client %s asked for instrument %r; this simulator serves only %r",
                conn.id,
                serial,
                self.serial,
            )
        conn.send("startedAsClient", serial)

    def _relay_to_host(self, conn: HubConnection, serial: Any, text: Any) -> None:
        if not isinstance(serial, str) or not isinstance(text, str):
            raise TypeError("relayMessageToHost takes (serial, text) strings")
        if serial != self.serial:
            return
        self.commands.append(text)
        self.host_command(text)

    # -- sending ----------------------------------------------------------------------

    def push(self, msg: str, to: Iterable[HubConnection] | None = None) -> None:
        """Relay one host message to every registered client (or to *to*)."""
        seqno = next(self._seq)
        # encoded once for every client: this is the simulator's hot path
        record = f"{self._relay_head}{seqno},{_json_str(msg)}]}}{RS}"
        for conn in list(self.clients.values()) if to is None else to:
            conn.send_record(record)

    def push_fields(self, *fields: Any) -> None:
        """Format typed fields and relay them."""
        self.push(format_message(*fields))

    async def drain(self) -> None:
        """Wait until every client's queue has been written; a client that has not
        taken it within ``client_timeout`` seconds is dropped (a stalled reader would
        otherwise hold every later push, and a blast, up for good)."""
        for conn in list(self.clients.values()):
            try:
                await asyncio.wait_for(conn.drain(), self.client_timeout)
            except asyncio.TimeoutError:
                conn.over_limit("client_timeout", f"it took nothing for {self.client_timeout} s")
                conn.abort()

    async def blast(self, count: int, messages: list[str] | None = None) -> int:
        """Relay *count* messages of the realistic mix as fast as the sockets take them.

        Each message is JSON-encoded once per blast and queued 256 at a time, so the
        simulator spends little per message and the clients' receive paths set the pace.
        """
        if messages is None:
            if self._mix is None:
                self._mix = sample_messages(2000)
                self._mix_json = [_json_str(msg) for msg in self._mix]
            encoded = self._mix_json
        else:
            encoded = [_json_str(msg) for msg in messages]
        if not encoded:
            return 0
        head, seq, size = self._relay_head, self._seq, len(encoded)
        for start in range(0, count, _BLAST_BATCH):
            records = [
                f"{head}{next(seq)},{encoded[i % size]}]}}{RS}"
                for i in range(start, min(start + _BLAST_BATCH, count))
            ]
            for conn in list(self.clients.values()):
                conn.send_records(records)
            await self.drain()
        return count

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            for conn in list(self.clients.values()):
                conn.send("heartbeat", self.serial)

    # -- the simulated host -------------------------------------------------------------

    def host_command(self, text: str) -> None:
        """Act on one command as the instrument's host software would."""
        head, _, rest = text.partition(":")
        if text in ("Client connected.", "Client disconnected."):
            return
        if head == "refresh":
            self._refresh()
        elif head == "routine":
            self._spawn(self._routine(rest or "runsample"))
        elif head == "daq":
            self._daq_command(rest)
        elif head == "interactive":
            self._interactive(rest)
        elif head == "saveroutines":
            self.push("reportevent:routines saved")
        else:
            self.push(f"reportevent:unknown command: {text}")

    def _state_messages(self) -> list[str]:
        out = []
        for key, value in self.state.items():
            fields = value if isinstance(value, tuple) else (value,)
            out.append(format_message("valuechanged", key, *fields))
        out.append(format_message("valuechanged", "hostversion", HOST_VERSION))
        out.append(format_message("valuechanged", "acquisition", "status", self.acquisition))
        out.append(format_message("valuechanged", "pausestate", False))
        out.append("valuechanged:currentgpsposition:n/a")
        return out

    def _refresh(self) -> None:
        for msg in self._state_messages():
            self.push(msg)

    def _daq_command(self, rest: str) -> None:
        key, _, value = rest.partition(":")
        forms = VALUECHANGED_TYPES.get(key)
        if forms is None or not value:
            self.push(f"reportevent:unknown setting: {rest}")
            return
        try:
            if forms == ["b"]:
                parsed: Any = value not in ("0", "false", "False")
            elif forms == ["f"]:
                parsed = float(value)
            elif forms == ["i"]:
                parsed = int(value)
            else:
                parsed = value
        except ValueError:
            self.push(f"reportevent:bad value for {key}: {value}")
            return
        self.state[key] = parsed
        self.push(format_message("valuechanged", key, parsed))

    def _interactive(self, rest: str) -> None:
        action, _, payload = rest.partition(":")
        if action == "load":
            try:
                self.interactive_routine = json.loads(payload)
            except ValueError:
                self.push("reportevent:interactive routine is not valid JSON")
                return
            self.push(format_message("valuechanged", "interactive", "load", payload))
        elif action == "start":
            self._spawn(self._interactive_run())
        elif action in ("clear", "save"):
            if action == "clear":
                self.interactive_routine = None
            self.push(f"valuechanged:interactive:{action}")
        else:
            self.push(f"reportevent:unknown interactive command: {rest}")

    async def _interactive_run(self) -> None:
        self.push("valuechanged:interactive:started")
        await self._pace()
        self.push("valuechanged:interactive:stopped")

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pace(self) -> None:
        await asyncio.sleep(1.0 / self.rate if self.rate > 0 else 0)

    async def _routine(self, name: str) -> None:
        rng = self._rng
        self.acquisition = "running"
        self.push(f"reportevent:routine {name} started")
        self.push("valuechanged:acquisition:started")
        self.push(format_message("valuechanged", "acquisition", "status", "running"))
        volume = 5.0
        total_rois = 0
        triggers = self.triggers if name == "runsample" else max(1, self.triggers // 4)
        for trigger in range(1, triggers + 1):
            volume -= 5.0 / triggers
            self.push(format_message("syringetrack", round(max(volume, 0.0), 4)))
            rois = [
                (
                    rng.randint(0, 900),
                    rng.randint(0, 1300),
                    RoiImage.from_bytes(rng.choice(self._pngs)),
                )
                for _ in range(rng.randint(1, 2))
            ]
            total_rois += len(rois)
            self.push(format_message("triggercontent", _daq(rng, trigger), rois))
            self.push(
                format_message("triggerchanged", trigger, "processed", len(rois), 0, total_rois)
            )
            if trigger % 5 == 0:
                self.push(format_message("valuechanged", "fpsrate", round(rng.uniform(2, 8), 1)))
            await self._pace()
        self.push(format_message("triggerchanged", triggers, "saved", triggers, 0))
        self.push(
            format_message(
                "graphchanged",
                0.1,
                0.2,
                0.3,
                0.4,
                triggers,
                total_rois,
                0,
                1.0,
                2.0,
                3.0,
                4.0,
                "2024-06-01|12-30",
            )
        )
        self._send_files(f"D20240601T123000_IFCB{self.serial[:3]}")
        self.push("valuechanged:acquisition:stopped")
        self.acquisition = "idle"
        self.push(format_message("valuechanged", "acquisition", "status", "idle"))
        self.push(f"reportevent:routine {name} finished")

    def _send_files(self, stem: str) -> None:
        header = f"softwareVersion: {HOST_VERSION}\nserial: {self.serial}\nrunTime: 1.0\n"
        self.push(f"file:start:{stem}.hdr:1:text/plain")
        self.push(f"file:chunk:{stem}.hdr:0:{header}")
        self.push(f"file:end:{stem}.hdr")
        blob = b"".join(self._pngs)
        size = 600
        pieces = [blob[i : i + size] for i in range(0, len(blob), size)]
        self.push(f"file:start:{stem}.roi:{len(pieces)}:octet/stream")
        for index, piece in enumerate(pieces):
            self.push(format_message("file", "chunk", f"{stem}.roi", index, piece))
        self.push(f"file:end:{stem}.roi")
        self.push(f"file:list:{stem}.hdr:{stem}.roi")

    # -- HTTP control routes (for tests and benchmarks in another process) -------------

    async def _http_drop(self, request: web.Request) -> web.Response:
        return web.json_response({"dropped": self.drop_connections()})

    async def _http_freeze(self, request: web.Request) -> web.Response:
        return web.json_response({"frozen": self.freeze_connections()})

    async def _http_blast(self, request: web.Request) -> web.Response:
        try:
            count = int(request.query.get("n", "1000"))
        except ValueError:
            raise web.HTTPBadRequest(text="n must be an integer") from None
        return web.json_response({"sent": await self.blast(count)})

    async def _http_push(self, request: web.Request) -> web.Response:
        text = await request.text()
        self.push(text)
        await self.drain()
        return web.json_response({"clients": len(self.clients)})
