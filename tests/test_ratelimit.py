"""
Tests of the request budget.

:class:`AdaptiveRate` is plain arithmetic on an explicit clock; :class:`RequestBudget` is
driven by a fake clock and a fake sleep that records the delays it is asked for.
"""

from __future__ import annotations

import bisect

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from babou_async import RateLimit
from babou_async._ratelimit import AdaptiveRate, RequestBudget


def send(rate: AdaptiveRate, per_second: int, start: float, end: float) -> float:
    """Reserve at a steady ``per_second`` from ``start`` to ``end`` (exclusive); return end."""
    count = round((end - start) * per_second)
    for i in range(count):
        rate.reserve(start + i / per_second)
    return end


# --------------------------------------------------------------------------------------
# AdaptiveRate: the bucket
# --------------------------------------------------------------------------------------


def test_no_ceiling_is_off_until_throttled() -> None:
    """Without a ceiling nothing waits, however fast we send, until the first 429."""
    rate = AdaptiveRate(RateLimit(), now=0.0)

    delays = {rate.reserve(0.0) for _ in range(10_000)}
    for _ in range(100):
        rate.on_response(0.0, throttled=False)

    assert ({0.0}, False, float("inf")) == (delays, rate.enabled, rate.rate)


@pytest.mark.parametrize(
    ("rps", "burst", "delays"),
    [
        (2.0, 5, [0.0, 0.0, 0.5, 1.0, 1.5]),  # capacity is one second of rate: 2
        (10.0, 3, [0.0, 0.0, 0.0, 0.1, 0.2, 0.3]),
        (0.5, 20, [0.0, 2.0, 4.0]),  # never less than one token
        (100.0, 1, [0.0, 0.01, 0.02]),
    ],
)
def test_ceiling_token_bucket(rps: float, burst: int, delays: list[float]) -> None:
    """With a ceiling, a burst goes out at once and the rest is spaced at the rate."""
    rate = AdaptiveRate(RateLimit(requests_per_second=rps, burst=burst), now=0.0)

    assert delays == pytest.approx([rate.reserve(0.0) for _ in delays])


@pytest.mark.parametrize(
    ("rps", "burst", "capacity"),
    [(2.0, 5, 2.0), (100.0, 20, 20.0), (0.25, 20, 1.0), (None, 7, 7.0)],
)
def test_capacity(rps: float | None, burst: int, capacity: float) -> None:
    """Capacity is the burst, at most one second of rate, at least one request."""
    assert capacity == AdaptiveRate(RateLimit(requests_per_second=rps, burst=burst), 0.0).capacity


def test_tokens_refill_over_time() -> None:
    """Tokens come back at the rate, up to the capacity, and a deficit is paid first."""
    rate = AdaptiveRate(RateLimit(requests_per_second=2.0, burst=1), now=0.0)

    assert [0.0, 0.5, 0.0, 0.5, 0.0, 0.0, 0.5] == pytest.approx(
        [
            rate.reserve(0.0),
            rate.reserve(0.0),  # deficit of one token
            rate.reserve(1.0),  # two tokens refilled: one pays the deficit
            rate.reserve(1.0),
            rate.reserve(100.0),  # a long pause refills only up to capacity...
            rate.reserve(101.0),
            rate.reserve(101.0),  # ...so the second request of a second waits
        ]
    )


def test_clock_going_backwards_mints_no_tokens() -> None:
    """A reservation stamped earlier than the last refill adds nothing to the bucket."""
    rate = AdaptiveRate(RateLimit(requests_per_second=1.0, burst=1), now=10.0)
    rate.reserve(10.0)

    assert 1.0 == pytest.approx(rate.reserve(5.0))


# --------------------------------------------------------------------------------------
# AdaptiveRate: reacting to 429
# --------------------------------------------------------------------------------------


def test_first_429_sets_rate_to_backoff_times_measured() -> None:
    """The first 429 turns the bucket on at backoff_factor times the measured send rate."""
    rate = AdaptiveRate(RateLimit(), now=0.0)
    now = send(rate, 10, 0.0, 5.0)

    rate.on_response(now, throttled=True)

    assert (True, 0.0) == (rate.enabled, rate.tokens)
    assert pytest.approx(7.0) == rate.rate
    assert pytest.approx([1 / 7, 2 / 7]) == [rate.reserve(now), rate.reserve(now)]


def test_429_respects_configured_factor() -> None:
    """backoff_factor is applied to the measured rate."""
    rate = AdaptiveRate(RateLimit(backoff_factor=0.5, min_rate=1.0), now=0.0)
    now = send(rate, 20, 0.0, 3.0)

    rate.on_response(now, throttled=True)

    assert pytest.approx(10.0) == rate.rate


