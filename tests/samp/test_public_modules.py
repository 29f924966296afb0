"""astropy.samp's public module tree and the names added to match it."""

from __future__ import annotations

import http.server
import importlib
import io
import os
import queue
import stat
import sys
import threading
import urllib.request
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sciwire.samp
from sciwire.errors import Timeout
from sciwire.samp import SAMPHubServer, SAMPIntegratedClient, SAMPWarning, conf
from sciwire.samp import lockfile_helpers as lh
from sciwire.samp.constants import SAFE_MTYPES, SAMP_ICON, SAMP_STATUS_ERROR, SAMP_STATUS_OK
from sciwire.samp.errors import SAMPDataError, SAMPProxyError
from sciwire.samp.hub import WebProfileDialog
from sciwire.samp.hub_script import hub_script, log, make_parser
from sciwire.samp.utils import (
    SAMPMsgReplierWrapper,
    SAMPXXEServerProxy,
    ServerProxyPool,
    get_num_args,
    get_safe_parser,
    getattr_recursive,
    internet_on,
    safe_xmlrpc_loads,
)
from sciwire.samp.web_profile import (
    CLIENT_ACCESS_POLICY,
    CROSS_DOMAIN,
    TerminalConsent,
    web_profile_text_dialog,
)
from tests.samp.clientkit import ClientFactory, Inbox

MODULES = {
    "client": ["SAMPClient", "SAMPHubServer", "get_num_args", "internet_on"],
    "hub": ["SAMPHubServer", "WebProfileDialog", "create_lock_file", "log", "ServerProxyPool"],
    "hub_proxy": ["SAMPHubProxy", "get_main_running_hub", "SAMPXXEServerProxy"],
    "integrated_client": ["SAMPIntegratedClient"],
    "hub_script": ["hub_script"],
    "errors": [
        "SAMPClientError",
        "SAMPHubError",
        "SAMPProxyError",
        "SAMPProxyTimeoutError",
        "SAMPWarning",
    ],
    "constants": ["SAFE_MTYPES", "SAMP_ICON", "SAMP_STATUS_OK", "SAMP_STATUS_WARNING"],
    "utils": ["ServerProxyPool", "SAMPMsgReplierWrapper", "get_num_args", "internet_on"],
    "web_profile": ["CROSS_DOMAIN", "CLIENT_ACCESS_POLICY", "web_profile_text_dialog"],
    "lockfile_helpers": [
        "get_running_hubs",
        "check_running_hub",
        "remove_garbage_lock_files",
        "create_lock_file",
        "read_lockfile",
        "write_lockfile",
        "get_main_running_hub",
    ],
    "standard_profile": [],
}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_astropy_module_paths_exist_with_their_names(module: str) -> None:
    loaded = importlib.import_module(f"sciwire.samp.{module}")
    for name in MODULES[module]:
        assert hasattr(loaded, name), f"sciwire.samp.{module}.{name}"


def test_top_level_has_astropys_star_names() -> None:
    for name in ("conf", "SAMPMsgReplierWrapper", "SAMPXXEServerProxy", "safe_xmlrpc_loads",
                 "WebProfileDialog", "SAMP_ICON", "SAFE_MTYPES"):  # fmt: skip
        assert name in sciwire.samp.__all__
        assert hasattr(sciwire.samp, name)


def test_conf_items_set_temp_and_reset() -> None:
    assert conf.n_retries == 10
    with conf.set_temp("use_internet", False):
        assert conf.use_internet is False
        assert internet_on() is False
    assert conf.use_internet is True
    conf.n_retries = 3
    conf.reset("n_retries")
    assert conf.n_retries == 10
    with pytest.raises(AttributeError):
        conf.reset("nope")
    with pytest.raises(AttributeError), conf.set_temp("nope", 1):
        pass
    assert conf.keys() == ["use_internet", "n_retries"]
    assert conf.values() == [True, 10] and dict(conf.items())["n_retries"] == 10
    assert "n_retries = 10" in conf.help() and conf.help("use_internet").count("\n") == 0
    conf.use_internet = False
    conf.reload()
    assert conf.use_internet is True
    assert sciwire.samp.Conf.n_retries == 10  # class-level defaults, as astropy's items


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_internet_on_probes_the_given_url(http_url: str, tmp_path: Path) -> None:
    assert internet_on(http_url) is True
    closed = http_url.rsplit(":", 1)[0] + ":1/"
    assert internet_on(closed) is False


