"""
The real client against :mod:`tests.independent_sim`, a second reading of Babou's docs.

Every test runs :class:`babou_async.BabouSession` over loopback against a simulator written
only from ``shared/babou-api.md`` (never from ``babou_async.testing``), which takes the less
obvious reading of each ambiguity: 200 on creates, a bare-list ``GET /projects``, nested
error envelopes, ``"completed"`` chapters, ``"failed"`` assets, HTTP-date ``Retry-After``,
HTML 502s, weak ETags, expiring download URLs on another origin, and so on.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from babou_async import (
    AssetState,
    AuthenticationError,
    BabouSession,
    ChapterStatus,
    ConflictError,
    ExportEvent,
    ExportFailedError,
    ExportNotReadyError,
    ExportStatus,
    ExportTimeoutError,
    NotFoundError,
    PayloadTooLargeError,
    PollPolicy,
    PromptStatus,
    RateLimit,
    RateLimitError,
    RetryPolicy,
    ServerError,
    Timeouts,
    TransportError,
    ValidationError,
)

from ..support import fast_retry
from .independent_sim import Faults, IndependentBabou

pytestmark = pytest.mark.anyio

FAST_POLL = PollPolicy(initial_delay=0.02, max_delay=0.2)
FAST_RETRY = fast_retry(6, base_delay=0.01, max_delay=0.05)


def _session(sim: IndependentBabou, **kwargs: Any) -> BabouSession:
    options: dict[str, Any] = {
        "base_url": sim.base_url,
        "retry": FAST_RETRY,
        "poll": FAST_POLL,
        "rate_limit": RateLimit.unlimited(),
        "timeout": 10.0,
    }
    options.update(kwargs)
    return BabouSession(options.pop("api_key", sim.api_key), **options)


def _assert_no_key_at_asset_origin(sim: IndependentBabou) -> None:
    for record in sim.asset_requests():
        assert "authorization" not in record.headers, record
        assert sim.api_key not in str(record.headers)


async def _part_files(directory: Path) -> list[str]:
    return [p.name async for p in anyio.Path(directory).rglob("*.part")]


async def _names(directory: Path) -> list[str]:
    return sorted([p.name async for p in anyio.Path(directory).iterdir()])


async def _read(path: Path | None) -> bytes:
    assert path is not None
    return await anyio.Path(path).read_bytes()


# -- projects -------------------------------------------------------------------------


async def test_projects_create_get_and_bare_list() -> None:
    """A 200 create gives the full typed project, sent with the key; get and the bare list agree."""
    async with IndependentBabou(seed=1) as sim, _session(sim) as babou:
        project = await babou.create_project(
            "Launch video", description="First cut", settings={"aspect": "16:9"}
        )
        assert project.id.startswith("prj_")
        assert project.name == "Launch video"
        assert project.description == "First cut"
        assert project.settings == {"aspect": "16:9"}
        assert project.active_export_id is None
        assert project.created_at is not None
        assert project.created_at.tzinfo is not None

        (post,) = sim.api_requests("POST", r"/projects$")
        assert post.status == 200  # not 201
        assert post.headers["authorization"] == f"Bearer {sim.api_key}"
        assert post.headers["content-type"].startswith("application/json")

        assert await babou.get_project(project.id) == project
        listed = await babou.list_projects()
        assert [p.id for p in listed] == [project.id]


async def test_list_projects_bare_list_follows_limit_and_offset() -> None:
    """A bare-list listing that honours limit/offset is followed page by page, in order."""
    # The list-projects page is missing from the docs. This server answers a bare JSON list
    # but honours limit/offset like the assets list: a full page means "ask for more".
    async with IndependentBabou(seed=2) as sim, _session(sim) as babou:
        ids = [sim.add_project(f"P{i}") for i in range(5)]
        listed = await babou.list_projects(page_size=2)
        assert [p.id for p in listed] == ids


async def test_list_projects_bare_list_ignoring_limit() -> None:
    """A bare list ignoring limit ends after at most two requests, without duplicates."""
    # The other bare-list reading: everything at once, limit/offset ignored.
    async with IndependentBabou(seed=25, projects_shape="list-all") as sim, _session(sim) as babou:
        ids = [sim.add_project(f"P{i}") for i in range(5)]
        listed = await babou.list_projects(page_size=2)
        assert [p.id for p in listed] == ids  # no duplicates, no endless paging
        assert len(sim.api_requests("GET", r"/projects$")) <= 2


async def test_list_projects_envelope_paginates() -> None:
    """An envelope listing is followed by its pagination totals: three pages, every ID once."""
    async with IndependentBabou(seed=3, projects_shape="envelope") as sim, _session(sim) as babou:
        ids = [sim.add_project(f"P{i}") for i in range(5)]
        pager = babou.list_projects(page_size=2)
        assert [p.id async for p in pager] == ids
        assert pager.pages_fetched == 3
        offsets = [r.query["offset"] for r in sim.api_requests("GET", r"/projects$")]
        assert offsets == ["0", "2", "4"]


# -- chapters and prompts ---------------------------------------------------------------


async def test_chapters_prompts_and_wait_for_chapter() -> None:
    """Durations, nested 409s and forced prompts are read; ready, completed and error end a wait."""
    async with IndependentBabou(seed=4, prompt_seconds=0.1) as sim, _session(sim) as babou:
        pid = (await babou.create_project("Chapters")).id
        names = ["Intro", "Middle", "Climax", "Outro"]
        chapters = [await babou.create_chapter(pid, names[0])]
        chapters += [await babou.create_chapter(pid, n, duration=15) for n in names[1:]]
        assert chapters[0].duration is None  # the key is absent when no duration was given
        assert chapters[1].duration == 15
        assert all(c.project_id == pid and c.id.startswith("cht_") for c in chapters)

        listed = await babou.list_chapters(pid)
        assert [c.id for c in listed] == [c.id for c in chapters]
        assert [c.prompt_count for c in listed] == [0, 0, 0, 0]

        first = await babou.submit_prompt(pid, chapters[0].id, "A sunrise over the bay")
        assert first.prompt_id.startswith("int_")
        assert first.status is PromptStatus.PROCESSING
        assert first.estimated_time == "0.1\u20130.3 seconds"
        assert first.estimated_seconds == pytest.approx((0.1, 0.3))

        with pytest.raises(ConflictError) as conflict:  # nested envelope
            await babou.submit_prompt(pid, chapters[0].id, "Something else")
        assert conflict.value.status == 409
        assert conflict.value.code == "CONFLICT"
        assert conflict.value.message == "A prompt is already being processed for this chapter"
        assert "force" in (conflict.value.hint or "")

        forced = await babou.submit_prompt(pid, chapters[0].id, "A sunset instead", force=True)
        for chapter in chapters[1:]:
            await babou.submit_prompt(pid, chapter.id, f"Scene for {chapter.name}")

        raw_words = set()
        for chapter in chapters:
            done = await babou.wait_for_chapter(pid, chapter.id, timeout=5)
            assert done.status is ChapterStatus.READY, done
            assert all(p.is_done for p in done.prompts)
            raw_words.add(done.status_raw)
        assert raw_words == {"ready", "completed"}  # both spellings were met and understood

        intro = await babou.get_chapter(pid, chapters[0].id)
        assert [p.id for p in intro.prompts] == [first.prompt_id, forced.prompt_id]
        assert intro.prompts[1].result is not None
        assert intro.prompt_count == 2

        # A prompt that fails puts its chapter in "error", which ends the wait too.
        await babou.submit_prompt(pid, chapters[1].id, "FAIL_PROMPT please")
        failed = await babou.wait_for_chapter(pid, chapters[1].id, timeout=5)
        assert failed.status is ChapterStatus.ERROR


async def test_server_side_validation_errors_are_not_retried() -> None:
    """Bad input is refused before sending; the server's own 400s are raised, not retried."""
    async with IndependentBabou(seed=5) as sim, _session(sim) as babou:
        with pytest.raises(ValidationError) as local:
            await babou.create_project("x" * 31)
        assert local.value.status is None
        assert sim.requests == []  # caught before sending

        # 20 emoji are 20 characters to Python but 40 UTF-16 code units to a JS server.
        with pytest.raises(ValidationError) as remote:
            await babou.create_project("\U0001f3ac" * 20)
        assert remote.value.status == 400
        assert remote.value.code == "VALIDATION_ERROR"
        assert remote.value.hint == "Name must be between 1 and 30 characters"
        assert len(sim.api_requests("POST")) == 1

        empty = sim.add_project("Empty", chapters=0)
        busy = sim.add_project("Busy", chapters=1, ready=False)
        for pid in (empty, busy):
            with pytest.raises(ValidationError) as info:
                await babou.start_export(pid)
            assert info.value.message == "Project has no completed chapters"
            assert info.value.hint == "Add chapters and submit prompts before exporting"


