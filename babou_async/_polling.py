"""
Following a job to a terminal status: the poll loop shared by exports, chapters and assets.

The delays come from the sans-I/O core (:func:`babou_async._protocol.next_poll_delay`); this
module only sleeps them on the runtime's clock, yields changes of status, keeps the
deadline, and polls through transient failures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

import attrs

from . import _protocol as proto
from ._config import PollPolicy
from ._exceptions import (
    BabouError,
    DecodeError,
    RateLimitError,
    ServerError,
    TransportError,
    WaitTimeoutError,
)
from ._runtime import Runtime
from ._timer import LookTimer

__all__ = ["Fetch", "poll", "wait"]

log = logging.getLogger("babou_async.export")

T = TypeVar("T")

#: One status look: returns ``(item, status text, is terminal)``.
Fetch = Callable[[], Awaitable[tuple[T, str, bool]]]

# What a poll survives while the deadline allows: an outage, a long 429, and DecodeError
# too (one HTML page from a proxy must not end a watch).
_TRANSIENT = (TransportError, ServerError, RateLimitError, DecodeError)


@attrs.define
class _Watch:
    """The mutable state of one poll loop."""

    policy: PollPolicy
    timeout: float
    start: float
    estimate: tuple[float, float] | None
    age: float = 0.0  # how old the job already was when the watch began
    last_status: str | None = None
    last_error: BabouError | None = None
    polls_since_due: int = 0
    final: bool = False

    @property
    def deadline(self) -> float:
        return self.start + self.timeout

    def failed(self, exc: BabouError) -> float:
        """A transient failure to poll through: the server's wait (raises after the last look)."""
        if self.final:
            raise self.passed() from exc
        self.last_error = exc
        return getattr(exc, "retry_after", None) or 0.0

    def seen(self, item: object, status: str, terminal: bool) -> bool:
        """A successful look: whether to yield it (a change of status, or the end)."""
        self.last_error = None
        if self.estimate is None:
            self.estimate = getattr(item, "estimated_seconds", None)
        return status != self.last_status or terminal

    def cut(self, *, by_timer: bool) -> None:
        """A look was cancelled: by the look timer, the deadline passed (raise); else return."""
        if by_timer:
            raise self.passed() from self.last_error

    def go_on(self) -> None:
        """After a look that was not terminal: raise if it was the last one."""
        if self.final:
            raise self.passed() from self.last_error

    def passed(self) -> WaitTimeoutError:
        """The error for a passed deadline (callers re-raise it naming what was waited for)."""
        return WaitTimeoutError(
            "deadline passed", resource_id="", last_status=self.last_status, timeout=self.timeout
        )

    def next_delay(self, now: float, rand: float, server_wait: float) -> float:
        """
        The sleep before the next look; marks the look after it as the last one.

        ``server_wait`` is a floor: a Retry-After, plus what a tight budget suggests.
        """
        elapsed = now - self.start + self.age
        # Backoff starts once the job outlives its estimate (see next_poll_delay).
        due = self.estimate is None or not self.policy.use_estimate or elapsed >= self.estimate[1]
        delay = proto.next_poll_delay(
            self.policy,
            polls_since_due=self.polls_since_due if due else 0,
            elapsed=elapsed,
            estimate=self.estimate,
            rand=rand,
        )
        self.polls_since_due += 1 if due else 0
        delay = max(delay, server_wait)
        remaining = self.deadline - now
        if delay >= remaining:
            self.final = True
            delay = max(0.0, remaining)
        return delay


