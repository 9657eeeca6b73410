"""
Thousands of concurrent watches in one process, with one session.

The simulator (its own process) holds N projects whose exports are queued for ``q`` and
processing for ``p`` seconds (D = q + p). One ``BabouSession`` starts all N exports at
once and follows each with ``watch_export`` (the estimate from ``start_export``, the
default ``PollPolicy``), every watch in its own task. Measured: the wall time from the
first start to the last completion noticed, against the bound D + 2 x the policy's
``max_delay`` + slack; whether every watch completed; the peak RSS growth per watch
(sampled); the requests per export (counted by the server); and the detection latency of
each export (the watch noticed completion this long after the server completed it).

Then the CPU per status poll in a steady state (constant polls of 6-second exports), against
the docs' fixed poll loop written in raw aiohttp, in the order ours, raw, raw, ours.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from babou_async import BabouSession, ExportStatus, PollPolicy

from . import Options, Result, RssSampler, ServerProcess, check, cpu_seconds, median, rss_bytes

NAME = "watches"
SLACK = 10.0  # seconds: starting N exports through one pool, and a loaded machine
RSS_PER_WATCH_KIB = 6.0  # issue #9, at 10,000 watches (smaller runs only report it)
CPU_PER_POLL = 1.2  # issue #9: this process's CPU per status poll, vs a raw aiohttp loop's


async def _watch_all(
    server: ServerProcess, poll: PollPolicy, duration: float, timeout: float
) -> dict[str, Any]:
    ids = server.project_ids
    async with BabouSession(server.api_key, base_url=server.base_url, poll=poll) as babou:
        await babou.get_project(ids[0])  # warm: imports, first connection
        before = rss_bytes()

        async def one(pid: str) -> tuple[float, float, str, int]:
            started = await babou.start_export(pid)
            t_start = time.perf_counter()
            last = None
            changes = 0
            async for export in babou.watch_export(
                pid, timeout=timeout, estimate=started.estimated_seconds
            ):
                last = export
                changes += 1
            assert last is not None
            return t_start, time.perf_counter(), last.status_raw, changes

        with RssSampler(0.05) as sampler:
            t0, cpu0 = time.perf_counter(), cpu_seconds()
            outcomes = await asyncio.gather(*(one(pid) for pid in ids), return_exceptions=True)
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        leftover = len(asyncio.all_tasks()) - 1
    done = [o for o in outcomes if isinstance(o, tuple)]
    errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    completed = [o for o in done if o[2] == ExportStatus.COMPLETED.value]
    latencies = sorted(max(0.0, end - (start + duration)) for start, end, _, _ in completed)
    return {
        "wall": wall,
        "cpu": cpu,
        "completed": len(completed),
        "errors": errors[:5],
        "error_count": len(errors),
        "leftover_tasks": leftover,
        "rss_before": before,
        "rss_peak": sampler.peak,
        "latency_median": median(latencies),
        "latency_p95": latencies[int(0.95 * (len(latencies) - 1))] if latencies else None,
        "latency_max": latencies[-1] if latencies else None,
        "start_spread": (max(o[0] for o in done) - t0) if done else None,
    }


async def _steady_polls(
    server: ServerProcess, ids: list[str], interval: float, *, raw: bool
) -> tuple[float, int]:
    """
    Poll every export of ``ids`` each ``interval`` s until it ends; this process's CPU seconds.

    Ours: one ``watch_export`` per export with a constant :class:`PollPolicy`. The baseline
    (``raw``): the docs' fixed loop in raw aiohttp (GET, decode, sleep), one task per export,
    over a pool as large as the session's. The exports are started before the measurement.
    """
    headers = {"Authorization": f"Bearer {server.api_key}", "Accept": "application/json"}
    poll = PollPolicy(
        initial_delay=interval, multiplier=1.0, max_delay=interval, jitter=0.0, use_estimate=False
    )
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as http,
        BabouSession(server.api_key, base_url=server.base_url, poll=poll) as babou,
    ):
        await asyncio.gather(*(babou.start_export(pid) for pid in ids))
        server.command("clear")

        async def raw_watch(pid: str) -> None:
            url = f"{server.base_url}/projects/{pid}/export"
            while True:
                async with http.get(url, headers=headers) as resp:
                    status = json.loads(await resp.read())["status"]
                if status in ("completed", "failed"):
                    return
                await asyncio.sleep(interval)

        async def ours_watch(pid: str) -> None:
            async for _ in babou.watch_export(pid, timeout=120):
                pass

        cpu0 = cpu_seconds()
        await asyncio.gather(*((raw_watch if raw else ours_watch)(pid) for pid in ids))
        cpu = cpu_seconds() - cpu0
    polls = server.command("stats")["by_route"].get("GET /projects/{id}/export", 0)
    return cpu, int(polls)


def _poll_cost(opts: Options) -> Result:
    """CPU per status poll of a watch against a raw aiohttp poll loop's, paced alike."""
    count = opts.pick(800, 200, 8)
    interval = 0.25
    processing = opts.pickf(6.0, 6.0, 0.5)
    with ServerProcess.run(
        opts,
        "--projects",
        str(count),
        "--queued",
        "0",
        "--processing",
        str(processing),
        "--record-limit",
        "-1",
    ) as server:
        ids = server.project_ids
        quarter = len(ids) // 4
        # ABBA: ours, raw, raw, ours, each on its own quarter of the projects, so that
        # whatever drifts during the run (the heap, the machine) weighs on both alike.
        sums = {False: [0.0, 0], True: [0.0, 0]}
        for i, raw in enumerate((False, True, True, False)):
            cpu, polls = asyncio.run(
                _steady_polls(server, ids[i * quarter : (i + 1) * quarter], interval, raw=raw)
            )
            sums[raw][0] += cpu
            sums[raw][1] += polls
    (ours_cpu, ours_polls), (raw_cpu, raw_polls) = sums[False], sums[True]
    ours_us = ours_cpu / max(1, ours_polls) * 1e6
    raw_us = raw_cpu / max(1, raw_polls) * 1e6
    return Result(
        "watches.cpu_per_poll",
        ours_us,
        raw_us,
        ours_us / raw_us,
        f"ours/raw <= {CPU_PER_POLL:g} (this process's CPU per poll)",
        check(ours_us <= CPU_PER_POLL * raw_us),
        "cpu-us",
        {"watches": 2 * quarter, "interval": interval, "polls": ours_polls, "raw_polls": raw_polls},
    )


