"""One retry meaning for both HTTP pools (issue #13): the sans-I/O decision table of
:class:`~sciwire.core.http._policy.Resend`, then the same scenarios run on the
blocking :class:`HttpPool` and the asyncio :class:`AsyncHttpPool` against a real
loopback server that drops the connection at each point (before any response byte,
mid-response, by FIN or by reset; on a fresh or a kept connection; GET or POST),
counting how often the request reached the server and what was raised."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from sciwire.core.http import AsyncHttpPool, Endpoint, HttpPool
from sciwire.core.http._policy import ANY, EARLY, NEVER, Resend
from sciwire.errors import ConnectError, ConnectionClosed
from tests.core.test_http_pools import Scripted, ok

# -- the decision table ----------------------------------------------------------------

#: (policy, retries, reused, attempt) -> what may follow a drop
TABLE = [
    ("unsent", 3, True, 1, NEVER),
    ("unsent", 3, False, 1, NEVER),
    ("stale", 3, True, 1, EARLY),
    ("stale", 3, True, 2, NEVER),
    ("stale", 3, False, 1, NEVER),
    ("idempotent", 1, True, 1, EARLY),  # a stale kept connection is always worth one more
    ("idempotent", 1, False, 1, NEVER),
    ("idempotent", 3, False, 1, ANY),
    ("idempotent", 3, True, 2, ANY),
    ("idempotent", 3, False, 3, NEVER),
    ("idempotent", 3, True, 3, NEVER),
]


@pytest.mark.parametrize(("policy", "retries", "reused", "attempt", "allowed"), TABLE)
def test_resend_table(policy: str, retries: int, reused: bool, attempt: int, allowed: str) -> None:
    assert Resend(policy, retries).allows(reused, attempt) == allowed  # type: ignore[arg-type]


def test_resend_again_and_connect() -> None:
    assert Resend.again(ANY, early=False) and Resend.again(ANY, early=True)
    assert Resend.again(EARLY, early=True) and not Resend.again(EARLY, early=False)
    assert not Resend.again(NEVER, early=True)
    policy = Resend("unsent", 2)  # connecting again does not depend on the policy
    assert policy.after_connect_failure(1, timed_out=False, tls=False)
    assert not policy.after_connect_failure(2, timed_out=False, tls=False)
    assert not policy.after_connect_failure(1, timed_out=True, tls=False)
    assert not policy.after_connect_failure(1, timed_out=False, tls=True)
    assert Resend("stale", 0).retries == 1
    with pytest.raises(ValueError, match="retry policy"):
        Resend("sometimes", 1)  # type: ignore[arg-type]


# -- the same scenarios on both pools ---------------------------------------------------

#: a response cut short: the head promises 9 bytes, 5 come, then the connection closes
MID = b"!HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"


@dataclass(frozen=True)
class Scenario:
    """A request under a policy; the server's actions for it; what must come of it."""

    name: str
    policy: str
    retries: int
    method: str
    kept: bool  #: the request goes out on a connection kept from an earlier one
    actions: tuple[bytes | str, ...]
    reached: int  #: times the request reached the server
    outcome: bytes | type[Exception]


SCENARIOS = [
    Scenario(
        "unsent-post-kept-early",
        "unsent",
        3,
        "POST",
        True,
        ("close", ok(b"x")),
        1,
        ConnectionClosed,
    ),
    Scenario(
        "unsent-post-fresh-early",
        "unsent",
        3,
        "POST",
        False,
        ("close", ok(b"x")),
        1,
        ConnectionClosed,
    ),
    Scenario(
        "unsent-get-kept-reset", "unsent", 3, "GET", True, ("reset", ok(b"x")), 1, ConnectionClosed
    ),
    Scenario("stale-post-kept-early", "stale", 3, "POST", True, ("close", ok(b"two")), 2, b"two"),
    Scenario("stale-post-kept-reset", "stale", 3, "POST", True, ("reset", ok(b"two")), 2, b"two"),
    Scenario(
        "stale-post-kept-twice",
        "stale",
        3,
        "POST",
        True,
        ("close", "close", ok(b"x")),
        2,
        ConnectionClosed,
    ),
    Scenario(
        "stale-post-fresh-early",
        "stale",
        3,
        "POST",
        False,
        ("close", ok(b"x")),
        1,
        ConnectionClosed,
    ),
    Scenario("stale-post-kept-mid", "stale", 3, "POST", True, (MID, ok(b"x")), 1, ConnectionClosed),
    Scenario(
        "idem-get-fresh-early-then-mid",
        "idempotent",
        3,
        "GET",
        False,
        ("close", MID, ok(b"ok")),
        3,
        b"ok",
    ),
    Scenario(
        "idem-get-fresh-exhausted",
        "idempotent",
        3,
        "GET",
        False,
        ("close", "close", "close", ok(b"x")),
        3,
        ConnectionClosed,
    ),
    Scenario("idem-get-kept-mid", "idempotent", 2, "GET", True, (MID, ok(b"ok")), 2, b"ok"),
    Scenario("idem-get-fresh-reset", "idempotent", 2, "GET", False, ("reset", ok(b"ok")), 2, b"ok"),
    Scenario("idem-one-kept-early", "idempotent", 1, "GET", True, ("close", ok(b"ok")), 2, b"ok"),
    Scenario(
        "idem-one-fresh-early",
        "idempotent",
        1,
        "GET",
        False,
        ("close", ok(b"x")),
        1,
        ConnectionClosed,
    ),
]


