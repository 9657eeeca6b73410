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
    DownloadResult,
    Export,
    ExportEvent,
    ExportResult,
    ExportStatus,
    PollPolicy,
    Project,
    PromptSubmission,
    RateLimit,
    RetryPolicy,
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


async def check_testing(fake: FakeBabou) -> None:
    """The simulator's inspection methods."""
    assert_type(fake.seed_project(), str)
    assert_type(fake.renders("prj_x"), int)
    assert_type(fake.requests, list[RecordedRequest])
    assert_type(fake.video_bytes("prj_x"), bytes)