@pytest.mark.parametrize(("min_rate", "expected"), [(0.5, 0.5), (3.0, 3.0)])
def test_429_rate_floor_is_min_rate(min_rate: float, expected: float) -> None:
    """However slowly we were sending, the rate never drops below min_rate."""
    rate = AdaptiveRate(RateLimit(min_rate=min_rate), now=0.0)
    rate.reserve(0.0)

    rate.on_response(10.0, throttled=True)
    rate.on_response(10.0, throttled=True)

    assert expected == rate.rate


def test_429_with_a_ceiling_cuts_from_the_measured_rate() -> None:
    """With a ceiling far above our sending rate, a 429 cuts from what we really send."""
    rate = AdaptiveRate(RateLimit(requests_per_second=100.0), now=0.0)
    now = send(rate, 2, 0.0, 10.0)

    rate.on_response(now, throttled=True)

    assert pytest.approx(1.4) == rate.rate


def test_429_with_a_ceiling_below_the_demand_cuts_the_ceiling() -> None:
    """Asking faster than the ceiling: the cut applies to the ceiling, the real send rate."""
    rate = AdaptiveRate(RateLimit(requests_per_second=5.0, burst=5), now=0.0)
    now = send(rate, 50, 0.0, 2.0)

    rate.on_response(now, throttled=True)

    assert pytest.approx(3.5) == rate.rate


def test_not_adaptive_ignores_429() -> None:
    """adaptive=False keeps the ceiling whatever the server answers."""
    rate = AdaptiveRate(RateLimit(requests_per_second=5.0, adaptive=False), now=0.0)
    send(rate, 5, 0.0, 2.0)

    rate.on_response(2.0, throttled=True)
    rate.on_response(3.0, throttled=False)

    assert (5.0, None) == (rate.rate, rate.throttled_at)


def test_not_adaptive_without_ceiling_stays_off() -> None:
    """adaptive=False and no ceiling: a 429 does not turn the bucket on."""
    rate = AdaptiveRate(RateLimit.unlimited(), now=0.0)
    rate.reserve(0.0)

    rate.on_response(1.0, throttled=True)

    assert (False, 0.0) == (rate.enabled, rate.reserve(1.0))


def test_successes_before_any_429_change_nothing() -> None:
    """Recovery only starts after a 429: the ceiling stays as configured."""
    rate = AdaptiveRate(RateLimit(requests_per_second=5.0), now=0.0)

    for second in range(10):
        rate.on_response(float(second), throttled=False)

    assert (5.0, None) == (rate.rate, rate.throttled_at)


def test_cubic_recovery_curve() -> None:
    """After a 429 the rate follows 0.4 (t - k)^3 + W, with W the rate before the cut."""
    rate = AdaptiveRate(RateLimit(), now=0.0)
    send(rate, 10, 0.0, 5.0)
    rate.on_response(5.0, throttled=True)
    k = (10.0 * 0.3 / 0.4) ** (1 / 3)

    observed = []
    times = (0.0, 0.5, 1.0, k, 3.0, 10.0)
    for t in times:
        rate.on_response(5.0 + t, throttled=False)
        observed.append(rate.rate)

    # The curve, capped at twice the measured sending rate (10 rps here), as in AWS's mode.
    assert pytest.approx([min(0.4 * (t - k) ** 3 + 10.0, 20.0) for t in times]) == observed
    assert pytest.approx(7.0) == observed[0]
    assert pytest.approx(10.0) == observed[3]
    assert pytest.approx(20.0) == observed[5]


def test_recovery_never_exceeds_the_ceiling() -> None:
    """With a ceiling, recovery climbs back to it and stops there."""
    rate = AdaptiveRate(RateLimit(requests_per_second=8.0, burst=8), now=0.0)
    send(rate, 10, 0.0, 5.0)
    rate.on_response(5.0, throttled=True)

    rates = []
    for tenth in range(1, 600):
        rate.on_response(5.0 + tenth / 10, throttled=False)
        rates.append(rate.rate)

    assert rates[0] < 8.0
    assert (sorted(rates), 8.0, 8.0) == (rates, max(rates), rates[-1])


def test_recovery_keeps_tokens_within_capacity() -> None:
    """When the rate changes, the bucket never holds more than the new capacity."""
    rate = AdaptiveRate(RateLimit(burst=20), now=0.0)
    send(rate, 10, 0.0, 5.0)
    rate.on_response(5.0, throttled=True)

    rate.on_response(5.5, throttled=False)

    assert rate.tokens <= rate.capacity


