"""One file of an export, fetched through its ``.part`` file and resumed (the hand-written
source of the generated ``_sync_fetch``; see tools/unasync.py)."""

from __future__ import annotations

from pathlib import Path

from sciwire.drms._aiotransport import AsyncTransport
from sciwire.drms._transfer import CHUNK, Progress, Resume
from sciwire.errors import ConnectError, ConnectionClosed

__all__ = ["fetch_file"]


async def fetch_file(
    transport: AsyncTransport, url: str, final: Path, overwrite: bool, bar: Progress
) -> Path:
    """Fetch *url* into *final* (kept as it is unless *overwrite*).

    The body goes to ``final.part`` first, asked from where an earlier partial file
    stopped (HTTP Range) and moved into place once its size checks out. After a
    connection error the request is sent again from where it stopped, as often as the
    transport's retry policy allows.
    """
    if final.exists() and not overwrite:
        return final
    job = Resume(url, final)
    attempt = 1
    while True:
        try:
            async with transport.stream(url, job.headers()) as (status, headers, body):
                mode = job.answer(status, headers)
                if mode is None:
                    continue  # the partial file was dropped: ask again from zero
                if mode:
                    bar.begin(final.name, job.expected, job.offset if mode == "ab" else 0)
                    with open(job.part, mode) as out:
                        while chunk := await body.read(CHUNK):
                            out.write(chunk)
                            bar.add(len(chunk), final.name)
            return job.finish()
        except (ConnectError, ConnectionClosed) as exc:
            if not transport.policy.again(exc, attempt):
                raise
            attempt += 1
