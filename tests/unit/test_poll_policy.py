"""
Tests of the poll policy: :func:`next_poll_delay`'s phases, its bounds, the presets.

Pure arithmetic, no event loop. The figures of issue 9 are checked by replaying 10,000
export durations through the policy on a virtual clock (deterministic: seeded draws), the
same simulation as ``python -m benchmarks --only polling``.
"""

from __future__ import annotations

import math
import random
from typing import Any

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from babou_async import PollPolicy
from babou_async import _protocol as proto

TWO_TO_FIVE_MINUTES = (120.0, 300.0)

policies = st.builds(
    PollPolicy,
    initial_delay=st.floats(min_value=1e-3, max_value=1e3),
    multiplier=st.floats(min_value=1.0, max_value=1e6),
    max_delay=st.floats(min_value=1e-3, max_value=1e4),
    jitter=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    use_estimate=st.booleans(),
    window_fraction=st.floats(min_value=1e-4, max_value=1.0),
    overdue_multiplier=st.floats(min_value=1.0, max_value=1e3),
)
estimates = st.none() | st.tuples(
    st.floats(min_value=0.0, max_value=1e5), st.floats(min_value=0.0, max_value=1e5)
).map(lambda pair: (min(pair), max(pair)))
elapsed_times = st.floats(min_value=0.0, max_value=2e5)
poll_counts = st.integers(min_value=0, max_value=10**9)
draws = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


def delay(
    policy: PollPolicy,
    elapsed: float,
    estimate: tuple[float, float] | None = TWO_TO_FIVE_MINUTES,
    *,
    polls: int = 0,
    rand: float = 0.0,
) -> float:
    """next_poll_delay with keywords spelled out once."""
    return proto.next_poll_delay(
        policy, polls_since_due=polls, elapsed=elapsed, estimate=estimate, rand=rand
    )


# --------------------------------------------------------------------------------------
# The three phases
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "rand", "expected"),
    [
        (0.0, 0.0, 60.0),  # before: long steps of half the window's start...
        (0.0, 0.5, 57.0),  # ...that jitter only shortens
        (60.0, 0.0, 60.0),
        (100.0, 0.0, 20.0),  # never past the window's start
        (119.5, 0.0, 0.5),
        (120.0, 0.0, 9.9),  # inside: 5.5% of the 180 s window
        (200.0, 0.999, 9.9 * (1 - 0.0999)),  # jittered downwards only
        (299.9, 0.0, 9.9),
    ],
)
def test_two_to_five_minutes(elapsed: float, rand: float, expected: float) -> None:
    """A "2-5 minutes" export: looked at after 0, 60 and 120 s, then every 9.9 s."""
    assert pytest.approx(expected) == delay(PollPolicy(), elapsed, rand=rand)


@pytest.mark.parametrize(
    ("polls", "expected"), [(0, 9.9), (1, 9.9 * 1.02), (10, 9.9 * 1.02**10), (100, 30.0)]
)
def test_overdue_backs_off_from_the_window_step(polls: int, expected: float) -> None:
    """Past the window the step grows by 2% per poll, up to max_delay (jitter 0 here)."""
    policy = PollPolicy(jitter=0.0)

    assert pytest.approx(expected) == delay(policy, 300.0, polls=polls)


@pytest.mark.parametrize(
    ("polls", "expected"), [(0, 2.0), (1, 3.0), (2, 4.5), (3, 6.75), (10, 30.0), (10**9, 30.0)]
)
def test_without_estimate_the_docs_backoff_loop(polls: int, expected: float) -> None:
    """Without an estimate: 2 s, x1.5, capped at 30 s, as Babou's export docs advise."""
    assert expected == delay(PollPolicy(jitter=0.0), 0.0, None, polls=polls)


@pytest.mark.parametrize(("elapsed", "expected"), [(0.0, 1.0), (1.0, 0.5), (1.6, 0.5), (2.0, 0.5)])
def test_one_to_two_seconds(elapsed: float, expected: float) -> None:
    """A "1-2 seconds" job: one step to 1 s, then every 0.5 s (a quarter of its end)."""
    assert pytest.approx(expected) == delay(PollPolicy(jitter=0.0), elapsed, (1.0, 2.0))