def test_constants() -> None:
    assert SAMP_ICON.startswith(b"\x89PNG\r\n\x1a\n")
    assert isinstance(SAFE_MTYPES, list) and "table.*" in SAFE_MTYPES
    assert sciwire.samp.constants.__profile_version__ == "1.3"


def test_get_num_args_and_getattr_recursive() -> None:
    def five(a: Any, b: Any, c: Any, d: Any, e: Any) -> None: ...

    class K:
        def six(self, a: Any, b: Any, c: Any, d: Any, e: Any, f: Any) -> None: ...

    assert get_num_args(five) == 5
    assert get_num_args(K().six) == 6
    with pytest.raises(TypeError):
        get_num_args(len)  # type: ignore[arg-type]
    assert getattr_recursive(os, "path.join") is os.path.join


def test_safe_xmlrpc_loads_refuses_entities() -> None:
    good = xmlrpc.client.dumps(("x",), methodresponse=True)
    assert safe_xmlrpc_loads(good) == (("x",), None)
    evil = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "boom">]>' + good.split("?>", 1)[1]
    with pytest.raises(SAMPDataError):
        safe_xmlrpc_loads(evil)
    parser, _ = get_safe_parser()
    with pytest.raises(SAMPDataError):
        parser.feed(evil.encode())


def test_server_proxy_pool_talks_to_the_hub(hub: SAMPHubServer) -> None:
    pool = ServerProxyPool(2, SAMPXXEServerProxy, hub.url, allow_none=1)
    try:
        assert pool.samp.hub.ping() == ""
        with pytest.raises(SAMPProxyError):
            pool.samp.hub.register("not the secret")
        reg = pool.samp.hub.register(hub.params["samp.secret"])
        assert reg["samp.hub-id"] in pool.samp.hub.getRegisteredClients(reg["samp.private-key"])
        pool.samp.hub.unregister(reg["samp.private-key"])
    finally:
        pool.shutdown()
    with pytest.raises(ValueError):
        ServerProxyPool(0, SAMPXXEServerProxy, hub.url)


def test_server_proxy_pool_waits_for_a_free_proxy_with_a_deadline(hub: SAMPHubServer) -> None:
    pool = ServerProxyPool(1, SAMPXXEServerProxy, hub.url)
    pool.timeout = 0.05
    held = pool._proxies.get()
    try:
        with pytest.raises(Timeout):
            pool.samp.hub.ping()
    finally:
        pool._proxies.put(held)
        pool.shutdown()


def test_msg_replier_wrapper_turns_results_and_errors_into_replies(make: ClientFactory) -> None:
    rx = make("rx")

    @SAMPMsgReplierWrapper(rx)
    def handler(key: str, sender: str, msg_id: str, mtype: str, params: Any, extra: Any) -> Any:
        if params.get("fail") == "1":
            raise RuntimeError("asked to fail")
        return {"echo": params["v"]}

    rx.bind_receive_call("test.wrap", handler)
    tx = make("tx")
    ok = tx.ecall_and_wait(rx.get_public_id(), "test.wrap", "5", v="x")
    assert ok["samp.status"] == SAMP_STATUS_OK and ok["samp.result"] == {"echo": "x"}
    bad = tx.ecall_and_wait(rx.get_public_id(), "test.wrap", "5", v="x", fail="1")
    assert bad["samp.status"] == SAMP_STATUS_ERROR
    assert "asked to fail" in bad["samp.error"]["samp.errortxt"]
    assert "Traceback" in bad["samp.error"]["samp.debugtxt"]


