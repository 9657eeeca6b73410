"""
Tests of the request budget.

:class:`AdaptiveRate` is plain arithmetic on an explicit clock. :class:`AdaptiveBudget` and
:class:`FixedBudget` run on a *virtual-time* event loop: ``asyncio.sleep`` returns at once
and the loop's clock jumps to the next timer, so waits, pauses and whole rate-limited
batches are exact and instant (no timed assertion anywhere).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import random
import selectors
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from babou_async import RateLimit
from babou_async._ratelimit import (
    AdaptiveBudget,
    AdaptiveRate,
    FixedBudget,
    RequestBudget,
    RequestPriority,
    _Waiter,
)

T = TypeVar("T")
PROGRESS, POLL = RequestPriority.PROGRESS, RequestPriority.POLL


# --------------------------------------------------------------------------------------
# A virtual-time event loop
# --------------------------------------------------------------------------------------


class _JumpingSelector(selectors.DefaultSelector):
    """Never blocks: when the loop would wait for its next timer, time jumps there."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    def select(self, timeout: float | None = None) -> list[Any]:
        events = super().select(0)
        if not events and timeout is not None and timeout > 0:
            self.now += timeout
        return events


class VirtualLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on virtual time (its ``time()`` is the selector's clock)."""

    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        """The virtual time."""
        return self._jumping.now


def virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh virtual-time loop."""
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def now() -> float:
    """The running loop's (virtual) time."""
    return asyncio.get_running_loop().time()


def adaptive(config: RateLimit | None = None, *, draw: float = 0.5) -> AdaptiveBudget:
    """An AdaptiveBudget on the running loop's virtual clock."""
    return AdaptiveBudget(config, monotonic=now, sleep=asyncio.sleep, random=lambda: draw)


def fixed(rps: float, burst: int = 1, *, draw: float = 0.5) -> FixedBudget:
    """A FixedBudget on the running loop's virtual clock."""
    return FixedBudget(rps, burst=burst, monotonic=now, sleep=asyncio.sleep, random=lambda: draw)


def answer(rate: AdaptiveRate, t: float, statuses: str) -> None:
    """Feed answers at time ``t``: ``"."`` is a 200, ``"x"`` a 429."""
    for status in statuses:
        rate.on_response(t, 429 if status == "x" else 200)


def send(
    rate: AdaptiveRate, per_second: float, start: float, end: float, *, answered: bool = True
) -> float:
    """Send at a steady ``per_second`` from ``start`` to ``end`` (answered 200); return ``end``."""
    for i in range(round((end - start) * per_second)):
        t = start + i / per_second
        if rate.take(t) and answered:
            rate.on_response(t, 200)
    return end


def opened() -> AdaptiveRate:
    """A budget past its slow start: open, nothing paced, 10 rps sent and answered for 5 s."""
    rate = AdaptiveRate(RateLimit(slow_start=False), now=0.0)
    send(rate, 10, 0.0, 5.0)
    return rate


# --------------------------------------------------------------------------------------
# AdaptiveRate: the bucket
# --------------------------------------------------------------------------------------


def test_unlimited_never_paces() -> None:
    """RateLimit.unlimited() lets everything through, whatever the server answers."""
    rate = AdaptiveRate(RateLimit.unlimited(), now=0.0)

    taken = {rate.take(0.0) for _ in range(10_000)}
    for _ in range(100):
        rate.on_response(0.0, 429, 60.0)

    assert ({True}, "open", 0.0, 0) == (taken, rate.mode.value, rate.wait_time(0.0), rate.cuts)


@pytest.mark.parametrize(
    ("rps", "burst", "waits"),
    [
        (2.0, 5, [0.0, 0.0, 0.5]),  # capacity is one second of rate: 2
        (10.0, 3, [0.0, 0.0, 0.0, 0.1]),
        (0.5, 20, [0.0, 2.0]),  # never less than one token
        (100.0, 1, [0.0, 0.01]),
    ],
)
def test_ceiling_token_bucket(rps: float, burst: int, waits: list[float]) -> None:
    """With a ceiling, a burst goes out at once and the next request waits one interval."""
    rate = AdaptiveRate(RateLimit(requests_per_second=rps, burst=burst), now=0.0)

    observed = []
    for _ in waits:
        observed.append(rate.wait_time(0.0))
        rate.take(0.0)

    assert pytest.approx(waits) == observed


def test_an_answer_never_lowers_a_ceiling_the_sender_has_not_reached() -> None:
    """A ceiling starts where it is set: the first answers, sent slowly, keep it there."""
    rate = AdaptiveRate(RateLimit(requests_per_second=50.0, burst=5), now=0.0)
    for step in range(1, 6):
        assert rate.take(step * 0.5)
        rate.on_response(step * 0.5 + 0.01, 200, None)
    assert 50.0 == rate.rate


@pytest.mark.parametrize(
    ("config", "capacity"),
    [
        (RateLimit(requests_per_second=2.0, burst=5), 2.0),
        (RateLimit(requests_per_second=100.0, burst=20), 20.0),
        (RateLimit(requests_per_second=0.25, burst=20), 1.0),
        (RateLimit(burst=7), 4.0),  # slow start: a quarter second of 16 rps
        (RateLimit(burst=3), 3.0),
        (RateLimit(burst=7, slow_start=False), 7.0),
    ],
)
def test_capacity(config: RateLimit, capacity: float) -> None:
    """Capacity: the burst, at most 1 s of a ceiling or 0.25 s of an adaptive rate, >= 1."""
    assert capacity == AdaptiveRate(config, 0.0).capacity


def test_tokens_refill_over_time() -> None:
    """Tokens come back at the rate, up to the capacity; none can be taken in advance."""
    rate = AdaptiveRate(RateLimit(requests_per_second=2.0, burst=1), now=0.0)

    assert [True, False, True, False, True, True, False] == [
        rate.take(0.0),
        rate.take(0.0),
        rate.take(0.5),
        rate.take(0.9),
        rate.take(100.0),  # a long pause refills only up to capacity...
        rate.take(100.5),
        rate.take(100.6),  # ...so the next one waits
    ]


def test_clock_going_backwards_mints_no_tokens() -> None:
    """A take stamped earlier than the last refill finds no new token."""
    rate = AdaptiveRate(RateLimit(requests_per_second=1.0, burst=1), now=10.0)
    rate.take(10.0)

    assert (False, 1.0) == (rate.take(5.0), rate.wait_time(10.0))


def test_refund_gives_the_token_back() -> None:
    """A token taken for a request that was never sent can be returned."""
    rate = AdaptiveRate(RateLimit(requests_per_second=1.0, burst=1), now=0.0)
    rate.take(0.0)

    rate.refund()

    assert (0, True) == (rate.sent, rate.take(0.0))


@given(
    rps=st.floats(min_value=0.1, max_value=200.0),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=200),
    window=st.floats(min_value=0.0, max_value=30.0),
)
def test_ceiling_is_never_exceeded_in_any_window(
    rps: float, burst: int, gaps: list[float], window: float
) -> None:
    """Requests released in any window of T seconds number at most burst + rate * T (+1)."""
    rate = AdaptiveRate(RateLimit(requests_per_second=rps, burst=burst), now=0.0)
    t = 0.0
    releases = []
    for gap in gaps:
        t += gap
        while not rate.take(t):  # each caller waits as the dispatcher would
            t += rate.wait_time(t)
        releases.append(t)

    busiest = max(
        bisect.bisect_right(releases, start + window) - i for i, start in enumerate(releases)
    )

    assert busiest <= burst + rps * window + 1