@pytest.mark.parametrize(
    ("policy", "estimate", "expected"),
    [
        (PollPolicy.fast(), (60.0, 150.0), 1.0),  # twice max_delay, not 30 s
        (PollPolicy.fast(), (1.0, 2.0), 0.5),
        (PollPolicy(max_delay=1.0), TWO_TO_FIVE_MINUTES, 2.0),
    ],
)
def test_steps_towards_the_window_are_at_most_twice_max_delay(
    policy: PollPolicy, estimate: tuple[float, float], expected: float
) -> None:
    """Before the window, a step is at most twice max_delay: a small max_delay still binds."""
    assert expected == delay(policy, 0.0, estimate)


def test_estimate_ignored_when_told() -> None:
    """use_estimate=False: the estimate changes nothing."""
    policy = PollPolicy(use_estimate=False, jitter=0.0)

    assert [2.0, 3.0] == [delay(policy, 130.0, polls=0), delay(policy, 0.0, polls=1)]


@pytest.mark.parametrize(
    ("estimate", "step"),
    [
        ((120.0, 300.0), 9.9),  # 5.5% of the width
        ((30.0, 90.0), 3.3),
        ((5.0, 13.0), 2.0),  # not under initial_delay...
        ((1.0, 2.0), 0.5),  # ...unless a quarter of the end is shorter
        ((0.0, 0.0), 0.2),  # never zero: a tenth of initial_delay at least
        ((180.0, 180.0), 2.0),  # no width
        ((60.0, 3600.0), 30.0),  # at most max_delay
    ],
)
def test_window_step(estimate: tuple[float, float], step: float) -> None:
    """The in-window step: a share of the width, bounded below and above."""
    assert pytest.approx(step) == proto.poll_window_step(PollPolicy(), estimate)


def test_huge_multiplier_does_not_overflow() -> None:
    """A large multiplier saturates at max_delay instead of raising OverflowError."""
    policy = PollPolicy(multiplier=1e300, overdue_multiplier=1e300, jitter=0.0)

    assert [30.0, 30.0] == [
        delay(policy, 0.0, None, polls=10**6),
        delay(policy, 400.0, polls=10**6),
    ]


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------


@given(policy=policies, polls=poll_counts, elapsed=elapsed_times, estimate=estimates, rand=draws)
def test_delay_is_positive_and_bounded(
    policy: PollPolicy,
    polls: int,
    elapsed: float,
    estimate: tuple[float, float] | None,
    rand: float,
) -> None:
    """A delay is > 0 and at most max_delay x (1 + jitter), twice that towards the window."""
    got = delay(policy, elapsed, estimate, polls=polls, rand=rand)
    early = estimate is not None and policy.use_estimate and elapsed < estimate[0]

    assert 0.0 < got <= (2.0 if early else 1.0 + policy.jitter) * policy.max_delay


@given(policy=policies, elapsed=elapsed_times, low=st.floats(1e-3, 1e5), rand=draws)
def test_never_sleeps_past_the_window_start(
    policy: PollPolicy, elapsed: float, low: float, rand: float
) -> None:
    """Before the window, a delay lands on its start or earlier."""
    assume(elapsed < low)
    policy = attrs.evolve(policy, use_estimate=True)

    assert delay(policy, elapsed, (low, low * 2), rand=rand) <= low - elapsed


@given(policy=policies, estimate=estimates, rand=draws, data=st.data())
def test_inside_the_window_a_finished_job_is_seen_within_one_step(
    policy: PollPolicy, estimate: tuple[float, float] | None, rand: float, data: st.DataObject
) -> None:
    """Inside the window no delay exceeds the window step."""
    assume(estimate is not None and estimate[0] < estimate[1])
    assert estimate is not None
    policy = attrs.evolve(policy, use_estimate=True)
    elapsed = data.draw(st.floats(estimate[0], estimate[1], exclude_max=True))

    got = delay(policy, elapsed, estimate, rand=rand)

    assert got <= proto.poll_window_step(policy, estimate)


