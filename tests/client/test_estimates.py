"""The session remembers what start_export said about the duration, for later watches."""

from __future__ import annotations

import anyio
import pytest

from babou_async import BabouSession, RateLimit
from babou_async._runtime import Estimates
from babou_async.testing import Clock, FakeBabou

pytestmark = pytest.mark.anyio


async def first_poll_delay(babou: BabouSession, pid: str, delays: list[float]) -> float:
    """The poller's first sleep in ``wait_for_export`` (the wait is then abandoned)."""
    with anyio.move_on_after(2):
        await babou.wait_for_export(pid, timeout=3600)
    return delays[0]


async def test_wait_after_start_uses_the_remembered_estimate() -> None:
    """start_export(pid) then wait_for_export(pid): the first poll waits for the window."""
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        await anyio.sleep_forever()

    async with FakeBabou(export_processing_seconds=100) as fake:
        pid, other = fake.seed_project(), fake.seed_project()
        async with BabouSession(
            fake.api_key,
            base_url=fake.base_url,
            rate_limit=RateLimit.unlimited(),
            clock=Clock(sleep=sleep),
        ) as babou:
            started = await babou.start_export(pid)
            assert started.estimated_seconds is not None
            remembered = await first_poll_delay(babou, pid, delays)
            delays.clear()
            await fake_start_elsewhere(fake, other)
            forgotten = await first_poll_delay(babou, other, delays)
    assert remembered > 5 * forgotten
    assert forgotten == pytest.approx(babou.poll.initial_delay, rel=babou.poll.jitter + 0.01)


async def fake_start_elsewhere(fake: FakeBabou, pid: str) -> None:
    """Start an export without this session (so it knows no estimate)."""
    async with BabouSession(fake.api_key, base_url=fake.base_url) as other:
        await other.start_export(pid)


def test_estimates_are_bounded_and_forgotten() -> None:
    """The memory keeps the newest entries up to its size, and forgets on request."""
    memory = Estimates(maxsize=2)
    for i in range(3):
        memory.remember(f"prj_{i}", (1.0, 2.0), float(i))
    assert (None, ((1.0, 2.0), 2.0)) == (memory.recall("prj_0"), memory.recall("prj_2"))
    memory.forget("prj_2")
    memory.forget("prj_missing")
    assert 1 == len(memory)
