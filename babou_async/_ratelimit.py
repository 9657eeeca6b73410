"""
The request budget: when each request of a session (or of a fleet) may go out.

Babou limits requests per API key and documents neither the numbers nor any header
(``shared/babou-api.md`` section 3): the only signal is a 429, sometimes with
``Retry-After``. Every status poll is spent from the same budget as the requests that make
progress, so the budget also orders them.

* :class:`RequestBudget` is the public, pluggable :class:`~typing.Protocol`: an async
  ``acquire(priority)`` before each request, an async ``on_response(status, retry_after)``
  after it, and ``suggested_poll_delay()`` for pollers. A fleet-wide implementation (a
  shared store) only has to provide those three.
* :class:`AdaptiveBudget` (the default) and :class:`FixedBudget` are the in-process ones:
  an :class:`AdaptiveRate` (pure arithmetic on a given clock, no awaiting) behind a small
  dispatcher that releases waiting callers one token at a time, progress before polls.

The adaptive law, in :class:`AdaptiveRate`:

* **slow start**: a fresh budget sends a small burst, then its rate grows by an eighth per
  successful answer (doubling every six or so) until it is so high that the budget stops
  pacing altogether. A lone 429 does not end it (it may be noise, and holding back then
  would stall the start of a batch); a run of them (3 of the last 8 answers) does, at half
  the rate the server accepted, as TCP halves its window. 120 requests at once against a key
  limited to 10 per second cost three or four 429s, not 115;
* **one cut per congestion event**: afterwards the first 429 cuts the rate to
  ``backoff_factor`` times what we were sending and pauses every caller for the server's
  ``Retry-After``; the answers to requests already in flight at the cut (the rest of that
  burst) are ignored, their ``Retry-After`` only extends the pause;
* **probation**: the next 16 answers, to requests sent after the cut, tell whether it worked
  (the rate holds meanwhile). No 429: recover. 429s persist: if they come from a limit, the
  server accepted about ``(1 - share of 429s) x rate``, so the rate is set just below that,
  at least a fifth lower, and checked again: this settles at the key's limit instead of
  halving towards it. If about as many 429s persist at the lower rate, they are not about
  our rate (an overloaded server answers 429 at random): the cut is undone and their share
  is remembered as background noise, which later 429s must clearly exceed to count as
  congestion;
* **recovery** along a cubic curve (as in TCP CUBIC and AWS's adaptive retry mode, relative
  to the rate before the cut, whose plateau lies a little below where the 429 came), never
  above twice what we actually send, never below ``min_rate``.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random as _random_module
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import anyio
import attrs

from ._config import RateLimit

__all__ = [
    "AdaptiveBudget",
    "AdaptiveRate",
    "FixedBudget",
    "RequestBudget",
    "RequestPriority",
]

_START_RATE = 16.0  # requests per second of a fresh budget
_START_GROWTH = 1.0 / 8.0  # rate growth per successful response during slow start
_START_WINDOW = 8  # slow start ends when enough of the last 8 answers were 429s
_WINDOW_MASK = (1 << _START_WINDOW) - 1
_START_SHARE = 0.25  # ... more than this share (plus twice the noise): 3 of 8
_START_EXIT = 0.45  # share of the accepted rate to pace at when slow start ends
_OPEN_RATE = 4096.0  # slow start past this: stop pacing
_BURST_SECONDS = 0.25  # an adaptive bucket holds this much of its rate
_CUBIC = 0.001  # relative cubic recovery: back to the plateau from 0.7x in 6.7 s...
_PROBING = _CUBIC / 8.0  # ... then probing above it: +10% after 9.3 s, +100% after 20 s
_ALPHA = 1.0 / 64.0  # smoothing of the recent share of 429s
_NOISE_SLACK = 1.0 / 128.0  # a 429 is congestion if the recent share exceeds 2 x noise + this
_NOISE_MAX = 0.25  # the largest share of 429s ever taken for noise
_PROBE = 32  # answers after a cut that decide whether it worked
_PROBE_429 = 3  # ... or fewer, once this many of them were 429s
_IGNORE_MAX = 2.0  # seconds: the longest the answers of one burst are ignored
_PACE = 0.95  # share of the accepted rate to pace at once a limit is found
_MEASURE_BUCKET = 0.5  # seconds per bucket of the send-rate measurement
_SMOOTHING = 0.8
_EPSILON = 1e-9  # a token refilled to within this of one is whole (float arithmetic)


class RequestPriority(enum.IntEnum):
    """
    Which requests go first when the budget is tight.

    Attributes:
        PROGRESS: A request that moves work forward: a start, a create, the fetch of a
            finished job, a download-URL refresh. Released before any waiting poll.
        POLL: A speculative status poll, which can wait (and should stretch its interval,
            see :meth:`RequestBudget.suggested_poll_delay`).
    """

    PROGRESS = 0
    POLL = 1


@runtime_checkable
class RequestBudget(Protocol):
    """
    The request budget a :class:`~babou_async.BabouSession` spends, pluggable.

    The session calls :meth:`acquire` before sending each HTTP request to the API and
    :meth:`on_response` after each answer; its pollers add :meth:`suggested_poll_delay` to
    their delays. :class:`AdaptiveBudget` (the default, built from a
    :class:`~babou_async.RateLimit`) and :class:`FixedBudget` implement it in-process; a
    fleet of processes sharing one API key can implement it on a shared store.
    """

    async def acquire(self, priority: RequestPriority = RequestPriority.PROGRESS) -> None:
        """
        Wait until one request may be sent, and count it as sent.

        Args:
            priority: :attr:`RequestPriority.PROGRESS` requests go before waiting
                :attr:`RequestPriority.POLL` ones.
        """

    async def on_response(self, status: int, retry_after: float | None) -> None:
        """
        Record the answer to a request that :meth:`acquire` let through.

        Args:
            status: The HTTP status (429 is the throttling signal); ``0`` when no answer
                came (a connection error, a timeout, a cancelled request).
            retry_after: The server's ``Retry-After``, parsed to seconds, or ``None``.
        """

    def suggested_poll_delay(self) -> float:
        """
        Seconds a poller should add to its next delay, 0 when the budget is not tight.

        Jittered, so that watchers stretched by the same backlog do not come back together.
        """


class _Mode(enum.Enum):
    OPEN = "open"  # no limit known (or none configured): nothing waits
    START = "start"  # slow start: the rate grows fast until the first 429
    STEADY = "steady"  # paced, cut on congestion, recovering along a cubic curve
    FIXED = "fixed"  # a configured ceiling, not adaptive


@attrs.define
class _Event:
    """One congestion event: the cut, the burst whose answers are ignored, the probation."""

    sent_before: int  # answers until this many requests were answered belong to the burst
    until: float  # ... or until this moment
    undo: tuple[_Mode, float, float, float, float]  # mode, rate, w_max, epoch, k before
    first_share: float | None = None  # share of 429s of the first probation, once judged
    answers: int = 0
    throttled: int = 0


class AdaptiveRate:
    """
    The budget's arithmetic: a token bucket whose rate adapts to 429s, on a given clock.

    Pure and synchronous: every method takes the current time, none waits; the
    dispatcher of :class:`AdaptiveBudget` does the waiting. Tokens never go negative: a
    caller either takes one now (:meth:`take`) or waits :meth:`wait_time` and tries again.

    Attributes:
        config: The :class:`~babou_async.RateLimit`.
        mode: ``"open"``, ``"start"``, ``"steady"`` or ``"fixed"`` (see the module).
        rate: Requests per second now (``inf`` while open).
        tokens: Requests that may go at once now.
        paused_until: No request goes before this moment (the server's ``Retry-After``).
        noise: The share of 429s taken for background noise (not about our rate).
        cuts: Congestion events so far (for tests and statistics).
        throttled: 429s answered so far.
        sent: Requests let through so far.
        answered: Answers recorded so far.
    """

    def __init__(self, config: RateLimit, now: float) -> None:
        self.config = config
        self.ceiling = config.requests_per_second
        if self.ceiling is not None:
            self.mode = _Mode.STEADY if config.adaptive else _Mode.FIXED
            self.rate = self.ceiling
        elif config.adaptive and config.slow_start:
            self.mode, self.rate = _Mode.START, _START_RATE
        else:
            self.mode, self.rate = _Mode.OPEN, math.inf
        self.tokens = self.capacity
        self.stamp = now
        self.paused_until = -math.inf
        self.blocked_at = -math.inf  # when a request last found the bucket empty
        self.sent = 0
        self.answered = 0
        self.cuts = 0
        self.throttled = 0
        self.recent = 0.0
        self.window = 0  # the last answers, one bit each (1: a 429), newest lowest
        self.noise = 0.0
        self.event: _Event | None = None
        self.w_max = self.rate
        self.epoch = now
        self.k = 0.0
        # Send-rate measurement.
        self.measured_rate = 0.0
        self._bucket_start = math.floor(now / _MEASURE_BUCKET) * _MEASURE_BUCKET
        self._bucket_end = self._bucket_start + _MEASURE_BUCKET
        self._bucket_count = 0

    @property
    def capacity(self) -> float:
        """
        Bucket size: the configured burst, within bounds.

        At most one second of a configured ceiling or a quarter second of an adaptive rate;
        never less than one request.
        """
        span = 1.0 if self.ceiling is not None else _BURST_SECONDS
        return max(1.0, min(float(self.config.burst), self.rate * span))

    # -- the bucket ----------------------------------------------------------------------

    def _refill(self, now: float) -> None:
        elapsed = now - self.stamp
        if elapsed > 0.0:  # not 0 * inf; and a clock going backwards mints nothing
            self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
            self.stamp = now

    def take(self, now: float) -> bool:
        """Let one request go now if the bucket allows it; return whether it may go."""
        if self.mode is not _Mode.OPEN:
            self._refill(now)
            if now < self.paused_until or self.tokens < 1.0 - _EPSILON:
                self.blocked_at = now
                return False
            self.tokens -= 1.0
        self.sent += 1
        self._measure(now)
        return True

    def refund(self) -> None:
        """Give back a token taken for a request that was not sent after all."""
        self.sent -= 1
        self.tokens = min(self.capacity, self.tokens + 1.0)

    def wait_time(self, now: float) -> float:
        """Seconds until :meth:`take` can succeed (0 if it can now)."""
        if self.mode is _Mode.OPEN:
            return 0.0
        if now < self.paused_until:
            return self.paused_until - now
        self._refill(now)
        if self.tokens >= 1.0 - _EPSILON:
            return 0.0
        # At least a microsecond: a clock far from zero cannot add much less to itself.
        return max(1e-6, (1.0 - self.tokens) / self.rate)

    def backlog(self, now: float, waiting: int) -> float:
        """Seconds until a request queued behind ``waiting`` others could go."""
        if self.mode is _Mode.OPEN:
            return 0.0
        pause = max(0.0, self.paused_until - now)
        self._refill(now)
        return pause + max(0.0, waiting + 1.0 - self.tokens) / self.rate

    # -- the send-rate measurement ---------------------------------------------------------

    def _measure(self, now: float) -> None:
        if now < self._bucket_end:  # the common case, on every request: just count
            self._bucket_count += 1
            return
        # A new bucket (now >= the end of the last one, so it starts after it).
        bucket = math.floor(now / _MEASURE_BUCKET) * _MEASURE_BUCKET
        current = self._bucket_count / max(bucket - self._bucket_start, _MEASURE_BUCKET)
        self.measured_rate = (
            current * _SMOOTHING + self.measured_rate * (1 - _SMOOTHING)
            if self.measured_rate
            else current
        )
        self._bucket_start = bucket
        self._bucket_end = bucket + _MEASURE_BUCKET
        self._bucket_count = 1

    def sending_rate(self, now: float) -> float:
        """
        Best estimate of the rate we send at.

        The bucket's rate while it held requests back in the last second (we send exactly
        that), else the measurement or the current measurement bucket, whichever is higher.
        """
        if self.mode is not _Mode.OPEN and now - self.blocked_at < 1.0:
            return self.rate
        in_bucket = self._bucket_count / max(now - self._bucket_start, _MEASURE_BUCKET)
        return max(self.measured_rate, in_bucket)

    # -- answers -------------------------------------------------------------------------

    def on_response(self, now: float, status: int, retry_after: float | None = None) -> None:
        """
        Update the rate after an answer: cut it on congestion, recover it otherwise.

        Args:
            now: The current time.
            status: The HTTP status, ``0`` if no answer came.
            retry_after: The server's ``Retry-After`` in seconds, if it sent one.
        """
        self.answered += 1
        if status != 429 and self.mode is _Mode.OPEN and self.event is None:
            # The common case: the bookkeeping below for a success; an open bucket never grows.
            self.recent -= max(_ALPHA, 1.0 / self.answered) * self.recent
            self.window = (self.window << 1) & _WINDOW_MASK
            return
        throttled = status == 429
        # A plain average over the first answers, so that it is not biased towards 0.
        self.recent += max(_ALPHA, 1.0 / self.answered) * (float(throttled) - self.recent)
        self.throttled += throttled
        self.window = ((self.window << 1) | throttled) & _WINDOW_MASK
        if not self.config.adaptive:
            if throttled and retry_after is not None and self.ceiling is not None:
                self._pause(now, retry_after)
            return
        event = self.event
        if event is not None:
            if self.answered <= event.sent_before and now < event.until:
                # An answer to a request sent before the cut: the same burst, no new cut,
                # but its Retry-After is the server's word too.
                if throttled and retry_after is not None:
                    self._pause(now, retry_after)
                return
            self._probe(event, now, throttled=throttled)  # the rate holds meanwhile
        elif throttled:
            if self._congested():
                self._cut(now, retry_after)
        else:
            self._grow(now)

    def _congested(self) -> bool:
        """Whether the latest 429 signals congestion rather than background noise."""
        if self.mode is _Mode.START:
            # Nothing is known yet: a lone 429 may be noise, and holding back now would
            # stall the start of a batch. A limit shows as a run of them within 8 answers,
            # well above the share of 429s among the answers before those.
            recent = self.window.bit_count()
            older = self.answered - _START_WINDOW
            background = (self.throttled - recent) / older if older > 0 else 0.0
            share = recent / _START_WINDOW
            return share > _START_SHARE + 2.0 * max(self.noise, background)
        return self.recent > 2.0 * self.noise + _NOISE_SLACK

    def _pause(self, now: float, seconds: float) -> None:
        self.paused_until = max(self.paused_until, now + max(0.0, seconds))

    def _cut(self, now: float, retry_after: float | None) -> None:
        """A congestion event: cut once, pause for Retry-After, open a probation."""
        self.cuts += 1
        self.event = _Event(
            sent_before=self.sent,
            until=now + _IGNORE_MAX,
            undo=(self.mode, self.rate, self.w_max, self.epoch, self.k),
        )
        sending = self.sending_rate(now)
        current = sending if self.mode is _Mode.OPEN else min(self.rate, sending)
        if self.mode is _Mode.OPEN:
            self.tokens, self.stamp = 0.0, now  # the bucket starts empty
        if self.mode is _Mode.START:
            # Out of slow start: the server accepted about the share that was not 429 (a
            # little less, its first burst flatters it), and the rate overshot while the
            # answers came back: halve that, and a little more, as TCP halves its window.
            accepted = current * (1.0 - self.window.bit_count() / _START_WINDOW)
            w_max = rate = accepted * _START_EXIT
        else:
            # The limit lies below where the 429 came (CUBIC's fast convergence).
            factor = self.config.backoff_factor
            w_max, rate = current * (1.0 + factor) / 2.0, current * factor
        self.mode = _Mode.STEADY
        self._restart_recovery(now, w_max, rate)
        if retry_after is not None:
            self._pause(now, retry_after)

    def _probe(self, event: _Event, now: float, *, throttled: bool) -> None:
        """Count an answer of the probation; judge the cut when there are enough."""
        event.answers += 1
        event.throttled += throttled
        if event.answers < _PROBE and event.throttled < _PROBE_429:
            return
        share = event.throttled / event.answers
        if event.throttled == 0:
            # The cut worked: the 429s were about our rate. Forget some of the noise.
            self.noise *= 0.75
            self.event = None
            self._restart_recovery(now, self.w_max, self.rate)
        elif share <= 1.5 * self.noise:
            # Back to the background share at once: that was a spike of noise. Undo.
            self._undo(event, now)
        elif event.first_share is None or share < event.first_share / 2.0:
            # 429s persist, but fewer at a lower rate: a limit. It accepted about this much:
            # pace just below, and check again.
            accepted = (1.0 - share) * min(self.rate, self.sending_rate(now))
            # At least a fifth lower, so that noise cannot look like a limit at the same rate.
            self._restart_recovery(now, accepted, min(accepted * _PACE, self.rate * 0.8))
            event.first_share = share
            event.sent_before, event.until = self.sent, now + _IGNORE_MAX
            event.answers = event.throttled = 0
        else:
            # As many 429s below a rate the server had accepted: not about our rate. Undo.
            self.noise = min(_NOISE_MAX, max(self.noise, self.recent))
            self._undo(event, now)

    def _undo(self, event: _Event, now: float) -> None:
        """Close ``event`` and restore the state from before its cut."""
        self.mode, rate, self.w_max, self.epoch, self.k = event.undo
        self._set_rate(now, rate)
        self.event = None

    def _restart_recovery(self, now: float, w_max: float, rate: float) -> None:
        """Set the rate to ``rate``, on a cubic curve that is back at ``w_max`` after k."""
        self.w_max = max(w_max, self.config.min_rate)
        self.epoch = now
        self._set_rate(now, rate)
        self.k = (max(0.0, 1.0 - self.rate / self.w_max) / _CUBIC) ** (1.0 / 3.0)

    def _grow(self, now: float) -> None:
        if self.mode is _Mode.START:
            rate = self.rate * (1.0 + _START_GROWTH)
            if rate >= _OPEN_RATE:
                self.mode, self.rate = _Mode.OPEN, math.inf
                return
            self._set_rate(now, rate)
        elif self.mode is _Mode.STEADY:
            # Through the cut rate at the cut, flat at w_max after k, then probing above.
            # Back to the plateau along the curve; beyond it, probing, eight times slower.
            t = now - self.epoch - self.k
            rate = self.w_max * (1.0 + (_CUBIC if t < 0 else _PROBING) * t**3)
            # Never more than twice what we send: a quiet spell must not disarm the next cut.
            # Only once there was a cut: a configured ceiling is where a session starts,
            # whatever its first, slow, requests send.
            cap = 2.0 * self.sending_rate(now)
            if self.cuts and 0.0 < cap < rate:
                # ... and time spent below the curve does not count: it resumes from here
                # when the demand comes back, instead of jumping to where it got meanwhile.
                rate, x = cap, cap / self.w_max - 1.0
                c = _CUBIC if x < 0 else _PROBING
                self.epoch = now - self.k - math.copysign(abs(x / c) ** (1.0 / 3.0), x)
            self._set_rate(now, rate)

    def _set_rate(self, now: float, rate: float) -> None:
        self._refill(now)
        rate = max(self.config.min_rate, rate)
        if self.ceiling is not None:
            rate = min(rate, self.ceiling)
        self.rate = rate
        self.tokens = min(self.tokens, self.capacity)


class _Waiter:
    """
    A caller queued in the budget: granted a token, or woken to dispatch.

    A bare future rather than an ``anyio.Event``: that wraps an ``asyncio.Event`` with its
    own deque of futures, about 1 KiB per caller, and 10,000 callers may queue at once.
    aiohttp ties the session to asyncio anyway.
    """

    __slots__ = ("future", "granted")

    def __init__(self) -> None:
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.granted = False

    def wake(self) -> None:
        """Wake the caller (if it is still waiting)."""
        if not self.future.done():
            self.future.set_result(None)


class _LocalBudget:
    """
    An in-process budget: an :class:`AdaptiveRate` and the dispatcher around it.

    Nothing waits while the bucket has a token and nobody is queued: :meth:`acquire` then
    takes it without a lock, a task or a sleep. Otherwise the caller queues by priority;
    the first in the queue sleeps until the next token and releases the queue in order
    (progress first), one token per caller, so Retry-After and a cut apply to every waiting
    caller and a freed token never wakes a herd.
    """

    def __init__(
        self,
        config: RateLimit,
        *,
        monotonic: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        random: Callable[[], float],
    ) -> None:
        self._config = config
        self._monotonic = monotonic
        self._sleep = sleep
        self._random = random
        self._rate: AdaptiveRate | None = None
        self._passive = config.requests_per_second is None and not config.adaptive
        self._queues: tuple[deque[_Waiter], deque[_Waiter]] = (deque(), deque())
        self._waiting = 0
        self._dispatcher: _Waiter | None = None

    @property
    def state(self) -> AdaptiveRate | None:
        """The arithmetic, once the first request went out (for tests and statistics)."""
        return self._rate

    def _ensure(self) -> AdaptiveRate:
        if self._rate is None:
            self._rate = AdaptiveRate(self._config, self._monotonic())
        return self._rate

    def try_acquire(self) -> bool:
        """
        The fast path of :meth:`acquire`, without a coroutine.

        Takes a token now if one is there and nobody is queued; ``False``: await
        :meth:`acquire`.
        """
        if self._passive:
            return True
        return not self._waiting and (self._rate or self._ensure()).take(self._monotonic())

    async def acquire(self, priority: RequestPriority = RequestPriority.PROGRESS) -> None:
        """
        Wait until one request may be sent, and count it as sent.

        Args:
            priority: Progress requests go before waiting polls.
        """
        if not self.try_acquire():
            await self._queue(priority)

    async def on_response(self, status: int, retry_after: float | None) -> None:
        """
        Record the answer to a request let through by :meth:`acquire`.

        Args:
            status: The HTTP status, ``0`` when no answer came.
            retry_after: The server's ``Retry-After`` in seconds, or ``None``.
        """
        self.record_response(status, retry_after)

    def record_response(self, status: int, retry_after: float | None = None) -> None:
        """:meth:`on_response` without the coroutine, for synchronous callers."""
        if not self._passive:
            self._ensure().on_response(self._monotonic(), status, retry_after)

    def suggested_poll_delay(self) -> float:
        """
        Seconds a poller should add to its next delay: the queue ahead of it, jittered.

        0 while nothing waits. Otherwise the time the budget needs to release everything
        queued (plus any ``Retry-After`` pause), times a uniform draw in ``[0.5, 1.5)``, so
        that watchers stretch their intervals instead of queueing behind the bucket, and
        do not come back together after a 429.
        """
        if self._passive or self._rate is None:
            return 0.0
        backlog = self._rate.backlog(self._monotonic(), self._waiting)
        return backlog * (0.5 + self._random()) if backlog > 0.0 else 0.0

    # -- the queue -------------------------------------------------------------------------

    async def _queue(self, priority: RequestPriority) -> None:
        waiter = _Waiter()
        self._queues[priority].append(waiter)
        self._waiting += 1
        done = False
        try:
            if self._dispatcher is not None:
                await waiter.future  # granted, or handed the dispatching
            if not waiter.granted:
                await self._dispatch(waiter)
            done = True
        finally:
            if not done:
                self._abandon(waiter)

    async def _dispatch(self, me: _Waiter) -> None:
        """Release the queue token by token until ``me`` is released; then hand over."""
        self._dispatcher = me
        rate = self._ensure()
        while True:
            now = self._monotonic()
            self._release(rate, now)
            if me.granted:
                self._hand_over()
                return
            await self._sleep(rate.wait_time(now))

    def _release(self, rate: AdaptiveRate, now: float) -> None:
        for queue in self._queues:
            while queue and rate.take(now):
                waiter = queue.popleft()
                waiter.granted = True
                self._waiting -= 1
                waiter.wake()
            if queue:
                return

    def _hand_over(self) -> None:
        """Make the first waiter, if any, the dispatcher, and wake it."""
        self._dispatcher = None
        for queue in self._queues:
            if queue:
                self._dispatcher = queue[0]
                queue[0].wake()
                return

    def _abandon(self, waiter: _Waiter) -> None:
        """A queued caller was cancelled: leave the queue, give back its token if taken."""
        if waiter.granted:
            self._ensure().refund()
        else:
            for queue in self._queues:
                if waiter in queue:
                    queue.remove(waiter)
                    self._waiting -= 1
        if self._dispatcher is waiter:
            self._hand_over()

    # -- transitional: the synchronous calls of the runtime before RequestBudget ---------

    def reserve(self) -> float:
        """Take a token if one is free now: 0.0; else 1.0, then await :meth:`acquire_after`."""
        return 0.0 if self.try_acquire() else 1.0

    async def acquire_after(self, delay: float) -> None:
        """Queue for a token after :meth:`reserve` found none (``delay`` is not used)."""
        del delay
        await self._queue(RequestPriority.PROGRESS)

    def record(self, *, throttled: bool) -> None:
        """Report an answer without its status: ``throttled`` when it was a 429."""
        self.record_response(429 if throttled else 200)


class AdaptiveBudget(_LocalBudget):
    """
    The default request budget: a token bucket that finds and settles at the key's limit.

    Built from a :class:`~babou_async.RateLimit`: with a ``requests_per_second`` ceiling it
    never exceeds it, and without one it starts with a short slow start and adapts to the
    429s the server answers (the docstring of ``babou_async._ratelimit`` explains the law). It
    honours ``Retry-After`` for every waiting caller, releases progress requests before
    polls, and costs nothing on the way when nothing has to wait.

    Args:
        rate_limit: The configuration; default :class:`~babou_async.RateLimit()`.
        monotonic: The clock, in seconds (differences only are used).
        sleep: An async sleep of the given seconds.
        random: A uniform draw in ``[0, 1)`` (jitter of :meth:`RequestBudget.suggested_poll_delay`).
    """

    def __init__(
        self,
        rate_limit: RateLimit | None = None,
        *,
        # time.monotonic, not anyio.current_time: it is read on every request (0.08 us
        # instead of 0.75 us), and the bucket only compares its own readings.
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        random: Callable[[], float] = _random_module.random,
    ) -> None:
        super().__init__(rate_limit or RateLimit(), monotonic=monotonic, sleep=sleep, random=random)


class FixedBudget(_LocalBudget):
    """
    A request budget at a fixed rate: for a key whose limit is known.

    A token bucket of ``requests_per_second`` holding ``burst`` requests (at most one
    second's worth). It does not adapt to 429s, but honours ``Retry-After`` for every
    waiting caller and releases progress requests before polls.

    Args:
        requests_per_second: The rate.
        burst: How many requests may go at once after a quiet spell.
        monotonic: The clock, in seconds.
        sleep: An async sleep of the given seconds.
        random: A uniform draw in ``[0, 1)`` (jitter of :meth:`RequestBudget.suggested_poll_delay`).
    """

    def __init__(
        self,
        requests_per_second: float,
        *,
        burst: int = 1,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        random: Callable[[], float] = _random_module.random,
    ) -> None:
        config = RateLimit(requests_per_second=requests_per_second, burst=burst, adaptive=False)
        super().__init__(config, monotonic=monotonic, sleep=sleep, random=random)
