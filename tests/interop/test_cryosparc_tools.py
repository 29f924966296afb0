"""The real cryosparc-tools 4.7.1 client (``cryosparc.command`` and the ``CryoSPARC``
object) against our CommandServer and simulated CryoSPARC, on loopback.

Only this direction exists: cryosparc-tools ships no command server, so our client is
checked against our server (tests/command) and here side by side with the peer's
client against the same server.
"""

from __future__ import annotations

import io
import json
import random
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from cryosparc.command import CommandClient as PeerClient
from cryosparc.command import make_json_request as peer_json_request
from cryosparc.command import make_request as peer_request
from cryosparc.errors import CommandError as PeerCommandError

from sciwire.command import CommandClient, CommandServer, NumpyEncoder, make_request
from sciwire.command._simulator import CommandCoreSim, simulated_servers
from tests.command.helpers import (
    ScriptedServer,
    Service,
    http_reply,
    scripted_servers,
    start_server,
)

pytestmark = [
    pytest.mark.interop,
    # cryosparc-tools reports HTTP errors with warnings.warn(UserWarning) before raising
    # its CommandError; the tests check the raised error, so that warning is expected.
    pytest.mark.filterwarnings("ignore:.*HTTP Error:UserWarning"),
]

LICENSE = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"


@pytest.fixture
def scripted() -> Iterator[Callable[[list[str | bytes]], ScriptedServer]]:
    yield from scripted_servers()


@pytest.fixture
def service() -> Iterator[Service]:
    svc = Service()
    yield svc
    svc.gate.set()


@pytest.fixture
def server(service: Service) -> Iterator[CommandServer]:
    srv = start_server(service, license_id=LICENSE)
    yield srv
    srv.stop_background()


@pytest.fixture
def peer(server: CommandServer) -> PeerClient:
    return PeerClient(
        service="command_core",
        host="127.0.0.1",
        port=server.port,
        headers={"License-ID": LICENSE},
        timeout=30,
    )


def test_peer_discovers_and_calls(peer: PeerClient, server: CommandServer) -> None:
    assert set(peer._endpoints) == {p.name for p in server.procedures}
    assert peer.hello_world() == {"hello": "world"}
    assert peer.add(2, 3) == 5
    assert peer.add(a="p", b="q") == "pq"
    assert peer.echo({"nested": [1, None, True]}) == {"nested": [1, None, True]}


def test_peer_rediscovery(peer: PeerClient, server: CommandServer) -> None:
    server.expose(lambda: "new", name="brand_new")
    peer()
    assert peer.brand_new() == "new"


def test_peer_sees_remote_errors_with_traceback(peer: PeerClient) -> None:
    with pytest.raises(PeerCommandError) as info:
        peer.boom("from peer")
    err = info.value
    assert err.code == -32000
    assert "ValueError: from peer" in err.data["traceback"]
    assert 'Encountered ValueError from JSONRPC function "boom"' in str(err)


def test_peer_and_ours_agree_on_errors(peer: PeerClient, server: CommandServer) -> None:
    ours = CommandClient(host="127.0.0.1", port=server.port, headers={"License-ID": LICENSE})
    try:
        with pytest.raises(PeerCommandError) as theirs_info:
            peer.boom("same")
        with pytest.raises(Exception) as ours_info:
            ours.boom("same")
        theirs, mine = theirs_info.value, ours_info.value
        assert (mine.code, mine.data.keys()) == (theirs.code, theirs.data.keys())
        first = str(theirs).split("\n", 1)[0]
        assert str(mine).split("\n", 1)[0] == first
        assert ours.add(1, 2) == peer.add(1, 2)
    finally:
        ours.close()


def test_peer_license_refused(server: CommandServer) -> None:
    with pytest.raises(PeerCommandError) as info:
        PeerClient(host="127.0.0.1", port=server.port, headers={"License-ID": "x"})
    assert info.value.code == 403
    assert info.value.data["error"]["name"] == "Forbidden"


def test_peer_numpy_encoder_and_make_requests(server: CommandServer) -> None:
    peer = PeerClient(
        host="127.0.0.1", port=server.port, headers={"License-ID": LICENSE}, cls=NumpyEncoder
    )
    assert peer.array_sum(np.arange(5)) == 10.0
    with peer_request(peer, method="GET", url="/file", query={"name": "n"}) as resp:
        assert resp.status == 200
        assert resp.read() == b"data:n"
    with peer_json_request(peer, "/echo_json", data={"v": np.int32(3)}) as resp:
        assert json.loads(resp.read())["got"] == {"v": 3}
    with pytest.raises(PeerCommandError) as info, peer_request(peer, url="/missing"):
        pass
    assert info.value.code == 404


# -- the CryoSPARC object against the simulated instance --------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def instance() -> Iterator[tuple[int, CommandCoreSim, Clock]]:
    """Simulated core/vis/rtp on base+2, +3, +5 of a free base port.

    The base is drawn below Linux's ephemeral range (32768-60999): ports next to a
    kernel-chosen one are often taken by other tests' client connections.
    """
    clock = Clock()
    rng = random.Random()
    for _ in range(50):
        base = rng.randrange(20000, 32000)
        core, servers = simulated_servers(base_port=base, license_id=LICENSE, clock=clock)
        started: list[CommandServer] = []
        try:
            started.append(servers[0].start_background())
            started.append(servers[1].start_background())
            started.append(servers[2].start_background())
        except OSError:
            for srv in started:
                srv.stop_background()
            continue
        try:
            yield base, core, clock
        finally:
            for srv in started:
                srv.stop_background()
        return
    pytest.fail("no free base port with +2, +3 and +5 free")


