"""
Polling efficiency: the default ``PollPolicy`` with the server's estimate, against a
naive loop that polls every 2 seconds.

Babou's docs describe exports as taking "2-5 minutes". Minutes of real time are out of
the question, so the run uses an injected clock: the session's time, sleeps and jitter
(its test seams) and the simulator's clock are virtual, and every poll is still a real
HTTP request to an in-process FakeBabou. Each export announces ``"2-5 minutes"`` (the
simulator is configured for 120 s) and really takes d seconds, d drawn uniformly from
[120, 300]: the simulator's clock runs 120/d times as fast as the client's during that
export. The same durations are replayed for each strategy:

* ``policy``: ``wait_for_export(pid, estimate=start_export(pid).estimated_seconds)``;
* ``naive``: ``get_export`` every 2 s until terminal;
* ``policy, no estimate`` (reported only): ``wait_for_export(pid)`` without the estimate.

Measured per export: API requests (start + status polls, counted by the simulator) and
the detection latency, the virtual seconds between the server completing the export and
the client returning with it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from babou_async import BabouSession, ExportStatus
from babou_async.testing import FakeBabou

from . import Options, Result, check, median, ratio

NAME = "polling"
NAIVE_INTERVAL = 2.0
LATENCY_TARGET = 1.20
ANNOUNCED = 120.0  # seconds: FakeBabou phrases this as "2-5 minutes"
LOW, HIGH = 120.0, 300.0
MIN_SLEEP = 0.001  # virtual seconds: the shortest a real sleep and request take
EXPORT_REAL_TIMEOUT = 30.0  # real seconds: a stuck strategy fails instead of hanging


class WarpClock:
    """Virtual time for the client, and a simulator clock running ``rate`` times as fast."""

    def __init__(self) -> None:
        self.now = 0.0
        self.server_now = 1000.0
        self.rate = 1.0

    def clock(self) -> float:
        return self.now

    def server_clock(self) -> float:
        return self.server_now

    async def sleep(self, delay: float) -> None:
        # Like a real clock, time always moves on: a sleep of 1e-13 s must not leave
        # ``now`` unchanged (a float at 1e4 cannot hold it), or a poller aiming at a due
        # moment would spin.
        delay = max(MIN_SLEEP, delay)
        self.now += delay
        self.server_now += delay * self.rate
        await asyncio.sleep(0)


Strategy = Callable[[BabouSession, str, "tuple[float, float] | None"], Awaitable[object]]


async def _policy(babou: BabouSession, pid: str, estimate: tuple[float, float] | None) -> object:
    return await babou.wait_for_export(pid, timeout=3600, estimate=estimate)


async def _policy_no_estimate(
    babou: BabouSession, pid: str, estimate: tuple[float, float] | None
) -> object:
    del estimate
    return await babou.wait_for_export(pid, timeout=3600)


def _naive(warp: WarpClock) -> Strategy:
    async def naive(babou: BabouSession, pid: str, estimate: tuple[float, float] | None) -> object:
        del estimate
        for _ in range(10_000):  # bounded; an export ends long before
            export = await babou.get_export(pid)
            if export.is_terminal:
                return export
            await warp.sleep(NAIVE_INTERVAL)
        raise RuntimeError("naive poll did not finish")

    return naive


async def _measure(
    strategy_name: str, durations: list[float], seed: int
) -> tuple[list[int], list[float]]:
    warp = WarpClock()
    async with FakeBabou(
        seed=seed,
        clock=warp.server_clock,
        export_queued_seconds=10.0,
        export_processing_seconds=ANNOUNCED - 10.0,
        url_ttl=3600.0,
        record_limit=None,
    ) as fake:
        strategies: dict[str, Strategy] = {
            "policy": _policy,
            "policy, no estimate": _policy_no_estimate,
            "naive": _naive(warp),
        }
        strategy = strategies[strategy_name]
        requests: list[int] = []
        latencies: list[float] = []
        async with BabouSession(fake.api_key, base_url=fake.base_url) as babou:
            # The session's seams for time, sleeping and randomness (see BabouSession).
            babou._clock = warp.clock  # noqa: SLF001
            babou._sleep = warp.sleep  # noqa: SLF001
            babou._random = random.Random(seed).random  # noqa: SLF001
            for duration in durations:
                pid = fake.seed_project()
                fake.clear_requests()
                warp.rate = ANNOUNCED / duration
                t0 = warp.now
                started = await babou.start_export(pid)
                if started.estimated_time != "2-5 minutes":
                    raise RuntimeError(f"unexpected estimate {started.estimated_time!r}")
                export: Any = await asyncio.wait_for(
                    strategy(babou, pid, started.estimated_seconds), EXPORT_REAL_TIMEOUT
                )
                if export.status is not ExportStatus.COMPLETED:
                    raise RuntimeError(f"export ended {export.status_raw}")
                latencies.append(warp.now - (t0 + duration))
                requests.append(len(fake.requests))
        return requests, latencies


def run(opts: Options) -> list[Result]:
    count = opts.pick(400, 100, 5)
    rng = random.Random(2024)
    durations = [rng.uniform(LOW, HIGH) for _ in range(count)]
    figures: dict[str, dict[str, Any]] = {}
    for name in ("naive", "policy", "policy, no estimate"):
        requests, latencies = asyncio.run(_measure(name, durations, seed=11))
        if min(latencies) < 0:
            raise RuntimeError(f"{name}: noticed a completion before it happened")
        figures[name] = {
            "requests_mean": sum(requests) / count,
            "requests_max": max(requests),
            "latency_mean": sum(latencies) / count,
            "latency_median": median(latencies),
            "latency_max": max(latencies),
        }
    ours, naive, bare = figures["policy"], figures["naive"], figures["policy, no estimate"]
    common = {
        "exports": count,
        "durations": f"uniform [{LOW:g}, {HIGH:g}] s, announced '2-5 minutes'",
        "naive_interval_s": NAIVE_INTERVAL,
        "figures": figures,
    }
    req_ratio = ratio(ours["requests_mean"], naive["requests_mean"])
    lat_ratio = ratio(ours["latency_mean"], naive["latency_mean"])
    return [
        Result(
            "polling.requests_per_export",
            ours["requests_mean"],
            naive["requests_mean"],
            req_ratio,
            "policy/naive < 1",
            check(req_ratio < 1.0),
            "requests",
            common,
        ),
        Result(
            "polling.detection_latency",
            ours["latency_mean"],
            naive["latency_mean"],
            lat_ratio,
            f"policy/naive <= {LATENCY_TARGET:.2f} (mean)",
            check(lat_ratio <= LATENCY_TARGET),
            "s",
            {"median": ours["latency_median"], "max": ours["latency_max"]},
        ),
        Result(
            "polling.no_estimate.requests",
            bare["requests_mean"],
            naive["requests_mean"],
            ratio(bare["requests_mean"], naive["requests_mean"]),
            "info (policy without the estimate)",
            "INFO",
            "requests",
        ),
        Result(
            "polling.no_estimate.latency",
            bare["latency_mean"],
            naive["latency_mean"],
            ratio(bare["latency_mean"], naive["latency_mean"]),
            "info (policy without the estimate)",
            "INFO",
            "s",
        ),
    ]
