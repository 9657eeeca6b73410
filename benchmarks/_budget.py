"""
The request budget against a per-key limit and against random 429s.

A batch user watches many exports with one key, and every request is spent from the key's
budget. Two side-by-side comparisons, each in real time against an in-process ``FakeBabou``
(real HTTP), ``export_many`` over N = 120 exports of 2-4 s, all in flight
(``concurrency=N``), tiny videos (``--smoke``: 6 exports, figures meaningless):

* ``budget.key_limit.*``: the simulator limits the key to 10 requests per second (burst 5),
  answering 429 with ``Retry-After`` beyond it. The default session (``RateLimit()``, which
  must find the limit) against a session configured with the exact limit
  (``RateLimit(requests_per_second=10, burst=5)``). Targets: wall <= 1.1x, and <= 2% of the
  default's API requests answered 429.
* ``budget.random_429.*``: no limit, but 10% of API requests answered 429 at random (an
  overloaded server), with ``Retry-After: 0.25``. The default session with those faults
  against the default session without them. Target: wall <= 1.2x. The 429'd requests
  themselves must wait their Retry-After (the retry policy honours it), which no budget can
  avoid: the info row ``budget.random_429.unlimited`` (``RateLimit.unlimited()`` with the
  same faults) shows that floor. With ``Retry-After: 1`` that floor alone is about 1.2x.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from typing import Any

from babou_async import BabouSession, RateLimit, RetryPolicy
from babou_async.testing import FakeBabou, Faults

from . import Options, Result, check, ratio

NAME = "budget"
LIMIT = (10.0, 5)
TARGET_WALL = 1.1
TARGET_SHARE = 0.02
TARGET_NOISY_WALL = 1.2
RANDOM_429 = 0.1
RETRY_AFTER = 0.25
QUEUED = 0.5  # seconds of each export spent "queued"; the rest "processing"


async def _batch(count: int, rate_limit: RateLimit, server: dict[str, Any]) -> dict[str, Any]:
    """One export_many of ``count`` exports of 2-4 s; wall and API request counts."""
    draw = random.Random(2024)
    lengths: dict[str, float] = {}

    def processing(project_id: str) -> float:
        return lengths[project_id] - QUEUED

    async with FakeBabou(
        seed=7,
        export_queued_seconds=QUEUED,
        export_processing_seconds=processing,
        video_size=1024,
        url_ttl=600.0,
        record_limit=None,
        **server,
    ) as fake:
        ids = [fake.seed_project() for _ in range(count)]
        for pid in ids:
            lengths[pid] = draw.uniform(2.0, 4.0)
        retry = RetryPolicy(attempts=10)
        async with BabouSession(
            fake.api_key, base_url=fake.base_url, rate_limit=rate_limit, retry=retry
        ) as babou:
            with tempfile.TemporaryDirectory() as dest:
                start = time.perf_counter()
                results = await babou.export_many(ids, dest, concurrency=count)
                wall = time.perf_counter() - start
        api = [r for r in fake.requests if r.origin == "api"]
        failed = [r for r in results if not r.ok]
        if failed:
            raise RuntimeError(f"{len(failed)} exports failed, first: {failed[0].error!r}")
        return {
            "wall_s": wall,
            "api_requests": len(api),
            "answered_429": sum(1 for r in api if r.status == 429),
            "requests_per_export": len(api) / count,
        }


def _share(figures: dict[str, Any]) -> float:
    return float(figures["answered_429"] / max(1, figures["api_requests"]))


def run(opts: Options) -> list[Result]:
    count = opts.pick(120, 120, 6)
    limited = {"rate_limit": LIMIT}
    noisy = {"faults": Faults(rate_limit_rate=RANDOM_429, retry_after=RETRY_AFTER)}
    exact = RateLimit(requests_per_second=LIMIT[0], burst=LIMIT[1])
    # Side by side, baseline first then ours, in one process and one run.
    runs: dict[str, tuple[RateLimit, dict[str, Any]]] = {
        "key_limit.exact": (exact, limited),
        "key_limit.default": (RateLimit(), limited),
        "random_429.no_faults": (RateLimit(), {}),
        "random_429.default": (RateLimit(), noisy),
        "random_429.unlimited": (RateLimit.unlimited(), noisy),
    }
    figures = {
        name: asyncio.run(_batch(count, config, server)) for name, (config, server) in runs.items()
    }
    default, exact_run = figures["key_limit.default"], figures["key_limit.exact"]
    noisy_run, calm = figures["random_429.default"], figures["random_429.no_faults"]
    floor = figures["random_429.unlimited"]
    wall_ratio = ratio(default["wall_s"], exact_run["wall_s"])
    share = _share(default)
    noisy_ratio = ratio(noisy_run["wall_s"], calm["wall_s"])
    common = {"exports": count, "limit": LIMIT, "figures": figures}
    return [
        Result(
            "budget.key_limit.wall",
            default["wall_s"],
            exact_run["wall_s"],
            wall_ratio,
            f"default/exact-limit <= {TARGET_WALL}",
            check(wall_ratio <= TARGET_WALL),
            "s",
            common,
        ),
        Result(
            "budget.key_limit.share_429",
            share,
            _share(exact_run),
            None,
            f"default's 429s <= {TARGET_SHARE:.0%} of its requests",
            check(share <= TARGET_SHARE),
            "share",
            {"default": default, "exact": exact_run},
        ),
        Result(
            "budget.random_429.wall",
            noisy_run["wall_s"],
            calm["wall_s"],
            noisy_ratio,
            f"10% random 429s / none <= {TARGET_NOISY_WALL}",
            check(noisy_ratio <= TARGET_NOISY_WALL),
            "s",
            {"faults": noisy_run, "no_faults": calm, "retry_after_s": RETRY_AFTER},
        ),
        Result(
            "budget.random_429.unlimited",
            floor["wall_s"],
            calm["wall_s"],
            ratio(floor["wall_s"], calm["wall_s"]),
            "info (no budget at all, same faults: the Retry-After floor)",
            "INFO",
            "s",
            floor,
        ),
    ]
