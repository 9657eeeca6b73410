"""The look timer of a watch: one timer, cutting only the look, and only its own doing."""

from __future__ import annotations

import asyncio
import sys

import pytest

from babou_async._timer import LookTimer

pytestmark = pytest.mark.anyio


async def _look(timer: LookTimer, seconds: float, limit: float) -> str:
    timer.start(limit)
    try:
        try:
            await asyncio.sleep(seconds)
        finally:
            timer.stop()
    except asyncio.CancelledError:
        if timer.expired():
            return "cut"
        raise
    return "done"


async def test_a_look_past_its_limit_is_cut_and_one_within_is_not() -> None:
    timer = LookTimer()
    assert await _look(timer, 0.2, limit=0.02) == "cut"
    assert await _look(timer, 0.0, limit=5.0) == "done"
    timer.close()


async def test_the_timer_is_armed_once_for_looks_with_the_same_deadline() -> None:
    timer = LookTimer()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    timer.start(deadline - loop.time())
    first = timer._handle
    timer.stop()
    for _ in range(5):
        timer.start(deadline - loop.time())
        timer.stop()
    assert timer._handle is first  # moved only for another limit (the last look's grace)
    timer.start(0.5)
    assert timer._handle is not first
    assert first is not None
    assert first.cancelled()
    timer.stop()
    timer.close()
    assert timer._handle is None


async def test_between_looks_nothing_is_cancelled() -> None:
    """The limit passing while no look runs (the watch sleeps, or its caller is busy)."""
    timer = LookTimer()
    timer.start(0.01)
    timer.stop()
    await asyncio.sleep(0.05)  # the timer fires now: no look, no cancellation
    assert await _look(timer, 0.0, limit=5.0) == "done"
    timer.close()


async def test_a_cancellation_from_outside_is_not_the_timers() -> None:
    timer = LookTimer()
    task = asyncio.ensure_future(_look(timer, 5.0, limit=5.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    timer.close()


if sys.version_info >= (3, 11):  # Task.uncancel and asyncio.timeout

    async def test_the_timer_takes_back_its_cancellation() -> None:
        """An asyncio.timeout around the look still tells its own expiry from the timer's."""
        timer = LookTimer()
        async with asyncio.timeout(10):
            assert await _look(timer, 1.0, limit=0.01) == "cut"
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await _look(timer, 1.0, limit=5.0)  # the outer one expires: not "cut"
        timer.close()
