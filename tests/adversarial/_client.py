"""One sciwire HTTP client call in a process of its own (its peak memory is read from
/proc/self/status), against a server that may be hostile.

argv: kind (command | drms | drms-async), port. Prints a JSON line: the exception
raised (type and message, or null), the resident size before the call and the peak.
"""

from __future__ import annotations

import asyncio
import json
import sys


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    from sciwire.command import CommandClient
    from sciwire.drms import AsyncHttpJsonClient, HttpJsonClient
    from sciwire.drms.config import jsoc_layout

    base = _status_kb("VmRSS")
    error = None
    try:
        if kind == "command":
            with CommandClient("command", "127.0.0.1", port, timeout=20, retries=1) as cli:
                cli.echo(1)
        elif kind == "drms":
            with HttpJsonClient(jsoc_layout("evil", f"http://127.0.0.1:{port}/")) as c:
                c.show_series()
        else:

            async def run() -> None:
                server = jsoc_layout("evil", f"http://127.0.0.1:{port}/")
                async with AsyncHttpJsonClient(server) as c:
                    await c.show_series()

            asyncio.run(run())
    except Exception as exc:
        error = {
            "type": type(exc).__name__,
            "mro": [k.__name__ for k in type(exc).__mro__],
            "message": str(exc)[:300],
        }
    print(json.dumps({"error": error, "base_kb": base, "peak_kb": _status_kb("VmHWM")}))


if __name__ == "__main__":
    main()