def test_second_429_after_long_recovery_still_cuts() -> None:
    """After a long recovery the rate is capped near what we send; a new 429 still bites."""
    rate = AdaptiveRate(RateLimit(), now=0.0)
    now = send(rate, 10, 0.0, 5.0)
    rate.on_response(now, throttled=True)
    for i in range(600):  # one minute of successes at 10 requests per second
        t = now + i / 10
        rate.reserve(t)
        rate.on_response(t, throttled=False)
    inflated = rate.rate

    rate.on_response(now + 60.0, throttled=True)

    assert pytest.approx(20.0, rel=0.05) == inflated  # capped at twice the 10 rps sent
    assert pytest.approx(7.0) == rate.rate


@given(
    rps=st.floats(min_value=0.1, max_value=200.0),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=300),
    window=st.floats(min_value=0.0, max_value=30.0),
)
def test_ceiling_is_never_exceeded_in_any_window(
    rps: float, burst: int, gaps: list[float], window: float
) -> None:
    """Released requests in any window of T seconds number at most burst + rate * T (+1)."""
    rate = AdaptiveRate(RateLimit(requests_per_second=rps, burst=burst), now=0.0)
    now = 0.0
    releases = []
    for gap in gaps:
        now += gap
        delay = rate.reserve(now)
        assert delay >= 0.0
        releases.append(now + delay)
    releases.sort()

    busiest = max(
        bisect.bisect_right(releases, start + window) - i for i, start in enumerate(releases)
    )

    assert busiest <= burst + rps * window + 1


# --------------------------------------------------------------------------------------
# RequestBudget: the awaiting face
# --------------------------------------------------------------------------------------


class FakeTime:
    """A clock and a sleep: sleeping records the delay and, if ``advance``, moves time."""

    def __init__(self, *, advance: bool = True) -> None:
        self.now = 1000.0
        self.advance = advance
        self.sleeps: list[float] = []

    def clock(self) -> float:
        """Return the fake time."""
        return self.now

    async def sleep(self, delay: float) -> None:
        """Record the delay (and let it pass)."""
        self.sleeps.append(delay)
        if self.advance:
            self.now += delay


def budget(config: RateLimit, time: FakeTime) -> RequestBudget:
    """A budget on the fake clock."""
    return RequestBudget(config, clock=time.clock, sleep=time.sleep)


@pytest.mark.anyio
async def test_unlimited_never_sleeps() -> None:
    """RateLimit.unlimited() never delays, even after 429s, and keeps no state."""
    time = FakeTime()
    limiter = budget(RateLimit.unlimited(), time)

    for _ in range(1000):
        await limiter.acquire()
        limiter.record(throttled=True)

    assert ([], None) == (time.sleeps, limiter.state)


@pytest.mark.anyio
async def test_ceiling_spaces_sequential_requests() -> None:
    """One caller at a time: after the burst, each request waits 1/rate."""
    time = FakeTime()
    limiter = budget(RateLimit(requests_per_second=2.0, burst=1), time)

    for _ in range(4):
        await limiter.acquire()

    assert [0.5, 0.5, 0.5] == pytest.approx(time.sleeps)


@pytest.mark.anyio
async def test_ceiling_queues_concurrent_requests() -> None:
    """Callers arriving together are queued: each waits one more interval than the last."""
    time = FakeTime(advance=False)
    limiter = budget(RateLimit(requests_per_second=4.0, burst=2), time)

    for _ in range(5):
        await limiter.acquire()

    assert [0.25, 0.5, 0.75] == pytest.approx(time.sleeps)


@pytest.mark.anyio
async def test_adaptive_budget_sleeps_only_after_a_429() -> None:
    """The default budget lets everything through until a 429, then paces at 0.7 x rate."""
    time = FakeTime(advance=False)
    limiter = budget(RateLimit(), time)

    for _ in range(50):
        await limiter.acquire()
        limiter.record(throttled=False)
    before = list(time.sleeps)
    limiter.record(throttled=True)
    await limiter.acquire()

    assert [] == before
    assert pytest.approx([1 / 70]) == time.sleeps


@pytest.mark.anyio
async def test_record_alone_creates_the_state() -> None:
    """A response recorded before any acquire still feeds the arithmetic."""
    time = FakeTime()
    limiter = budget(RateLimit(), time)

    limiter.record(throttled=True)

    assert limiter.state is not None
    assert (True, 1000.0) == (limiter.state.enabled, limiter.state.throttled_at)


@pytest.mark.anyio
async def test_default_clock_and_sleep() -> None:
    """Without injected seams the budget runs on anyio's clock and sleeps with anyio."""
    limiter = RequestBudget(RateLimit(requests_per_second=1.0, burst=1))

    await limiter.acquire()

    assert limiter.state is not None
    assert pytest.approx(anyio.current_time(), abs=5.0) == limiter.state.last_refill
    assert anyio.sleep is limiter._sleep
