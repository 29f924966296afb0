"""Client CPU per relayed message on the receive path alone: SignalR frames through the
hub client's receive door and dispatch loop, no socket, no event loop.

A smoke/AB tool, not a bench row: ``python -m bench.ifcb_frames [--rounds R]`` prints
microseconds per message for frames of 1, 10 and 100 ``messageRelayed`` records of the
realistic mix, the handler counting calls (the codec is measured by ``bench/ifcb.py``).
Times are this process's CPU time (best of the rounds), so a busy machine disturbs them
less. Run it against two checkouts (``PYTHONPATH=<other>/src``) alternately to compare.
"""

from __future__ import annotations

import argparse
import time
import timeit
from typing import Any

from sciwire.ifcb._server import sample_messages
from sciwire.ifcb._signalr import RS, Invocation, SignalRConnection, encode_message
from sciwire.ifcb._transport import HubClient

SERIAL = "111-111-111"


def _client() -> tuple[HubClient, list[int]]:
    hub = HubClient("ws://127.0.0.1:1/hub")
    count = [0]

    def relayed(args: list[Any]) -> None:
        count[0] += 1

    hub.on("messageRelayed", relayed)
    proto = SignalRConnection("client")
    proto.handshake_request(0.0)
    hub._proto = proto
    proto.receive_frame("{}" + RS, 0.0)
    return hub, count


def frames(per_frame: int, total: int) -> list[str]:
    """*total* relayed messages of the mix, *per_frame* records to a frame."""
    records = [
        encode_message(Invocation("messageRelayed", [SERIAL, "host", i, text]))
        for i, text in enumerate(sample_messages(total, seed=3))
    ]
    return ["".join(records[i : i + per_frame]) for i in range(0, total, per_frame)]


def per_message_us(per_frame: int, total: int, rounds: int) -> float:
    """Best of *rounds* passes, microseconds per message."""
    batch = frames(per_frame, total)
    hub, count = _client()
    receive_frame = hub._proto.receive_frame  # type: ignore[union-attr]
    dispatch = hub._dispatch

    def work() -> None:  # as HubClient._reader does it
        for frame in batch:
            dispatch(receive_frame(frame, 1.0))

    # CPU time of this process: on a shared machine wall time also counts the waits
    best = min(timeit.Timer(work, timer=time.process_time).repeat(number=1, repeat=rounds))
    assert count[0] == total * rounds, count
    return best / total * 1e6


def main() -> None:
    """Print µs/message for 1, 10 and 100 records per frame."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--total", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    for per_frame in (1, 10, 100):
        us = per_message_us(per_frame, args.total, args.rounds)
        print(f"{per_frame:>3} records/frame: {us:.3f} us/message")


if __name__ == "__main__":
    main()