# --------------------------------------------------------------------------------------
# AdaptiveRate: slow start
# --------------------------------------------------------------------------------------


def test_slow_start_grows_by_an_eighth_per_success_then_opens() -> None:
    """A fresh budget starts at 16 rps, grows x1.125 per 200, and stops pacing past 4096."""
    rate = AdaptiveRate(RateLimit(), now=0.0)
    start = (rate.mode.value, rate.rate)

    answer(rate, 0.0, "." * 10)
    grown = rate.rate
    answer(rate, 0.0, "." * 40)

    assert ("start", 16.0) == start
    assert pytest.approx(16.0 * 1.125**10) == grown
    assert ("open", math.inf) == (rate.mode.value, rate.rate)


def test_slow_start_off_starts_open() -> None:
    """slow_start=False: nothing is paced until the first 429 (the old behaviour)."""
    rate = AdaptiveRate(RateLimit(slow_start=False), now=0.0)

    assert ("open", True) == (rate.mode.value, all(rate.take(0.0) for _ in range(1000)))


def test_a_lone_429_does_not_end_slow_start() -> None:
    """In slow start an isolated 429 (maybe noise) neither cuts nor pauses: the batch goes on."""
    rate = AdaptiveRate(RateLimit(), now=0.0)
    answer(rate, 0.0, "....")

    rate.on_response(0.0, 429, 5.0)
    answer(rate, 0.0, ".x.....x")

    assert ("start", 0, -math.inf) == (rate.mode.value, rate.cuts, rate.paused_until)


