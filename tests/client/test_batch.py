"""export_many: the pipelined batch, against FakeBabou with faults."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from babou_async import (
    BabouSession,
    ExportEvent,
    ExportFailedError,
    ExportStatus,
    ExportTimeoutError,
    NotFoundError,
    ValidationError,
)
from babou_async.testing import FakeBabou, Faults

from ..support import fast_retry

pytestmark = pytest.mark.anyio

FAST_RETRY = fast_retry(6)


VIDEO_SIZE = 200 * 1024


async def listing(path: Path) -> list[str]:
    return sorted([p.name async for p in anyio.Path(path).iterdir()])


async def test_mixed_batch_isolates_failures(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """Completed exports are saved byte-identical; failures are reported, not raised."""
    good = [fake.seed_project(f"G{i}") for i in range(8)]
    bad_render = fake.seed_project("bad")
    fake.prompt_seconds = 600  # its prompt stays in flight for the whole test
    not_ready = fake.seed_project("unready", ready=False)
    fake.faults = Faults(
        fail_exports={bad_render}, drop_rate=0.2, rate_limit_rate=0.05, retry_after=0
    )
    order = [good[0], bad_render, "prj_missing", not_ready, *good[1:], good[0]]
    events: list[ExportEvent] = []
    results = await babou.export_many(order, tmp_path, concurrency=4, progress=events.append)
    assert order == [r.project_id for r in results]
    by_id = {r.project_id: r for r in results}
    for pid in good:
        result = by_id[pid]
        assert result.ok, result.error
        assert result.status is ExportStatus.COMPLETED
        assert result.path == tmp_path / f"{pid}.mp4"
        digest = hashlib.sha256(await anyio.Path(result.path).read_bytes()).hexdigest()
        assert fake.video_sha256(pid) == digest
        assert result.started_at is not None
        assert result.completed_at is not None
        assert result.downloaded_at is not None
        assert result.started_at <= result.completed_at <= result.downloaded_at
    assert isinstance(by_id[bad_render].error, ExportFailedError)
    assert by_id[bad_render].status is ExportStatus.FAILED
    assert isinstance(by_id["prj_missing"].error, NotFoundError)
    assert isinstance(by_id[not_ready].error, ValidationError)
    assert results[0] is results[-1]
    assert [".babou-journal.sqlite3", *sorted(f"{pid}.mp4" for pid in good)] == await listing(
        tmp_path
    )
    done = [e for e in events if e.kind == "done"]
    assert len(done) == len(set(order))
    assert any(e.kind == "status" for e in events)
    assert any(e.kind == "download" for e in events)


async def test_downloads_start_before_the_last_export_completes(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """Pipelining: the first download begins while later exports are still running."""
    fast = fake.seed_project("fast")
    slow = fake.seed_project("slow")
    timeline: list[tuple[str, str]] = []

    def progress(event: ExportEvent) -> None:
        if event.kind == "download" and (event.project_id, "download") not in timeline:
            timeline.append((event.project_id, "download"))
        if event.kind == "status" and event.status is ExportStatus.COMPLETED:
            timeline.append((event.project_id, "completed"))

    await babou.start_export(fast)
    await anyio.sleep(0.3)  # the fast one is done by now; the slow one starts now
    fake.export_processing_seconds = 1.0
    await babou.start_export(slow)
    results = await babou.export_many([fast, slow], tmp_path, start=False, progress=progress)
    assert [True, True] == [r.ok for r in results]
    assert timeline.index((fast, "download")) < timeline.index((slow, "completed"))


async def test_rerun_only_does_what_is_left(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """A second run skips projects whose video is already on disk, without any request."""
    ids = [fake.seed_project(f"P{i}") for i in range(3)]
    first = await babou.export_many(ids, tmp_path)
    assert all(r.ok and not r.skipped for r in first)
    fake.clear_requests()
    extra = fake.seed_project("new")
    second = await babou.export_many([*ids, extra], tmp_path)
    assert [True, True, True, False] == [r.skipped for r in second]
    assert all(r.ok for r in second)
    touched = {
        r.path.split("/")[4] for r in fake.find_requests(origin="api") if r.path.count("/") >= 4
    }
    assert {extra} == touched


async def test_conflict_means_follow_the_running_export(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """An export already in progress (409) is followed instead of failing."""
    pid = fake.seed_project()
    await babou.start_export(pid)
    [result] = await babou.export_many([pid], tmp_path)
    assert result.ok


async def test_timeout_is_per_project(fake: FakeBabou, babou: BabouSession, tmp_path: Path) -> None:
    """A project that outlives the timeout is reported with ExportTimeoutError."""
    fake.export_processing_seconds = 60
    pid = fake.seed_project()
    [result] = await babou.export_many([pid], tmp_path, timeout=0.3)
    assert isinstance(result.error, ExportTimeoutError)
    assert not result.ok


async def test_cancelling_the_batch_leaves_no_part_files(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """Cancelling mid-batch stops everything: no final file half-written, partials resumable."""
    fake.export_video_size = 4 * 1024 * 1024
    fake.faults = Faults(slow_bytes_per_second=2_000_000)
    ids = [fake.seed_project(f"P{i}") for i in range(4)]
    downloading = anyio.Event()

    def progress(event: ExportEvent) -> None:
        if event.kind == "download" and event.bytes_done > 0:
            downloading.set()

    async with anyio.create_task_group() as tg:

        async def run() -> None:
            await babou.export_many(ids, tmp_path, progress=progress)

        tg.start_soon(run)
        with anyio.fail_after(10):
            await downloading.wait()
        tg.cancel_scope.cancel()
    names = await listing(tmp_path)
    assert [n for n in names if n.endswith(".part")]  # kept for the next run to resume
    finals = [n for n in names if n.endswith(".mp4")]
    for name in finals:  # anything at a final path is a whole video
        data = await anyio.Path(tmp_path / name).read_bytes()
        assert fake.video_bytes(name.removesuffix(".mp4")) == data
    assert all(n.endswith((".mp4", ".part", ".part.json", ".sqlite3")) for n in names)
    again = await babou.export_many(ids, tmp_path)
    assert all(r.ok for r in again)
    assert sorted([*(f"{pid}.mp4" for pid in ids), ".babou-journal.sqlite3"]) == await listing(
        tmp_path
    )


async def test_large_input_uses_bounded_tasks(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """Thousands of IDs (none exists here) are processed with a bounded number of tasks."""
    peak_tasks = 0
    import asyncio

    def ids() -> Iterator[str]:
        nonlocal peak_tasks
        for i in range(2_000):
            peak_tasks = max(peak_tasks, len(asyncio.all_tasks()))
            yield f"prj_missing{i}"

    results = await babou.export_many(ids(), tmp_path, concurrency=8, download_concurrency=2)
    assert len(results) == 2_000
    assert all(isinstance(r.error, NotFoundError) for r in results)
    assert peak_tasks < 30


async def test_bad_arguments(babou: BabouSession, tmp_path: Path) -> None:
    """Nonsense limits are refused before any work."""
    with pytest.raises(ValidationError):
        await babou.export_many([], tmp_path, concurrency=0)
    with pytest.raises(ValidationError):
        await babou.export_many([], tmp_path, download_concurrency=-1)
    assert [] == await babou.export_many([], tmp_path)


async def test_failing_input_iterable_raises_its_own_error(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """An error from the caller's ID source is re-raised as itself, not an ExceptionGroup."""
    pid = fake.seed_project()

    async def ids() -> AsyncIterator[str]:
        yield pid
        raise OSError("input file vanished")

    with pytest.raises(OSError, match="input file vanished"):
        await babou.export_many(ids(), tmp_path)


async def test_a_bad_id_in_a_list_is_refused_before_any_request(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """A list is checked in full first: its bad item (even an unhashable one) sends nothing."""
    pid = fake.seed_project()
    for bad in (5, ["prj_abc"], "nope"):
        fake.clear_requests()
        with pytest.raises(ValidationError, match=r"project_ids\[1\]"):
            await babou.export_many([pid, bad], tmp_path)  # type: ignore[list-item]
        assert [] == fake.requests


async def test_a_bad_id_in_a_lazy_source_stops_the_reading(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """A generator's bad item ends the batch like a failing source: the IDs before it finish."""
    pid = fake.seed_project()

    async def ids() -> AsyncIterator[object]:
        yield pid
        yield {"id": "prj_abc"}  # unhashable: a ValidationError, never a raw TypeError

    with pytest.raises(ValidationError, match=r"project_ids\[1\]"):
        await babou.export_many(ids(), tmp_path)  # type: ignore[arg-type]
    assert await anyio.Path(tmp_path / f"{pid}.mp4").exists()
    again = await babou.export_many([pid], tmp_path)
    assert [True] == [r.ok and r.skipped for r in again]
