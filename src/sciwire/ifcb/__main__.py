"""``python -m sciwire.ifcb ADDRESS ID``: print an instrument's value changes, as
``python -m ifcbclient`` does, until interrupted."""

from __future__ import annotations

import argparse
import threading
from typing import Any

from sciwire.errors import SciwireError
from sciwire.ifcb.ifcbclient import IFCBClient


def main(argv: list[str] | None = None) -> None:
    """Connect to the hub at ADDRESS as a client of instrument ID and print
    ``key => values`` for every ``valuechanged`` message."""
    parser = argparse.ArgumentParser(prog="python -m sciwire.ifcb")
    parser.add_argument("address", help="the hub URL, e.g. ws://127.0.0.1:8092/ifcbHub")
    parser.add_argument("id", help="the instrument's serial number")
    args = parser.parse_args(argv)

    def show(_: str, key: str, *values: Any) -> None:
        print(f"{key} => {values}", flush=True)

    client = IFCBClient(args.address, args.id)
    client.on(("valuechanged",), show)
    # one try for both waits: Ctrl-C may come while connect() is still returning (the
    # greeting's answers are printed from the loop thread before it does)
    try:
        client.connect()
        threading.Event().wait()  # until Ctrl-C; the client runs on its own thread
    except KeyboardInterrupt:
        pass
    except (SciwireError, ValueError) as exc:
        parser.exit(1, f"python -m sciwire.ifcb: cannot connect to {args.address}: {exc}\n")
    finally:
        client.disconnect()


if __name__ == "__main__":
    main()