# -- errors -------------------------------------------------------------------------------


async def test_not_found_errors_flat_and_nested() -> None:
    """Flat and nested 404s are final NotFoundErrors; another key's projects are invisible."""
    other = "sk-bab-someoneelse000000000"
    async with IndependentBabou(seed=6, other_keys=(other,)) as sim, _session(sim) as babou:
        pid = sim.add_project("Mine")
        with pytest.raises(NotFoundError) as flat:
            await babou.get_project("prj_doesnotexist")
        assert (flat.value.status, flat.value.code) == (404, "NOT_FOUND")
        assert flat.value.message == "Project not found"
        assert len(sim.api_requests("GET")) == 1  # a 404 is final

        with pytest.raises(NotFoundError) as nested:
            await babou.get_chapter(pid, "cht_doesnotexist")
        assert (nested.value.code, nested.value.message) == ("NOT_FOUND", "Chapter not found")

        with pytest.raises(NotFoundError) as asset:
            await babou.get_asset("ast_doesnotexist0000000000")
        assert (asset.value.code, asset.value.message) == ("NOT_FOUND", "Asset not found")

        with pytest.raises(NotFoundError) as no_export:
            await babou.get_export(pid)
        assert no_export.value.message == "No export found for this project"
        assert (no_export.value.hint or "").startswith("Start an export first")
        with pytest.raises(NotFoundError):
            await babou.wait_for_export(pid, timeout=2)

        with pytest.raises(NotFoundError):
            await babou.create_chapter("prj_doesnotexist", "Intro")

        async with _session(sim, api_key=other) as stranger:
            with pytest.raises(NotFoundError):  # not visible to another key
                await stranger.get_project(pid)
            assert await stranger.list_projects() == []


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("sk-live-notababoukey", "INVALID_API_KEY_FORMAT"),
        ("sk-bab-unknownkey000000000", "UNAUTHORIZED"),
        ("sk-bab-expiredkey000000000", "API_KEY_EXPIRED"),
    ],
)
async def test_authentication_errors(key: str, code: str) -> None:
    """Each 401 code becomes AuthenticationError, and the key appears in no message."""
    async with (
        IndependentBabou(seed=7, expired_keys=("sk-bab-expiredkey000000000",)) as sim,
        _session(sim, api_key=key) as babou,
    ):
        with pytest.raises(AuthenticationError) as info:
            await babou.list_projects()
        assert (info.value.status, info.value.code) == (401, code)
        assert key not in str(info.value)
        assert len(sim.requests) == 1