@given(policy=policies, rand=draws, polls=st.integers(min_value=0, max_value=10**6))
def test_backoff_never_shrinks(policy: PollPolicy, rand: float, polls: int) -> None:
    """Overdue (or without estimate), each further poll waits at least as long."""
    for estimate, elapsed in ((None, 0.0), (TWO_TO_FIVE_MINUTES, 400.0)):
        first = delay(policy, elapsed, estimate, polls=polls, rand=rand)
        second = delay(policy, elapsed, estimate, polls=polls + 1, rand=rand)
        assert first <= second


# --------------------------------------------------------------------------------------
# Presets and options
# --------------------------------------------------------------------------------------


def test_presets() -> None:
    """fast() is unchanged; responsive() and frugal() move the in-window step."""
    assert (
        PollPolicy(initial_delay=0.05, multiplier=1.5, max_delay=0.5),
        PollPolicy(initial_delay=1.0, window_fraction=0.02, overdue_multiplier=1.0),
        PollPolicy(max_delay=60.0, window_fraction=0.12, overdue_multiplier=1.1),
    ) == (PollPolicy.fast(), PollPolicy.responsive(), PollPolicy.frugal())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window_fraction": 0.0}, "'window_fraction' must be > 0.0"),
        ({"window_fraction": 1.5}, "'window_fraction' must be <= 1.0"),
        ({"overdue_multiplier": 0.5}, "'overdue_multiplier' must be >= 1.0"),
    ],
)
def test_new_options_are_validated(kwargs: dict[str, Any], message: str) -> None:
    """Out-of-range window_fraction and overdue_multiplier are refused."""
    with pytest.raises(ValueError, match=message):
        PollPolicy(**kwargs)


# --------------------------------------------------------------------------------------
# The figures: 10,000 exports announced "2-5 minutes", on a virtual clock
# --------------------------------------------------------------------------------------


def durations(count: int = 10_000, seed: int = 2024) -> list[float]:
    """Mostly uniform 120-300 s, with 5% early (30-120 s) and 5% late (300-600 s) outliers."""
    draw = random.Random(seed)
    out = []
    for _ in range(count):
        kind = draw.random()
        low, high = (30, 120) if kind < 0.05 else (300, 600) if kind < 0.1 else (120, 300)
        out.append(draw.uniform(low, high))
    return out


def replay(policy: PollPolicy, finish: list[float]) -> tuple[float, float]:
    """Poll each job from t=0 until it is done; return (polls per job, p95 detection delay)."""
    draw = random.Random(7)
    polls: list[int] = []
    late: list[float] = []
    for done_at in finish:
        t, count, overdue = 0.0, 0, 0
        while True:
            count += 1
            if t >= done_at:
                break
            due = not policy.use_estimate or t >= TWO_TO_FIVE_MINUTES[1]
            t += delay(policy, t, polls=overdue if due else 0, rand=draw.random())
            overdue += due
        polls.append(count)
        late.append(t - done_at)
    late.sort()
    return sum(polls) / len(polls), late[math.ceil(0.95 * len(late)) - 1]


def test_the_figures_of_issue_9() -> None:
    """Default: <= 0.35x the fixed 5 s loop's polls, p95 <= 10 s, <= 1.1x the backoff loop's."""
    finish = durations()
    fixed = replay(PollPolicy(initial_delay=5, multiplier=1, jitter=0, use_estimate=False), finish)
    backoff = replay(PollPolicy(jitter=0, use_estimate=False), finish)
    ours = replay(PollPolicy(), finish)

    assert ours[0] <= 0.35 * fixed[0]
    assert ours[1] <= 10.0
    assert ours[0] <= 1.1 * backoff[0]
    assert ours[1] <= 0.4 * backoff[1]


def test_presets_trade_requests_for_delay() -> None:
    """responsive() polls more for a shorter delay, frugal() less for a longer one."""
    finish = durations(2_000)
    default, responsive, frugal = (
        replay(policy, finish)
        for policy in (PollPolicy(), PollPolicy.responsive(), PollPolicy.frugal())
    )

    assert responsive[0] > default[0] > frugal[0]
    assert responsive[1] < default[1] < frugal[1]
