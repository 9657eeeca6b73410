"""
The session-wide request budget: a token bucket whose rate adapts to 429s.

The arithmetic (:class:`AdaptiveRate`) is pure and takes the time as an argument; the
:class:`RequestBudget` around it awaits the delays it computes.

Modelled on AWS's adaptive retry mode (the SDKs' ``ClientRateLimiter``): the bucket is off
until the server throttles us, then the rate is cut to ``backoff_factor`` times the rate we
were measured sending at, and recovers along a cubic curve (as in TCP CUBIC) while no 429
arrives, so thousands of watchers sharing one key converge on what the key is allowed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

import anyio

from ._config import RateLimit

__all__ = ["AdaptiveRate", "RequestBudget"]

_CUBIC_SCALE = 0.4
_MEASURE_BUCKET = 0.5  # seconds per bucket of the send-rate measurement
_SMOOTHING = 0.8


class AdaptiveRate:
    """
    Token-bucket state and the adaptive rate, as plain arithmetic on a given clock.

    Tokens may go negative: each caller reserves its token at once and waits for the
    deficit to refill, which queues concurrent callers fairly without a lock.
    """

    def __init__(self, config: RateLimit, now: float) -> None:
        self.config = config
        self.ceiling = config.requests_per_second
        self.enabled = self.ceiling is not None
        self.rate = self.ceiling if self.ceiling is not None else math.inf
        self.tokens = float(config.burst)
        self.last_refill = now
        # Adaptive state.
        self.throttled_at: float | None = None
        self.last_max_rate = 0.0
        # Send-rate measurement.
        self.measured_rate = 0.0
        self._bucket_start = math.floor(now / _MEASURE_BUCKET) * _MEASURE_BUCKET
        self._bucket_end = self._bucket_start + _MEASURE_BUCKET
        self._bucket_count = 0

    @property
    def capacity(self) -> float:
        """Bucket size: the configured burst, but never more than one second of rate."""
        return max(1.0, min(float(self.config.burst), self.rate))

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.last_refill)
        self.last_refill = now
        if elapsed > 0.0:  # not 0 * inf: the rate is infinite until the first 429
            self.tokens += elapsed * self.rate
        self.tokens = min(self.capacity, self.tokens)

    def reserve(self, now: float) -> float:
        """Take one token; return the seconds the caller must wait before sending."""
        self._measure(now)
        if not self.enabled:
            return 0.0
        self._refill(now)
        self.tokens -= 1.0
        if self.tokens >= 0.0:
            return 0.0
        return -self.tokens / self.rate

    def _measure(self, now: float) -> None:
        if now < self._bucket_end:  # the common case, on every request: just count
            self._bucket_count += 1
            return
        bucket = math.floor(now / _MEASURE_BUCKET) * _MEASURE_BUCKET
        if bucket > self._bucket_start:
            current = self._bucket_count / max(bucket - self._bucket_start, _MEASURE_BUCKET)
            self.measured_rate = (
                current * _SMOOTHING + self.measured_rate * (1 - _SMOOTHING)
                if self.measured_rate
                else current
            )
            self._bucket_start = bucket
            self._bucket_end = bucket + _MEASURE_BUCKET
            self._bucket_count = 0
        self._bucket_count += 1

    def _sending_rate(self, now: float) -> float:
        """Best estimate of the rate we send at: the measurement, or the current bucket."""
        in_bucket = self._bucket_count / max(now - self._bucket_start, _MEASURE_BUCKET)
        return max(self.measured_rate, in_bucket)

    def on_response(self, now: float, *, throttled: bool) -> None:
        """Update the rate after a response: cut it on a 429, recover it otherwise."""
        if not self.config.adaptive:
            return
        if throttled:
            # Cut from what we actually send, not from the bucket's rate: after a long
            # recovery the cubic curve lies far above the real sending rate (and a ceiling
            # may be far above it from the start), and cutting that would change nothing.
            sending = self._sending_rate(now)
            current = min(self.rate, sending) if self.enabled else sending
            self.last_max_rate = max(current, self.config.min_rate)
            new_rate = self.last_max_rate * self.config.backoff_factor
            self.throttled_at = now
            if not self.enabled:
                self.enabled = True
                self.tokens = 0.0
                self.last_refill = now
            self._set_rate(new_rate, now)
        elif self.throttled_at is not None:
            k = (self.last_max_rate * (1 - self.config.backoff_factor) / _CUBIC_SCALE) ** (1 / 3)
            t = now - self.throttled_at
            rate = _CUBIC_SCALE * (t - k) ** 3 + self.last_max_rate
            # As in AWS's adaptive mode, never more than twice what we actually send: the
            # curve must not run away during a quiet spell and disarm the next 429's cut.
            sending = self._sending_rate(now)
            if sending > 0:
                rate = min(rate, 2 * sending)
            self._set_rate(rate, now)

    def _set_rate(self, rate: float, now: float) -> None:
        self._refill(now)
        rate = max(self.config.min_rate, rate)
        if self.ceiling is not None:
            rate = min(rate, self.ceiling)
        self.rate = rate
        self.tokens = min(self.tokens, self.capacity)


class RequestBudget:
    """The asynchronous face of :class:`AdaptiveRate`: one per :class:`BabouSession`."""

    def __init__(
        self,
        config: RateLimit,
        *,
        # time.monotonic, not anyio.current_time: the bucket only compares its own
        # readings, and this is read on every request (0.08 us instead of 0.75 us).
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._config = config
        self._clock = clock
        self._sleep = sleep
        self._state: AdaptiveRate | None = None
        self._passive = config.requests_per_second is None and not config.adaptive

    @property
    def state(self) -> AdaptiveRate | None:
        """The arithmetic state, once the first request went out (for tests and stats)."""
        return self._state

    def _ensure(self) -> AdaptiveRate:
        if self._state is None:
            self._state = AdaptiveRate(self._config, self._clock())
        return self._state

    def reserve(self) -> float:
        """Take a token now; return how long to wait before sending (0 almost always)."""
        if self._passive:
            return 0.0
        return (self._state or self._ensure()).reserve(self._clock())

    async def acquire_after(self, delay: float) -> None:
        """Sleep the ``delay`` that :meth:`reserve` asked for."""
        await self._sleep(delay)

    async def acquire(self) -> None:
        """Wait until this request may go out."""
        delay = self.reserve()
        if delay > 0:
            await self._sleep(delay)

    def record(self, *, throttled: bool) -> None:
        """Report a response: ``throttled`` when it was a 429."""
        if self._passive:
            return
        state = self._ensure()
        # Until the first 429 there is nothing to recover: skip the clock and the maths.
        if throttled or state.throttled_at is not None:
            state.on_response(self._clock(), throttled=throttled)
