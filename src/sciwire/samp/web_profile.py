"""astropy.samp's ``web_profile`` module: the policy documents and the terminal consent.

The Web Profile itself is served by :class:`sciwire.samp.SAMPHubServer`
(``web_profile=True``). A hub with no ``web_profile_dialog`` asks on the terminal
(:class:`TerminalConsent`, when standard input is a terminal) and refuses otherwise.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from sciwire.samp._web import CLIENTACCESSPOLICY_XML, CROSSDOMAIN_XML

__all__: list[str] = []

#: The ``/crossdomain.xml`` document the Web Profile port serves (Flash clients).
CROSS_DOMAIN: str = CROSSDOMAIN_XML.decode("ascii")
#: The ``/clientaccesspolicy.xml`` document the Web Profile port serves (Silverlight).
CLIENT_ACCESS_POLICY: str = CLIENTACCESSPOLICY_XML.decode("ascii")

#: Seconds the terminal prompt waits for an answer before refusing.
PROMPT_TIMEOUT = 120.0

Ask = Callable[[str], str]


def _describe(request: Any) -> str:
    identity, address, origin = request
    if isinstance(identity, Mapping):
        name = identity.get("samp.name", "?")
        details = {k: v for k, v in identity.items() if k != "samp.name"}
    else:  # early Web Profile drafts sent the bare name
        name, details = identity, {}
    lines = [
        "A Web application wants to register with the SAMP hub:",
        f"  name:   {name}",
        f"  origin: {origin}",
        f"  from:   {address[0] if isinstance(address, tuple | list) and address else address}",
    ]
    lines += [f"  {key}: {value}" for key, value in details.items()]
    lines.append("Such an application can run local applications through SAMP messages.")
    return "\n".join(lines)


def web_profile_text_dialog(
    request: Any,
    queue: queue.Queue[bool],
    *,
    ask: Ask = input,
    out: TextIO | None = None,
) -> None:
    """Ask on the terminal whether a Web Profile client may register.

    Args:
        request: ``(identity, client_address, origin)``, as the hub queues it.
        queue: receives True (consent) or False.
        ask: reads the answer (``input`` by default; injectable for tests).
        out: where the request is described (standard error by default).
    """
    stream = out if out is not None else sys.stderr
    stream.write(_describe(request) + "\n")
    stream.flush()
    while True:
        # the question goes where the request went (input() would put it on stdout)
        stream.write("Allow it? [yes/no] ")
        stream.flush()
        try:
            answer = ask("").strip().lower()
        except EOFError:
            answer = "no"
        if answer in ("y", "yes"):
            queue.put(True)
            return
        if answer in ("", "n", "no"):
            queue.put(False)
            return


class TerminalConsent:
    """A hub consent policy that asks on the terminal, refusing after *timeout* seconds.

    Requests are asked one at a time. A prompt left unanswered keeps its thread
    until the user answers, but the registration it was for is refused at the
    deadline.
    """

    def __init__(
        self,
        timeout: float = PROMPT_TIMEOUT,
        ask: Ask = input,
        out: TextIO | None = None,
    ) -> None:
        self.timeout = timeout
        self._ask = ask
        self._out = out
        self._lock = threading.Lock()

    def __call__(self, request: Mapping[str, Any]) -> bool:
        """Ask about one registration request (the hub's consent callback)."""
        identity = {k: v for k, v in request.items() if k not in ("origin", "remote")}
        item = (identity, (request.get("remote") or "127.0.0.1", 0), request.get("origin") or "")
        answers: queue.Queue[bool] = queue.Queue(1)
        if not self._lock.acquire(timeout=self.timeout):
            return False
        try:
            asker = threading.Thread(
                target=web_profile_text_dialog,
                args=(item, answers),
                kwargs={"ask": self._ask, "out": self._out},
                name="samp-web-consent",
                daemon=True,
            )
            asker.start()
            try:
                return answers.get(timeout=self.timeout)
            except queue.Empty:
                return False
        finally:
            self._lock.release()
