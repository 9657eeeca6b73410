"""
Polling efficiency: the default ``PollPolicy`` against the two loops of Babou's export docs.

Babou's docs describe exports as taking "2-5 minutes" and show two loops: a status GET
every 5 s, and a backoff (2 s, x1.5, capped at 30 s). Every poll is spent from the key's
request budget, so what matters is requests per export for a given *detection delay* (the
seconds between the server completing an export and the client noticing).

Two parts:

* **pure simulation** (the figures): 10,000 exports announced "2-5 minutes", lasting
  uniform 120-300 s, plus 5% early (30-120 s) and 5% late (300-600 s) outliers, replayed
  through ``next_poll_delay`` on a virtual clock, with the poller's conventions (a first look
  at once, then one delay after each look). The same durations for every strategy.
* **session confirmation** (info): the default policy through a real ``BabouSession`` and
  an in-process ``FakeBabou``, on a warped clock injected with ``Clock`` (the session's time,
  sleeps and jitter are virtual, every poll is a real HTTP request): ``start_export`` then
  ``wait_for_export`` with no ``estimate=``, so the session must remember the estimate.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

from babou_async import BabouSession, ExportStatus, PollPolicy
from babou_async import _protocol as proto
from babou_async.testing import Clock, FakeBabou

from . import Options, Result, check, ratio

NAME = "polling"
ESTIMATE = (120.0, 300.0)  # "2-5 minutes"
FIXED = PollPolicy(initial_delay=5.0, multiplier=1.0, max_delay=5.0, jitter=0.0, use_estimate=False)
BACKOFF = PollPolicy(jitter=0.0, use_estimate=False)  # 2 s, x1.5, capped at 30 s
TARGET_VS_FIXED = 0.35
TARGET_P95 = 10.0
TARGET_VS_BACKOFF = 1.1
TARGET_P95_VS_BACKOFF = 0.4
ANNOUNCED = 120.0  # seconds: FakeBabou phrases this as "2-5 minutes"
MIN_SLEEP = 0.001  # virtual seconds: the shortest a real sleep and request take
EXPORT_REAL_TIMEOUT = 60.0  # real seconds: a stuck run fails instead of hanging


def durations(count: int, seed: int = 2024) -> list[float]:
    """Mostly uniform 120-300 s, with 5% early (30-120 s) and 5% late (300-600 s) outliers."""
    draw = random.Random(seed)
    out = []
    for _ in range(count):
        kind = draw.random()
        low, high = (30, 120) if kind < 0.05 else (300, 600) if kind < 0.1 else (120, 300)
        out.append(draw.uniform(low, high))
    return out


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def simulate(
    policy: PollPolicy, finish: list[float], estimate: tuple[float, float] | None = ESTIMATE
) -> dict[str, float]:
    """Poll each job from t=0 until done; polls per job and detection delays."""
    draw = random.Random(7)
    polls: list[int] = []
    late: list[float] = []
    for done_at in finish:
        t, count, overdue = 0.0, 0, 0
        while True:
            count += 1
            if t >= done_at:
                break
            due = estimate is None or not policy.use_estimate or t >= estimate[1]
            t += proto.next_poll_delay(
                policy,
                polls_since_due=overdue if due else 0,
                elapsed=t,
                estimate=estimate,
                rand=draw.random(),
            )
            overdue += due
        polls.append(count)
        late.append(t - done_at)
    return {
        "requests": sum(polls) / len(polls),
        "p95": p95(late),
        "mean_delay": sum(late) / len(late),
    }


# -- the session on a warped clock ----------------------------------------------------------


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
        # Time always moves on: a sleep of 1e-13 s must not leave ``now`` unchanged (a
        # float at 1e4 cannot hold it), or a poller aiming at a due moment would spin.
        delay = max(MIN_SLEEP, delay)
        self.now += delay
        self.server_now += delay * self.rate
        await asyncio.sleep(0)


async def _session_run(finish: list[float], seed: int) -> dict[str, float]:
    warp = WarpClock()
    async with FakeBabou(
        seed=seed,
        clock=warp.server_clock,
        export_queued_seconds=10.0,
        export_processing_seconds=ANNOUNCED - 10.0,
        url_ttl=3600.0,
        record_limit=None,
    ) as fake:
        clock = Clock(monotonic=warp.clock, sleep=warp.sleep, random=random.Random(seed).random)
        requests: list[int] = []
        late: list[float] = []
        async with BabouSession(fake.api_key, base_url=fake.base_url, clock=clock) as babou:
            for duration in finish:
                pid = fake.seed_project()
                fake.clear_requests()
                warp.rate = ANNOUNCED / duration  # the simulator's 120 s last `duration`
                t0 = warp.now
                started = await babou.start_export(pid)
                if started.estimated_time != "2-5 minutes":
                    raise RuntimeError(f"unexpected estimate {started.estimated_time!r}")
                export: Any = await asyncio.wait_for(
                    babou.wait_for_export(pid, timeout=3600), EXPORT_REAL_TIMEOUT
                )
                if export.status is not ExportStatus.COMPLETED:
                    raise RuntimeError(f"export ended {export.status_raw}")
                late.append(warp.now - (t0 + duration))
                requests.append(len(fake.requests) - 1)  # the status GETs, not the start
    if min(late) < 0:
        raise RuntimeError("noticed a completion before it happened")
    return {"requests": sum(requests) / len(requests), "p95": p95(late)}


def run(opts: Options) -> list[Result]:
    finish = durations(opts.pick(10_000, 10_000, 1_000))
    fixed, backoff = simulate(FIXED, finish), simulate(BACKOFF, finish)
    ours = simulate(PollPolicy(), finish)
    responsive = simulate(PollPolicy.responsive(), finish)
    frugal = simulate(PollPolicy.frugal(), finish)
    bare = simulate(PollPolicy(), finish, estimate=None)
    common = {
        "exports": len(finish),
        "durations": "announced '2-5 minutes': 90% U[120, 300] s, 5% U[30, 120], 5% U[300, 600]",
        "figures": {
            "default": ours,
            "fixed_5s": fixed,
            "backoff_2s_x1.5_30s": backoff,
            "responsive": responsive,
            "frugal": frugal,
            "no_estimate": bare,
        },
        "command": "python -m benchmarks --only polling",
    }
    vs_fixed = ratio(ours["requests"], fixed["requests"])
    vs_backoff = ratio(ours["requests"], backoff["requests"])
    p95_ratio = ratio(ours["p95"], backoff["p95"])
    results = [
        Result(
            "polling.requests_per_export",
            ours["requests"],
            fixed["requests"],
            vs_fixed,
            f"ours/fixed-5s <= {TARGET_VS_FIXED}",
            check(vs_fixed <= TARGET_VS_FIXED),
            "requests",
            common,
        ),
        Result(
            "polling.detection_latency",
            ours["p95"],
            backoff["p95"],
            p95_ratio,
            f"p95 <= {TARGET_P95:g} s and <= {TARGET_P95_VS_BACKOFF}x backoff's",
            check(ours["p95"] <= TARGET_P95 and p95_ratio <= TARGET_P95_VS_BACKOFF),
            "s (p95)",
            {"fixed_5s_p95": fixed["p95"], "mean": ours["mean_delay"]},
        ),
        Result(
            "polling.vs_backoff",
            ours["requests"],
            backoff["requests"],
            vs_backoff,
            f"ours/backoff <= {TARGET_VS_BACKOFF}",
            check(vs_backoff <= TARGET_VS_BACKOFF),
            "requests",
        ),
        Result(
            "polling.no_estimate.requests",
            bare["requests"],
            backoff["requests"],
            ratio(bare["requests"], backoff["requests"]),
            "info (no estimate: the docs' backoff loop)",
            "INFO",
            "requests",
        ),
        Result(
            "polling.no_estimate.latency",
            bare["p95"],
            backoff["p95"],
            ratio(bare["p95"], backoff["p95"]),
            "info (no estimate, p95)",
            "INFO",
            "s (p95)",
        ),
    ]
    for name, figures in (("responsive", responsive), ("frugal", frugal)):
        results.append(
            Result(
                f"polling.{name}",
                figures["requests"],
                ours["requests"],
                ratio(figures["requests"], ours["requests"]),
                f"info (vs default; p95 {figures['p95']:.1f} s vs {ours['p95']:.1f} s)",
                "INFO",
                "requests",
                figures,
            )
        )
    results.append(_session_result(opts))
    return results


def _session_result(opts: Options) -> Result:
    finish = durations(opts.pick(200, 50, 5), seed=11)
    expected = simulate(PollPolicy(), finish)
    got = asyncio.run(_session_run(finish, seed=11))
    return Result(
        "polling.session",
        got["requests"],
        expected["requests"],
        ratio(got["requests"], expected["requests"]),
        "info (a real session, warped clock, vs the pure simulation)",
        "INFO",
        "requests",
        {"session": got, "simulation": expected, "exports": len(finish)},
    )