def test_notify_all_that_reaches_nobody_warns(make: ClientFactory) -> None:
    tx = make("tx")
    with pytest.warns(SAMPWarning, match="No client was able to receive"):
        assert tx.enotify_all("test.nobody") == []


def test_get_mtype_subtypes() -> None:
    assert SAMPHubServer.get_mtype_subtypes("a.b.c") == ["a.b.c", "a.b.*", "a.*", "*"]
    assert SAMPHubServer.get_mtype_subtypes("x") == ["x", "*"]


# -- lockfile helpers ------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SAMP_HUB", raising=False)
    return tmp_path


def test_lockfile_helpers_with_live_and_dead_hubs(home: Path) -> None:
    dead = home / ".samp-1"
    dead.mkdir()
    (dead / "samp-hub-dead").write_text("samp.secret=x\nsamp.hub.xmlrpc.url=http://127.0.0.1:1/\n")
    with SAMPHubServer(web_profile=False, mode="multiple") as hub:
        live = hub.lockfile
        assert live is not None and Path(live).parent == home / ".samp-1"
        running, params = lh.check_running_hub(live)
        assert running and params["samp.secret"] == hub.params["samp.secret"]
        assert lh.check_running_hub(dead / "samp-hub-dead") == (
            False,
            {"samp.secret": "x", "samp.hub.xmlrpc.url": "http://127.0.0.1:1/"},
        )
        assert lh.check_running_hub(home / "missing") == (False, {})
        assert list(lh.get_running_hubs()) == [live]
        with pytest.raises(sciwire.samp.SAMPHubError):
            lh.get_main_running_hub()  # no ~/.samp
        lh.remove_garbage_lock_files()
        assert not (dead / "samp-hub-dead").exists() and Path(live).exists()


def test_create_lock_file_is_owner_only_and_refuses_a_live_hub(home: Path) -> None:
    params = {"samp.secret": "s", "samp.hub.xmlrpc.url": "http://127.0.0.1:1/", "a": "b=c"}
    path = lh.create_lock_file(mode="single", hub_params=params)
    assert path == str(home / ".samp")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert lh.read_lockfile(path)["a"] == "b=c"  # astropy breaks on a value with "="
    multi = lh.create_lock_file(mode="multiple", hub_id="abc", hub_params=params)
    assert multi == str(home / ".samp-1" / "samp-hub-abc")
    with SAMPHubServer(web_profile=False) as hub:  # writes ~/.samp over the stale one
        assert lh.get_main_running_hub()["samp.secret"] == hub.params["samp.secret"]
        with pytest.warns(SAMPWarning, match="already running"):
            assert lh.create_lock_file(mode="single", hub_params=params) is False
    lh.write_lockfile(home / "w", {"k": "v"})
    assert lh.read_lockfile(home / "w") == {"k": "v"}


