"""
Decisions of the sans-I/O core: retry or not and after how long, and poll delays.

Pure functions: the time elapsed and the random draws are arguments.
(:mod:`babou_async._protocol` re-exports every name.)
"""

from __future__ import annotations

import enum
import math

import attrs

from ._config import PollPolicy, RetryPolicy
from ._exceptions import APIError, RateLimitError, ServerError
from ._requests import RetryMode

__all__ = [
    "FailureKind",
    "RetryDecision",
    "backoff_delay",
    "decide_retry",
    "next_poll_delay",
    "poll_window_step",
]


class FailureKind(enum.Enum):
    """What kind of failure happened to a request, as far as retrying is concerned."""

    #: Nothing was sent (connection refused, DNS failure, connect timeout).
    NOT_SENT = "not sent"
    #: The request may have reached the server (reset, disconnect, read timeout).
    AMBIGUOUS = "ambiguous"


@attrs.frozen(kw_only=True)
class RetryDecision:
    """
    The answer of :func:`decide_retry`.

    Attributes:
        retry: Whether to try again.
        delay: Seconds to wait first.
        reason: A short description for the log.
    """

    retry: bool
    delay: float = 0.0
    reason: str = ""


def backoff_delay(policy: RetryPolicy, retry_number: int, rand: float) -> float:
    """
    Exponential backoff with optional full jitter.

    Args:
        policy: The retry policy.
        retry_number: 1 for the first retry, 2 for the second, ...
        rand: A uniform draw in ``[0, 1)``.
    """
    exponent = min(retry_number - 1, 62)  # 2**62 * base overflows nothing, and is capped below
    bound = min(policy.max_delay, policy.base_delay * (2.0**exponent))
    return bound * rand if policy.jitter else bound


def _classify(  # noqa: PLR0911 - a table of cases, one answer each
    mode: RetryMode, error: APIError | None, failure: FailureKind | None
) -> tuple[str, float | None] | RetryDecision:
    """Why an attempt failed and the server's Retry-After, or a refusal to retry."""
    if isinstance(error, RateLimitError):
        # 429: the request was refused, so even a create is safe to resend.
        return "rate limited (429)", error.retry_after
    if isinstance(error, ServerError):
        if mode is RetryMode.CREATE:
            return RetryDecision(retry=False, reason="server error on a create: not resent")
        return f"server error ({error.status})", error.retry_after
    if error is not None:
        return RetryDecision(retry=False, reason=f"not retryable ({error.status})")
    if failure is FailureKind.NOT_SENT:
        return "connection failed before sending", None
    if failure is FailureKind.AMBIGUOUS:
        if mode is RetryMode.CREATE:
            return RetryDecision(
                retry=False, reason="request may have reached the server: a create is not resent"
            )
        return "connection lost or timed out", None
    return RetryDecision(retry=False, reason="nothing to retry")


def decide_retry(
    *,
    policy: RetryPolicy,
    mode: RetryMode,
    attempt: int,
    rand: float,
    error: APIError | None = None,
    failure: FailureKind | None = None,
) -> RetryDecision:
    """
    Decide whether a failed attempt is retried, and after how long.

    Args:
        policy: The retry policy in force.
        mode: How safe the request is to resend.
        attempt: The attempt that just failed (1 for the first).
        rand: A uniform draw in ``[0, 1)`` for the jitter.
        error: The API error, if the server answered.
        failure: The transport failure kind, if the server did not answer.
    """
    if attempt >= policy.attempts:
        return RetryDecision(retry=False, reason="no attempts left")
    classified = _classify(mode, error, failure)
    if isinstance(classified, RetryDecision):
        return classified
    reason, retry_after = classified
    if retry_after is None:
        return RetryDecision(retry=True, delay=backoff_delay(policy, attempt, rand), reason=reason)
    if retry_after > policy.max_retry_after:
        return RetryDecision(
            retry=False,
            reason=f"Retry-After {retry_after:g}s exceeds max_retry_after "
            f"{policy.max_retry_after:g}s",
        )
    return RetryDecision(retry=True, delay=retry_after, reason=f"{reason}, Retry-After")


