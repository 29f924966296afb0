"""sciwire.drms against drms 0.9 on the same JSOC emulator (run in its own process).

Workloads:
- Sequential rs_summary calls per second: sciwire HttpJsonClient (keep-alive, on
  sciwire.core.http) vs drms.HttpJsonClient (a new urlopen connection per call), left
  to the scheduler and pinned both ways (see bench/harness.py).
- rs_summary calls per second with sciwire's AsyncHttpJsonClient (on core.http's
  asyncio pool), sequential and 32 in flight, against sciwire's blocking client
  (sequential): drms has no asyncio client, and the one-HTTP-stack rule asks the
  asyncio client to be at least as fast as the blocking one (target 1.0).
- Decoding a 100,000-record x 10-keyword rs_list answer. "Decoding" means, for both,
  going from the response body (bytes, fetched once beforehand) to typed columns:
  integers for integer keywords (hex QUALITY included), floats for real keywords
  (MISSING -> NaN), strings for times and text, given the series' keyword types.
  drms: what HttpJsonRequest.data and Client.query do after the read (json.loads of
  the latin1-decoded text, DataFrame.from_dict, Client._convert_numeric_keywords with
  the SeriesInfo already cached). sciwire: protocol.rs_list_columns (same columns as
  decode_json + keyword_columns, one keyword object decoded and converted at a time).
  Measured as seconds per decode and as tracemalloc peak MB. The peak is
  deterministic and tracemalloc makes drms's pandas path take ~15 s, so each side's
  peak is measured once and reported for every round.
- ``Client.query`` of the same 100,000 records x 10 keywords into a DataFrame, end to
  end (request to the emulator, decode, numeric conversion), sciwire.drms.Client vs
  drms.Client, each with its SeriesInfo cached beforehand: seconds per query and
  tracemalloc peak MB (measured once per side, as above).

SCIWIRE_BENCH_DRMS_N shrinks the record count for a smoke run (default 100000).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import drms
import pandas as pd

import sciwire.drms
from bench.harness import Workload, best_rate, placements
from sciwire.drms import AsyncHttpJsonClient, HttpJsonClient, ServerConfig
from sciwire.drms import _protocol as P

CHUNK = 25  # rs_summary calls per timed chunk (batches: see bench/harness.py)
IN_FLIGHT = 32  # concurrent asyncio calls in the in-flight row
EACH = 4  # calls per in-flight task per chunk
RS = "hmi.v_45s[2016.04.01_00:00:00_TAI/1h]"
BIG = "hmi.v_45s[2016.01.01_00:00:00_TAI/60d]"
BIG_N = int(os.environ.get("SCIWIRE_BENCH_DRMS_N", "100000"))
KEYS = "T_REC,CAMERA,T_OBS,QUALITY,DATAMEAN,DATARMS,EXPTIME,CRLT_OBS,DSUN_OBS,TELESCOP"


def _start_emulator(stack: contextlib.ExitStack) -> tuple[str, int]:
    """Start the emulator process; (its URL, its pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sciwire", "drms", "emulate", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    stack.callback(stop)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "emulator on" not in line:
        raise RuntimeError(f"emulator did not start: {line!r}")
    return line.split()[3], proc.pid


def _config(url: str) -> dict[str, Any]:
    return {
        "name": "bench-emulator",
        "cgi_baseurl": url + "cgi-bin/ajax/",
        "cgi_show_series": "show_series",
        "cgi_jsoc_info": "jsoc_info",
        "cgi_jsoc_fetch": "jsoc_fetch",
        "cgi_check_address": "checkAddress.sh",
        "cgi_show_series_wrapper": "showextseries",
        "show_series_wrapper_dbhost": "hmidb2",
        "http_download_baseurl": url,
    }


def _peak_mb(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del result
    return peak / 1e6


def _once(fn: Callable[[], float]) -> Callable[[], float]:
    cache: list[float] = []

    def call() -> float:
        if not cache:
            cache.append(fn())
        return cache[0]

    return call


def workloads(stack: contextlib.ExitStack) -> list[Workload]:
    url, emulator_pid = _start_emulator(stack)
    cfg = _config(url)
    ours = HttpJsonClient(ServerConfig(cfg), timeout=30)
    stack.callback(ours.close)
    theirs = drms.HttpJsonClient(drms.ServerConfig(**cfg))
    client = drms.Client(server=drms.ServerConfig(**cfg))

    def our_summary() -> None:
        for _ in range(CHUNK):
            ours.rs_summary(RS)

    def their_summary() -> None:
        for _ in range(CHUNK):
            theirs.rs_summary(RS)

    # The asyncio client on a loop of its own, driven one chunk at a time.
    loop = asyncio.new_event_loop()
    stack.callback(loop.close)
    aours = AsyncHttpJsonClient(ServerConfig(cfg), timeout=30)
    stack.callback(lambda: loop.run_until_complete(aours.close()))

    async def async_sequential() -> None:
        for _ in range(CHUNK):
            await aours.rs_summary(RS)

    async def async_in_flight() -> None:
        async def worker() -> None:
            for _ in range(EACH):
                await aours.rs_summary(RS)

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))

    loop.run_until_complete(async_in_flight())  # open the connections once

    # The big answer, fetched once, uncompressed, exactly as JSOC's CGI would send it.
    big_url = P.rs_list_url(ServerConfig(cfg), BIG, key=KEYS, n=BIG_N)
    with urllib.request.urlopen(big_url, timeout=300) as resp:
        body: bytes = resp.read()
    check = json.loads(body)
    assert check["count"] == BIG_N and len(check["keywords"]) == 10, "bad big answer"
    del check
    info = client.info("hmi.v_45s")  # cached inside the drms client from here on
    types = dict(zip(info.keywords.index, info.keywords.type, strict=True))

    def our_decode() -> object:
        return P.rs_list_columns(body, types, "latin1")

    def their_decode() -> object:
        d = json.loads(body.decode("latin1"))  # drms.HttpJsonRequest.data
        names = [it["name"] for it in d["keywords"]]
        values = [it["values"] for it in d["keywords"]]
        frame = pd.DataFrame.from_dict(OrderedDict(zip(names, values, strict=True)))
        client._convert_numeric_keywords(BIG, frame)
        return frame

    def seconds(fn: Callable[[], object]) -> Callable[[], float]:
        def one() -> float:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

        return one

    our_client = sciwire.drms.Client(ServerConfig(cfg), timeout=300)
    stack.callback(our_client.close)
    our_client.info("hmi.v_45s")  # both clients start with the SeriesInfo cached

    def our_query() -> object:
        return our_client.query(BIG, key=KEYS, n=BIG_N)

    def their_query() -> object:
        return client.query(BIG, key=KEYS, n=BIG_N)

    size_note = f"{len(body) / 1e6:.1f} MB body"
    query_note = f"{BIG_N} records x 10 keywords, emulator in its own process; {size_note}"
    # left to the scheduler (the target) and pinned both ways, in batches (see
    # bench/harness.py)
    summaries = [
        Workload(
            "rs_summary sequential" + ("" if place is None else f", {where}"),
            "req/s",
            best_rate(our_summary, CHUNK, place, (emulator_pid,)),
            best_rate(their_summary, CHUNK, place, (emulator_pid,)),
            "drms.HttpJsonClient",
            target=3.0 if place is None else None,
            notes="emulator in its own process; ours keep-alive, drms one connection per call"
            + ("" if place is None else "; both processes pinned"),
        )
        for where, place in placements().items()
    ]
    blocking_rate = best_rate(our_summary, CHUNK, None, (emulator_pid,))
    asyncio_rows = [
        Workload(
            "asyncio rs_summary sequential",
            "req/s",
            best_rate(lambda: loop.run_until_complete(async_sequential()), CHUNK, None, ()),
            blocking_rate,
            "sciwire HttpJsonClient (blocking, sequential)",
            target=1.0,
            notes="AsyncHttpJsonClient on core.http's asyncio pool; emulator in its own process",
        ),
        Workload(
            f"asyncio rs_summary {IN_FLIGHT} in flight",
            "req/s",
            best_rate(
                lambda: loop.run_until_complete(async_in_flight()), IN_FLIGHT * EACH, None, ()
            ),
            blocking_rate,
            "sciwire HttpJsonClient (blocking, sequential)",
            target=1.0,
            notes=f"{IN_FLIGHT} tasks on one AsyncHttpJsonClient (up to {IN_FLIGHT} connections)",
        ),
    ]
    return [
        *summaries,
        *asyncio_rows,
        Workload(
            f"decode rs_list {BIG_N // 1000}k x 10 -> typed columns",
            "s",
            seconds(our_decode),
            seconds(their_decode),
            "drms json + Client.query conversion",
            target=2.0,
            lower_is_better=True,
            notes=size_note,
        ),
        Workload(
            f"decode rs_list {BIG_N // 1000}k x 10 peak memory",
            "MB",
            _once(lambda: _peak_mb(our_decode)),
            _once(lambda: _peak_mb(their_decode)),
            "drms json + Client.query conversion",
            target=1.0,
            lower_is_better=True,
            notes=size_note,
        ),
        Workload(
            f"Client.query {BIG_N // 1000}k x 10 -> DataFrame",
            "s",
            seconds(our_query),
            seconds(their_query),
            "drms.Client.query",
            target=1.5,
            lower_is_better=True,
            notes=query_note,
        ),
        Workload(
            f"Client.query {BIG_N // 1000}k x 10 peak memory",
            "MB",
            _once(lambda: _peak_mb(our_query)),
            _once(lambda: _peak_mb(their_query)),
            "drms.Client.query",
            target=1.0,
            lower_is_better=True,
            notes=query_note,
        ),
    ]
