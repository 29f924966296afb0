"""Instructions per call of the two HTTP pools, for valgrind's callgrind.

The server runs in a child process (so that only the client is counted); the
client makes ``--calls`` sequential GETs with the blocking pool, then with the
asyncio pool. Run the same script before and after a change and compare the
``Ir`` totals (instruction counts do not depend on the machine's load)::

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        python bench/http_callgrind.py --pool blocking --calls 2000
    callgrind_annotate /tmp/cg.out | head

Run it once with ``--calls 0`` too: the difference over the number of calls is
the cost of one call.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys

_SERVER = r"""
import asyncio, sys
REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t
    def data_received(self, data):
        self.t.write(REPLY * data.count(b"\r\n\r\n"))
async def main():
    srv = await asyncio.get_running_loop().create_server(P, "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


def main() -> None:
    """Start the server, make the calls, stop the server."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", choices=("blocking", "asyncio"), required=True)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()
    from sciwire.core.http.aioclient import AsyncHttpPool
    from sciwire.core.http.client import Endpoint, HttpPool

    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        ep = Endpoint.parse("127.0.0.1", port)
        data = b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        if args.pool == "blocking":
            pool = HttpPool(ep, timeout=10.0)
            pool.exchange(data, "/x")  # the connection is made outside the count
            for _ in range(args.calls):
                pool.exchange(data, "/x")
            pool.close()
        else:

            async def run() -> None:
                apool = AsyncHttpPool(ep, timeout=10.0)
                await apool.exchange(data, "/x")
                for _ in range(args.calls):
                    await apool.exchange(data, "/x")
                apool.abort_all()

            asyncio.run(run())
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