def test_a_run_of_429s_ends_slow_start_below_half_the_accepted_rate() -> None:
    """3 of the last 8 answers 429: pace at 0.45 x what the server accepted; Retry-After."""
    rate = AdaptiveRate(RateLimit(), now=0.0)
    while rate.take(0.0):  # the small first burst
        pass
    answer(rate, 0.0, "....")
    answer(rate, 0.1, ".x.x.")
    sending = rate.rate  # the bucket held requests back: we send at its rate

    rate.on_response(0.1, 429, 0.2)

    assert ("steady", 1) == (rate.mode.value, rate.cuts)
    assert pytest.approx(sending * 5 / 8 * 0.45) == rate.rate
    assert pytest.approx(0.3) == rate.paused_until
    assert not rate.take(0.25)


# --------------------------------------------------------------------------------------
# AdaptiveRate: congestion events
# --------------------------------------------------------------------------------------


def test_one_cut_per_burst() -> None:
    """A burst of 17 429s to requests already in flight cuts the rate once, not 17 times."""
    rate = AdaptiveRate(RateLimit(slow_start=False), now=0.0)
    send(rate, 10, 0.0, 5.0, answered=False)  # all 50 still in flight

    answer(rate, 5.0, "x" * 17)

    assert 1 == rate.cuts
    assert pytest.approx(0.7 * 10) == rate.rate


def test_retry_after_of_the_burst_extends_the_pause() -> None:
    """The first 429 pauses every caller; a longer Retry-After in the same burst extends it."""
    rate = opened()
    rate.take(5.0)
    rate.take(5.0)

    rate.on_response(5.0, 429, 1.0)
    rate.on_response(5.1, 429, 3.0)
    rate.on_response(5.2, 429, 0.5)

    assert 1 == rate.cuts
    assert pytest.approx(8.1) == rate.paused_until
    assert pytest.approx(3.0) == rate.wait_time(5.1)


def test_first_429_when_open_starts_pacing_from_the_sending_rate() -> None:
    """Open, the first 429 turns the bucket on, empty, at backoff_factor x what we send."""
    rate = AdaptiveRate(RateLimit(backoff_factor=0.5, slow_start=False), now=0.0)
    send(rate, 20, 0.0, 3.0)

    rate.on_response(3.0, 429)

    assert ("steady", 0.0) == (rate.mode.value, rate.tokens)
    assert pytest.approx(10.0) == rate.rate


@pytest.mark.parametrize(("min_rate", "expected"), [(0.5, 0.5), (3.0, 3.0)])
def test_rate_floor_is_min_rate(min_rate: float, expected: float) -> None:
    """However slowly we were sending, a cut never goes below min_rate."""
    rate = AdaptiveRate(RateLimit(min_rate=min_rate, slow_start=False), now=0.0)
    rate.take(0.0)

    rate.on_response(10.0, 429)

    assert expected == rate.rate


def test_a_429_with_a_ceiling_cuts_below_the_ceiling() -> None:
    """Adaptive with a ceiling: sending at the ceiling, a 429 cuts below it."""
    rate = AdaptiveRate(RateLimit(requests_per_second=5.0, burst=5), now=0.0)
    for i in range(100):
        rate.take(i / 50)  # asking for 50 rps: the bucket holds us at 5

    rate.on_response(2.0, 429)

    assert pytest.approx(3.5) == rate.rate


