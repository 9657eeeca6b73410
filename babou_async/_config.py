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

    The delay starts at :attr:`initial_delay` and grows by :attr:`multiplier` up to
    :attr:`max_delay`, as the Babou export docs recommend (2 s, x1.5, capped at 30 s).

    When the server gives an ``estimated_time`` such as ``"2-5 minutes"`` and
    :attr:`use_estimate` is true, the poller does not hammer the API before the job could
    possibly be done: before the lower bound it sleeps in long steps (at most
    :attr:`max_delay`) aimed at the moment the job becomes due; inside the estimated window
    it polls every :attr:`initial_delay`, so a finished job is noticed within seconds; past
    the upper bound it backs off again.

    Attributes:
        initial_delay: First delay, in seconds.
        multiplier: Growth factor between polls (>= 1).
        max_delay: Cap of any delay, in seconds.
        jitter: Relative jitter: each delay is multiplied by a uniform draw in
            ``[1 - jitter, 1 + jitter]`` so that thousands of watchers spread out.
        use_estimate: Use the server's ``estimated_time`` as described above.
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

    @classmethod
    def fast(cls) -> PollPolicy:
        """Return a policy for simulators and tests: polls every 50 ms up to 0.5 s."""
        return cls(initial_delay=0.05, multiplier=1.5, max_delay=0.5)


@attrs.frozen(kw_only=True)
class RateLimit:
    """
    The session-wide request budget, shared by every call of one :class:`BabouSession`.

    Babou rate-limits per API key but documents no numbers and no headers
    (``../shared/babou-api.md`` section 3), so the default budget is *adaptive*, in the
    spirit of AWS's adaptive retry mode: it does not slow anything down until the server
    answers 429. Then it measures the rate we were sending at, cuts it (by
    :attr:`backoff_factor`) and lets it grow back gradually (cubic recovery) while no more
    429s arrive. Thousands of concurrent watchers therefore settle at what the key is
    allowed instead of multiplying the 429s.

    Attributes:
        requests_per_second: A fixed ceiling, always enforced (token bucket). ``None``
            (the default) means no ceiling until the server throttles us.
        burst: Bucket capacity: how many requests may go out at once after a quiet spell.
        adaptive: React to 429s by lowering the rate (and recover afterwards).
        min_rate: Floor of the adaptive rate, in requests per second.
        backoff_factor: Multiplier applied to the measured rate on a 429 (0 < x < 1).
    """

    requests_per_second: float | None = attrs.field(default=None, validator=_optional_positive)
    burst: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    adaptive: bool = True
    min_rate: float = attrs.field(default=0.5, validator=_positive)
    backoff_factor: float = attrs.field(
        default=0.7, validator=[attrs.validators.gt(0.0), attrs.validators.lt(1.0)]
    )

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