# -- assets ---------------------------------------------------------------------------------


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]
        await anyio.lowlevel.checkpoint()


async def test_upload_from_bytes_path_and_iterator(tmp_path: Path) -> None:
    """Bytes, path and iterator uploads arrive intact and typed; a 'failed' asset is ERROR."""
    async with IndependentBabou(seed=8, asset_seconds=0.1) as sim, _session(sim) as babou:
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
        image = await babou.upload_asset(png, content_type="image/png")
        assert image.id.startswith("ast_")
        assert image.state is AssetState.PROCESSING
        assert image.url is None
        assert image.size == len(png)

        clip = tmp_path / "clip.mp4"
        mp4 = bytes(reversed(range(256))) * 3000  # 768 KB: several upload chunks
        await anyio.Path(clip).write_bytes(mp4)
        video = await babou.upload_asset(clip)
        assert video.content_type == "video/mp4"  # guessed from the extension

        mp3 = b"ID3" + bytes(100_000)
        audio = await babou.upload_asset(_chunks(mp3, 7_000), content_type="audio/mpeg")

        broken = await babou.upload_asset(b"BROKEN image", content_type="image/jpeg")

        assert sim.uploads[image.id] == png
        assert sim.uploads[video.id] == mp4
        assert sim.uploads[audio.id] == mp3
        posts = sim.api_requests("POST", r"/assets$")
        assert [r.headers["content-type"] for r in posts] == [
            "image/png",
            "video/mp4",
            "audio/mpeg",
            "image/jpeg",
        ]
        assert posts[1].headers.get("content-length") == str(len(mp4))

        ready_image = await babou.wait_for_asset(image.id, timeout=5)
        assert ready_image.state is AssetState.READY
        assert (ready_image.width, ready_image.height, ready_image.duration) == (640, 480, None)
        assert ready_image.url == f"s3://babou-assets/assets/{image.id}-original"
        ready_video = await babou.wait_for_asset(video.id, timeout=5)
        assert ready_video.duration == 12.5
        ready_audio = await babou.wait_for_asset(audio.id, timeout=5)
        assert (ready_audio.width, ready_audio.duration) == (None, 12.5)

        failed = await babou.wait_for_asset(broken.id, timeout=5)  # "failed", not "error"
        assert failed.state is AssetState.ERROR
        assert failed.state_raw == "failed"


async def test_uploads_are_replayed_identically_after_429(tmp_path: Path) -> None:
    """After a 429, path and bytes uploads are resent byte for byte."""
    async with IndependentBabou(seed=29) as sim, _session(sim) as babou:
        clip = tmp_path / "clip.webm"
        data = bytes(range(256)) * 2000
        await anyio.Path(clip).write_bytes(data)
        sim.inject("429:0", method="POST", path="/assets$")
        from_path = await babou.upload_asset(clip)
        sim.inject("429-date:0", method="POST", path="/assets$")
        from_bytes = await babou.upload_asset(data, content_type="video/webm")
        assert sim.uploads[from_path.id] == data
        assert sim.uploads[from_bytes.id] == data
        assert [r.status for r in sim.api_requests("POST", "/assets$")] == [429, 200, 429, 200]
        assert len(sim.assets) == 2


async def test_streamed_upload_with_size_sends_content_length() -> None:
    """A streamed upload whose size is given is sent with that Content-Length."""
    # Some gateways refuse chunked uploads (411): a size given up front avoids them.
    async with IndependentBabou(seed=30, require_length=True) as sim, _session(sim) as babou:
        data = bytes(300_000)
        asset = await babou.upload_asset(
            _chunks(data, 65536), content_type="audio/ogg", size=len(data)
        )
        assert sim.uploads[asset.id] == data
        (post,) = sim.api_requests("POST", "/assets$")
        assert post.headers.get("content-length") == str(len(data))


async def test_uuid_asset_ids() -> None:
    """Asset IDs in UUID form (as one docs page says) are accepted everywhere."""
    async with IndependentBabou(seed=9, asset_ids="uuid") as sim, _session(sim) as babou:
        asset = await babou.upload_asset(b"GIF89a", content_type="image/gif")
        assert len(asset.id) == 36
        assert asset.id.count("-") == 4
        assert (await babou.wait_for_asset(asset.id, timeout=5)).state is AssetState.READY
        assert sim.api_requests("GET", "/assets/")[-1].path.endswith(asset.id)


async def test_upload_errors() -> None:
    """413 FILE_TOO_LARGE and 500 UPLOAD_FAILED become their exception classes, with the code."""
    async with IndependentBabou(seed=10, max_upload_bytes=1000) as sim, _session(sim) as babou:
        with pytest.raises(PayloadTooLargeError) as too_big:
            await babou.upload_asset(bytes(2000), content_type="video/webm")
        assert (too_big.value.status, too_big.value.code) == (413, "FILE_TOO_LARGE")

        with pytest.raises(ServerError) as storage:
            await babou.upload_asset(b"UPLOAD_FAIL", content_type="audio/wav")
        assert (storage.value.status, storage.value.code) == (500, "UPLOAD_FAILED")
        assert len(sim.api_requests("POST", "/assets")) == 2  # neither was resent