def test_fixed_ceiling_ignores_429_but_honours_retry_after() -> None:
    """adaptive=False keeps the ceiling; the server's Retry-After still pauses everyone."""
    rate = AdaptiveRate(RateLimit(requests_per_second=5.0, adaptive=False), now=0.0)

    rate.on_response(2.0, 429, 4.0)
    rate.on_response(2.0, 429)

    assert (5.0, 0, "fixed") == (rate.rate, rate.cuts, rate.mode.value)
    assert (False, True) == (rate.take(5.9), rate.take(6.0))


def test_successes_before_any_429_keep_the_ceiling() -> None:
    """With a ceiling and no 429, the rate stays as configured."""
    rate = AdaptiveRate(RateLimit(requests_per_second=5.0), now=0.0)

    for second in range(10):
        rate.on_response(float(second), 200)

    assert 5.0 == rate.rate


# --------------------------------------------------------------------------------------
# AdaptiveRate: probation, limit, noise, recovery
# --------------------------------------------------------------------------------------


def cut_at_ten(rate: AdaptiveRate) -> float:
    """Cut an opened budget sending 10 rps at t=5 (to 7 rps); return the time."""
    rate.on_response(5.0, 429)
    return 5.0


def test_probation_holds_then_recovery_follows_a_cubic_curve() -> None:
    """The rate holds for 32 answers; then it climbs back to 8.5 rps (the plateau) and on."""
    rate = opened()
    t = cut_at_ten(rate)
    answer(rate, t + 1.0, "." * 31)
    held = rate.rate
    answer(rate, t + 2.0, ".")  # the 32nd answer: the cut worked
    k = ((1 - 7.0 / 8.5) / 0.001) ** (1 / 3)

    observed = []
    last = t + 2.0
    for dt in (0.0, 1.0, k, k + 4.0):
        last = send(rate, 20, last, t + 2.0 + dt)  # demand above the rate: the cap never binds
        answer(rate, t + 2.0 + dt, ".")
        observed.append(rate.rate)

    assert pytest.approx(7.0) == held
    assert rate.event is None
    curve = [8.5 * (1 + 0.001 * (dt - k) ** 3) for dt in (0.0, 1.0, k)]
    curve.append(8.5 * (1 + 0.001 / 8 * 4.0**3))  # beyond the plateau, probing slowly
    assert pytest.approx(curve, rel=1e-6) == observed
    assert pytest.approx(8.5) == observed[2]


def test_persisting_429s_settle_just_below_the_accepted_rate() -> None:
    """429s persist after the cut: pace at 0.95 x what the server accepted, check again."""
    rate = opened()
    t = cut_at_ten(rate)
    for i in range(40):
        rate.take(t + i / 7.0)  # the bucket holds us at 7 rps

    answer(rate, t + 1.0, "." * 7 + "x..x..x")  # 3 of 14: it accepted 11/14 x 7 rps
    answer(rate, t + 3.0, "." * 32)  # no 429 at the lower rate: a limit, found

    assert pytest.approx(0.95 * 11 / 14 * 7.0) == rate.rate
    assert (1, None, 0.0) == (rate.cuts, rate.event, rate.noise)


def test_random_429s_are_taken_for_noise_and_the_cut_undone() -> None:
    """As many 429s at a fifth lower rate are not about our rate: undo, remember the noise."""
    rate = opened()
    answer(rate, 5.0, "." * 9 + "x" + "." * 9 + "x" + "." * 9 + "x")
    t = cut_at_ten(rate)

    answer(rate, t + 1.0, "." * 7 + "x" + "...x.....x")  # probation 1: 3 of 18 persist
    answer(rate, t + 3.0, "..x..." + "x....x")  # probation 2: as many at a lower rate

    assert ("open", math.inf, None) == (rate.mode.value, rate.rate, rate.event)
    assert 0.05 < rate.noise <= 0.25


def test_a_spike_of_noise_is_undone_at_once() -> None:
    """With noise known, a cut after which 429s fall back to that share is undone."""
    rate = opened()
    rate.noise = 0.1
    while not rate.cuts:  # a surge, until it is well above twice the noise
        answer(rate, 5.0, "x")
    cut = (rate.cuts, rate.mode.value)

    answer(rate, 6.0, "." * 9 + "x" + "." * 9 + "x" + "." * 11 + "x")  # 3 of 32: the noise

    assert ((1, "steady"), "open", None) == (cut, rate.mode.value, rate.event)


