"""
Option bundles: frozen, keyword-only value objects.

Derive variants with :func:`attrs.evolve`, never by mutation::

    patient = attrs.evolve(RetryPolicy(), attempts=10)

Durations accept a number of seconds or a :class:`datetime.timedelta`.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import attrs

__all__ = ["PollPolicy", "RateLimit", "RetryPolicy", "Timeouts"]


def to_seconds(value: float | dt.timedelta) -> float:
    """Convert a duration given as seconds or a timedelta to float seconds."""
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"expected seconds (a number) or a timedelta, got {value!r}"
        raise TypeError(msg)
    return float(value)


def _non_negative(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value) or value < 0:
        msg = f"{attr.name} must be a finite number >= 0, got {value!r}"
        raise ValueError(msg)


def _positive(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        msg = f"{attr.name} must be a finite number > 0, got {value!r}"
        raise ValueError(msg)


def _strict_int(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{attr.name} must be an int, got {value!r}"
        raise TypeError(msg)


def _optional_positive(_inst: object, attr: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and (not math.isfinite(value) or value <= 0):
        msg = f"{attr.name} must be a finite number > 0 or None, got {value!r}"
        raise ValueError(msg)


def _optional_seconds(value: float | dt.timedelta | None) -> float | None:
    return None if value is None else to_seconds(value)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """
    How failed requests are retried.

    Backoff is exponential with *full jitter* (a uniform draw between 0 and the exponential
    bound, as in AWS's "Exponential Backoff And Jitter"), unless the server sent
    ``Retry-After``, which is honoured as long as it is not longer than
    :attr:`max_retry_after`.

    Which failures are retried depends on the request, not on this policy: reads
    (GET) retry 429, 5xx, connection errors and timeouts; creates (POST) retry 429 and
    failures that provably happened before the request left; ``start_export`` also retries
    ambiguous failures because a duplicate start is detectable (409).

    Attributes:
        attempts: Total tries, the first included. ``1`` disables retries.
        base_delay: Bound of the first backoff, in seconds.
        max_delay: Cap of any single backoff, in seconds.
        max_retry_after: The longest ``Retry-After`` we are willing to sleep; a longer one
            raises :class:`~babou_async.RateLimitError` at once instead of sleeping for hours.
        jitter: Draw each delay uniformly from ``[0, bound]`` (``True``) or use the bound.
    """

    attempts: int = attrs.field(default=5, validator=[_strict_int, attrs.validators.ge(1)])
    base_delay: float = attrs.field(default=0.5, converter=to_seconds, validator=_non_negative)
    max_delay: float = attrs.field(default=30.0, converter=to_seconds, validator=_non_negative)
    max_retry_after: float = attrs.field(
        default=120.0, converter=to_seconds, validator=_non_negative
    )
    jitter: bool = True

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """Return a policy that never retries."""
        return cls(attempts=1)


@attrs.frozen(kw_only=True)
class PollPolicy:
    """
    How often long-running jobs (exports, prompts, uploads) are polled.

    Every status poll is spent from the same per-key budget as the requests that make
    progress, so the policy trades requests against *detection delay* (how long after a job
    finished we notice). With the server's ``estimated_time`` (``"2-5 minutes"``) and
    :attr:`use_estimate`, it follows the job in three phases:

    * before the window opens, a few long steps aimed at its start (0, 60 and 120 s for
      "2-5 minutes"): the job cannot be done yet;
    * inside the window, a steady step of :attr:`window_fraction` of its width (9.9 s for
      "2-5 minutes", 0.5 s for "1-2 seconds"), so a finished job is noticed within one step;
    * past the window, the step grows by :attr:`overdue_multiplier` per poll, up to
      :attr:`max_delay`.

    Without an estimate, the delay starts at :attr:`initial_delay` and grows by
    :attr:`multiplier` up to :attr:`max_delay`, as the Babou export docs recommend (2 s,
    x1.5, capped at 30 s).

    On exports announced "2-5 minutes" (lasting 120-300 s, plus outliers) the default
    spends about 0.33x the requests of the docs' fixed 5-second loop and 1.1x those of their
    backoff loop, with a 95th-percentile detection delay under 10 s (against 28 s for the
    backoff loop; ``python -m benchmarks --only polling``). :meth:`responsive` and
    :meth:`frugal` move along that trade-off; any field can be set by hand.

    Attributes:
        initial_delay: First delay without an estimate, in seconds; also the shortest step
            inside a window (unless a quarter of the window's end is shorter).
        multiplier: Growth factor between polls without an estimate (>= 1).
        max_delay: Cap of every delay, in seconds, except the steps towards the window's
            start, which may be up to twice as long.
        jitter: Relative jitter: each delay is multiplied by a uniform draw in
            ``[1 - jitter, 1 + jitter]`` (only ``[1 - jitter, 1]`` before and inside the
            window, which must not be overshot) so that thousands of watchers spread out.
        use_estimate: Use the server's ``estimated_time`` as described above.
        window_fraction: The step inside the estimated window, as a fraction of its width.
        overdue_multiplier: Growth factor between polls once a job outlives its estimate
            (>= 1).
    """

    initial_delay: float = attrs.field(default=2.0, converter=to_seconds, validator=_positive)
    multiplier: float = attrs.field(default=1.5, validator=attrs.validators.ge(1.0))
    max_delay: float = attrs.field(default=30.0, converter=to_seconds, validator=_positive)
    jitter: float = attrs.field(
        # Below 1, so that a jittered delay is never zero.
        default=0.1,
        validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)],
    )
    use_estimate: bool = True
    window_fraction: float = attrs.field(
        default=0.055, validator=[attrs.validators.gt(0.0), attrs.validators.le(1.0)]
    )
    overdue_multiplier: float = attrs.field(default=1.02, validator=attrs.validators.ge(1.0))

    @classmethod
    def fast(cls) -> PollPolicy:
        """Return a policy for simulators and tests: polls every 50 ms up to 0.5 s."""
        return cls(initial_delay=0.05, multiplier=1.5, max_delay=0.5)

    @classmethod
    def responsive(cls) -> PollPolicy:
        """
        Return a policy that notices a finished job sooner, for more requests.

        Inside the window it steps 2% of the width (3.6 s for "2-5 minutes") and does
        not slow down once the job is late; without an estimate it starts at 1 s. About
        2.3x the requests of the default for a third of its detection delay (95th
        percentile 3.5 s instead of 9.6 s on "2-5 minutes" exports): for interactive use
        with few jobs per key.
        """
        return cls(initial_delay=1.0, window_fraction=0.02, overdue_multiplier=1.0)

    @classmethod
    def frugal(cls) -> PollPolicy:
        """
        Return a policy that spends fewer requests, for a longer detection delay.

        Inside the window it steps 12% of the width (21.6 s for "2-5 minutes"), slows down
        by 10% per poll once the job is late, and backs off up to 60 s without an
        estimate. About 0.6x the requests of the default for twice its detection delay
        (95th percentile 21 s instead of 9.6 s on "2-5 minutes" exports): for large
        batches that share one key, where every poll is taken from the budget of the
        requests that start and fetch work.
        """
        return cls(max_delay=60.0, window_fraction=0.12, overdue_multiplier=1.1)


@attrs.frozen(kw_only=True)
class RateLimit:
    """
    The session-wide request budget, shared by every call of one :class:`BabouSession`.

    Babou rate-limits per API key but documents no numbers and no headers
    (``../shared/babou-api.md`` section 3), so the default budget is *adaptive*: it finds
    the key's limit from the server's 429s and settles just below it. A fresh session
    starts with a short *slow start* (a few requests at once, then a rate that doubles
    every half-dozen answers) so that a batch starting hundreds of jobs at once does not
    meet a wall of 429s; the rate stops being paced at all once it is well past anything a
    key is likely to allow. On a 429 the budget cuts its rate once per burst (by
    :attr:`backoff_factor`), makes every waiting caller honour ``Retry-After``, and checks
    that the cut worked: if 429s persist it paces just below what the server accepted; if
    they persist even then they are random (an overloaded server), the cut is undone and
    such 429s are treated as noise. The rate then grows back along a cubic curve.

    With a :attr:`requests_per_second` ceiling the budget never exceeds it, starts at it,
    and (if :attr:`adaptive`) still backs off below it on 429s.

    Attributes:
        requests_per_second: A fixed ceiling, always enforced (token bucket). ``None``
            (the default) means no ceiling: the limit is found from 429s.
        burst: Bucket capacity: how many requests may go out at once after a quiet spell
            (at most a second of the ceiling, or a quarter second of the adaptive rate).
        adaptive: React to 429s by lowering the rate (and recover afterwards).
        min_rate: Floor of the adaptive rate, in requests per second.
        backoff_factor: Multiplier applied to the rate we were sending at, on the first 429
            of a burst (0 < x < 1).
        slow_start: Without a ceiling, start paced and grow (``True``) rather than send
            everything at once until the first 429 (``False``).
    """

    requests_per_second: float | None = attrs.field(default=None, validator=_optional_positive)
    burst: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    adaptive: bool = True
    min_rate: float = attrs.field(default=0.5, validator=_positive)
    backoff_factor: float = attrs.field(
        default=0.7, validator=[attrs.validators.gt(0.0), attrs.validators.lt(1.0)]
    )
    slow_start: bool = True

    @classmethod
    def unlimited(cls) -> RateLimit:
        """Return a budget that never delays a request (no ceiling, not adaptive)."""
        return cls(adaptive=False)


@attrs.frozen(kw_only=True)
class Timeouts:
    """
    Network timeouts, in seconds (``None`` disables one).

    Attributes:
        connect: Establishing a connection (including waiting for a pool slot).
        read: Downloads: the longest silence while reading the body (a stalled download
            fails, and is resumed, after this long).
        total: The whole of one API request. Downloads have no total limit: a large
            video may rightly take long, and :attr:`read` catches a stalled one.
    """

    connect: float | None = attrs.field(
        default=10.0, converter=_optional_seconds, validator=_optional_positive
    )
    read: float | None = attrs.field(
        default=30.0, converter=_optional_seconds, validator=_optional_positive
    )
    total: float | None = attrs.field(
        default=60.0, converter=_optional_seconds, validator=_optional_positive
    )
