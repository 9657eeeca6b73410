"""The export lifecycle against FakeBabou: start, watch, wait."""

from __future__ import annotations

import gc
import itertools
from contextlib import aclosing

import anyio
import attrs
import pytest

from babou_async import (
    BabouSession,
    ConflictError,
    Export,
    ExportFailedError,
    ExportStatus,
    ExportTimeoutError,
    NotFoundError,
    PollPolicy,
    TransportError,
    ValidationError,
    WaitTimeoutError,
)
from babou_async.testing import FakeBabou, Faults

from ..support import FAST_RETRY

pytestmark = pytest.mark.anyio


def export_polls(fake: FakeBabou, pid: str) -> int:
    return len(fake.find_requests(method="GET", path=f"/api/v1/projects/{pid}/export"))


async def test_start_export_parses_the_estimate(fake: FakeBabou, babou: BabouSession) -> None:
    """start_export returns queued, the message, and the estimate raw and parsed."""
    pid = fake.seed_project()
    started = await babou.start_export(pid)
    assert started.status is ExportStatus.QUEUED
    assert started.message == "Export started"
    assert started.estimated_time is not None
    assert started.estimated_seconds is not None
    low, high = started.estimated_seconds
    assert 0 <= low <= high
    with pytest.raises(ConflictError):
        await babou.start_export(pid)


async def test_start_export_errors(fake: FakeBabou, babou: BabouSession) -> None:
    """No completed chapters is a ValidationError; an unknown project NotFoundError."""
    pid = fake.seed_project(ready=False)
    with pytest.raises(ValidationError) as info:
        await babou.start_export(pid)
    assert info.value.status == 400
    with pytest.raises(NotFoundError):
        await babou.start_export("prj_doesnotexist")
    with pytest.raises(NotFoundError) as never:
        await babou.get_export(fake.seed_project())
    assert never.value.hint


async def test_watch_yields_each_status_once_and_ends_terminal(
    fake: FakeBabou, babou: BabouSession
) -> None:
    """watch_export yields every change exactly once, ending with completed."""
    pid = fake.seed_project()
    await babou.start_export(pid)
    seen = [e async for e in babou.watch_export(pid, timeout=10)]
    statuses = [e.status for e in seen]
    assert statuses[-1] is ExportStatus.COMPLETED
    assert all(a != b for a, b in itertools.pairwise(statuses))
    assert set(statuses) <= {ExportStatus.QUEUED, ExportStatus.PROCESSING, ExportStatus.COMPLETED}
    assert seen[-1].download_url
    assert seen[-1].is_terminal
    assert export_polls(fake, pid) >= len(seen)  # one poll per change at least


async def test_failed_export_is_yielded_then_raised_by_wait(
    fake: FakeBabou, babou: BabouSession
) -> None:
    """A failed render is the last item of the watch, and ExportFailedError from wait."""
    pid = fake.seed_project()
    fake.faults = Faults(fail_exports={pid})
    await babou.start_export(pid)
    seen = [e async for e in babou.watch_export(pid, timeout=10)]
    assert seen[-1].status is ExportStatus.FAILED
    assert seen[-1].error
    with pytest.raises(ExportFailedError) as info:
        await babou.wait_for_export(pid, timeout=10)
    assert info.value.project_id == pid
    assert info.value.error == seen[-1].error
    assert seen[-1].error in str(info.value)
    restarted = await babou.start_export(pid)  # a failed export can be restarted
    assert restarted.status is ExportStatus.QUEUED


async def test_wait_for_export_returns_completed(fake: FakeBabou, babou: BabouSession) -> None:
    """wait_for_export returns the completed export with its URL."""
    pid = fake.seed_project()
    await babou.start_export(pid)
    done = await babou.wait_for_export(pid, timeout=10)
    assert done.status is ExportStatus.COMPLETED
    assert done.download_url is not None
    assert done.download_url.startswith(fake.asset_base_url)


