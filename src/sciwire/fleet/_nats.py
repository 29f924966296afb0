"""Connecting to NATS and setting up streams: what the bridge and the consumers share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig, StreamSource

from sciwire.errors import ConnectError, ConnectionClosed, Timeout
from sciwire.fleet._schema import KINDS, FleetError

__all__ = [
    "Credentials",
    "connect",
    "connect_options",
    "ensure_stream",
    "mapped",
    "resync_sources",
    "stream_subjects",
]

logger = logging.getLogger(__name__)

#: JetStream's error code for "no suitable peers for placement"
NO_PEERS = 10005

#: ``(user, password)``, a ``.creds`` file path, or a mapping with ``creds``,
#: ``nkey_seed`` (an nkey seed file) or ``token``
Credentials = tuple[str, str] | str | Mapping[str, Any] | None


@contextlib.asynccontextmanager
async def mapped(what: str) -> AsyncIterator[None]:
    """Turn nats-py's exceptions inside the block into sciwire's (at the public edge).

    Raises:
        FleetError: JetStream answered with an error (a missing stream...).
        Timeout: no answer in time.
        ConnectionClosed: the connection is closed or draining.
    """
    try:
        yield
    except nats.js.errors.APIError as exc:
        raise FleetError(f"{what}: {exc.description}") from exc
    except (nats.errors.TimeoutError, asyncio.TimeoutError) as exc:
        raise Timeout(f"{what}: no answer in time") from exc
    except nats.errors.NoRespondersError as exc:
        raise FleetError(f"{what}: JetStream is not available (no responders)") from exc
    except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError) as exc:
        raise ConnectionClosed(f"{what}: the NATS connection is closed") from exc
    except nats.errors.Error as exc:
        raise FleetError(f"{what}: {exc}") from exc


def stream_subjects() -> list[str]:
    """The subjects the fleet stream captures (never the ``sciwire.cmd.`` requests)."""
    return [f"sciwire.{kind}.>" for kind in KINDS]


def _tls_context(tls: Mapping[str, Any] | ssl.SSLContext | None) -> ssl.SSLContext | None:
    if tls is None or isinstance(tls, ssl.SSLContext):
        return tls
    ctx = ssl.create_default_context(cafile=tls.get("ca"))
    if tls.get("cert"):
        ctx.load_cert_chain(tls["cert"], tls.get("key"))
    return ctx


def connect_options(
    servers: str | Sequence[str],
    credentials: Credentials = None,
    tls: Mapping[str, Any] | ssl.SSLContext | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for :func:`nats.connect` from our simpler settings.

    Raises:
        TypeError: credentials of an unknown shape.
    """
    opts: dict[str, Any] = {
        "servers": [servers] if isinstance(servers, str) else list(servers),
        "name": name,
        "connect_timeout": 5,
        "reconnect_time_wait": 0.25,
        "max_reconnect_attempts": -1,
        "ping_interval": 5,
        "max_outstanding_pings": 3,
        # what publishers buffer while reconnecting; past it publish raises
        "pending_size": 64 * 1024 * 1024,
    }
    if isinstance(credentials, tuple):
        opts["user"], opts["password"] = credentials
    elif isinstance(credentials, str):
        opts["user_credentials"] = credentials
    elif isinstance(credentials, Mapping):
        if credentials.get("creds"):
            opts["user_credentials"] = credentials["creds"]
        if credentials.get("nkey_seed"):
            opts["nkeys_seed"] = credentials["nkey_seed"]
        if credentials.get("token"):
            opts["token"] = credentials["token"]
    elif credentials is not None:
        raise TypeError(f"unsupported credentials {type(credentials).__name__}")
    ctx = _tls_context(tls)
    if ctx is not None:
        opts["tls"] = ctx
    return opts


async def connect(
    options: Mapping[str, Any],
    *,
    timeout: float = 10.0,
    error_cb: Callable[[Exception], Awaitable[None]] | None = None,
    **callbacks: Any,
) -> Client:
    """Connect, retrying the first connection until *timeout* (later losses reconnect
    on their own, forever).

    Raises:
        ConnectError: no server answered in time, or the credentials were refused.
    """
    refused: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()

    async def on_error(exc: Exception) -> None:
        refusal = isinstance(exc, nats.errors.AuthorizationError) or (
            "authorization violation" in str(exc).lower() or "authentication" in str(exc).lower()
        )
        if refusal and not refused.done():
            refused.set_result(exc)
        if error_cb is not None:
            await error_cb(exc)
        else:
            logger.info("nats: %s", exc)

    nc = Client()
    attempt: asyncio.Future[Any] = asyncio.ensure_future(
        nc.connect(**options, error_cb=on_error, allow_reconnect=True, **callbacks)
    )
    try:
        waiting: set[asyncio.Future[Any]] = {attempt, refused}
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when="FIRST_COMPLETED")
        if attempt in done:
            attempt.result()  # raises what the connection attempt raised
            return nc
        if refused in done:
            raise ConnectError(f"NATS refused the credentials: {refused.result()}")
        raise ConnectError(f"no NATS server answered at {options['servers']} within {timeout} s")
    except (OSError, nats.errors.Error) as exc:
        raise ConnectError(f"cannot connect to NATS: {exc}") from exc
    finally:
        if not attempt.done() or attempt.exception() is not None or refused.done():
            attempt.cancel()
            with contextlib.suppress(BaseException):
                await attempt
            if not nc.is_connected or refused.done():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(nc.close(), 5)


