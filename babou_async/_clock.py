"""The one source of time, sleep and randomness of a session: the seam tests replace."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections.abc import Awaitable, Callable

import attrs

__all__ = ["Clock"]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@attrs.frozen(kw_only=True)
class Clock:
    """
    Where a :class:`~babou_async.BabouSession` reads the time, sleeps and draws jitter.

    Everything in a session that waits or measures goes through one ``Clock``: retries,
    Retry-After, the request budget, polling, download watchdogs and timestamps. Tests and
    benchmarks pass their own to control time, instead of patching private attributes::

        from babou_async.testing import Clock

        delays: list[float] = []

        async def no_sleep(seconds: float) -> None:
            delays.append(seconds)

        session = BabouSession(key, clock=Clock(sleep=no_sleep, random=lambda: 0.5))

    Attributes:
        monotonic: Seconds on a monotonic clock (differences only are used).
        sleep: An async sleep of the given seconds.
        random: A uniform draw in ``[0, 1)``, for jitter.
        wall: The current UTC time (``Retry-After`` dates, result timestamps).
    """

    monotonic: Callable[[], float] = time.monotonic
    # asyncio's own sleep: anyio's adds two coroutines and a back-end lookup to each of them,
    # and 10,000 sleeping watches hold those frames. aiohttp ties a session to asyncio.
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    random: Callable[[], float] = random.random
    wall: Callable[[], dt.datetime] = _utc_now