async def test_watch_times_out_with_last_status(fake: FakeBabou, babou: BabouSession) -> None:
    """Past the deadline ExportTimeoutError carries the project and the last status."""
    fake.export_processing_seconds = 60
    pid = fake.seed_project()
    await babou.start_export(pid)
    seen: list[Export] = []

    async def consume() -> None:
        async for export in babou.watch_export(pid, timeout=0.5):
            seen.append(export)  # noqa: PERF401 - must keep what arrived before the timeout

    with anyio.fail_after(5), pytest.raises(ExportTimeoutError) as info:
        await consume()
    err = info.value
    assert (pid, seen[-1].status_raw, 0.5) == (err.project_id, err.last_status, err.timeout)
    assert isinstance(err, TimeoutError)
    assert isinstance(err, WaitTimeoutError)


async def test_deadline_is_honoured_precisely(fake: FakeBabou) -> None:
    """With long poll delays the watch still stops at its deadline, not a delay later."""
    fake.export_processing_seconds = 60
    pid = fake.seed_project()
    async with BabouSession(
        fake.api_key, base_url=fake.base_url, poll=PollPolicy(initial_delay=30)
    ) as babou:
        await babou.start_export(pid)
        start = anyio.current_time()
        with pytest.raises(ExportTimeoutError):
            await babou.wait_for_export(pid, timeout=0.6)
        elapsed = anyio.current_time() - start
    assert 0.55 < elapsed < 2.0


async def test_break_stops_polling_at_once(fake: FakeBabou, babou: BabouSession) -> None:
    """Breaking out of the watch leaves no poller behind."""
    fake.export_processing_seconds = 60
    pid = fake.seed_project()
    await babou.start_export(pid)
    async with aclosing(babou.watch_export(pid, timeout=30)) as watch:
        async for _ in watch:
            break
    polls = export_polls(fake, pid)
    await anyio.sleep(0.3)
    gc.collect()
    assert polls == export_polls(fake, pid)


async def test_cancelling_the_watcher_stops_it(fake: FakeBabou, babou: BabouSession) -> None:
    """Cancelling the task that watches stops polling promptly."""
    fake.export_processing_seconds = 60
    pid = fake.seed_project()
    await babou.start_export(pid)
    eager = attrs.evolve(babou.poll, use_estimate=False)  # polls at once, estimate or not
    with anyio.move_on_after(0.3):
        await babou.wait_for_export(pid, timeout=30, poll=eager)
    polls = export_polls(fake, pid)
    await anyio.sleep(0.3)
    assert polls == export_polls(fake, pid)
    assert polls > 1


async def test_transient_errors_during_watch_are_retried(
    fake: FakeBabou, babou: BabouSession
) -> None:
    """429s, 5xx and drops while watching do not end the watch."""
    pid = fake.seed_project()
    await babou.start_export(pid)
    path = f"/projects/{pid}/export"
    fake.inject("GET", path, status=429, headers={"Retry-After": "0"})
    fake.inject("GET", path, status=503)
    fake.inject("GET", path, status=0, drop=True)
    done = await babou.wait_for_export(pid, timeout=10)
    assert done.status is ExportStatus.COMPLETED


async def test_outage_longer_than_retries_is_polled_through(
    fake: FakeBabou, babou: BabouSession
) -> None:
    """An outage that exhausts the retry policy still does not end a watch with time left."""
    pid = fake.seed_project()
    await babou.start_export(pid)
    fake.inject("GET", f"/projects/{pid}/export", status=500, times=10)
    done = await babou.wait_for_export(pid, timeout=10)
    assert done.status is ExportStatus.COMPLETED


async def test_timeout_during_outage_chains_the_last_error(fake: FakeBabou) -> None:
    """If the deadline passes during an outage, the timeout carries the last error."""
    pid = fake.seed_project()
    async with BabouSession(
        fake.api_key, base_url=fake.base_url, retry=FAST_RETRY, poll=PollPolicy.fast()
    ) as babou:
        await babou.start_export(pid)
        fake.inject("GET", f"/projects/{pid}/export", status=0, drop=True, times=None)
        with pytest.raises(ExportTimeoutError) as info:
            await babou.wait_for_export(pid, timeout=0.5)
    assert isinstance(info.value.__cause__, TransportError)


