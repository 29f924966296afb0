"""CPU per event of the fleet's two Python stages, each alone against a real nats-server.

A smoke/AB tool, not a bench row: ``python -m bench.fleet_stages [--events N] [--rounds R]``

* publisher: the bridge's ``Publisher`` stores N pre-built events of the realistic IFCB
  mix (``encode_ifcb``) into JetStream: its send loop, nats-py's publish, the
  checkpoint acknowledgements;
* consumer: an ``AsyncFleet`` with a ``(None,)`` handler reads them all back: nats-py's
  parsing and callback, the decode, the handler, the acknowledgements.

Times are this process's CPU time (best of the rounds), so the server's work and a busy
machine disturb them less than wall time. Run it against two checkouts
(``PYTHONPATH=<other>/src``) alternately to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from sciwire.fleet import AsyncFleet, NatsServer
from sciwire.fleet._nats import connect, connect_options, ensure_stream
from sciwire.fleet._publisher import Outgoing, Publisher
from sciwire.fleet._schema import encode_event, ifcb_event
from sciwire.ifcb._server import sample_messages


async def _round(server: NatsServer, texts: list[str], serial: str) -> tuple[float, float]:
    events = []
    for seq, text in enumerate(texts, 1):
        subject, body, blobs = ifcb_event(serial, seq, time.time(), text, seq)
        data, headers = encode_event(body, blobs)
        events.append(Outgoing(subject, data, headers, body["time"], ("ifcb", serial)))
    options = connect_options([server.url], name="stages")
    nc = await connect(options)
    try:
        js = nc.jetstream(publish_async_max_pending=4096)
        await ensure_stream(js, "SCIWIRE", max_bytes=1 << 30)
        publisher = Publisher(nc, js, window=4096)
        publisher.start()
        start = time.process_time()
        for out in events:
            publisher.put(out)
        if not await publisher.flush(300):
            raise RuntimeError("events not stored")
        published = time.process_time() - start
        await publisher.close()
    finally:
        await nc.close()
    got = 0
    async with AsyncFleet(server.url, max_ack_pending=20000) as fleet:

        def count(event: object) -> None:
            nonlocal got
            got += 1

        fleet.on((None,), count, instrument=serial)
        start = time.process_time()
        await fleet.start("all")
        await fleet.wait_for(lambda: got == len(texts), 300)
        consumed = time.process_time() - start
    return published, consumed


async def _main(args: argparse.Namespace) -> None:
    texts = sample_messages(args.events)
    with NatsServer("stages") as server:
        pub, con = [], []
        for r in range(args.rounds):
            published, consumed = await _round(server, texts, f"999-000-{r:03d}")
            pub.append(published)
            con.append(consumed)
    print(f"publisher  {min(pub) * 1e6 / len(texts):6.2f} us/event")
    print(f"consumer   {min(con) * 1e6 / len(texts):6.2f} us/event")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="events per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (best)")
    asyncio.run(_main(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
