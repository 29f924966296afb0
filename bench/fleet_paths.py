"""CPU per event of sciwire.fleet's own sans-I/O paths, no NATS and no event loop.

A smoke/AB tool, not a bench row: ``python -m bench.fleet_paths [--rounds R]`` prints
microseconds per event of the realistic IFCB mix for the bridge's build path
(``encode_ifcb``; ``ifcb_event`` + ``encode_event`` for reference) and the consumer's
decode path (``decode_event``), best of the rounds, in this process's CPU time (a busy machine
disturbs it less than wall time). Run it against two checkouts
(``PYTHONPATH=<other>/src``) alternately to compare.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from sciwire.fleet._schema import decode_event, encode_event, encode_ifcb, ifcb_event
from sciwire.ifcb._server import sample_messages

SERIAL = "111-111-111"


def _best(func: Any, count: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        func()
        best = min(best, time.process_time() - start)
    return best * 1e6 / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="events per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (best)")
    args = parser.parse_args(argv)
    texts = sample_messages(args.events)

    def build() -> None:
        for seq, text in enumerate(texts, 1):
            _, body, blobs = ifcb_event(SERIAL, seq, 1.0e9 + seq, text, seq)
            encode_event(body, blobs)

    def build_fast() -> None:
        for seq, text in enumerate(texts, 1):
            encode_ifcb(SERIAL, seq, 1.0e9 + seq, text, seq)

    wire = []
    for seq, text in enumerate(texts, 1):
        subject, body, blobs = ifcb_event(SERIAL, seq, 1.0e9 + seq, text, seq)
        wire.append((subject, *encode_event(body, blobs), seq))

    def decode() -> None:
        for subject, data, headers, seq in wire:
            decode_event(subject, data, headers, seq)

    print(f"bridge encode_ifcb   {_best(build_fast, len(texts), args.rounds):6.2f} us/event")
    print(f"ifcb_event+encode    {_best(build, len(texts), args.rounds):6.2f} us/event")
    print(f"consumer decode      {_best(decode, len(texts), args.rounds):6.2f} us/event")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