async def test_streamed_upload_over_the_limit_gets_413() -> None:
    """A streamed upload the server finds too large ends in PayloadTooLargeError."""
    # Without a known size the server only finds out mid-stream, and answers 413 early.
    async with IndependentBabou(seed=26, max_upload_bytes=50_000) as sim, _session(sim) as babou:
        with pytest.raises(PayloadTooLargeError) as info:
            await babou.upload_asset(_chunks(bytes(400_000), 10_000), content_type="video/mp4")
        assert info.value.code == "FILE_TOO_LARGE"


async def test_list_assets_pagination_and_filters() -> None:
    """Asset listings follow pagination and pass the content-type and state filters."""
    async with IndependentBabou(seed=11, asset_seconds=0.05) as sim, _session(sim) as babou:
        uploaded = [
            await babou.upload_asset(b"\x89PNG" + bytes([i]), content_type="image/png")
            for i in range(5)
        ]
        uploaded += [
            await babou.upload_asset(b"ID3" + bytes([i]), content_type="audio/mpeg")
            for i in range(2)
        ]
        uploaded.append(await babou.upload_asset(b"BROKEN", content_type="image/png"))
        for asset in uploaded:
            await babou.wait_for_asset(asset.id, timeout=5)

        pager = babou.list_assets(page_size=3)
        everything = [a async for a in pager]
        assert sorted(a.id for a in everything) == sorted(a.id for a in uploaded)
        assert pager.pages_fetched == 3
        pages = sim.api_requests("GET", r"/assets$")
        assert [(r.query["limit"], r.query["offset"]) for r in pages] == [
            ("3", "0"),
            ("3", "3"),
            ("3", "6"),
        ]

        audio = await babou.list_assets(content_type="audio/mpeg", page_size=1)
        assert sorted(a.id for a in audio) == sorted(a.id for a in uploaded[5:7])
        assert sim.api_requests("GET", r"/assets$")[-1].query["contentType"] == "audio/mpeg"

        ready = await babou.list_assets(state="ready")
        assert len(ready) == 7
        for word in ("failed", "error"):
            (bad,) = await babou.list_assets(state=word)
            assert bad.id == uploaded[-1].id
            assert bad.state is AssetState.ERROR


# -- retries ------------------------------------------------------------------------------


async def test_429_retry_after_seconds_and_http_date() -> None:
    """Both Retry-After forms are waited out, a 429 create is resent once, endless 429s raise."""
    async with IndependentBabou(seed=12) as sim, _session(sim) as babou:
        pid = sim.add_project()

        sim.inject("429:1", path="/projects/")
        start = time.monotonic()
        await babou.get_project(pid)
        assert time.monotonic() - start >= 0.95  # "Retry-After: 1" was honoured
        assert [r.status for r in sim.api_requests("GET")] == [429, 200]

        sim.inject("429-date:2", path="/projects/")
        start = time.monotonic()
        await babou.get_project(pid)
        assert time.monotonic() - start >= 0.95  # an HTTP-date 1-2 s ahead
        assert sim.api_requests("GET")[-2].headers is not None
        assert [r.status for r in sim.api_requests("GET")][-2:] == [429, 200]

        # A 429 on a create was a refusal: resending it cannot duplicate anything.
        sim.inject("429-none", method="POST", path="/projects$")
        await babou.create_project("Once")
        assert [r.status for r in sim.api_requests("POST")] == [429, 200]
        assert sum(p.name == "Once" for p in sim.projects.values()) == 1

        for _ in range(6):
            sim.inject("429-none", path="/projects/")
        with pytest.raises(RateLimitError) as info:
            await babou.get_project(pid)
        assert info.value.status == 429
        assert info.value.code == "RATE_LIMIT_EXCEEDED"  # from the nested envelope


async def test_5xx_and_drops_on_reads_are_retried() -> None:
    """500, 502, 503 and dropped connections on reads are retried until the read succeeds."""
    async with IndependentBabou(seed=13) as sim, _session(sim) as babou:
        pid = sim.add_project()
        for fault in ("500", "502", "503", "drop"):
            sim.inject(fault, path="/chapters$")
        chapters = await babou.list_chapters(pid)
        assert len(chapters) == 2
        statuses = [r.status for r in sim.api_requests("GET", "/chapters$")]
        assert statuses[:3] == [500, 502, 503]
        assert statuses[-1] == 200


async def test_slow_reads_time_out_and_are_retried() -> None:
    """A read slower than the total timeout times out and is retried once, then succeeds."""
    async with IndependentBabou(seed=35) as sim, _session(sim, timeout=0.3) as babou:
        pid = sim.add_project()
        sim.inject("slow:0.6", path="/projects/")
        assert (await babou.get_project(pid)).id == pid
        assert len(sim.api_requests("GET", "/projects/")) == 2


async def test_html_502_becomes_server_error_after_retries() -> None:
    """An HTML 502 page is retried, then raised as ServerError with status 502 and no code."""
    async with IndependentBabou(seed=14) as sim, _session(sim) as babou:
        pid = sim.add_project()
        for _ in range(6):
            sim.inject("502", path="/projects/")
        with pytest.raises(ServerError) as info:
            await babou.get_project(pid)
        assert info.value.status == 502
        assert info.value.code is None
        assert "not a JSON error envelope" in info.value.message
        assert len(sim.api_requests("GET")) == FAST_RETRY.attempts


