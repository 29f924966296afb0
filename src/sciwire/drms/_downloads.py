"""Concurrent downloads of an export's files: worker threads for the blocking client,
tasks for the asyncio one. Each file goes through ``fetch_file`` (one source,
``_async_fetch``, and its generated blocking twin), so both resume, check sizes and
retry alike; only how the files are run side by side differs here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sciwire.drms._aiotransport import AsyncTransport
from sciwire.drms._async_fetch import fetch_file as fetch_file_async
from sciwire.drms._sync_fetch import fetch_file
from sciwire.drms._transfer import Progress, targets
from sciwire.drms._transport import BlockingTransport
from sciwire.errors import SciwireError

__all__ = ["download_async", "download_blocking", "download_each_blocking"]

Jobs = Sequence[tuple[str, str]]


def download_blocking(
    transport: BlockingTransport,
    jobs: Jobs,
    dest: Path,
    *,
    concurrency: int,
    progress: bool | None,
    overwrite: bool,
) -> list[Path]:
    """Download (filename, url) *jobs* into *dest*, *concurrency* at a time.

    The first failure is raised. File names that are not plain names (see
    :func:`~sciwire.drms._transfer.safe_target`) raise DrmsExportError before anything
    is written. *transport* (thread-safe) carries every request.
    """
    got = _download_blocking(transport, jobs, dest, concurrency, progress, overwrite, None)
    return [path for path in got if path is not None]


def download_each_blocking(
    transport: BlockingTransport,
    jobs: Jobs,
    dest: Path,
    *,
    concurrency: int,
    progress: bool | None,
    overwrite: bool,
    failed: Callable[[str, Exception], None],
) -> list[Path | None]:
    """Like :func:`download_blocking`, but a file that fails is None (and *failed* is told).

    Unsafe file names still raise DrmsExportError before anything is written.
    """
    return _download_blocking(transport, jobs, dest, concurrency, progress, overwrite, failed)


def _download_blocking(
    transport: BlockingTransport,
    jobs: Jobs,
    dest: Path,
    concurrency: int,
    progress: bool | None,
    overwrite: bool,
    failed: Callable[[str, Exception], None] | None,
) -> list[Path | None]:
    paths = targets(jobs, dest)
    dest.mkdir(parents=True, exist_ok=True)
    bar = Progress(len(jobs), progress)

    def one(i: int) -> Path | None:
        url = jobs[i][1]
        try:
            path = fetch_file(transport, url, paths[i], overwrite, bar)
        except (SciwireError, OSError) as exc:
            if failed is None:
                raise
            failed(url, exc)
            return None
        bar.file_done(paths[i].name)
        return path

    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(one, range(len(jobs))))
    finally:
        bar.close()


async def download_async(
    transport: AsyncTransport,
    jobs: Jobs,
    dest: Path,
    *,
    concurrency: int,
    progress: bool | None,
    overwrite: bool,
) -> list[Path]:
    """The asyncio form of :func:`download_blocking`: *concurrency* tasks at a time."""
    paths = targets(jobs, dest)
    dest.mkdir(parents=True, exist_ok=True)
    bar = Progress(len(jobs), progress)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(target: Path, url: str) -> Path:
        async with gate:
            path = await fetch_file_async(transport, url, target, overwrite, bar)
            bar.file_done(target.name)
            return path

    tasks = [
        asyncio.ensure_future(one(path, job[1])) for path, job in zip(paths, jobs, strict=True)
    ]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        # the first failure ends the download: no task is left writing files behind it
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        bar.close()