def test_known_noise_raises_the_bar_for_congestion() -> None:
    """Once noise is known, isolated 429s at that share cut nothing; a surge of them does."""
    rate = opened()
    rate.noise = 0.1
    answer(rate, 5.0, ("." * 9 + "x") * 30)
    calm = rate.cuts

    answer(rate, 6.0, "x" * 12)

    assert (0, 1) == (calm, rate.cuts)


def test_recovery_never_exceeds_the_ceiling() -> None:
    """With a ceiling, recovery climbs back to it and stops there."""
    rate = AdaptiveRate(RateLimit(requests_per_second=8.0, burst=8), now=0.0)
    for i in range(80):
        rate.take(i / 16)
    rate.on_response(5.0, 429)

    rates = []
    for tenth in range(1, 900):
        t = 5.0 + tenth / 10
        rate.take(t)
        rate.on_response(t, 200)
        rates.append(rate.rate)

    assert rates[0] < 8.0
    assert (sorted(rates), 8.0) == (rates, rates[-1])


def test_recovery_is_capped_at_twice_the_sending_rate() -> None:
    """After a quiet recovery the rate stays near what we send, so the next 429 still bites."""
    rate = opened()
    t = cut_at_ten(rate)
    for i in range(600):  # one minute at 2 requests per second
        rate.take(t + i / 2)
        rate.on_response(t + i / 2, 200)

    assert rate.rate <= 2 * 2.0 * 1.01


def simulate_key_limit(config: RateLimit, *, seconds: float = 60.0) -> tuple[float, float]:
    """
    Demand of 40 rps for ``seconds`` against a key limited to 10 rps (burst 5).

    Returns the accepted rate over the last half and the share of requests answered 429.
    """
    rate = AdaptiveRate(config, now=0.0)
    tokens, stamp = 5.0, 0.0
    t = 0.0
    accepted_late = throttled = sent = 0
    while t < seconds:
        if not rate.take(t):
            t += max(rate.wait_time(t), 1 / 40)
            continue
        tokens, stamp = min(5.0, tokens + (t - stamp) * 10.0), t
        sent += 1
        if tokens >= 1:
            tokens -= 1
            rate.on_response(t + 0.005, 200)
            accepted_late += t > seconds / 2
        else:
            throttled += 1
            rate.on_response(t + 0.005, 429, (1 - tokens) / 10.0)
        t += 1 / 40
    return accepted_late / (seconds / 2), throttled / sent


def test_settles_at_the_key_limit() -> None:
    """Against 10 rps, the default budget settles near 10 rps with few 429s, not at the floor."""
    accepted, share = simulate_key_limit(RateLimit())

    assert 9.0 <= accepted <= 10.5
    assert share < 0.02


def test_random_429s_do_not_drive_the_rate_to_the_floor() -> None:
    """10% random 429s and no limit: after a minute the budget is not pacing below demand."""
    rate = AdaptiveRate(RateLimit(), now=0.0)
    draws = random.Random(7)
    t = 0.0
    for _ in range(20_000):  # 200 rps of demand for 100 s
        if rate.take(t):
            rate.on_response(t + 0.005, 429 if draws.random() < 0.1 else 200, 1.0)
        t += 1 / 200

    assert rate.rate == math.inf or rate.rate > 150.0
    assert 0.05 < rate.noise <= 0.25


# --------------------------------------------------------------------------------------
# AdaptiveBudget and FixedBudget: the awaiting face, on virtual time
# --------------------------------------------------------------------------------------


def test_budgets_implement_the_protocol() -> None:
    """AdaptiveBudget and FixedBudget are RequestBudgets."""
    assert isinstance(AdaptiveBudget(), RequestBudget)
    assert isinstance(FixedBudget(5.0), RequestBudget)


def test_unlimited_budget_never_sleeps_and_keeps_no_state() -> None:
    """RateLimit.unlimited(): acquire never sleeps, even after 429s; no arithmetic at all."""
    sleeps: list[float] = []

    async def main() -> tuple[float, AdaptiveRate | None]:
        async def record(delay: float) -> None:
            sleeps.append(delay)

        budget = AdaptiveBudget(RateLimit.unlimited(), sleep=record)
        for _ in range(1000):
            await budget.acquire(POLL)
            await budget.on_response(429, 30.0)
        return budget.suggested_poll_delay(), budget.state

    assert (0.0, None) == virtual(main())
    assert [] == sleeps


