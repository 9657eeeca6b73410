"""
Per-call overhead: ``BabouSession.get_project`` against a raw aiohttp loop.

Both send the same ``GET /projects/{id}`` with the same headers to the same simulator
(in its own process) and decode the JSON; ours also checks the response and builds a
``Project``. M calls one after the other, and M calls from C concurrent tasks, for three
clients alternating in rotating order within one event loop after a warm-up: raw aiohttp,
a default ``BabouSession`` (adaptive ``RateLimit``) and one with ``RateLimit.unlimited()``.
The figure is the median over repetitions of (our time / raw time) of the same repetition.
This process's CPU time per call is reported too: the server's time dilutes wall-clock
ratios, CPU ratios show the client's own cost.
"""

from __future__ import annotations

import asyncio
import json
import platform
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from babou_async import BabouSession, RateLimit, __version__

from . import Options, Result, ServerProcess, check, median

NAME = "overhead"
TARGET = 1.25
#: Issue #9: >= 0.9x a raw loop's calls per second with many concurrent callers.
TARGET_CONCURRENT = 1 / 0.9

Call = Callable[[], Awaitable[object]]


def _raw_call(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Call:
    async def call() -> object:
        async with http.get(url, headers=headers) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"raw GET: HTTP {resp.status}")
            return json.loads(body)

    return call


def _ours_call(babou: BabouSession, project_id: str) -> Call:
    async def call() -> object:
        return await babou.get_project(project_id)

    return call


async def _sequential(call: Call, count: int) -> tuple[float, float]:
    cpu, start = time.process_time(), time.perf_counter()
    for _ in range(count):
        await call()
    return time.perf_counter() - start, time.process_time() - cpu


async def _concurrent(call: Call, count: int, tasks: int) -> tuple[float, float]:
    per_task = count // tasks

    async def worker() -> None:
        for _ in range(per_task):
            await call()

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return time.perf_counter() - start, time.process_time() - cpu


async def _bench(
    server: ServerProcess, count: int, tasks: int, reps: int
) -> dict[str, dict[str, list[tuple[float, float]]]]:
    project_id = server.project_ids[0]
    headers = {
        "Authorization": f"Bearer {server.api_key}",
        "Accept": "application/json",
        "User-Agent": f"babou_async/{__version__} Python/{platform.python_version()}",
    }
    url = f"{server.base_url}/projects/{project_id}"
    connector = aiohttp.TCPConnector(limit=100)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        BabouSession(server.api_key, base_url=server.base_url) as default,
        BabouSession(
            server.api_key, base_url=server.base_url, rate_limit=RateLimit.unlimited()
        ) as unlimited,
    ):
        calls: dict[str, Call] = {
            "raw": _raw_call(http, url, headers),
            "default": _ours_call(default, project_id),
            "unlimited": _ours_call(unlimited, project_id),
        }
        # Warm-up: connections for the concurrent run, first-call caches, the server.
        for call in calls.values():
            await _concurrent(call, tasks * 4, tasks)
            await _sequential(call, max(20, count // 10))
        runs: dict[str, dict[str, list[tuple[float, float]]]] = {
            "sequential": {name: [] for name in calls},
            "concurrent": {name: [] for name in calls},
        }
        names = list(calls)
        for rep in range(reps):
            order = names[rep % 3 :] + names[: rep % 3]
            for name in order:
                runs["sequential"][name].append(await _sequential(calls[name], count))
            for name in order:
                runs["concurrent"][name].append(await _concurrent(calls[name], count, tasks))
        return runs


def run(opts: Options) -> list[Result]:
    # Many short alternating repetitions: on a shared machine, noise comes in bursts of
    # seconds, and a median of paired ratios shrugs them off.
    count = opts.pick(1000, 400, 40)
    tasks = opts.pick(50, 50, 8)
    count -= count % tasks
    reps = opts.pick(15, 5, 1)
    with ServerProcess.run(opts, "--projects", "1", "--record-limit", "100") as server:
        runs = asyncio.run(_bench(server, count, tasks, reps))
    results: list[Result] = []
    for mode, by_client in runs.items():
        raw = by_client["raw"]
        for client in ("default", "unlimited"):
            ours = by_client[client]
            wall_ratios = [o[0] / r[0] for o, r in zip(ours, raw, strict=True)]
            cpu_ratios = [
                o[1] / r[1] if r[1] else float("inf") for o, r in zip(ours, raw, strict=True)
            ]
            figure = median(wall_ratios)
            label = "RateLimit()" if client == "default" else "RateLimit.unlimited()"
            details: dict[str, Any] = {
                "calls": count,
                "tasks": tasks if mode == "concurrent" else 1,
                "repetitions": reps,
                "client": label,
                "wall_ratios": wall_ratios,
                "cpu_ratios": cpu_ratios,
                "ours_cpu_us_per_call": median([o[1] for o in ours]) / count * 1e6,
                "raw_cpu_us_per_call": median([r[1] for r in raw]) / count * 1e6,
            }
            suffix = "" if client == "default" else ".unlimited"
            target = TARGET_CONCURRENT if mode == "concurrent" else TARGET
            results.append(
                Result(
                    f"overhead.{mode}{suffix}",
                    median([o[0] for o in ours]) / count * 1e6,
                    median([r[0] for r in raw]) / count * 1e6,
                    figure,
                    f"ours/raw <= {target:.2f}",
                    check(figure <= target),
                    "us/call",
                    details,
                )
            )
            results.append(
                Result(
                    f"overhead.{mode}{suffix}.cpu",
                    details["ours_cpu_us_per_call"],
                    details["raw_cpu_us_per_call"],
                    median(cpu_ratios),
                    "info (client CPU)",
                    "INFO",
                    "cpu-us/call",
                )
            )
    return results
