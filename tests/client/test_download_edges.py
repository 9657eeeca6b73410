"""Download edge cases: odd answers from the download host, the disk, and the pure helpers."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import anyio
import pytest

from babou_async import (
    BabouSession,
    DownloadError,
    ExportNotReadyError,
)
from babou_async._files import commit_sync, write_sync
from babou_async.testing import FakeBabou

from ..support import fast_retry

pytestmark = pytest.mark.anyio

FAST_RETRY = fast_retry(3)


VIDEO_SIZE = 100_000


async def completed(fake: FakeBabou, babou: BabouSession) -> str:
    pid = fake.seed_project()
    await babou.start_export(pid)
    await babou.wait_for_export(pid, timeout=10)
    return pid


async def listing(path: Path) -> list[str]:
    return sorted([p.name async for p in anyio.Path(path).iterdir()])


async def test_transient_asset_errors_are_retried(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """429 and 503 from the download host are retried, honouring Retry-After."""
    pid = await completed(fake, babou)
    fake.inject("GET", "/exports/*", origin="asset", status=503, headers={"Retry-After": "0"})
    fake.inject("GET", "/exports/*", origin="asset", status=429)
    result = await babou.download_export(pid, tmp_path)
    assert fake.video_bytes(pid) == await anyio.Path(result.path or tmp_path).read_bytes()


async def test_persistent_asset_errors_give_up(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """A download host that keeps failing ends in DownloadError after the retry budget."""
    pid = await completed(fake, babou)
    fake.inject("GET", "/exports/*", origin="asset", status=500, times=None)
    with pytest.raises(DownloadError, match="giving up after 3 attempts"):
        await babou.download_export(pid, tmp_path)
    assert [] == await listing(tmp_path)


async def test_too_long_retry_after_from_asset_host(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """A Retry-After beyond the policy's cap fails at once rather than sleeping."""
    pid = await completed(fake, babou)
    fake.inject("GET", "/exports/*", origin="asset", status=429, headers={"Retry-After": "999"})
    with pytest.raises(DownloadError, match="wait 999s"):
        await babou.download_export(pid, tmp_path)


async def test_unexpected_client_error_from_asset_host(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """A 405 from the download host is not retried."""
    pid = await completed(fake, babou)
    fake.inject("GET", "/exports/*", origin="asset", status=405, times=None)
    with pytest.raises(DownloadError, match="HTTP 405"):
        await babou.download_export(pid, tmp_path)
    assert len(fake.find_requests(origin="asset")) == 1


async def test_progress_callback_errors_are_logged_not_fatal(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A raising progress callback does not break the download."""
    pid = await completed(fake, babou)

    def progress(_pid: str, _done: int, _total: int | None) -> None:
        raise RuntimeError("display crashed")

    with caplog.at_level(logging.ERROR, logger="babou_async"):
        result = await babou.download_export(pid, tmp_path, progress=progress)
    assert result.ok
    assert "progress callback raised" in caplog.text


async def test_unusable_destination_is_a_download_error(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A destination under a regular file, or a .part that is a directory, fails cleanly."""
    pid = await completed(fake, babou)
    blocker = tmp_path / "file"
    await anyio.Path(blocker).write_bytes(b"x")
    with pytest.raises(DownloadError, match="cannot use destination"):
        await babou.download_export(pid, blocker / "sub" / "video.mp4")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("babou_async._files.Partial.open_sync", refuse)
    with pytest.raises(DownloadError, match="cannot write"):
        await babou.download_export(pid, tmp_path)
    with pytest.raises(ValueError, match="overwrite"):
        await babou.download_export(pid, tmp_path, overwrite="yes")  # type: ignore[arg-type]


def test_write_sync_truncates_on_restart() -> None:
    """Writing at an earlier position truncates what followed."""
    buf = io.BytesIO()
    write_sync(buf, 0, [b"hello ", b"world"])
    write_sync(buf, 0, [b"bye"])
    assert b"bye" == buf.getvalue()


def test_commit_never_clobbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commit refuses an existing target, with or without hard links, unless overwriting."""
    part, final = tmp_path / "v.part", tmp_path / "v.mp4"
    part.write_bytes(b"new")
    final.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        commit_sync(part, final, overwrite=False)

    def no_links(*_args: object) -> None:
        raise PermissionError("no hard links here")

    monkeypatch.setattr("os.link", no_links)
    with pytest.raises(FileExistsError):
        commit_sync(part, final, overwrite=False)
    assert b"old" == final.read_bytes()
    final.unlink()
    commit_sync(part, final, overwrite=False)
    assert (b"new", False) == (final.read_bytes(), part.exists())
    part.write_bytes(b"newer")
    commit_sync(part, final, overwrite=True)
    assert b"newer" == final.read_bytes()


async def test_completed_without_url_yet_is_polled_again(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """'completed' with a null download_url is retried until the URL is published."""
    pid = await completed(fake, babou)
    fake.inject("GET", f"/projects/{pid}/export", status=200, json={"status": "completed"}, times=2)
    result = await babou.download_export(pid, tmp_path)
    assert result.ok
    assert len(fake.find_requests(method="GET", path=f"/api/v1/projects/{pid}/export")) >= 3


async def test_url_that_never_appears_is_not_ready(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """A completed export that never gets a URL ends in ExportNotReadyError."""
    pid = await completed(fake, babou)
    fake.inject(
        "GET", f"/projects/{pid}/export", status=200, json={"status": "completed"}, times=None
    )
    with pytest.raises(ExportNotReadyError, match="no download_url"):
        await babou.download_export(pid, tmp_path)


async def test_relative_download_url_is_resolved(
    fake: FakeBabou, babou: BabouSession, tmp_path: Path
) -> None:
    """A relative download URL is resolved against the API origin; still no key is sent."""
    pid = await completed(fake, babou)
    absolute = fake.download_url(pid)
    relative = absolute.split("://", 1)[1].split("/", 1)[1]
    fake.inject(
        "GET",
        f"/projects/{pid}/export",
        status=200,
        json={"status": "completed", "download_url": "/" + relative},
    )
    fake.inject("GET", "/" + relative.split("?")[0], status=307, headers={"Location": absolute})
    result = await babou.download_export(pid, tmp_path)
    assert fake.video_bytes(pid) == await anyio.Path(result.path or tmp_path).read_bytes()
    redirected = [r for r in fake.find_requests(origin="api") if r.path.startswith("/exports/")]
    assert redirected
    assert all(r.header("Authorization") is None for r in redirected)


async def test_start_export_tolerates_a_bare_answer(fake: FakeBabou, babou: BabouSession) -> None:
    """A 202 with an empty body, or no status, still means the export started."""
    pid = fake.seed_project()
    fake.inject("POST", f"/projects/{pid}/export", status=202, body=b"")
    started = await babou.start_export(pid)
    assert ("queued", None) == (started.status_raw, started.message)
    fake.inject("POST", f"/projects/{pid}/export", status=200, json={"message": "ok"})
    assert "queued" == (await babou.start_export(pid)).status_raw
