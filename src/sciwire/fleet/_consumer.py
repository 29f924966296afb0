"""The consumer API: :class:`AsyncFleet` (asyncio; :class:`~sciwire.fleet.Fleet` is its
blocking form).

Handlers are registered with the packages' own pattern language and receive one
:class:`~sciwire.fleet.FleetEvent` each, whose ``fields`` are the objects the package
itself gives (``DaqValues``, ``RoiImage``, ``ExpMessage``...). Events come from a
JetStream push consumer over the fleet stream: ``start()`` from now on, ``replay()``
from a point in the past, a ``durable`` name to resume where a previous run stopped.
Every event is acknowledged after its handlers ran: new consumers use ``AckPolicy.ALL``
and acknowledge once per batch (and whenever they catch up); a durable consumer
created with explicit acknowledgements keeps acknowledging each event.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from sciwire.core.patterns import Registry
from sciwire.errors import ConnectionClosed, Timeout
from sciwire.fleet import _delivery
from sciwire.fleet._delivery import ACK_BATCH, AckPoint, Recent, Since, reply_fields
from sciwire.fleet._nats import Credentials, connect, connect_options, mapped
from sciwire.fleet._schema import (
    CommandError,
    FleetError,
    FleetEvent,
    FleetPayloadError,
    PermissionDenied,
    decode_event,
    pattern_kind,
    pattern_subject,
)
from sciwire.rig import ExpMessage

__all__ = ["AsyncFleet", "Since"]

logger = logging.getLogger(__name__)

#: stream sequences remembered to drop redeliveries of events already handled
SEEN_LIMIT = 65536


class AsyncFleet:
    """Watch and drive a fleet of instruments through NATS JetStream.

    Args:
        servers: NATS URL(s).
        credentials: ``(user, password)``, a ``.creds`` path, or a mapping with
            ``creds``, ``nkey_seed`` or ``token``.
        tls: a mapping with ``ca``, ``cert``, ``key`` file paths, or an SSLContext.
        stream: the fleet stream's name.
        domain: the JetStream domain of that stream (None: the local one).
        name: the connection's name, as NATS monitoring shows it.
        timeout: seconds for connecting and for JetStream API calls.
        max_ack_pending: events delivered but not yet acknowledged, at most.
        ack_wait: seconds before JetStream delivers an unacknowledged event again (to
            the next run of a durable consumer whose process died, for instance).
        reorder_wait: how long an event that arrives ahead of its instrument's next
            sequence number is held for the missing ones (stored out of order across
            a cluster failover); after that the hole is given up (counted in ``gaps``)
            and the events go on. Only for kinds whose every event the handlers
            receive (``(None,)``, ``ExpMessage.any()``, ``"*"``, or several patterns);
            0 delivers in arrival order.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        credentials: Credentials = None,
        *,
        tls: Any = None,
        stream: str = "SCIWIRE",
        domain: str | None = None,
        name: str = "sciwire-fleet",
        timeout: float = 10.0,
        max_ack_pending: int = 8192,
        ack_wait: float = 30.0,
        reorder_wait: float = 2.0,
    ) -> None:
        self.options = connect_options(servers, credentials, tls, name)
        self.stream = stream
        self.domain = domain
        self.timeout = timeout
        self.max_ack_pending = max_ack_pending
        self.ack_wait = ack_wait
        self.reorder_wait = reorder_wait
        #: holes in an instrument's numbering given up on (events dropped by a bridge
        #: whose queue was full, or discarded by the stream's limits)
        self.gaps = 0
        self._next: dict[tuple[str, str], int] = {}
        self._held: dict[tuple[str, str], dict[int, tuple[FleetEvent, str]]] = {}
        self._held_since: dict[tuple[str, str], float] = {}
        #: kinds whose every event this consumer receives: only there do the numbers
        #: run without holes, so only there is a hole worth waiting for
        self._whole: set[str] = set()
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.registries = {
            "ifcb": Registry("prefix"),
            "rig": Registry("flag"),
            "samp": Registry("mtype"),
        }
        #: events handled, malformed payloads dropped, redeliveries dropped
        self.delivered = 0
        self.malformed = 0
        self.duplicates = 0
        #: events the consumer still had to deliver at the last message (0: caught up)
        self.pending = -1
        self.consumer: str | None = None
        self._ids = itertools.count(1)
        self._handlers: dict[int, tuple[str, int, str]] = {}
        self._sub: Subscription | None = None
        self._seen = Recent(SEEN_LIMIT)
        #: wait_for's predicates and their futures, checked after each event
        self._watchers: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._awaiting: list[Any] = []
        #: one acknowledgement per batch under AckPolicy.ALL (start() reads the policy)
        self._ack_all = False
        self._acks = AckPoint(max(1, min(ACK_BATCH, max_ack_pending // 4)))
        self._denied: dict[str, list[asyncio.Future[Any]]] = {}

    # -- connection -------------------------------------------------------------------

    async def connect(self) -> AsyncFleet:
        """Connect to NATS.

        Raises:
            ConnectError: no server answered, or the credentials were refused.
        """
        if self.nc is None:
            self.nc = await connect(self.options, timeout=self.timeout, error_cb=self._error)
            self.js = self.nc.jetstream(domain=self.domain, timeout=self.timeout)
        return self

    async def close(self) -> None:
        """Stop consuming and disconnect: events already received are handled and
        acknowledged first (a durable consumer stays on the server)."""
        nc = self.nc
        self._sub = None
        if nc is None:
            return
        try:
            await asyncio.wait_for(nc.drain(), 10)
        except Exception:  # drain timed out or the connection is gone: just close
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 5)
        self.nc = None

    async def __aenter__(self) -> AsyncFleet:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _error(self, exc: Exception) -> None:
        text = str(exc)
        if "permissions violation" in text.lower():
            logger.warning("NATS refused: %s", text)
            for subject, waiters in list(self._denied.items()):
                if f'"{subject}"' in text or subject in text:
                    for fut in waiters:
                        if not fut.done():
                            fut.set_result(text)
        else:
            logger.info("nats: %s", text)

    def _require(self) -> tuple[Client, JetStreamContext]:
        if self.nc is None or self.js is None:
            raise ConnectionClosed("not connected: call connect() first")
        return self.nc, self.js

    # -- handlers ---------------------------------------------------------------------

    def on(
        self, pattern: Any, handler: Callable[[FleetEvent], Any], *, instrument: str | None = None
    ) -> int:
        """Call ``handler(event)`` for each event *pattern* matches; returns an id.

        Patterns are the packages' own: an IFCB prefix tuple such as
        ``("valuechanged", "pausestate")`` (None is a wildcard), a rig event
        (``ExpMessage.EXPINIT``, a compound flag, or ``ExpMessage.any()``), or a SAMP
        mtype (``"table.load.votable"``, ``"table.*"``, ``"*"``). *instrument* keeps
        one IFCB serial or rig name. A coroutine handler is awaited before the next
        event. Register before :meth:`start`: the consumer's subjects follow them.

        Raises:
            TypeError, ValueError: a malformed pattern or instrument name.
        """
        kind = pattern_kind(pattern)
        subject = pattern_subject(pattern, instrument)
        key: Any = tuple(pattern) if kind == "ifcb" else pattern
        if kind == "rig":
            key = int(ExpMessage.validate(pattern))
        awaiting = self._awaiting

        def callback(event: FleetEvent, _h: Any = handler, _i: str | None = instrument) -> None:
            if _i is None or event.instrument == _i:
                result = _h(event)
                if result is not None and inspect.isawaitable(result):
                    awaiting.append(result)  # awaited by dispatch, before the next event

        hid = next(self._ids)
        self._handlers[hid] = (kind, self.registries[kind].register(key, callback), subject)
        return hid

    def unregister(self, handler_id: int) -> None:
        """Remove a handler by the id :meth:`on` returned (KeyError if unknown)."""
        kind, rid, _ = self._handlers.pop(handler_id)
        self.registries[kind].unregister(rid)

    def subjects(self) -> list[str]:
        """The consumer's filter subjects: one per kind with handlers, never overlapping."""
        by_kind: dict[str, set[str]] = {}
        for kind, _, subject in self._handlers.values():
            by_kind.setdefault(kind, set()).add(subject)
        out = []
        for kind, subjects in sorted(by_kind.items()):
            out.append(subjects.pop() if len(subjects) == 1 else f"sciwire.{kind}.>")
        return out

    # -- consuming --------------------------------------------------------------------

    async def start(self, since: Since = "new", durable: str | None = None) -> None:
        """Start delivering events to the handlers.

        Args:
            since: where to start (see :data:`Since`); ignored when the *durable*
                consumer exists already (it resumes after its last acknowledged event).
            durable: keep the consumer's position on the server under this name.

        Raises:
            ValueError: no handlers, or a bad *since*.
            FleetError: JetStream refused the consumer.
        """
        nc, js = self._require()
        subjects = self.subjects()
        if not subjects:
            raise ValueError("register handlers with on() before start()")
        self._whole = {
            kind
            for kind in ("ifcb", "rig", "samp")
            if {f"sciwire.{kind}.>", f"sciwire.{kind}.*.*"} & set(subjects)
        }
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            # one inbox per attempt: a consumer created by an attempt that timed out
            # (placed on a server that just died) must not deliver next to its retry
            inbox = nc.new_inbox()
            # bounded: the server never has more than max_ack_pending unacknowledged out
            sub = await nc.subscribe(
                inbox,
                cb=self._on_msg,
                pending_msgs_limit=self.max_ack_pending * 2 + 1024,
                pending_bytes_limit=512 * 1024 * 1024,
            )
            step = max(0.5, min(5.0, deadline - loop.time()))
            try:
                info = await asyncio.wait_for(
                    self._create(js, inbox, subjects, since, durable), step
                )
            except nats.js.errors.APIError as exc:
                await sub.unsubscribe()
                raise FleetError(f"JetStream refused the consumer: {exc.description}") from exc
            except (nats.errors.Error, asyncio.TimeoutError) as exc:
                await sub.unsubscribe()
                if loop.time() >= deadline:
                    raise Timeout(f"JetStream did not create the consumer: {exc!r}") from exc
                logger.info("consumer not created yet (%r); retrying", exc)
                await asyncio.sleep(0.2)
                continue
            self._sub = sub
            self.consumer = info.name
            self._ack_all = info.config.ack_policy == AckPolicy.ALL
            self._acks = AckPoint(self._acks.batch)
            return

    async def _create(
        self,
        js: JetStreamContext,
        inbox: str,
        subjects: list[str],
        since: Since,
        durable: str | None,
    ) -> Any:
        config: ConsumerConfig | None = None
        if durable is not None:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                config = (await js.consumer_info(self.stream, durable)).config
        if config is None:
            config = ConsumerConfig(
                durable_name=durable,
                # one acknowledgement confirms everything before it: the consumer sends
                # one per batch, and the server handles one instead of one per event
                ack_policy=AckPolicy.ALL,
                ack_wait=self.ack_wait,
                max_ack_pending=self.max_ack_pending,
                flow_control=True,
                idle_heartbeat=5,
                inactive_threshold=None if durable else 60,
                **_delivery.deliver_options(since),
            )
        config.deliver_subject = inbox
        if len(subjects) == 1:
            config.filter_subject, config.filter_subjects = subjects[0], None
        else:
            config.filter_subject, config.filter_subjects = None, subjects
        return await js.add_consumer(self.stream, config)

    async def replay(self, since: Since = "all", durable: str | None = None) -> None:
        """Deliver stored events from *since* (default: everything kept), then live ones."""
        await self.start(since, durable)

    async def _on_msg(self, msg: Msg) -> None:
        nc = self.nc
        if nc is None:
            return
        if self._held_since:
            await self._expire_holes()
        headers = msg.headers
        if headers and "Status" in headers:  # flow control and idle heartbeats
            if self._ack_all and not self._held and self._acks.reply is not None:
                await self._send_ack(nc)  # events released from a hold just now
            if msg.reply:
                await nc.publish(msg.reply, b"")
            stalled = headers.get("Nats-Consumer-Stalled")
            if stalled:
                await nc.publish(stalled, b"")
            return
        try:
            delivered, sseq, _, pending = reply_fields(msg.reply)
        except (ValueError, IndexError, AttributeError):
            self.malformed += 1
            logger.warning("dropping a message on %s that JetStream did not deliver", msg.subject)
            return
        self.pending = pending
        await self._consume(nc, msg, delivered, sseq)
        if self._ack_all:
            self._acks.advance(msg.reply, sseq)
            if self._held and self._acks.count >= self.max_ack_pending // 2:
                # the server stops delivering at max_ack_pending unacknowledged: rather
                # than stall every instrument on one instrument's hole, give holes up
                for key in list(self._held):
                    await self._release(key, give_up=True)
            # an acknowledgement now would confirm the held events unhandled: it waits
            if not self._held:
                sub = self._sub
                if self._acks.due(idle=sub is None or sub.pending_msgs == 0):
                    await self._send_ack(nc)

    async def _send_ack(self, nc: Client) -> None:
        reply = self._acks.take()
        if reply is not None:
            await nc.publish(reply, b"+ACK")

    async def _consume(self, nc: Client, msg: Msg, delivered: int, sseq: int) -> None:
        headers = msg.headers
        if delivered > 1 and sseq in self._seen:
            self.duplicates += 1
            if not self._ack_all:
                await nc.publish(msg.reply, b"+ACK")
            return
        try:
            event = decode_event(msg.subject, msg.data, headers, sseq)
        except FleetPayloadError as exc:
            self.malformed += 1
            logger.warning("dropping malformed event on %s: %s", msg.subject, exc)
            await nc.publish(msg.reply, b"+TERM")
            self._notify()
            return
        key = (event.kind, event.instrument)
        expected = self._next.get(key)
        if (
            self.reorder_wait <= 0
            or expected is None
            or event.seq <= expected
            or event.kind not in self._whole
        ):
            # in order, the first of its instrument, or late (after a hole given up)
            await self._handle(event, msg.reply)
            if expected is None or event.seq == expected:
                self._next[key] = event.seq + 1
                if key in self._held:
                    await self._release(key)
            return
        # ahead of a hole: hold it (unacknowledged) until the hole fills or time is up
        held = self._held.setdefault(key, {})
        held[event.seq] = (event, msg.reply)
        self._held_since.setdefault(key, asyncio.get_running_loop().time())
        if len(held) >= self.max_ack_pending // 2:
            await self._release(key, give_up=True)

    async def _handle(self, event: FleetEvent, reply: str) -> None:
        # dispatch()'s work without its coroutine frame, per event
        self._run_handlers(event)
        if self._awaiting:
            await self._await_handlers()
        self.delivered += 1
        if event.stream_seq is not None:
            self._seen.add(event.stream_seq)
        if self.nc is not None and not self._ack_all:
            await self.nc.publish(reply, b"+ACK")
        self._notify()

    async def _release(self, key: tuple[str, str], give_up: bool = False) -> None:
        """Handle the held events of *key* that are next in line (all of them, holes
        given up, with *give_up*)."""
        held = self._held.get(key, {})
        while held:
            nxt = self._next[key]
            if nxt in held:
                event, reply = held.pop(nxt)
                await self._handle(event, reply)
                self._next[key] = nxt + 1
                self._held_since[key] = asyncio.get_running_loop().time()
                continue
            if not give_up:
                break
            first = min(held)
            self.gaps += 1
            logger.warning("%s %s: events %d..%d never came; going on", *key, nxt, first - 1)
            self._next[key] = first
        if not held:
            self._held.pop(key, None)
            self._held_since.pop(key, None)

    async def _expire_holes(self) -> None:
        now = asyncio.get_running_loop().time()
        for key, since in list(self._held_since.items()):
            if now - since >= self.reorder_wait:
                await self._release(key, give_up=True)

    async def dispatch(self, event: FleetEvent) -> int:
        """Run the handlers matching *event* (coroutines awaited); returns how many ran."""
        ran = self._run_handlers(event)
        await self._await_handlers()
        self.delivered += 1
        return ran

    def _run_handlers(self, event: FleetEvent) -> int:
        kind = event.kind
        if kind == "ifcb":
            return self.registries[kind].dispatch(event.fields, event)
        if kind == "rig":
            return self.registries[kind].dispatch(int(event.fields[0]), event)
        return self.registries[kind].dispatch(event.name, event)

    async def _await_handlers(self) -> None:
        while self._awaiting:
            try:
                await self._awaiting.pop(0)
            except Exception:
                logger.exception("fleet handler raised")

    def _notify(self) -> None:
        # the predicates run here, after each event, and a waiter wakes once, when its
        # own holds: a Condition woke every waiter for every event (a task switch each)
        for predicate, fut in self._watchers:
            if not fut.done():
                try:
                    if predicate():
                        fut.set_result(None)
                except Exception as exc:  # the waiter's own error, raised in wait_for
                    fut.set_exception(exc)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until *predicate()* holds, checked after each event.

        Raises:
            Timeout: it did not within *timeout* seconds.
        """
        if predicate():
            return
        watcher = (predicate, asyncio.get_running_loop().create_future())
        self._watchers.append(watcher)
        try:
            await asyncio.wait_for(watcher[1], timeout)
        except asyncio.TimeoutError as exc:
            raise Timeout(f"fleet condition not met within {timeout} s") from exc
        finally:
            self._watchers.remove(watcher)

    # -- commands and health ----------------------------------------------------------

    async def request(
        self, kind: str, instrument: str, op: str, body: Any = None, timeout: float = 10.0
    ) -> Any:
        """Send a command to an instrument through its bridge and return the result.

        Raises:
            CommandError: the bridge refused or failed it (``code`` says why:
                ``not-allowed``, ``unknown-command``, ``no-responders``...).
            PermissionDenied: NATS does not let this user send it.
            Timeout: no answer within *timeout*.
        """
        nc, _ = self._require()
        subject = f"sciwire.cmd.{kind}.{instrument}.{op}"
        denied: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._denied.setdefault(subject, []).append(denied)
        ask: asyncio.Future[Any] = asyncio.ensure_future(
            nc.request(subject, json.dumps(body or {}).encode(), timeout)
        )
        try:
            await asyncio.wait({ask, denied}, return_when=asyncio.FIRST_COMPLETED)
            if denied.done():
                ask.cancel()
                raise PermissionDenied(denied.result(), code="permission-denied")
            try:
                msg = ask.result()
            except nats.errors.NoRespondersError:
                raise CommandError(
                    f"no bridge serves {subject}: that instrument is in no running bridge's config",
                    code="no-responders",
                ) from None
            except (nats.errors.TimeoutError, asyncio.TimeoutError) as exc:
                raise Timeout(f"no answer to {subject} within {timeout} s") from exc
            except nats.errors.Error as exc:
                raise ConnectionClosed(f"cannot send {subject}: {exc}") from exc
        finally:
            waiters = self._denied.get(subject, [])
            with contextlib.suppress(ValueError):
                waiters.remove(denied)
            if not waiters:
                self._denied.pop(subject, None)
            if not ask.done():
                ask.cancel()
        try:
            reply = json.loads(msg.data)
            ok = reply["ok"]
        except (ValueError, KeyError, TypeError) as exc:
            raise FleetPayloadError("bad command reply", msg.data) from exc
        if not ok:
            error = reply.get("error") or {}
            raise CommandError(str(error.get("message", "command failed")), code=error.get("code"))
        return reply.get("result")

    async def relay_message_to_host(self, serial: str, message: str, timeout: float = 10.0) -> None:
        """Relay a command (``"routine:runsample"``...) to IFCB *serial* through its bridge."""
        await self.request("ifcb", serial, "relay", {"message": message}, timeout)

    async def rig(
        self, name: str, op: str, *args: Any, timeout: float = 30.0, **kwargs: Any
    ) -> Any:
        """Run one Services step (``init``, ``start``, ``stop``, ``status``, ``info``,
        ``cleanup``) on rig *name* through its bridge; returns ``{rig: reply data}``."""
        return await self.request("rig", name, op, {"args": list(args), "kwargs": kwargs}, timeout)

    async def bridges(self, wait: float = 0.5) -> list[dict[str, Any]]:
        """Ask every running bridge for its health; collect the answers for *wait* s."""
        nc, _ = self._require()
        reports: list[dict[str, Any]] = []
        inbox = nc.new_inbox()

        async def collect(msg: Msg) -> None:
            with contextlib.suppress(ValueError):
                reports.append(json.loads(msg.data))

        async with mapped("asking the bridges for their health"):
            sub = await nc.subscribe(inbox, cb=collect, pending_msgs_limit=1024)
            try:
                await nc.publish("sciwire.health.ping", b"", reply=inbox)
                await asyncio.sleep(wait)
            finally:
                await sub.unsubscribe()
        return sorted(reports, key=lambda r: str(r.get("bridge")))

    async def stream_info(self) -> dict[str, Any]:
        """The fleet stream's state (messages, bytes, first and last sequence...)."""
        _, js = self._require()
        async with mapped(f"stream {self.stream}"):
            info = await js.stream_info(self.stream)
        state = info.state
        return {
            "stream": self.stream,
            "messages": state.messages,
            "bytes": state.bytes,
            "first_seq": state.first_seq,
            "last_seq": state.last_seq,
            "consumers": state.consumer_count,
            "replicas": info.config.num_replicas,
        }