def poll_window_step(policy: PollPolicy, estimate: tuple[float, float]) -> float:
    """
    The steady poll step inside an estimated window, and the base of the overdue backoff.

    A fraction (:attr:`~PollPolicy.window_fraction`) of the window's width: for a finish
    time uniform in the window a constant step is optimal, and scaling it to the width keeps
    the detection delay the same share of the job whether the estimate says "2-5 minutes"
    (9.9 s) or "30-90 seconds" (3.3 s). Bounded below by ``initial_delay``, or by a quarter
    of the upper bound when that is shorter (so "1-2 seconds" is looked at every 0.5 s), and
    above by ``max_delay``.

    Args:
        policy: The poll policy.
        estimate: The server's ``(low, high)`` estimate in seconds.

    Returns:
        The step in seconds, before jitter (always > 0).
    """
    low, high = estimate
    floor = min(policy.initial_delay, max(high / 4.0, policy.initial_delay / 10.0))
    step = max(floor, policy.window_fraction * max(0.0, high - low))
    return min(step, policy.max_delay)


def next_poll_delay(
    policy: PollPolicy,
    *,
    polls_since_due: int,
    elapsed: float,
    estimate: tuple[float, float] | None,
    rand: float,
) -> float:
    """
    Seconds to wait before the next status poll.

    Args:
        policy: The poll policy.
        polls_since_due: Polls made since the job became overdue (past the estimate's upper
            bound, or from the start without an estimate), 0 for the next.
        elapsed: Seconds since the job started (or since we began watching).
        estimate: The server's ``(low, high)`` estimate in seconds, if any.
        rand: A uniform draw in ``[0, 1)`` for the jitter.

    Returns:
        The delay in seconds (always > 0 while ``policy.jitter < 1``).

    With an estimate (and ``policy.use_estimate``), three phases:

    * **before** its lower bound, the job cannot be done yet: the delay aims at that moment
      in long steps of half the lower bound, but at least ``max_delay`` and at most twice
      it: a "2-5 minutes" export is looked at after 0, 60 and 120 s. Jitter only shortens
      these steps, so the window's start is never overshot;
    * **inside** the window, the job may finish any moment: a steady step of
      :func:`poll_window_step`, jittered downwards only, so a finished job is noticed within
      one step;
    * **past** the upper bound the job is late: the step grows by ``overdue_multiplier``
      per poll, up to ``max_delay``.

    Without an estimate, the delay grows from ``initial_delay`` by ``multiplier`` up to
    ``max_delay``, the backoff loop of Babou's export docs (2 s, x1.5, capped at 30 s).
    The caller counts ``polls_since_due`` only in the overdue phase (and without estimate).
    """
    if policy.use_estimate and estimate is not None:
        step = poll_window_step(policy, estimate)
        low, high = estimate
        shorten = 1.0 - policy.jitter * rand
        if elapsed < low:
            until_due = low - elapsed
            delay = min(until_due, max(policy.max_delay, min(low / 2.0, 2.0 * policy.max_delay)))
            return max(min(step, until_due), delay * shorten)
        if elapsed < high:
            return step * shorten
        return _grown(step, policy.overdue_multiplier, polls_since_due, policy) * _jitter(
            policy, rand
        )
    return _grown(policy.initial_delay, policy.multiplier, polls_since_due, policy) * _jitter(
        policy, rand
    )


def _jitter(policy: PollPolicy, rand: float) -> float:
    """A factor uniform in ``[1 - jitter, 1 + jitter)`` for the draw ``rand``."""
    return 1.0 + policy.jitter * (2.0 * rand - 1.0)


def _grown(base: float, multiplier: float, polls: int, policy: PollPolicy) -> float:
    """``base * multiplier ** polls``, capped at ``max_delay`` (without overflowing)."""
    try:
        grown = base * multiplier ** min(polls, 10_000)
    except OverflowError:  # a large multiplier: 50.0**200 does not fit in a float
        grown = math.inf
    return min(policy.max_delay, grown)
