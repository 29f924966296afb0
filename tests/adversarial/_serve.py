"""A sciwire HTTP server (a CommandServer) in a process of its own, so that the
adversarial tests can measure its memory and descriptors from outside.

argv[1]: a JSON object of ServerLimits fields, plus ``max_body`` and ``uvloop``.
Prints the port, serves until its stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from sciwire.command import CommandServer
from sciwire.core.http.limits import ServerLimits


async def serve(cfg: dict[str, Any]) -> None:
    server = CommandServer(host="127.0.0.1", port=0, max_body=cfg.pop("max_body", 256 << 20))
    server.limits = ServerLimits(**cfg)
    calls: list[object] = []

    def echo(value: object) -> object:
        calls.append(value)
        return value

    def history() -> list[object]:
        return calls

    server.expose(echo)
    server.expose(history)
    await server.start()
    print(server.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop()


def main() -> None:
    cfg = json.loads(sys.argv[1])
    if cfg.pop("uvloop", False):
        import uvloop

        uvloop.run(serve(cfg))
    else:
        asyncio.run(serve(cfg))


if __name__ == "__main__":
    main()
