"""Downloads against FakeBabou's asset origin: atomic, resumable, never clobbering."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio
import pytest

from babou_async import (
    BabouSession,
    DownloadError,
    DownloadResult,
    ExportFailedError,
    ExportNotReadyError,
)
from babou_async.testing import FakeBabou, Faults

from ..support import fast_retry

pytestmark = pytest.mark.anyio

FAST_RETRY = fast_retry(6)
SIZE = 3 * 1024 * 1024 + 17


VIDEO_SIZE = SIZE


async def completed(fake: FakeBabou, babou: BabouSession, name: str = "P") -> str:
    pid = fake.seed_project(name)
    await babou.start_export(pid)
    await babou.wait_for_export(pid, timeout=10)
    return pid


async def listing(path: Path) -> list[str]:
    return sorted([p.name async for p in anyio.Path(path).iterdir()])


async def sha256(path: Path | None) -> str:
    assert path is not None
    return hashlib.sha256(await anyio.Path(path).read_bytes()).hexdigest()


async def test_download_to_directory_is_byte_identical(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """A directory destination gets <project_id>.mp4, identical to the server's bytes."""
    pid = await completed(fake, babou)
    progress: list[tuple[str, int, int | None]] = []
    result = await babou.download_export(pid, tmp_path, progress=lambda *a: progress.append(a))
    assert result.ok
    assert not result.skipped
    assert result.error is None
    assert tmp_path / f"{pid}.mp4" == result.path
    assert SIZE == result.bytes
    assert fake.video_sha256(pid) == await sha256(result.path)
    assert [f"{pid}.mp4"] == await listing(tmp_path)
    assert (pid, SIZE, SIZE) == progress[-1]
    assert [p[1] for p in progress] == sorted(p[1] for p in progress)