async def test_creates_are_not_resent_after_an_ambiguous_failure() -> None:
    """Creates failing ambiguously (drop, 502, timeout) raise after one send: no duplicates."""
    async with IndependentBabou(seed=15) as sim, _session(sim) as babou:
        sim.inject("drop-after", method="POST", path="/projects$")
        with pytest.raises(TransportError):
            await babou.create_project("Maybe")
        assert len(sim.api_requests("POST", "/projects$")) == 1
        assert len(sim.projects) == 1  # it did take effect: a resend would duplicate it

        pid = next(iter(sim.projects))
        sim.inject("502", method="POST", path="/chapters$")
        with pytest.raises(ServerError):
            await babou.create_chapter(pid, "Intro")
        assert len(sim.api_requests("POST", "/chapters$")) == 1

        chapter = await babou.create_chapter(pid, "Intro")
        sim.inject("drop", method="POST", path="/prompt$")
        with pytest.raises(TransportError):
            await babou.submit_prompt(pid, chapter.id, "Hello")
        assert len(sim.api_requests("POST", "/prompt$")) == 1

        sim.inject("slow:0.6", method="POST", path="/projects$")
        async with _session(sim, timeout=0.2) as impatient:
            with pytest.raises(TransportError):
                await impatient.create_project("Slow")
        assert len(sim.api_requests("POST", "/projects$")) == 2


# -- exports --------------------------------------------------------------------------------


async def test_start_export_after_ambiguous_failure_follows_the_started_export() -> None:
    """After a drop, a look finds the export the first attempt started: no second start."""
    async with IndependentBabou(seed=16) as sim, _session(sim) as babou:
        pid = sim.add_project()
        sim.inject("drop-after", method="POST", path="/export$")
        export = await babou.start_export(pid)
        assert export.status in (ExportStatus.QUEUED, ExportStatus.PROCESSING)
        assert [r.status for r in sim.api_requests("POST", "/export$")] == [None]
        assert [r.status for r in sim.api_requests("GET", "/export$")] == [200]
        done = await babou.wait_for_export(pid, timeout=5)
        assert done.status is ExportStatus.COMPLETED
        assert sim.renders(pid) == 1


async def test_a_lost_start_whose_render_finished_before_the_retry_is_not_rendered_again(
    tmp_path: Path,
) -> None:
    """The job looked first (no export): a completed one after its lost start is its own."""
    slow_retry = RetryPolicy(attempts=3, base_delay=0.4, max_delay=0.4, jitter=False)
    async with (
        IndependentBabou(seed=18, export_queued_seconds=0.0, export_processing_seconds=0.05) as sim,
        _session(sim, retry=slow_retry) as babou,
    ):
        pid = sim.add_project()
        sim.inject("drop-after", method="POST", path="/export$")
        result = await babou.export_project(pid, tmp_path, reuse="completed")  # looks first
        assert result.ok, result.error
        assert sim.renders(pid) == 1
        assert [r.status for r in sim.api_requests("POST", "/export$")] == [None]
        assert sim.video(pid) == await _read(result.path)


async def test_a_lost_start_after_a_failed_export_adopts_the_new_completed_one(
    tmp_path: Path,
) -> None:
    """A failed export before, a completed one after the lost start: ours, not restarted."""
    slow_retry = RetryPolicy(attempts=3, base_delay=0.4, max_delay=0.4, jitter=False)
    async with (
        IndependentBabou(seed=19, export_queued_seconds=0.0, export_processing_seconds=0.05) as sim,
        _session(sim, retry=slow_retry) as babou,
    ):
        pid = sim.add_project()
        sim.fail_render(pid)
        sim.put_export(pid)  # a failed export is there
        sim.failing.clear()
        sim.inject("drop-after", method="POST", path="/export$")
        result = await babou.export_project(pid, tmp_path, reuse="completed")
        assert result.ok, result.error
        assert sim.renders(pid) == 2  # the failed one and ours
        assert sim.video(pid) == await _read(result.path)


async def test_5xx_after_the_fact_on_creates_and_exports() -> None:
    """A 5xx after a create took effect is not resent; a start after a 5xx follows the export."""
    async with IndependentBabou(seed=33) as sim, _session(sim) as babou:
        sim.inject("502-after", method="POST", path="/projects$")
        with pytest.raises(ServerError):
            await babou.create_project("Proxy failed")
        assert len(sim.projects) == 1
        assert len(sim.api_requests("POST", "/projects$")) == 1

        pid = sim.add_project()
        sim.inject("503-after", method="POST", path="/export$")
        export = await babou.start_export(pid)  # a look before the resend finds it started
        assert export.status in (ExportStatus.QUEUED, ExportStatus.PROCESSING)
        assert [r.status for r in sim.api_requests("POST", "/export$")] == [503]
        assert sim.renders(pid) == 1