def poll(
    rt: Runtime,
    fetch: Fetch[T],
    timeout: float,
    policy: PollPolicy | None,
    estimate: tuple[float, float] | None,
    since: float | None = None,
    *,
    timed_out: Callable[[WaitTimeoutError], BaseException] | None = None,
    ended: Callable[[str | None, BaseException | None], None] | None = None,
) -> AsyncGenerator[T, None]:
    """
    Yield ``fetch()`` results on each change of status, and the terminal one.

    ``estimate`` is the job's expected duration; ``since`` when (on the runtime's clock) the
    job started, which the estimate counts from (default: when the watch begins). The
    arguments are checked here, at the call; the generator polls once iterated.

    Transient failures that outlast the retry policy (an outage, a long 429) do not end the
    poll while the deadline allows: they are logged and polled through, and the last one is
    chained to the :class:`WaitTimeoutError` if the deadline passes. ``timed_out`` turns
    that error into the caller's own (raised from the same cause); ``ended`` is told the
    last status and the error (``None`` when it ended well or was closed) once it ends.
    A caller passes these rather than wrapping this generator in one of its own: 10,000
    watches would hold 10,000 of each.
    """
    proto.check_poll(policy)
    estimate = proto.check_estimate(estimate)
    return _poll(rt, fetch, timeout, policy or rt.poll, estimate, since, timed_out, ended)


async def _poll(
    rt: Runtime,
    fetch: Fetch[T],
    timeout: float,
    policy: PollPolicy,
    estimate: tuple[float, float] | None,
    since: float | None,
    timed_out: Callable[[WaitTimeoutError], BaseException] | None,
    ended: Callable[[str | None, BaseException | None], None] | None,
) -> AsyncGenerator[T, None]:
    clock = rt.clock
    start = clock.monotonic()
    watch = _Watch(
        policy=policy,
        timeout=timeout,
        start=start,
        estimate=estimate,
        age=0.0 if since is None else max(0.0, start - since),
    )
    # The last look, after sleeping up to the deadline, gets a short grace to answer.
    grace = min(5.0, max(0.05, timeout * 0.05))
    error: BaseException | None = None
    timer = LookTimer()
    try:
        while True:
            timer.start(grace if watch.final else max(0.0, watch.deadline - clock.monotonic()))
            server_wait = 0.0
            try:
                try:
                    item, status, terminal = await fetch()
                finally:
                    timer.stop()  # before anything else: never armed across a yield
            except _TRANSIENT as exc:
                server_wait = watch.failed(exc)
                log.info("poll failed, will poll again: %s", rt.redact(str(exc)))
            except asyncio.CancelledError:
                watch.cut(by_timer=timer.expired())  # raises WaitTimeoutError if so
                raise
            else:
                if watch.seen(item, status, terminal):
                    previous, watch.last_status = watch.last_status, status
                    await rt.observer.status_changed(item, status, previous, terminal)
                    yield item
                if terminal:
                    return
            watch.go_on()
            # A tight budget stretches the interval instead of queueing the poll behind it.
            server_wait += rt.budget.suggested_poll_delay()
            await clock.sleep(watch.next_delay(clock.monotonic(), clock.random(), server_wait))
    except WaitTimeoutError as exc:
        error = exc if timed_out is None else timed_out(exc)
        raise error from exc.__cause__
    except Exception as exc:
        error = exc
        raise
    finally:
        timer.close()
        if ended is not None:
            ended(watch.last_status, error)


async def wait(
    rt: Runtime,
    fetch: Fetch[T],
    resource_id: str,
    what: str,
    timeout: float,
    policy: PollPolicy | None,
    estimate: tuple[float, float] | None,
) -> T:
    """
    Poll until terminal and return the last item.

    Raises:
        WaitTimeoutError: Not terminal before ``timeout`` (naming ``what`` and the ID).
    """
    result: T | None = None
    try:
        async for item in poll(rt, fetch, timeout, policy, estimate):
            result = item
    except WaitTimeoutError as exc:
        raise WaitTimeoutError(
            f"{what} {resource_id} not done after {timeout:g}s (last status: "
            f"{exc.last_status or 'none observed'})",
            resource_id=resource_id,
            last_status=exc.last_status,
            timeout=timeout,
        ) from exc.__cause__
    assert result is not None  # noqa: S101 - poll yields the terminal item before returning
    return result
