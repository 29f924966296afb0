"""astropy's blocking ``SAMPHubServer``, over the asyncio hub on a portal thread.

Same constructor as astropy.samp's, ``start(wait=False)``, ``stop()``, ``is_running``,
``params`` and ``id``. The hub itself is :class:`sciwire.samp._ahub.AsyncSAMPHub`
(re-exported here), run on a :class:`sciwire.core.portal.Portal` loop thread.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import signal
import sys
import threading
from concurrent import futures
from typing import Any

from sciwire.core.portal import Portal
from sciwire.errors import PortalError
from sciwire.samp._ahub import AsyncSAMPHub, WebAuth
from sciwire.samp._protocol import mtype_subtypes

# names astropy's module also offers (it imports them)
from sciwire.samp.constants import SAMP_STATUS_OK  # noqa: F401
from sciwire.samp.errors import SAMPHubError, SAMPProxyError, SAMPProxyTimeoutError, SAMPWarning  # noqa: F401
from sciwire.samp.lockfile_helpers import create_lock_file, read_lockfile  # noqa: F401
from sciwire.samp.utils import SAMPXXEServerProxy, ServerProxyPool, internet_on  # noqa: F401
from sciwire.samp.web_profile import (
    TerminalConsent,
    web_profile_text_dialog,  # noqa: F401
)

__all__ = ["AsyncSAMPHub", "DialogPolicy", "SAMPHubServer", "WebAuth", "WebProfileDialog"]

logger = logging.getLogger(__name__)
log = logger  # astropy's module-level name


class SAMPHubServer:
    """astropy's blocking SAMP hub class, over :class:`AsyncSAMPHub` on a portal thread.

    Same constructor as astropy.samp.SAMPHubServer; ``web_profile_dialog`` may be a
    consent callable (see :data:`WebAuth`) and ``web_auth`` sets the policy by name.
    Extra keyword arguments go to :class:`AsyncSAMPHub`: among them astropy's
    documented TLS arguments (``https``, ``key_file``, ``cert_file``, ``cert_reqs``,
    ``ca_certs``, ``ssl_version``) and ``strict``/``coerce`` for numbers.
    """

    def __init__(
        self,
        secret: str | None = None,
        addr: str | None = None,
        port: int = 0,
        lockfile: str | os.PathLike[str] | None = None,
        timeout: float = 0,
        client_timeout: float = 0,
        mode: str = "single",
        label: str = "",
        web_profile: bool = True,
        web_profile_dialog: Any = None,
        web_port: int = 21012,
        pool_size: int = 20,
        *,
        web_auth: WebAuth | None = None,
        **options: Any,
    ) -> None:
        if web_auth is None:
            if callable(web_profile_dialog):
                web_auth = web_profile_dialog
            elif web_profile_dialog is not None and hasattr(web_profile_dialog, "consent"):
                web_auth = DialogPolicy(web_profile_dialog)
            elif web_profile and _interactive():
                web_auth = TerminalConsent()  # astropy asks on the terminal too
            else:
                web_auth = "deny"  # headless: nobody to ask
        self._hub = AsyncSAMPHub(
            secret,
            addr,
            port,
            lockfile,
            timeout,
            client_timeout,
            mode,
            label,
            web_profile,
            web_auth,
            web_port,
            pool_size,
            **options,
        )
        self._portal = Portal("sciwire-samp-hub")
        self._lock = threading.RLock()  # stop() may run from a signal handler mid-start
        self._waiting = False
        self._sigterm_installed = False

    @property
    def id(self) -> str:
        """The unique hub id."""
        return self._hub.id

    @property
    def params(self) -> dict[str, str]:
        """The hub parameters (which are written to the lockfile)."""
        return self._hub.params

    @property
    def is_running(self) -> bool:
        """Return an information concerning the Hub running status."""
        return self._hub.is_running

    @property
    def hub(self) -> AsyncSAMPHub:
        """The asyncio hub this object drives."""
        return self._hub

    @property
    def url(self) -> str:
        """The Standard Profile XML-RPC URL."""
        return self._hub.url

    @property
    def port(self) -> int:
        """The Standard Profile port."""
        return self._hub.port

    @property
    def web_port(self) -> int:
        """The Web Profile port (0 when disabled)."""
        return self._hub.web_port

    @property
    def lockfile(self) -> str | None:
        """The lockfile written at start."""
        return self._hub.lockfile

    @staticmethod
    def get_mtype_subtypes(mtype: str) -> list[str]:
        """The subscriptions that match *mtype*, most specific first.

        ``"a.b.c"`` gives ``["a.b.c", "a.b.*", "a.*", "*"]``.
        """
        return mtype_subtypes(mtype)

    @property
    def _web_port(self) -> int:
        # astropy's tests and some scripts read this private attribute
        return self._hub.web_port

    def start(self, wait: bool = False) -> None:
        """Start the hub; with ``wait=True`` block until it stops (Ctrl-C or SIGTERM stop it).

        The lockfile never outlives the hub: it is removed by :meth:`stop`, at
        interpreter exit, and on SIGTERM (when the process has no SIGTERM handler of
        its own, one is installed that stops the hub and then terminates as before).

        Raises:
            SAMPHubError: already running, or another live hub owns the lockfile.
        """
        with self._lock:
            if self._hub.is_running:
                raise SAMPHubError("Hub is already running")
            self._portal.start()
            try:
                self._portal.call(self._hub.start())
            except BaseException:
                self._portal.stop()
                raise
            atexit.register(self.stop)
            self._install_sigterm()
        if wait:
            self.wait()

    def wait(self) -> None:
        """Block until the hub stops (idle timeout, Ctrl-C or SIGTERM), then clean up."""
        self._waiting = True
        try:
            done = self._portal.submit(self._hub.wait_stopped())
            while not done.done():
                with contextlib.suppress(TimeoutError, futures.TimeoutError):  # (3.10: apart)
                    done.result(0.5)
        except KeyboardInterrupt:
            logger.info("interrupted: stopping the SAMP hub")
        except PortalError:
            pass  # already stopped
        finally:
            self._waiting = False
            self.stop()

    _wait = wait  # the name the CLI first used

    def _install_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
            return  # the application handles SIGTERM itself
        signal.signal(signal.SIGTERM, self._on_sigterm)
        self._sigterm_installed = True

    def _on_sigterm(self, signum: int, frame: object) -> None:
        if self._waiting:
            raise KeyboardInterrupt("SIGTERM")  # wait() stops the hub and returns
        self.stop()  # then die of SIGTERM as the default disposition would
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    def stop(self) -> None:
        """Stop the hub, remove the lockfile and end the loop thread. Idempotent."""
        with self._lock:
            if self._portal.running:
                with contextlib.suppress(Exception):
                    self._portal.call(self._hub.stop(), timeout=10)
                self._portal.stop()
            atexit.unregister(self.stop)
            if self._sigterm_installed and threading.current_thread() is threading.main_thread():
                if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                self._sigterm_installed = False

    def __enter__(self) -> SAMPHubServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DialogPolicy:
    """Web Profile consent through an astropy ``WebProfileDialog``-style object.

    astropy's dialogs poll ``queue_request`` from their GUI loop, call
    ``show_dialog`` and answer through ``consent()``/``reject()`` into
    ``queue_result``; this policy feeds and reads those queues (one request at a
    time, in a worker thread). No answer within *timeout* seconds means no.
    """

    def __init__(self, dialog: Any, timeout: float = 120.0) -> None:
        self.dialog = dialog
        self.timeout = timeout
        self._lock = threading.Lock()
        dialog.queue_request = queue.Queue(1)
        dialog.queue_result = queue.Queue(1)

    def __call__(self, request: dict[str, Any]) -> bool:
        identity = {k: v for k, v in request.items() if k not in ("origin", "remote")}
        address = (request.get("remote") or "127.0.0.1", 0)
        with self._lock:
            self.dialog.queue_request.put((identity, address, request.get("origin") or "unknown"))
            try:
                return bool(self.dialog.queue_result.get(timeout=self.timeout))
            except queue.Empty:
                with contextlib.suppress(queue.Empty):
                    self.dialog.queue_request.get_nowait()
                return False


def _interactive() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # closed or replaced standard input
        return False


class WebProfileDialog:
    """Base of a Web Profile consent dialog (astropy's class, for GUI hubs).

    Give an instance to ``SAMPHubServer(web_profile_dialog=...)``: the hub sets its
    ``queue_request`` and ``queue_result`` queues. A subclass implements
    ``show_dialog(samp_name, details, client, origin)``, calls :meth:`handle_queue`
    periodically from its GUI loop, and answers with :meth:`consent` or
    :meth:`reject`. No answer within the hub's deadline refuses the registration.
    """

    queue_request: queue.Queue[Any]
    queue_result: queue.Queue[bool]

    def show_dialog(self, samp_name: str, details: Any, client: Any, origin: str) -> None:
        """Show the request to the user (a subclass implements it)."""
        raise NotImplementedError("a WebProfileDialog subclass must implement show_dialog")

    def handle_queue(self) -> None:
        """Show the next pending registration request, if any (call it periodically)."""
        try:
            identity, client, origin = self.queue_request.get_nowait()
        except (queue.Empty, AttributeError):  # nothing pending, or not given to a hub yet
            return
        # early Web Profile drafts sent the bare name instead of an identity map
        name = str(identity.get("samp.name", "")) if isinstance(identity, dict) else str(identity)
        self.show_dialog(name, identity, client, origin)

    def consent(self) -> None:
        """Accept the request being shown."""
        self.queue_result.put(True)

    def reject(self) -> None:
        """Refuse the request being shown."""
        self.queue_result.put(False)