async def test_watch_export_transitions_under_faults() -> None:
    """Under API faults a watch yields each status once; 409 hints and durations are read."""
    faults = Faults(rate_429=0.1, rate_5xx=0.1, rate_drop=0.1)
    async with IndependentBabou(seed=17, faults=faults) as sim, _session(sim) as babou:
        pids = [sim.add_project(f"P{i}") for i in range(4)]
        for pid in pids:
            started = await babou.start_export(pid)
            assert started.status is ExportStatus.QUEUED
            assert started.message == "Export started"
            assert started.estimated_seconds == pytest.approx(
                (0.25, 0.5)
            )  # "0.25\u20130.5 seconds"

        with pytest.raises(ConflictError) as conflict:
            await babou.start_export(pids[0])
        assert conflict.value.hint == "Wait for the current export to complete or check its status"

        durations = set()
        for pid in pids:
            seen = [e async for e in babou.watch_export(pid, timeout=10)]
            statuses = [e.status for e in seen]
            assert statuses[-1] is ExportStatus.COMPLETED
            assert all(not e.is_terminal for e in seen[:-1])
            assert all(a != b for a, b in itertools.pairwise(statuses))
            order = [ExportStatus.QUEUED, ExportStatus.PROCESSING, ExportStatus.COMPLETED]
            assert statuses == sorted(statuses, key=order.index)
            final = seen[-1]
            assert final.download_url is not None
            assert final.download_url.startswith(sim.asset_base_url)
            export = sim.projects[pid].export
            assert export is not None
            assert final.duration_seconds == export.duration_seconds
            durations.add(final.duration_seconds is None)
            again = await babou.wait_for_export(pid, timeout=5)
            assert again.status is ExportStatus.COMPLETED
        assert durations == {True, False}  # with and without duration_seconds


async def test_polling_outlasts_an_outage_longer_than_the_retry_policy() -> None:
    """An outage longer than the retry policy is polled through until the export completes."""
    async with IndependentBabou(seed=31) as sim, _session(sim) as babou:
        pid = sim.add_project()
        await babou.start_export(pid)
        for fault in ["503", "502", "500", "drop"] * 4:  # 16 failures in a row
            sim.inject(fault, path="/export$")
        done = await babou.wait_for_export(pid, timeout=10)
        assert done.status is ExportStatus.COMPLETED


async def test_watch_export_times_out_with_the_last_status() -> None:
    """A watch past its deadline raises ExportTimeoutError promptly, with the last status seen."""
    async with (
        IndependentBabou(seed=32, export_processing_seconds=30) as sim,
        _session(sim) as babou,
    ):
        pid = sim.add_project()
        await babou.start_export(pid)
        start = time.monotonic()
        with pytest.raises(ExportTimeoutError) as info:
            await babou.wait_for_export(pid, timeout=0.5)
        assert time.monotonic() - start < 2.0
        assert info.value.last_status in ("queued", "processing")
        assert info.value.project_id == pid


async def test_failed_export_reports_the_server_text(tmp_path: Path) -> None:
    """A failed render is yielded by watch, raised by wait and download with its text; no file."""
    async with IndependentBabou(seed=18) as sim, _session(sim) as babou:
        pid = sim.add_project()
        sim.fail_render(pid, "Failed to render chapter 2")
        await babou.start_export(pid)
        seen = [e async for e in babou.watch_export(pid, timeout=5)]
        assert seen[-1].status is ExportStatus.FAILED  # yielded, not raised
        assert seen[-1].download_url is None  # the key is absent from the body
        assert seen[-1].error == "Failed to render chapter 2"

        with pytest.raises(ExportFailedError) as info:
            await babou.wait_for_export(pid, timeout=5)
        assert info.value.error == "Failed to render chapter 2"
        assert info.value.project_id == pid

        with pytest.raises(ExportFailedError):
            await babou.download_export(pid, tmp_path)
        assert await _names(tmp_path) == []