def run(opts: Options) -> list[Result]:
    count = opts.pick(10_000, 200, 20)  # the figure asks for 10,000 concurrent watches
    queued = opts.pickf(1.0, 1.0, 0.1)
    processing = opts.pickf(4.0, 4.0, 0.2)
    duration = queued + processing
    poll = PollPolicy.fast() if opts.smoke else PollPolicy()
    bound = duration + 2 * poll.max_delay + SLACK
    with ServerProcess.run(
        opts,
        "--projects",
        str(count),
        "--queued",
        str(queued),
        "--processing",
        str(processing),
        "--record-limit",
        "-1",
    ) as server:
        server.command("clear")
        stats = asyncio.run(_watch_all(server, poll, duration, timeout=bound + 60))
        requests = server.command("stats")
    by_route = requests["by_route"]
    polls = by_route.get("GET /projects/{id}/export", 0)
    starts = by_route.get("POST /projects/{id}/export", 0)
    wall = stats["wall"]
    all_done = stats["completed"] == count and stats["leftover_tasks"] == 0
    per_watch_kib = max(0, stats["rss_peak"] - stats["rss_before"]) / count / 1024
    details = {
        "watches": count,
        "simulated_seconds": duration,
        "poll_policy": repr(poll),
        "bound_seconds": bound,
        **stats,
        "requests": requests,
    }
    return [
        Result(
            "watches.wall",
            wall,
            duration,
            wall / duration,
            f"wall <= D + 2*{poll.max_delay:g} + {SLACK:g} = {bound:g}s",
            check(wall <= bound and all_done),
            "s",
            details,
        ),
        Result(
            "watches.completed",
            float(stats["completed"]),
            float(count),
            stats["completed"] / count,
            "all complete, no task left",
            check(all_done),
            "watches",
        ),
        Result(
            "watches.rss_per_watch",
            per_watch_kib,
            None,
            None,
            f"<= {RSS_PER_WATCH_KIB:g} KiB at 10,000 watches",
            check(per_watch_kib <= RSS_PER_WATCH_KIB) if count >= 10_000 else "INFO",
            "KiB",
            {
                "rss_before_mib": stats["rss_before"] / 2**20,
                "rss_peak_mib": stats["rss_peak"] / 2**20,
            },
        ),
        _poll_cost(opts),
        Result(
            "watches.requests_per_export",
            (polls + starts) / count,
            None,
            None,
            "info (start + polls)",
            "INFO",
            "requests",
            {"polls_per_export": polls / count, "starts": starts},
        ),
        Result(
            "watches.detection_latency",
            stats["latency_median"],
            stats["latency_p95"],
            None,
            "info (median; baseline col = p95)",
            "INFO",
            "s",
            {"max": stats["latency_max"]},
        ),
    ]