def test_create_lock_file_refuses_a_remote_lockurl(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAMP_HUB", "std-lockurl:http://127.0.0.1:1/lock")
    with pytest.warns(SAMPWarning, match="not a local file"):
        assert lh.create_lock_file(hub_params={}) is False


# -- hub_script --------------------------------------------------------------------------


def test_hub_script_runs_a_hub_with_samp_hub_options(home: Path) -> None:
    lock = home / "script.lock"
    logfile = home / "hub.log"
    before = log.level
    try:
        hub_script(0.3, ["-w", "-f", str(lock), "-L", "DEBUG", "-O", str(logfile), "-l", "L"])
        assert log.level == 10
    finally:
        log.setLevel(before)
    assert not lock.exists()  # removed when the hub stopped
    assert logfile.exists()


def test_hub_script_reads_sys_argv_and_exits_1_on_a_live_lockfile(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = SAMPHubServer(web_profile=False)
    hub.start()
    try:
        monkeypatch.setattr(sys, "argv", ["samp_hub", "-w", "-L", "CRITICAL"])
        with pytest.raises(SystemExit) as exited:
            hub_script(0.2)
        assert exited.value.code == 1
    finally:
        hub.stop()
        log.setLevel("NOTSET")
    options = vars(make_parser().parse_args(["-m", "-t", "5", "-c", "6", "-P", "3", "-k", "K"]))
    assert options["mode"] == "multiple" and options["timeout"] == 5
    assert options["client_timeout"] == 6 and options["pool_size"] == 3
    assert options["secret"] == "K"


# -- Web Profile consent -------------------------------------------------------------


def test_text_dialog_reads_the_answer() -> None:
    answers: queue.Queue[bool] = queue.Queue()
    out = io.StringIO()
    replies = iter(["maybe", "yes"])
    request = ({"samp.name": "page", "x": "1"}, ("127.0.0.1", 5), "http://o")
    web_profile_text_dialog(request, answers, ask=lambda _: next(replies), out=out)
    assert answers.get_nowait() is True
    assert "page" in out.getvalue() and "http://o" in out.getvalue()
    web_profile_text_dialog(("bare", ("h", 1), "o"), answers, ask=lambda _: "", out=out)
    assert answers.get_nowait() is False

    def eof(_: str) -> str:
        raise EOFError

    web_profile_text_dialog(request, answers, ask=eof, out=out)
    assert answers.get_nowait() is False


def test_terminal_consent_answers_and_times_out() -> None:
    out = io.StringIO()
    assert TerminalConsent(5, ask=lambda _: "y", out=out)({"samp.name": "a", "origin": "o"})
    gate = threading.Event()

    def slow(_: str) -> str:
        gate.wait(5)
        return "y"

    try:
        assert TerminalConsent(0.05, ask=slow, out=out)({"samp.name": "a"}) is False
    finally:
        gate.set()


class _Approve(WebProfileDialog):
    def __init__(self) -> None:
        self.shown: list[tuple[Any, ...]] = []

    def show_dialog(self, samp_name: str, details: Any, client: Any, origin: str) -> None:
        self.shown.append((samp_name, origin))
        if samp_name == "good":
            self.consent()
        else:
            self.reject()


def test_web_profile_dialog_decides_registrations(tmp_path: Path) -> None:
    dialog = _Approve()
    dialog.handle_queue()  # no queue yet: nothing happens
    with pytest.raises(NotImplementedError):
        WebProfileDialog().show_dialog("n", {}, None, "o")
    hub = SAMPHubServer(web_profile_dialog=dialog, lockfile=tmp_path / "l", web_port=0)
    hub.start()
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.01):
            dialog.handle_queue()

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    web = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{hub._web_port}/")
    try:
        reg = web.samp.webhub.register({"samp.name": "good"})
        assert isinstance(reg, dict) and reg["samp.url-translator"].startswith("http://")
        with pytest.raises(xmlrpc.client.Fault):
            web.samp.webhub.register({"samp.name": "bad"})
        assert [name for name, _ in dialog.shown] == ["good", "bad"]
        req = urllib.request.Request(f"http://127.0.0.1:{hub._web_port}/crossdomain.xml")
        req.add_header("Origin", "http://page")
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.read().decode() == CROSS_DOMAIN
            assert resp.headers["Access-Control-Allow-Origin"] == "http://page"
            assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        policy = f"http://127.0.0.1:{hub._web_port}/clientaccesspolicy.xml"
        with urllib.request.urlopen(policy, timeout=5) as resp:
            assert resp.read().decode() == CLIENT_ACCESS_POLICY
    finally:
        web("close")()
        stop.set()
        poller.join(5)
        hub.stop()


def test_integrated_client_sends_through_the_hub_as_astropy_does(make: ClientFactory) -> None:
    inbox = Inbox()
    rx = make("rx")
    rx.bind_receive_notification("test.a", inbox.notification_handler())
    assert isinstance(rx, SAMPIntegratedClient)
    make("tx").enotify(rx.get_public_id(), "test.a", k="v")
    assert inbox.wait(1)[0][1] == "test.a"


class _AstropyStyleClient(sciwire.samp.SAMPClient):
    """Builds astropy's attribute state itself, as astropy's own Web Profile test client."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self._is_running = self._is_registered = False
        self._metadata: dict[str, Any] = {}
        self._callable = True
        self._public_id = self._private_key = self._hub_id = None
        self._notification_bindings: dict[str, Any] = {}
        self._call_bindings = {"samp.app.ping": [self._ping, {}]}
        self._response_bindings: dict[str, Any] = {}
        self.loops = 0
        self._thread = threading.Thread(target=self._serve)

    def _serve(self) -> None:
        while self._is_running:
            self.loops += 1
            threading.Event().wait(0.01)


def test_subclass_with_astropys_own_state(hub: SAMPHubServer) -> None:
    proxy = sciwire.samp.SAMPHubProxy()
    proxy.connect(hub=hub)
    client = _AstropyStyleClient(proxy)
    got: list[Any] = []
    try:
        client.start()
        assert client.is_running
        reg = proxy.register(proxy.lockfile["samp.secret"])
        client._private_key, client._public_id = reg["samp.private-key"], reg["samp.self-id"]
        key = client.get_private_key()
        assert key is not None and client.get_public_id() == reg["samp.self-id"]
        client.bind_receive_notification("test.*", lambda *a: got.append(("n", *a)))
        client.bind_receive_call("test.c", lambda *a: got.append(("c", *a)))
        client.bind_receive_response("tag", lambda *a: got.append(("r", *a)))
        client.declare_metadata({"samp.name": "old"})
        subs = proxy.get_subscriptions(key, client.get_public_id() or "")
        assert set(subs) == {"samp.app.ping", "test.*", "test.c"}
        assert proxy.get_metadata(key, client.get_public_id() or "") == {"samp.name": "old"}
        msg = {"samp.mtype": "test.n", "samp.params": {"a": "1"}, "x": "y"}
        assert client.receive_notification(key, "c9", dict(msg)) == ""
        client.receive_notification("wrong key", "c9", dict(msg))
        client.receive_call(key, "c9", "m1", {"samp.mtype": "test.c", "samp.params": {}})
        client.receive_response(key, "c9", "tag", {"samp.status": "samp.ok"})
        assert got == [
            ("n", key, "c9", None, "test.n", {"a": "1"}, {"x": "y"}),  # astropy: *args -> 6
            ("c", key, "c9", "m1", "test.c", {}, {}),
            ("r", key, "c9", "tag", {"samp.status": "samp.ok"}),
        ]
        client.unbind_receive_call("test.c")
        client.unbind_receive_response("tag")
        assert "test.c" not in proxy.get_subscriptions(key, client.get_public_id() or "")
        # the rest of the binding methods, on astropy's attributes as well
        client.bind_receive_message("test.m", lambda *a: None)
        assert "test.m" in client._notification_bindings and "test.m" in client._call_bindings
        client.unbind_receive_notification("test.*")
        client.declare_subscriptions({"extra.x": {}})
        subs = proxy.get_subscriptions(key, client.get_public_id() or "")
        assert set(subs) == {"samp.app.ping", "test.m", "extra.x"}
        client.unregister()
        assert client.get_private_key() is None and not client.is_registered
    finally:
        client.stop()
        proxy.disconnect()
    assert not client.is_running and client.loops > 0


def test_hub_proxy_lockfile_is_settable_as_in_astropy() -> None:
    proxy = sciwire.samp.SAMPHubProxy()
    assert proxy.lockfile == {} and not proxy.is_connected
    proxy.lockfile = {"samp.secret": "s"}
    assert proxy.lockfile == {"samp.secret": "s"}