SCENARIOS = {
    "drops-weak-etag": Faults(download_drop=0.6),
    "drops-strong-etag": Faults(download_drop=0.6, etag="strong"),
    "drops-no-etag": Faults(download_drop=0.6, etag="none"),
    "drops-range-ignored": Faults(download_drop=0.6, ignore_range=True),
    "expired-403": Faults(expire_first_url=True),
    "expired-410-and-drops": Faults(expire_first_url=True, expired_status=410, download_drop=0.4),
    "cdn-errors": Faults(download_5xx=0.4, download_drop=0.2),
    "short-lived-urls": Faults(url_ttl=0.05, download_drop=0.5),
    "chunked-drops": Faults(content_length=False, download_drop=0.6),
    "cdn-redirect-drops": Faults(redirect=True, download_drop=0.5, etag="strong"),
    "chunked-range-ignored": Faults(content_length=False, download_drop=0.5, ignore_range=True),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_download_export_is_byte_identical(scenario: str, tmp_path: Path) -> None:
    """Under each download fault the saved video is byte-identical; the key stays home."""
    faults = SCENARIOS[scenario]
    async with IndependentBabou(seed=19, faults=faults) as sim, _session(sim) as babou:
        pid = sim.add_project()
        sim.put_export(pid)
        calls: list[tuple[str, int, int | None]] = []
        result = await babou.download_export(
            pid, tmp_path, progress=lambda p, d, t: calls.append((p, d, t))
        )
        video = sim.video(pid)
        assert result.ok
        assert result.path == tmp_path / f"{pid}.mp4"
        assert result.bytes == len(video)
        assert await _read(result.path) == video
        assert await _part_files(tmp_path) == []
        assert calls[-1] == (pid, len(video), len(video))
        _assert_no_key_at_asset_origin(sim)

        downloads = sim.asset_requests()
        assert not any(r.fault == "bad-signature" for r in downloads)
        if any(r.fault == "drop" for r in downloads) and not faults.ignore_range:
            assert any("range" in r.headers for r in downloads)
        if_ranges = [r.headers["if-range"] for r in downloads if "if-range" in r.headers]
        if faults.etag == "strong":
            assert all(v.startswith('"') for v in if_ranges)
        else:
            assert if_ranges == []  # a weak or absent ETag must not be used for If-Range
        if faults.expire_first_url:
            assert downloads[0].status == faults.expired_status
            assert len(sim.api_requests("GET", "/export$")) >= 2  # a fresh URL was fetched


async def test_stalled_download_resumes_after_the_read_timeout(tmp_path: Path) -> None:
    """A download host that stalls mid-body is abandoned after the read timeout and resumed."""
    async with (
        IndependentBabou(seed=36) as sim,
        _session(sim, timeout=Timeouts(connect=1, read=0.3, total=5)) as babou,
    ):
        pid = sim.add_project()
        sim.put_export(pid)
        sim.inject("stall:0.8", origin="asset")
        start = time.monotonic()
        result = await babou.download_export(pid, tmp_path)
        assert time.monotonic() - start < 0.75  # resumed before the stall ended
        assert await _read(result.path) == sim.video(pid)
        assert "range" in sim.asset_requests()[-1].headers


async def test_download_right_after_completion_while_storage_catches_up(tmp_path: Path) -> None:
    """404s while storage catches up with a fresh export are refreshed until the file is there."""
    # The export is "completed" but for 0.5 s its file is not on the download origin yet.
    # Refreshes back off like any retry, so the policy decides the patience: this one
    # waits 0, 0.2, 0.4, 0.8 and 1 s between its refreshes.
    faults = Faults(cdn_lag=0.5)
    patient = RetryPolicy(base_delay=0.2, max_delay=1.0, jitter=False, attempts=6)
    async with (
        IndependentBabou(seed=37, faults=faults) as sim,
        _session(sim, retry=patient) as babou,
    ):
        pid = sim.add_project()
        await babou.start_export(pid)
        await babou.wait_for_export(pid, timeout=5)
        result = await babou.download_export(pid, tmp_path)
        assert result.ok
        assert await _read(result.path) == sim.video(pid)
        # Each 404 costs a status request: they must be paced, not fired back to back.
        assert len(sim.api_requests("GET", "/export$")) <= 20


async def test_one_time_urls_with_many_drops(tmp_path: Path) -> None:
    """Single-use URLs with many drops: every resume fetches a fresh URL; the video is exact."""
    # Each signed URL serves one request (one-time links) and the connection drops after
    # every 20 kB: each resume needs a fresh URL, and each one makes progress, so the
    # download should get there however many refreshes it takes.
    faults = Faults(url_uses=1)
    async with IndependentBabou(seed=20, faults=faults) as sim, _session(sim) as babou:
        pid = sim.add_project()
        sim.put_export(pid)
        for _ in range(10):
            sim.inject("drop:20000", origin="asset")
        result = await babou.download_export(pid, tmp_path)
        assert result.ok, result.error
        assert await _read(result.path) == sim.video(pid)
        assert sum(r.status == 403 for r in sim.asset_requests()) == 10


async def test_download_url_is_sent_exactly_as_given(tmp_path: Path) -> None:
    """A signed URL is requested byte for byte as given (%2F stays %2F)."""
    # RFC 3986 section 6.2.2.2: "%2F" and "/" are not equivalent; a signed URL must be
    # requested byte for byte as the API returned it.
    async with (
        IndependentBabou(seed=28, faults=Faults(exact_query=True)) as sim,
        _session(sim) as babou,
    ):
        pid = sim.add_project()
        sim.put_export(pid)
        url = (await babou.get_export(pid)).download_url
        assert url is not None
        assert "%2F" in url
        result = await babou.download_export(pid, tmp_path)
        assert result.ok
        assert sim.asset_requests()[0].status == 200


@pytest.mark.parametrize(
    "faults",
    [
        Faults(download_drop=0.6, etag="strong"),
        Faults(download_drop=0.6, ignore_range=True),
        Faults(download_drop=0.5, content_length=False, expire_first_url=True),
    ],
    ids=["strong-etag", "range-ignored", "chunked-expired"],
)
async def test_iter_export_bytes_under_drops(faults: Faults) -> None:
    """iter_export_bytes yields the exact video through dropped connections."""
    async with IndependentBabou(seed=21, faults=faults) as sim, _session(sim) as babou:
        pid = sim.add_project()
        sim.put_export(pid)
        received = b"".join([chunk async for chunk in babou.iter_export_bytes(pid)])
        assert received == sim.video(pid)
        _assert_no_key_at_asset_origin(sim)


@pytest.mark.parametrize("how", ["iter_export_bytes", "download_export"])
async def test_chunked_body_cut_after_its_last_byte(how: str, tmp_path: Path) -> None:
    """A chunked body cut after its last byte is recognised complete from the 416 that follows."""
    faults = Faults(content_length=False)
    async with IndependentBabou(seed=34, faults=faults) as sim, _session(sim) as babou:
        pid = sim.add_project()
        sim.put_export(pid)
        sim.inject("drop-at-end", origin="asset")
        if how == "iter_export_bytes":
            received = b"".join([chunk async for chunk in babou.iter_export_bytes(pid)])
        else:
            received = await _read((await babou.download_export(pid, tmp_path)).path)
        assert received == sim.video(pid)
        # The 416's Content-Range said the file was complete: nothing more to fetch.
        assert [r.status for r in sim.asset_requests()] == [200, 416]


async def test_download_exports_mixed_outcomes(tmp_path: Path) -> None:
    """download_exports bounds concurrency, keeps input order and reports each failure per ID."""
    faults = Faults(download_drop=0.4, expire_first_url=True, rate_5xx=0.1)
    async with IndependentBabou(seed=22, faults=faults) as sim, _session(sim) as babou:
        good = [sim.add_project(f"Good {i}") for i in range(4)]
        for pid in good:
            sim.put_export(pid)
        failed = sim.add_project("Failed")
        sim.fail_render(failed, "Failed to render chapter 1", nested=True)
        sim.put_export(failed)
        running = sim.add_project("Running")
        sim.put_export(running, ago=0.0)
        never = sim.add_project("Never")
        ids = [good[0], failed, good[1], running, good[2], never, good[3], good[0]]

        results = await babou.download_exports(ids, tmp_path, concurrency=3)
        assert 1 <= sim.max_downloads_in_flight <= 3

        assert [r.project_id for r in results] == ids
        for r in results:
            if r.project_id in good:
                assert r.ok, r.error
                assert await _read(r.path) == sim.video(r.project_id)
        by_id = {r.project_id: r for r in results}
        failure = by_id[failed].error
        assert isinstance(failure, ExportFailedError)
        assert failure.error == "Failed to render chapter 1"
        assert isinstance(by_id[running].error, ExportNotReadyError)
        assert isinstance(by_id[never].error, NotFoundError)
        assert not any(by_id[p].ok for p in (failed, running, never))
        assert await _part_files(tmp_path) == []
        assert await _names(tmp_path) == sorted(f"{p}.mp4" for p in good)
        _assert_no_key_at_asset_origin(sim)


async def test_export_many_with_faults(tmp_path: Path) -> None:
    """export_many under faults: ordered, bounded, exact videos, clean events; re-runs skip."""
    faults = Faults(
        rate_429=0.05,
        rate_5xx=0.05,
        rate_drop=0.05,
        methods=frozenset({"GET", "POST"}),
        download_drop=0.3,
        download_5xx=0.05,
        url_ttl=0.5,
    )
    async with (
        IndependentBabou(seed=23, faults=faults) as sim,
        _session(sim, rate_limit=RateLimit()) as babou,
    ):
        pids = [sim.add_project(f"Batch {i}") for i in range(20)]
        failing = {pids[3]: "Failed to render chapter 2", pids[11]: "Out of render credits"}
        for pid, text in failing.items():
            sim.fail_render(pid, text)
        events: list[ExportEvent] = []

        results = await babou.export_many(
            pids,
            tmp_path,
            concurrency=8,
            download_concurrency=3,
            timeout=20,
            progress=events.append,
        )

        assert [r.project_id for r in results] == pids
        assert 1 <= sim.max_downloads_in_flight <= 3
        for r in results:
            if r.project_id in failing:
                assert not r.ok
                assert r.status is ExportStatus.FAILED
                assert isinstance(r.error, ExportFailedError)
                assert r.error.error == failing[r.project_id]
                assert not await anyio.Path(tmp_path / f"{r.project_id}.mp4").exists()
            else:
                assert r.ok, r.error
                assert r.path == tmp_path / f"{r.project_id}.mp4"
                assert await _read(r.path) == sim.video(r.project_id)
        assert await _part_files(tmp_path) == []
        _assert_no_key_at_asset_origin(sim)
        for pid in pids:
            statuses = [e.status for e in events if e.project_id == pid and e.kind == "status"]
            assert all(a != b for a, b in itertools.pairwise(statuses)), statuses
            assert [e.kind for e in events if e.project_id == pid][-1] == "done"

        # A re-run finds every video complete on disk and asks the API nothing for them.
        before = len(sim.requests)
        again = await babou.export_many(pids, tmp_path)
        assert all(r.skipped for r in again if r.project_id not in failing)
        assert len(sim.requests) - before <= 10 * len(failing)


async def test_download_of_a_running_export_is_not_ready(tmp_path: Path) -> None:
    """A running export is not ready; once done it is saved, then skipped."""
    async with IndependentBabou(seed=24) as sim, _session(sim) as babou:
        pid = sim.add_project()
        await babou.start_export(pid)
        with pytest.raises(ExportNotReadyError):
            await babou.download_export(pid, tmp_path)
        await babou.wait_for_export(pid, timeout=5)
        result = await babou.download_export(pid, tmp_path)
        assert await _read(result.path) == sim.video(pid)
        skipped = await babou.download_export(pid, tmp_path)
        assert skipped.skipped


async def test_export_many_follows_exports_started_elsewhere(tmp_path: Path) -> None:
    """Running exports (409 on start) are followed; no-chapter and unknown projects fail alone."""
    async with IndependentBabou(seed=27) as sim, _session(sim) as babou:
        running = [sim.add_project(f"R{i}") for i in range(3)]
        for pid in running:
            sim.put_export(pid, ago=0.0)  # an export is already in progress: start gets 409
        fresh = sim.add_project("Fresh")
        empty = sim.add_project("Empty", chapters=0)
        ids = [*running, fresh, empty, "prj_doesnotexist"]
        results = await babou.export_many(ids, tmp_path, timeout=10)
        assert [r.project_id for r in results] == ids
        for r in results[:4]:
            assert r.ok, r.error
            assert await _read(r.path) == sim.video(r.project_id)
        assert isinstance(results[4].error, ValidationError)
        assert results[4].error.message == "Project has no completed chapters"
        assert isinstance(results[5].error, NotFoundError)
        assert [r.status for r in sim.api_requests("POST", "/export$")].count(409) == 3
        assert await _names(tmp_path) == sorted(
            [".babou-journal.sqlite3", *(f"{p}.mp4" for p in [*running, fresh])]
        )
