"""The bridge: instruments in, JetStream out, commands back.

A :class:`Bridge` connects to every instrument of its :class:`BridgeConfig` with the
packages' own public clients (``AsyncIFCBClient``, ``EchoProtocol``/``Services``,
``AsyncSAMPIntegratedClient``), turns each event into a fleet event
(:mod:`sciwire.fleet._schema`) and publishes it into the fleet stream. Each
instrument's sequence number resumes from the last one the stream holds, so a
restarted bridge neither repeats nor reuses numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from sciwire.errors import SciwireError
from sciwire.fleet._config import RIG_OPS, BridgeConfig, ConfigError, IfcbSpec, RigSpec, SampSpec
from sciwire.fleet._nats import connect, connect_options, ensure_stream, mapped, stream_subjects
from sciwire.fleet._publisher import Outgoing, Publisher
from sciwire.fleet._reconnect import POLL, RETRY_DELAYS, hold, pause
from sciwire.fleet._schema import (
    HDR_MSG_ID,
    encode_event,
    encode_ifcb,
    rig_event,
    subject_matches,
)
from sciwire.ifcb import AsyncIFCBClient
from sciwire.rig import EchoProtocol, ExpMessage, Services

__all__ = ["Bridge"]

logger = logging.getLogger(__name__)

#: seconds a relay to an IFCB hub may wait for its socket
COMMAND_TIMEOUT = 10.0


@dataclass
class _Instrument:
    kind: str
    name: str
    seq: int = 0
    events: int = 0
    stored: int = 0
    malformed: int = 0
    connected: bool = False
    last_time: float = 0.0

    @property
    def subjects(self) -> str:
        """The subjects its events go out on (every SAMP event shares one tree)."""
        return "sciwire.samp.>" if self.kind == "samp" else f"sciwire.{self.kind}.{self.name}.>"

    def report(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "connected": self.connected,
            "seq": self.seq,
            "events": self.events,
            "stored": self.stored,
            "malformed": self.malformed,
            "last_event_age": round(time.time() - self.last_time, 3) if self.last_time else None,
        }


def _reply(ok: bool, result: Any = None, code: str = "", message: str = "") -> bytes:
    body: dict[str, Any] = {"ok": ok}
    if ok:
        body["result"] = result
    else:
        body["error"] = {"code": code, "message": message}
    return json.dumps(body, default=str).encode()


class Bridge:
    """Instruments to NATS JetStream, and NATS requests back to the instruments.

    Args:
        config: what to connect to and how (see :func:`sciwire.fleet.load_config`).
    """

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.publisher: Publisher | None = None
        self.nats_connected = False
        self.started_at = 0.0
        self.instruments: dict[tuple[str, str], _Instrument] = {}
        self.ifcb: dict[str, AsyncIFCBClient] = {}
        self.rigs: dict[str, EchoProtocol] = {}
        self.samp_client: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        for spec in config.ifcb:
            self.instruments["ifcb", spec.serial] = _Instrument("ifcb", spec.serial)
        for rig in config.rigs:
            self.instruments["rig", rig.name] = _Instrument("rig", rig.name)
        if config.samp is not None:
            self.instruments["samp", config.samp.name] = _Instrument("samp", config.samp.name)

    # -- life cycle -------------------------------------------------------------------

    async def start(self, timeout: float = 30.0) -> None:
        """Connect to NATS, set up the stream, start every instrument and the health loop.

        Instruments that are away are retried in the background; NATS must answer
        within *timeout*. On failure everything started is stopped again.

        Raises:
            ConnectError: NATS did not answer or refused the credentials.
            ConfigError: the stream would not capture a configured instrument.
            FleetError, Timeout: the stream could not be set up.
        """
        try:
            await self._start(timeout)
        except BaseException:
            await self.stop(flush_timeout=0)
            raise

    async def _start(self, timeout: float) -> None:
        cfg = self.config
        self.started_at = time.time()
        options = connect_options(name=f"sciwire-bridge-{cfg.name}", **cfg.nats.connect_options())
        # every subject the bridge publishes on is built from validated tokens (config
        # names, sanitised IFCB heads, checked mtypes) or given by the server: nats-py's
        # per-publish regular expression would only repeat that
        options["skip_subject_validation"] = True
        self.nc = await connect(
            options,
            timeout=timeout,
            disconnected_cb=self._nats_down,
            reconnected_cb=self._nats_up,
        )
        self.nats_connected = True
        self.js = self.nc.jetstream(
            domain=cfg.nats.domain, publish_async_max_pending=cfg.window, timeout=timeout
        )
        s = cfg.stream
        await ensure_stream(
            self.js,
            s.name,
            max_age=s.max_age,
            max_bytes=s.max_bytes,
            max_msgs=s.max_msgs,
            max_msg_size=s.max_msg_size,
            replicas=s.replicas,
            storage=s.storage,
            duplicate_window=s.duplicate_window,
            subjects=s.subjects,
            timeout=timeout,
        )
        captured = s.subjects or stream_subjects()
        for inst in self.instruments.values():
            subject = inst.subjects
            if not any(subject_matches(c, subject) for c in captured):
                raise ConfigError(
                    f"stream {s.name} does not capture {subject} ({inst.kind} {inst.name}): "
                    "add it to [stream] subjects"
                )
            inst.seq = await self._last_seq(inst)
        self.publisher = Publisher(
            self.nc,
            self.js,
            max_pending=cfg.max_pending,
            window=cfg.window,
            ack_timeout=cfg.ack_timeout,
            on_stored=self._stored,
        )
        self.publisher.start()
        for ifcb in cfg.ifcb:
            await self.nc.subscribe(f"sciwire.cmd.ifcb.{ifcb.serial}.>", cb=self._ifcb_command)
            self._spawn(self._run_ifcb(ifcb))
        for rig in cfg.rigs:
            await self.nc.subscribe(f"sciwire.cmd.rig.{rig.name}.>", cb=self._rig_command)
            self._spawn(self._run_rig(rig))
        if cfg.samp is not None:
            self._spawn(self._run_samp(cfg.samp))
        await self.nc.subscribe("sciwire.health.ping", cb=self._health_ping)
        self._spawn(self._health_loop())

    async def stop(self, flush_timeout: float = 10.0) -> None:
        """Disconnect the instruments, store what is queued (up to *flush_timeout*),
        close NATS. Idempotent."""
        if self._stopping:
            return
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for client in self.ifcb.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 5)
        for rig in self.rigs.values():
            rig.close()
        if self.samp_client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.samp_client.disconnect(), 5)
        if self.publisher is not None:
            if not await self.publisher.flush(flush_timeout):
                logger.warning("bridge stopped with %d events unstored", self.publisher.pending)
            await self.publisher.close()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), 5)

    async def __aenter__(self) -> Bridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _nats_down(self) -> None:
        self.nats_connected = False
        if self.publisher is not None:
            # their acknowledgements are lost with the connection: send them again first,
            # before anything newer, so that the stream keeps each instrument's order
            self.publisher.resend_unacknowledged()
        if not self._stopping:
            logger.warning("bridge %s lost NATS; holding events", self.config.name)

    async def _nats_up(self) -> None:
        self.nats_connected = True
        logger.warning("bridge %s reconnected to NATS", self.config.name)

    async def _last_seq(self, inst: _Instrument) -> int:
        assert self.js is not None
        subject = inst.subjects
        # any other failure stops the start: numbering from a guess would reuse message
        # ids, and JetStream would drop the new events as duplicates
        async with mapped(f"last event of {inst.kind} {inst.name}"):
            try:
                msg = await self.js.get_last_msg(self.config.stream.name, subject)
            except nats.js.errors.NotFoundError:
                return 0
        msg_id = (msg.headers or {}).get(HDR_MSG_ID, "")
        prefix = f"{inst.kind}.{inst.name}."
        if msg_id.startswith(prefix) and msg_id[len(prefix) :].isdigit():
            return int(msg_id[len(prefix) :])
        return 0

    # -- events -----------------------------------------------------------------------

    def emit_event(self, inst: _Instrument, built: tuple[str, dict[str, Any], list[bytes]]) -> None:
        subject, body, blobs = built
        data, headers = encode_event(body, blobs)
        inst.seq = body["seq"]
        inst.events += 1
        inst.last_time = body["time"]
        assert self.publisher is not None
        self.publisher.put(Outgoing(subject, data, headers, body["time"], (inst.kind, inst.name)))

    def _stored(self, out: Outgoing, duplicate: bool) -> None:
        inst = self.instruments.get(out.key)
        if inst is not None and not duplicate:
            inst.stored += 1

    def drop_malformed(self, inst: _Instrument, what: Any, exc: Exception) -> None:
        inst.malformed += 1
        logger.warning(
            "%s %s: dropping malformed event %.200r: %s", inst.kind, inst.name, what, exc
        )

    def _ifcb_message(self, inst: _Instrument, arguments: list[Any]) -> None:
        # emit_event's work for IFCB, in one step (half of the bridge's own time was
        # building a body dict to encode it at once)
        try:
            text = arguments[3]
            if not isinstance(text, str):
                raise TypeError("IFCB message is not text")
            seq, now = inst.seq + 1, time.time()
            subject, data, headers = encode_ifcb(inst.name, seq, now, text, arguments[2])
        except (SciwireError, ValueError, TypeError, IndexError) as exc:
            self.drop_malformed(inst, arguments, exc)
            return
        inst.seq = seq
        inst.events += 1
        inst.last_time = now
        assert self.publisher is not None
        self.publisher.put(Outgoing(subject, data, headers, now, (inst.kind, inst.name)))

    async def _run_ifcb(self, spec: IfcbSpec) -> None:
        inst = self.instruments["ifcb", spec.serial]
        client = AsyncIFCBClient(spec.url, spec.serial, reconnect_delays=RETRY_DELAYS)
        client.on_any_message(lambda arguments: self._ifcb_message(inst, arguments))
        self.ifcb[spec.serial] = client
        attempt = 0
        while True:
            try:
                await client.connect()
                break
            except (SciwireError, OSError) as exc:
                await pause(attempt, f"IFCB {spec.serial}", exc)
                attempt += 1
        while True:  # the client reconnects by itself; keep the health flag current
            inst.connected = client.connected
            await asyncio.sleep(POLL)

    def _rig_message(self, inst: _Instrument, data: Any, addr: Any, event: Any) -> None:
        try:
            built = rig_event(inst.name, inst.seq + 1, time.time(), int(event), data, addr)
            self.emit_event(inst, built)
        except (SciwireError, ValueError, TypeError) as exc:
            self.drop_malformed(inst, data, exc)

    async def _run_rig(self, spec: RigSpec) -> None:
        inst = self.instruments["rig", spec.name]
        attempt = 0
        while True:
            try:
                rig = await EchoProtocol.client(spec.uri, name=spec.name)
            except (SciwireError, OSError) as exc:
                await pause(attempt, f"rig {spec.name}", exc)
                attempt += 1
                continue
            attempt = 0
            rig.assign_callback(
                ExpMessage.any(),
                lambda data, addr, event: self._rig_message(inst, data, addr, event),
            )
            self.rigs[spec.name] = rig
            try:
                await hold(inst, rig)
            finally:
                rig.close()
            logger.warning("rig %s connection lost; reconnecting", spec.name)

    async def _run_samp(self, spec: SampSpec) -> None:
        from sciwire.fleet._samp import run_samp

        await run_samp(self, spec, self.instruments["samp", spec.name])

    # -- commands ---------------------------------------------------------------------

    async def _answer(self, msg: Msg, payload: bytes) -> None:
        if msg.reply:
            with contextlib.suppress(nats.errors.Error):
                await msg.respond(payload)

    @staticmethod
    def _request_body(msg: Msg) -> dict[str, Any]:
        if not msg.data:
            return {}
        body = json.loads(msg.data)
        if not isinstance(body, dict):
            raise ValueError("a command body is a JSON object")
        return body

    async def _ifcb_command(self, msg: Msg) -> None:
        serial, op = msg.subject.split(".")[3:5] if msg.subject.count(".") == 4 else ("", "")
        spec = next((s for s in self.config.ifcb if s.serial == serial), None)
        client = self.ifcb.get(serial)
        try:
            body = self._request_body(msg)
            message = body.get("message")
            if spec is None or op != "relay":
                raise LookupError(f"no IFCB command {msg.subject}")
            if not isinstance(message, str):
                raise ValueError('relay takes {"message": "<text>"}')
        except (ValueError, LookupError) as exc:
            code = "unknown-command" if isinstance(exc, LookupError) else "bad-request"
            await self._answer(msg, _reply(False, code=code, message=str(exc)))
            return
        if not spec.allows(message):
            text = f"IFCB {serial}: relaying {message!r} is not allowed by the bridge config"
            await self._answer(msg, _reply(False, code="not-allowed", message=text))
            return
        if client is None or not client.connected:
            await self._answer(
                msg, _reply(False, code="not-connected", message=f"IFCB {serial} is away")
            )
            return
        try:
            await asyncio.wait_for(client.relay_message_to_host(message), COMMAND_TIMEOUT)
        except asyncio.TimeoutError:
            await self._answer(
                msg, _reply(False, code="timeout", message=f"IFCB {serial}: no room")
            )
            return
        except SciwireError as exc:
            await self._answer(msg, _reply(False, code="failed", message=str(exc)))
            return
        await self._answer(msg, _reply(True, None))

    async def _rig_command(self, msg: Msg) -> None:
        parts = msg.subject.split(".")
        name, op = (parts[3], parts[4]) if len(parts) == 5 else ("", "")
        spec = next((r for r in self.config.rigs if r.name == name), None)
        if spec is None or op not in RIG_OPS:
            await self._answer(
                msg, _reply(False, code="unknown-command", message=f"no rig command {msg.subject}")
            )
            return
        if op not in spec.commands:
            text = f"rig {name}: {op} is not allowed by the bridge config"
            await self._answer(msg, _reply(False, code="not-allowed", message=text))
            return
        rig = self.rigs.get(name)
        if rig is None or not rig.is_connected:
            await self._answer(
                msg, _reply(False, code="not-connected", message=f"rig {name} is away")
            )
            return
        try:
            body = self._request_body(msg)
            args, kwargs = body.get("args", []), body.get("kwargs", {})
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise ValueError('a rig command takes {"args": [...], "kwargs": {...}}')
            result = await getattr(Services([rig], timeout=spec.timeout), op)(*args, **kwargs)
        except (ValueError, TypeError) as exc:
            await self._answer(msg, _reply(False, code="bad-request", message=str(exc)))
            return
        except (SciwireError, TimeoutError, OSError) as exc:
            code = "timeout" if isinstance(exc, TimeoutError) else "failed"
            await self._answer(msg, _reply(False, code=code, message=str(exc)))
            return
        await self._answer(msg, _reply(True, result))

    # -- health -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The bridge's health: instruments, lag, drops, counts."""
        pub = self.publisher
        return {
            "bridge": self.config.name,
            "time": time.time(),
            "uptime": round(time.time() - self.started_at, 3),
            "nats_connected": self.nats_connected,
            "stream": self.config.stream.name,
            "instruments": [inst.report() for inst in self.instruments.values()],
            "connected": sum(inst.connected for inst in self.instruments.values()),
            "configured": len(self.instruments),
            "pending": pub.pending if pub else 0,
            "lag": round(pub.lag(), 3) if pub else 0.0,
            "stored": pub.stored if pub else 0,
            "duplicates": pub.duplicates if pub else 0,
            "dropped": pub.dropped if pub else 0,
            "resent": pub.resent if pub else 0,
            "malformed": sum(inst.malformed for inst in self.instruments.values()),
        }

    async def _health_ping(self, msg: Msg) -> None:
        await self._answer(msg, json.dumps(self.health()).encode())

    async def _health_loop(self) -> None:
        assert self.nc is not None
        subject = f"sciwire.health.{self.config.name}"
        while True:
            await asyncio.sleep(self.config.health_interval)
            if self.nc.is_connected:
                with contextlib.suppress(nats.errors.Error):
                    await self.nc.publish(subject, json.dumps(self.health()).encode())