async def ensure_stream(
    js: JetStreamContext,
    name: str = "SCIWIRE",
    *,
    max_age: float = 7 * 86400.0,
    max_bytes: int = 1 << 30,
    max_msgs: int = -1,
    max_msg_size: int = 1 << 20,
    replicas: int = 1,
    storage: str = "file",
    duplicate_window: float = 120.0,
    sources: Sequence[tuple[str, str]] = (),
    subjects: Sequence[str] | None = None,
    timeout: float = 20.0,
) -> None:
    """Create the fleet stream, or update its limits; retries while JetStream elects a
    leader (a new cluster) until *timeout*.

    *subjects* narrows what the stream captures (default: every fleet event subject).
    With *sources* (``[(stream, domain)]``) the stream captures no subjects itself but
    copies those streams, in order and once each: the shore side of a leaf node.

    Raises:
        FleetError: JetStream refused the configuration.
        Timeout: JetStream did not become available.
    """
    config = StreamConfig(
        name=name,
        subjects=None if sources else list(subjects or stream_subjects()),
        max_age=max_age,
        max_bytes=max_bytes,
        max_msgs=max_msgs,
        max_msg_size=max_msg_size,
        num_replicas=replicas,
        storage=StorageType(storage),
        duplicate_window=duplicate_window,
        discard=DiscardPolicy.OLD,
        sources=[StreamSource(name=src, external=_external(domain)) for src, domain in sources]
        or None,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        # short attempts: a cluster still electing its leader drops API requests unanswered
        step = max(0.1, min(2.0, deadline - loop.time()))
        try:
            try:
                await asyncio.wait_for(js.stream_info(name), step)
            except nats.js.errors.NotFoundError:
                await asyncio.wait_for(js.add_stream(config), step)
            else:
                await asyncio.wait_for(js.update_stream(config), step)
            return
        except (nats.js.errors.BadRequestError, nats.js.errors.ServerError) as exc:
            # "no suitable peers for placement": a new cluster whose servers have not all
            # joined its JetStream yet; wait for them, up to the deadline
            if exc.err_code != NO_PEERS or loop.time() > deadline:
                raise FleetError(f"JetStream refused stream {name}: {exc.description}") from exc
            await asyncio.sleep(0.25)
        except (nats.errors.Error, asyncio.TimeoutError) as exc:
            # no JetStream leader yet (a cluster still forming), or a server restarting
            if loop.time() > deadline:
                raise Timeout(f"JetStream not available for stream {name}: {exc}") from exc
            await asyncio.sleep(0.25)


def _external(domain: str) -> Any:
    from nats.js.api import ExternalStream

    return ExternalStream(api=f"$JS.{domain}.API")


async def resync_sources(js: JetStreamContext, name: str, timeout: float = 10.0) -> int:
    """Restart a stream's sourcing now, from where each source stopped.

    After the far side of a source was away (a ship's leaf link cut, the shore
    restarted) nats-server retries with a growing back-off and may take tens of
    seconds to notice the link is back; call this once it is. The server resumes
    each source after the last message it already copied, so nothing is stored twice.
    Returns how many sources were restarted.

    Raises:
        FleetError: the stream has no sources, or JetStream refused the update.
    """
    try:
        info = await asyncio.wait_for(js.stream_info(name), timeout)
        config = info.config
        sources = config.sources
        if not sources:
            raise FleetError(f"stream {name} has no sources")
        config.sources = None
        await asyncio.wait_for(js.update_stream(config), timeout)
        config.sources = sources
        await asyncio.wait_for(js.update_stream(config), timeout)
    except nats.js.errors.APIError as exc:
        raise FleetError(f"JetStream refused to resync {name}: {exc.description}") from exc
    except (nats.errors.Error, asyncio.TimeoutError) as exc:
        raise Timeout(f"JetStream did not answer while resyncing {name}: {exc}") from exc
    return len(sources)