def test_fast_path_takes_no_lock_and_no_sleep() -> None:
    """With a token available and nobody queued, acquire returns without sleeping."""

    async def main() -> tuple[int, float]:
        budget = adaptive(RateLimit(burst=4))
        start = now()
        for _ in range(4):
            await budget.acquire()
        return budget._waiting, now() - start

    assert (0, 0.0) == virtual(main())


def test_waiting_callers_are_released_at_the_rate_progress_first() -> None:
    """Queued callers go one token at a time, every progress request before any poll."""

    async def main() -> list[tuple[float, str]]:
        budget = fixed(10.0, burst=2)
        start = now()
        order: list[tuple[float, str]] = []

        async def one(priority: RequestPriority) -> None:
            await budget.acquire(priority)
            order.append((round(now() - start, 6), priority.name))

        await asyncio.gather(*(one(POLL if i % 2 else PROGRESS) for i in range(8)))
        return order

    assert [
        (0.0, "PROGRESS"),
        (0.0, "POLL"),
        (0.1, "PROGRESS"),
        (0.2, "PROGRESS"),
        (0.3, "PROGRESS"),
        (0.4, "POLL"),
        (0.5, "POLL"),
        (0.6, "POLL"),
    ] == virtual(main())


def test_retry_after_is_shared_by_every_waiting_caller() -> None:
    """One 429 with Retry-After 2 s: no waiting caller (and no newcomer) goes before it."""

    async def main() -> list[float]:
        budget = fixed(100.0)
        await budget.acquire()
        start = now()
        released: list[float] = []

        async def one() -> None:
            await budget.acquire()
            released.append(now() - start)

        async def throttle() -> None:
            await asyncio.sleep(0.001)
            await budget.on_response(429, 2.0)

        await asyncio.gather(*(one() for _ in range(4)), throttle())
        return released

    released = virtual(main())

    assert pytest.approx([2.001, 2.011, 2.021, 2.031]) == sorted(released)


def test_cancelled_dispatcher_hands_over() -> None:
    """The caller sleeping for the next token is cancelled: the others are still served."""

    async def main() -> tuple[list[int], int]:
        budget = fixed(1.0)
        await budget.acquire()
        served: list[int] = []

        async def one(i: int) -> None:
            await budget.acquire()
            served.append(i)

        first = asyncio.ensure_future(one(0))
        await asyncio.sleep(0)
        rest = [asyncio.ensure_future(one(i)) for i in (1, 2)]
        await asyncio.sleep(0.5)
        first.cancel()
        await asyncio.gather(*rest)
        return served, budget._waiting

    assert ([1, 2], 0) == virtual(main())


def test_cancelled_waiter_leaves_the_queue() -> None:
    """A queued caller cancelled under anyio's timeout leaves the queue; order is kept."""

    async def main() -> tuple[list[int], int]:
        budget = fixed(1.0)
        await budget.acquire()
        served: list[int] = []

        async def one(i: int, timeout: float) -> None:
            with anyio.move_on_after(timeout):
                await budget.acquire()
                served.append(i)

        await asyncio.gather(one(0, 10), one(1, 0.2), one(2, 10))
        return served, budget._waiting

    assert ([0, 2], 0) == virtual(main())


def test_granted_but_cancelled_gives_the_token_back() -> None:
    """A caller cancelled after being granted its token, before it resumed, returns it."""

    async def main() -> tuple[int, int, bool]:
        budget = fixed(1.0)
        await budget.acquire()
        waiter = _Waiter()
        waiter.granted = True  # released by the dispatcher, then cancelled
        budget._abandon(waiter)
        state = budget.state
        assert state is not None
        return state.sent, budget._waiting, state.take(now())

    assert (0, 0, True) == virtual(main())