def test_cryosparc_object_start_up_and_job_lifecycle(
    instance: tuple[int, CommandCoreSim, Clock], capsys: pytest.CaptureFixture[str]
) -> None:
    from cryosparc.tools import CryoSPARC

    base, _, clock = instance
    cs = CryoSPARC(
        license=LICENSE,
        host="127.0.0.1",
        base_port=base,
        email="user@example.com",
        password="password",
    )
    assert cs.user_id == "u1"
    assert cs.test_connection() is True
    assert "Connection succeeded to CryoSPARC command_rtp" in capsys.readouterr().out
    assert [lane["name"] for lane in cs.get_lanes()] == ["default", "gpu"]
    project = cs.find_project("P1")
    assert project.doc["title"] == "Simulated project"
    workspace = cs.create_workspace("P1", "Interop")
    assert workspace.uid == "W2"
    job = cs.create_job("P1", workspace.uid, "homo_abinit", params={"abinit_K": 3})
    assert job.status == "building"
    assert job.set_param("abinit_K", 2) is True
    job.queue("gpu")
    assert job.status == "queued"
    clock.now += 2.5
    assert job.refresh().status == "running"
    clock.now += 10
    assert job.wait_for_done() == "completed"  # already done: returns without sleeping
    assert job.doc["params_spec"]["abinit_K"] == {"value": 2}


def test_cryosparc_object_kill_and_bad_credentials(
    instance: tuple[int, CommandCoreSim, Clock],
) -> None:
    from cryosparc.tools import CryoSPARC

    base, _, _ = instance
    cs = CryoSPARC(
        license=LICENSE,
        host="127.0.0.1",
        base_port=base,
        email="user@example.com",
        password="password",
    )
    job = cs.create_job("P1", "W1", "homo_abinit")
    job.queue()
    job.kill()
    assert job.status == "killed"
    with pytest.raises(RuntimeError, match="authentication"):
        CryoSPARC(
            license=LICENSE,
            host="127.0.0.1",
            base_port=base,
            email="user@example.com",
            password="wrong",
        )


def _wire(head: bytes, body: bytes) -> tuple[str, dict[str, str], dict[str, object]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    doc = json.loads(body)
    return lines[0], headers, doc


def test_our_requests_match_the_peers_on_the_wire(
    scripted: Callable[[list[str | bytes]], ScriptedServer],
) -> None:
    reply = http_reply(b'{"result": 5}')
    srv = scripted([reply, reply, reply, reply])
    headers = {"License-ID": LICENSE}
    peer = PeerClient(host="127.0.0.1", port=srv.port, headers=headers)
    ours = CommandClient(host="127.0.0.1", port=srv.port, headers=headers, retries=1)
    try:
        assert peer.add(2, 3) == ours.add(2, 3) == 5
        assert peer.add(a=2, b=3) == ours.add(a=2, b=3) == 5
    finally:
        ours.close()
    # requests: peer describe, ours describe, then peer/ours alternating
    wire = [_wire(h, b) for h, b in zip(srv.heads, srv.requests, strict=True)]
    describes = [w for w in wire if w[2]["method"] == "system.describe"]
    calls = [w for w in wire if w[2]["method"] == "add"]
    assert len(describes) == 2 and len(calls) == 4
    for theirs, mine in [(describes[0], describes[1]), (calls[0], calls[1]), (calls[2], calls[3])]:
        assert mine[0] == theirs[0]  # POST /api HTTP/1.1
        for name in ("originator", "license-id", "content-type", "content-length"):
            assert mine[1][name] == theirs[1][name], name
        assert mine[1]["host"] == theirs[1]["host"]
        assert {k: v for k, v in mine[2].items() if k != "id"} == {
            k: v for k, v in theirs[2].items() if k != "id"
        }
        assert uuid.UUID(str(mine[2]["id"])).version == uuid.UUID(str(theirs[2]["id"])).version == 4
    assert calls[0][2]["params"] == [2, 3] and calls[2][2]["params"] == {"a": 2, "b": 3}


@pytest.mark.parametrize("kind", ["file", "generator"])
def test_streamed_uploads_arrive_the_same_from_both_clients(
    server: CommandServer, peer: PeerClient, kind: str
) -> None:
    """urllib (under cryosparc-tools' make_request) streams a file or an iterable chunked;
    so do we. Our server receives the same bytes from both."""
    got: list[bytes] = []
    server.route("POST", "/upload", lambda req: got.append(req.body) or {"size": len(req.body)})
    payload = bytes(range(256)) * 300

    def body() -> object:
        if kind == "file":
            return io.BytesIO(payload)
        return (payload[i : i + 7000] for i in range(0, len(payload), 7000))

    ours = CommandClient(host="127.0.0.1", port=server.port, headers={"License-ID": LICENSE})
    try:
        with peer_request(peer, url="/upload", data=body()) as resp:
            theirs_reply = json.loads(resp.read())
        with peer_request(ours, url="/upload", data=body()) as resp:  # the peer's own helper
            mixed_reply = json.loads(resp.read())
        with make_request(ours, url="/upload", data=body()) as resp:
            ours_reply = json.loads(resp.read())
    finally:
        ours.close()
    assert theirs_reply == mixed_reply == ours_reply == {"size": len(payload)}
    assert got == [payload, payload, payload]