async def test_download_to_file_path_creates_parents(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """A file destination is used as given, its parent directories created."""
    pid = await completed(fake, babou)
    dest = tmp_path / "a" / "b" / "video.mp4"
    result = await babou.download_export(pid, dest)
    assert dest == result.path
    assert fake.video_sha256(pid) == await sha256(dest)


async def test_no_authorization_reaches_the_asset_origin(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """The API key goes to the API origin only."""
    pid = await completed(fake, babou)
    await babou.download_export(pid, tmp_path)
    asset_requests = fake.find_requests(origin="asset")
    assert asset_requests
    assert all("authorization" not in {k.lower() for k in r.headers} for r in asset_requests)
    assert all(
        r.headers.get("Authorization") == f"Bearer {fake.api_key}"
        for r in fake.find_requests(origin="api")
    )


async def test_resume_after_drops_is_byte_identical(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """Dropped connections resume with Range + If-Range and the file is identical."""
    pid = await completed(fake, babou)
    fake.faults = Faults(drop_rate=0.8)
    result = await babou.download_export(pid, tmp_path)
    assert fake.video_sha256(pid) == await sha256(result.path)
    asset = fake.find_requests(origin="asset")
    ranged = [r for r in asset if "Range" in r.headers]
    assert ranged, "expected at least one resumed request"
    assert all(r.headers.get("If-Range") == fake.video_etag(pid) for r in ranged)


async def test_server_ignoring_range_restarts_cleanly(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """When Range is ignored the download starts over and still ends identical."""
    pid = await completed(fake, babou)
    fake.faults = Faults(drop_rate=0.5, ignore_range=True)
    result = await babou.download_export(pid, tmp_path)
    assert fake.video_sha256(pid) == await sha256(result.path)


@pytest.mark.parametrize("status", [403, 404, 410])
async def test_expired_url_is_refreshed(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path, status: int
) -> None:
    """An expired download URL is replaced with a fresh one from get_export."""
    pid = await completed(fake, babou)
    fake.faults = Faults(expired_status=status)
    fake.url_ttl = 0.0
    export = await babou.get_export(pid)
    await anyio.sleep(0.01)
    fake.url_ttl = 60.0
    from babou_async._download import download_export

    result = await download_export(babou._rt, pid, tmp_path, export=export)
    assert fake.video_sha256(pid) == await sha256(result.path)
    statuses = [r.path for r in fake.find_requests(origin="asset")]
    assert len(statuses) == 2


async def test_urls_that_never_work_give_up(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """A URL refused after every refresh ends in DownloadError, leaving nothing behind."""
    pid = await completed(fake, babou)
    fake.inject("GET", "/exports/*", origin="asset", status=410, times=None)
    with pytest.raises(DownloadError) as info:
        await babou.download_export(pid, tmp_path)
    assert info.value.project_id == pid
    assert [] == await listing(tmp_path)


async def test_existing_complete_file_is_skipped(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """A complete file at the destination is skipped; overwrite=True downloads again."""
    pid = await completed(fake, babou)
    first = await babou.download_export(pid, tmp_path)
    again = await babou.download_export(pid, tmp_path)
    assert again.skipped
    assert again.ok
    assert SIZE == again.bytes
    forced = await babou.download_export(pid, tmp_path, overwrite=True)
    assert not forced.skipped
    assert first.path == forced.path
    assert [f"{pid}.mp4"] == await listing(tmp_path)


async def test_existing_different_file_is_never_clobbered(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """A different file at the destination is an error and is left untouched."""
    pid = await completed(fake, babou)
    dest = tmp_path / f"{pid}.mp4"
    await anyio.Path(dest).write_bytes(b"precious")
    with pytest.raises(DownloadError, match="overwrite=True"):
        await babou.download_export(pid, tmp_path)
    assert b"precious" == await anyio.Path(dest).read_bytes()
    assert [dest.name] == await listing(tmp_path)


async def test_not_ready_and_failed_exports(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """Downloading an unfinished export or a failed one raises the matching error."""
    fake.export_processing_seconds = 60
    pid = fake.seed_project()
    await babou.start_export(pid)
    with pytest.raises(ExportNotReadyError) as info:
        await babou.download_export(pid, tmp_path)
    assert info.value.status in ("queued", "processing")
    failed = fake.seed_project()
    fake.faults = Faults(fail_exports={failed})
    fake.export_processing_seconds = 0.05
    await babou.start_export(failed)
    await anyio.sleep(0.3)
    with pytest.raises(ExportFailedError):
        await babou.download_export(failed, tmp_path)
    assert [] == await listing(tmp_path)


async def test_cancelled_download_keeps_its_partial_for_the_next_one(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """Cancelling mid-download leaves no final file; the next download resumes the partial."""
    pid = await completed(fake, babou)
    fake.faults = Faults(slow_bytes_per_second=1_000_000)
    done_at_cancel = 0

    def progress(_pid: str, done: int, _total: int | None) -> None:
        nonlocal done_at_cancel
        done_at_cancel = max(done_at_cancel, done)

    with anyio.move_on_after(1.5):
        await babou.download_export(pid, tmp_path, progress=progress)
    assert done_at_cancel > 0
    assert [f"{pid}.mp4.part", f"{pid}.mp4.part.json"] == await listing(tmp_path)
    fake.faults = Faults()
    fake.clear_requests()
    result = await babou.download_export(pid, tmp_path)
    assert fake.video_sha256(pid) == await sha256(result.path)
    assert [f"{pid}.mp4"] == await listing(tmp_path)
    (resumed,) = fake.find_requests(origin="asset")
    offset = int((resumed.header("Range") or "").removeprefix("bytes=").rstrip("-"))
    assert offset >= done_at_cancel


async def test_iter_export_bytes_streams_without_disk(fake: FakeBabou, babou: BabouSession) -> None:
    """iter_export_bytes yields the exact bytes, resuming through drops."""
    pid = await completed(fake, babou)
    fake.faults = Faults(drop_rate=0.5)
    digest = hashlib.sha256()
    async for chunk in babou.iter_export_bytes(pid):
        digest.update(chunk)
    assert fake.video_sha256(pid) == digest.hexdigest()


async def test_download_many_bounded_and_isolated(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """download_exports keeps order, bounds concurrency and isolates failures."""
    fake.export_video_size = 512 * 1024
    ids = [await completed(fake, babou, f"P{i}") for i in range(6)]
    never = fake.seed_project("never exported")
    fake.faults = Faults(slow_bytes_per_second=4_000_000)
    active = 0
    peak = 0
    started: set[str] = set()

    def progress(pid: str, done: int, total: int | None) -> None:
        nonlocal active, peak
        if pid not in started:
            started.add(pid)
            active += 1
            peak = max(peak, active)
        if total is not None and done >= total:
            active -= 1

    order = [ids[0], never, *ids[1:], ids[0]]
    results = await babou.download_exports(order, tmp_path, concurrency=2, progress=progress)
    assert order == [r.project_id for r in results]
    assert [True, False, True, True, True, True, True, True] == [r.ok for r in results]
    assert results[1].error is not None
    assert results[0] == results[-1]
    assert peak <= 2
    for pid in ids:
        assert fake.video_sha256(pid) == await sha256(tmp_path / f"{pid}.mp4")
    assert sorted(f"{pid}.mp4" for pid in ids) == await listing(tmp_path)


async def test_results_are_reported_as_they_come(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """download_exports calls on_result per download, and progress starts at 0 bytes."""
    fake.export_video_size = 64 * 1024
    ids = [await completed(fake, babou, f"P{i}") for i in range(3)]
    reported: list[str] = []
    first_progress: dict[str, int] = {}

    def progress(pid: str, done: int, _total: int | None) -> None:
        first_progress.setdefault(pid, done)

    def on_result(result: DownloadResult) -> None:
        assert result.ok
        reported.append(result.project_id)
        raise RuntimeError("a display bug must not break the batch")

    results = await babou.download_exports(ids, tmp_path, progress=progress, on_result=on_result)
    assert sorted(ids) == sorted(reported)
    assert all(r.ok for r in results)
    assert dict.fromkeys(ids, 0) == first_progress