def test_suggested_poll_delay_stretches_by_the_backlog() -> None:
    """0 when nothing waits; else the time to serve the queue, times a draw in [0.5, 1.5)."""

    async def main() -> tuple[float, float, float]:
        budget = fixed(10.0, draw=0.0)
        idle = budget.suggested_poll_delay()
        await budget.acquire()
        waiting = [asyncio.ensure_future(budget.acquire(POLL)) for _ in range(4)]
        await asyncio.sleep(0)
        tight = budget.suggested_poll_delay()
        await budget.on_response(429, 3.0)
        paused = budget.suggested_poll_delay()
        await asyncio.gather(*waiting)
        return idle, tight, paused

    idle, tight, paused = virtual(main())

    assert 0.0 == idle
    assert pytest.approx(0.5 * 5 * 0.1) == tight  # 4 queued + this one, at 10 rps
    assert pytest.approx(0.5 * (3.0 + 0.5)) == paused


def test_default_seams() -> None:
    """Without injected seams the budget reads time.monotonic and sleeps with anyio."""
    budget = AdaptiveBudget()

    assert (time.monotonic, anyio.sleep) == (budget._monotonic, budget._sleep)
    assert budget.state is None


def test_transitional_sync_calls() -> None:
    """reserve()/acquire_after()/record(): the runtime's older calls still work."""

    async def main() -> tuple[float, float, float, int]:
        budget = fixed(2.0)
        first = budget.reserve()
        second = budget.reserve()
        start = now()
        await budget.acquire_after(second)
        budget.record(throttled=True)
        budget.record(throttled=False)
        state = budget.state
        assert state is not None
        return first, second, now() - start, state.answered

    assert (0.0, 1.0, 0.5, 2) == virtual(main())


# --------------------------------------------------------------------------------------
# Behaviour: a rate-limited batch and a noisy server, end to end on virtual time
# --------------------------------------------------------------------------------------


class KeyLimitedServer:
    """A per-key token bucket (rate, burst) answering 429 with Retry-After, on the loop's clock."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), now()
        self.answers: list[int] = []

    def admit(self) -> tuple[int, float | None]:
        t = now()
        self.tokens = min(self.burst, self.tokens + (t - self.stamp) * self.rate)
        self.stamp = t
        if self.tokens >= 1:
            self.tokens -= 1
            self.answers.append(200)
            return 200, None
        self.answers.append(429)
        return 429, math.ceil((1 - self.tokens) / self.rate * 1000) / 1000


async def batch(
    budget: RequestBudget, admit: Callable[[], tuple[int, float | None]], jobs: int
) -> float:
    """``jobs`` tasks each send 1 start and 3 polls through the budget; return the wall."""

    async def request(priority: RequestPriority) -> None:
        while True:
            await budget.acquire(priority)
            await asyncio.sleep(0.004)
            status, retry_after = admit()
            await budget.on_response(status, retry_after)
            if status == 200:
                return
            await asyncio.sleep(retry_after or 0.5)

    async def job() -> None:
        await request(PROGRESS)
        for _ in range(3):
            await asyncio.sleep(1.0 + budget.suggested_poll_delay())
            await request(POLL)

    start = now()
    await asyncio.gather(*(job() for _ in range(jobs)))
    return now() - start


def test_batch_against_a_key_limit_matches_the_exact_configuration() -> None:
    """120 jobs at once against 10 rps: the default is as fast as RateLimit(10/s), few 429s."""

    async def run(config: RateLimit) -> tuple[float, float]:
        server = KeyLimitedServer(10.0, 5)
        wall = await batch(adaptive(config), server.admit, 120)
        return wall, server.answers.count(429) / len(server.answers)

    default_wall, default_share = virtual(run(RateLimit()))
    exact_wall, _ = virtual(run(RateLimit(requests_per_second=10.0, burst=5)))

    assert default_wall <= 1.1 * exact_wall
    assert default_share <= 0.03


def test_batch_under_random_429s_keeps_its_pace() -> None:
    """10% random 429s and no limit: the batch takes about as long as without them."""

    async def run(share: float) -> float:
        draws = random.Random(3)

        def admit() -> tuple[int, float | None]:
            return (429, 0.25) if draws.random() < share else (200, None)

        return await batch(adaptive(), admit, 120)

    assert virtual(run(0.1)) <= 1.2 * virtual(run(0.0))
