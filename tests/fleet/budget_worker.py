"""
A worker of the fleet-budget tests: takes tokens from a shared RedisBudget as fast as it may.

Run as ``python budget_worker.py URL START_AT SECONDS RATE BURST``: from the wall-clock moment
``START_AT`` on, for ``SECONDS``, a few tasks take tokens and answer 200; then it prints the
Redis server times of its grants as JSON. :func:`hammer` does the same in-process.
"""

from __future__ import annotations

import json
import sys
import time

import anyio

from babou_async import RateLimit
from babou_async.contrib.redis import RedisBudget

#: The API key the fleet tests share (a made-up one, in the simulator's format).
API_KEY = "sk-bab-fleetbudgettestkey0123456789ab"
TASKS = 4


async def hammer(budget: RedisBudget, seconds: float, *, tasks: int = TASKS) -> list[float]:
    """Take tokens from ``tasks`` tasks for ``seconds``; return the server times of the grants."""
    times: list[float] = []
    deadline = anyio.current_time() + seconds

    async def one() -> None:
        while anyio.current_time() < deadline:
            await budget.acquire()
            assert budget._last is not None
            times.append(budget._last.server_time)
            await budget.on_response(200, None)

    async with anyio.create_task_group() as group:
        for _ in range(tasks):
            group.start_soon(one)
    return times


async def main(url: str, start_at: float, seconds: float, rate: float, burst: int) -> None:
    """Wait for ``start_at`` (wall clock), hammer the budget, print the grant times."""
    config = RateLimit(requests_per_second=rate, burst=burst)
    async with RedisBudget.from_url(url, api_key=API_KEY, rate_limit=config) as budget:
        await anyio.sleep(max(0.0, start_at - time.time()))
        times = await hammer(budget, seconds)
    sys.stdout.write(json.dumps(times))


if __name__ == "__main__":
    url, start_at, seconds, rate, burst = sys.argv[1:6]
    anyio.run(main, url, float(start_at), float(seconds), float(rate), int(burst))
