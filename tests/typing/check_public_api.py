"""
Static checks of the public API's types: mypy checks this file, nothing runs it.

Each ``assert_type`` pins what a user's type checker sees for one public call, so a change
of a public signature or return type fails ``mypy --strict`` (``nox -s typing``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from typing_extensions import assert_type  # mypy's own dependency: only mypy reads this file

from babou_async import (
    Asset,
    AsyncPager,
    BabouSession,
    Chapter,
    DownloadProgressEvent,
    DownloadResult,
    Export,
    ExportEvent,
    ExportResult,
    ExportStatus,
    ExportStream,
    Hooks,
    PollPolicy,
    Project,
    PromptSubmission,
    RateLimit,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    RetryPolicy,
    StatusChangeEvent,
    Timeouts,
)
from babou_async.testing import Clock, FakeBabou, RecordedRequest


async def check_session(babou: BabouSession) -> None:
    """What the session's methods return."""
    assert_type(await babou.create_project("x"), Project)
    assert_type(babou.list_projects(), AsyncPager[Project])
    assert_type(await babou.list_projects(), list[Project])
    assert_type(await babou.create_chapter("prj_x", "c"), Chapter)
    assert_type(await babou.submit_prompt("prj_x", "cht_x", "p"), PromptSubmission)
    assert_type(await babou.wait_for_chapter("prj_x", "cht_x", timeout=5), Chapter)
    assert_type(await babou.upload_asset(b"x", content_type="image/png"), Asset)
    assert_type(await babou.start_export("prj_x"), Export)
    assert_type(await babou.get_export("prj_x"), Export)
    assert_type(await babou.wait_for_export("prj_x", timeout=dt.timedelta(minutes=5)), Export)
    async for export in babou.watch_export("prj_x"):
        assert_type(export, Export)
        assert_type(export.status, ExportStatus)
    assert_type(await babou.download_export("prj_x", Path("videos")), DownloadResult)
    assert_type(await babou.download_exports(["prj_x"], "videos"), list[DownloadResult])
    async for chunk in babou.iter_export_bytes("prj_x"):
        assert_type(chunk, bytes)
    async with babou.open_export("prj_x", range="bytes=0-99") as video:
        assert_type(video, ExportStream)
        assert_type(video.content_range, str | None)
        assert_type(video.headers, dict[str, str])
        async for chunk in video.iter_bytes():
            assert_type(chunk, bytes)
    assert_type(babou.open_export("prj_x", range=(0, 99)), ExportStream)
    results = await babou.export_many(["prj_x"], "videos", reuse="completed")
    assert_type(results, list[ExportResult])
    assert_type(await babou.export_project("prj_x", "videos"), ExportResult)


def check_options() -> None:
    """Options are built with keywords and accepted by the session."""

    def on_event(event: ExportEvent) -> None:
        assert_type(event.result, ExportResult | None)

    async def sleep(_seconds: float) -> None:
        return None

    BabouSession(
        "sk-bab-x",
        timeout=Timeouts(connect=5, read=30, total=60),
        retry=RetryPolicy(attempts=3),
        poll=PollPolicy.responsive(),
        rate_limit=RateLimit(requests_per_second=10),
        clock=Clock(sleep=sleep, random=lambda: 0.5),
    )
    del on_event


def check_hooks() -> None:
    """Hooks take sync and async callables of their event; the session takes them and proxy=."""

    def on_response(event: ResponseEvent) -> None:
        assert_type(event.status, int | None)
        assert_type(event.elapsed, float)

    async def on_retry(event: RetryEvent) -> None:
        assert_type(event.delay, float)

    def on_status(event: StatusChangeEvent) -> None:
        assert_type(event.terminal, bool)

    def on_bytes(event: DownloadProgressEvent) -> None:
        assert_type(event.bytes_total, int | None)

    hooks = Hooks(
        on_response=[on_response],
        on_retry=[on_retry],
        on_status_change=[on_status],
        on_download_progress=[on_bytes],
        on_request=[lambda event: assert_type(event, RequestEvent)],
    )
    BabouSession("sk-bab-x", hooks=hooks, proxy="http://proxy.example:3128")
    BabouSession("sk-bab-x", proxy=False)


async def check_testing(fake: FakeBabou) -> None:
    """The simulator's inspection methods."""
    assert_type(fake.seed_project(), str)
    assert_type(fake.renders("prj_x"), int)
    assert_type(fake.requests, list[RecordedRequest])
    assert_type(fake.video_bytes("prj_x"), bytes)