@pytest.fixture
def server() -> Iterator[Callable[[Scenario], Scripted]]:
    made: list[Scripted] = []

    def make(sc: Scenario) -> Scripted:
        warm = [ok(b"warm")] if sc.kept else []
        made.append(Scripted([*warm, *sc.actions]))
        return made[-1]

    yield make
    for srv in made:
        srv.close()


@pytest.fixture
def closing() -> Iterator[list[HttpPool]]:
    pools: list[HttpPool] = []
    yield pools
    for pool in pools:
        pool.shutdown()


def _check(sc: Scenario, srv: Scripted, got: bytes | BaseException) -> None:
    reached = len(srv.requests) - (1 if sc.kept else 0)
    if isinstance(sc.outcome, bytes):
        assert got == sc.outcome
    else:
        assert isinstance(got, sc.outcome), got
    assert reached == sc.reached


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda sc: sc.name)
def test_blocking_pool(
    sc: Scenario,
    server: Callable[[Scenario], Scripted],
    closing: list[HttpPool],
) -> None:
    srv = server(sc)
    pool = HttpPool(
        Endpoint("http", "127.0.0.1", srv.port),
        timeout=10.0,
        retries=sc.retries,
        retry=sc.policy,  # type: ignore[arg-type]
    )
    closing.append(pool)
    body = None if sc.method == "GET" else b"data"
    if sc.kept:
        assert pool.call(sc.method, "/", body, {}).body == b"warm"
    got: bytes | BaseException
    try:
        got = pool.call(sc.method, "/", body, {}).body
    except (ConnectionClosed, ConnectError) as exc:
        got = exc
    _check(sc, srv, got)


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda sc: sc.name)
async def test_asyncio_pool(
    sc: Scenario,
    server: Callable[[Scenario], Scripted],
) -> None:
    srv = server(sc)
    pool = AsyncHttpPool(
        Endpoint("http", "127.0.0.1", srv.port),
        timeout=10.0,
        retries=sc.retries,
        retry=sc.policy,  # type: ignore[arg-type]
    )
    body = None if sc.method == "GET" else b"data"
    try:
        if sc.kept:
            assert (await pool.call(sc.method, "/", body, {})).body == b"warm"
        got: bytes | BaseException
        try:
            got = (await pool.call(sc.method, "/", body, {})).body
        except (ConnectionClosed, ConnectError) as exc:
            got = exc
    finally:
        # closed on the test's own loop (a fixture finalizer runs after it is gone)
        await pool.close()
    _check(sc, srv, got)


# -- probing an idle connection before reuse: one rule for both pools --------------------


@pytest.mark.parametrize("policy", ["unsent", "stale", "idempotent"])
async def test_both_pools_probe_idle_connections_alike(
    policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under "idempotent" a closed kept connection is re-sent on a new one, so neither
    # pool probes; otherwise each reuse is probed once (Resend.probe).
    from sciwire.core.http._policy import StaleProbe

    probes: list[int] = []
    real = StaleProbe.__call__

    def counted(self: StaleProbe, sock: object) -> bool:
        probes.append(1)
        return real(self, sock)  # type: ignore[arg-type]

    monkeypatch.setattr(StaleProbe, "__call__", counted)
    expected = 0 if policy == "idempotent" else 2
    assert Resend(policy, 1).probe == (policy != "idempotent")  # type: ignore[arg-type]
    counts = []
    for blocking in (True, False):
        srv = Scripted([ok(b"1"), ok(b"2"), ok(b"3")])
        probes.clear()
        try:
            endpoint = Endpoint("http", "127.0.0.1", srv.port)
            if blocking:
                pool = HttpPool(endpoint, timeout=10.0, retry=policy)  # type: ignore[arg-type]
                try:
                    got = [pool.call("GET", "/", None, {}).body for _ in range(3)]
                finally:
                    pool.shutdown()
            else:
                apool = AsyncHttpPool(endpoint, timeout=10.0, retry=policy)  # type: ignore[arg-type]
                try:
                    got = [(await apool.call("GET", "/", None, {})).body for _ in range(3)]
                finally:
                    await apool.close()
        finally:
            srv.close()
        assert got == [b"1", b"2", b"3"]
        counts.append(len(probes))
    assert counts == [expected, expected]