async def test_start_export_after_ambiguous_failure_adopts_the_running_export(
    fake: FakeBabou, babou: BabouSession
) -> None:
    """A start whose answer was lost is not resent while a look finds the export running."""
    pid = fake.seed_project()
    # The first request is processed by the server, but the client sees a dropped connection
    # and retries: emulate with a 500 after the real start went through.
    await babou.start_export(pid)
    fake.inject("POST", f"/projects/{pid}/export", status=502)
    exported = await babou.start_export(pid)
    assert exported.status in (ExportStatus.QUEUED, ExportStatus.PROCESSING)
    assert len(fake.find_requests(method="POST", path=f"/api/v1/projects/{pid}/export")) == 2
    assert len(fake.find_requests(method="GET", path=f"/api/v1/projects/{pid}/export")) == 1
    assert 1 == fake.renders(pid)


async def test_estimate_spaces_out_early_polls(fake: FakeBabou) -> None:
    """With an estimate, given or remembered from start_export, no polls before it is due."""
    fake.export_queued_seconds = 0.1
    fake.export_processing_seconds = 1.0
    pid = fake.seed_project()
    policy = PollPolicy(initial_delay=0.05, multiplier=1.0, max_delay=5, jitter=0)
    async with BabouSession(fake.api_key, base_url=fake.base_url, poll=policy) as babou:
        await babou.start_export(pid)
        await babou.wait_for_export(pid, timeout=10, estimate=(1.0, 2.0))
        with_estimate = export_polls(fake, pid)
        pid2, pid3 = fake.seed_project(), fake.seed_project()
        await babou.start_export(pid2)
        await babou.wait_for_export(pid2, timeout=10)  # the estimate start_export gave
        remembered = export_polls(fake, pid2)
        await babou.start_export(pid3)
        blind = attrs.evolve(policy, use_estimate=False)
        await babou.wait_for_export(pid3, timeout=10, poll=blind)
        without = export_polls(fake, pid3)
    # Without an estimate the 50 ms cadence needs ~20 polls; with one, a handful.
    assert with_estimate <= 5
    assert remembered <= 5
    assert without >= 10


async def test_thousands_of_watches_in_one_session(fake: FakeBabou) -> None:
    """A thousand concurrent watches complete in one process and one session."""
    fake.export_queued_seconds = 0.05
    fake.export_processing_seconds = 0.2
    ids = [fake.seed_project(f"P{i}") for i in range(1000)]
    async with BabouSession(
        fake.api_key,
        base_url=fake.base_url,
        poll=PollPolicy(initial_delay=0.3, max_delay=1.0),
    ) as babou:
        finals: list[ExportStatus] = []

        async def one(pid: str) -> None:
            await babou.start_export(pid)
            finals.append((await babou.wait_for_export(pid, timeout=60)).status)

        async with anyio.create_task_group() as tg:
            for pid in ids:
                tg.start_soon(one, pid)
    assert [ExportStatus.COMPLETED] * 1000 == finals


async def test_watch_export_checks_its_arguments_at_the_call(
    fake: FakeBabou, babou: BabouSession
) -> None:
    """A bad argument fails the call itself, before any iteration and any request."""
    before = len(fake.requests)
    with pytest.raises(ValidationError):
        babou.watch_export("not a project id")
    with pytest.raises(ValidationError):
        babou.watch_export("prj_x", poll={})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        babou.watch_export("prj_x", estimate=(5.0, 1.0))
    assert len(fake.requests) == before


async def test_a_busy_consumer_is_never_cut_by_the_watch_deadline(
    fake: FakeBabou, babou: BabouSession
) -> None:
    """The deadline cuts a look, never the caller's own work between two iterations."""
    fake.export_processing_seconds = 60
    pid = fake.seed_project()
    await babou.start_export(pid)
    watch = babou.watch_export(pid, timeout=0.3)
    async with aclosing(watch):
        first = await anext(watch)
        assert not first.is_terminal
        await anyio.sleep(0.6)  # past the deadline, in the caller's code: not cancelled
        with anyio.fail_after(5), pytest.raises(ExportTimeoutError):
            async for _ in watch:  # the last look may still report a change, then it ends
                pass


async def test_a_hung_look_is_cut_at_the_deadline(fake: FakeBabou, babou: BabouSession) -> None:
    """A status request that never answers ends at the deadline, as ExportTimeoutError."""
    pid = fake.seed_project()
    await babou.start_export(pid)
    fake.inject("GET", f"/projects/{pid}/export", status=200, json={"status": "queued"}, delay=30)
    with anyio.fail_after(5), pytest.raises(ExportTimeoutError):
        async for _ in babou.watch_export(pid, timeout=0.3):
            pass
