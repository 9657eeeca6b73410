"""Waiting for chapters and assets: their status looks (polls) and when each is done."""

from __future__ import annotations

from . import _protocol as proto
from ._config import PollPolicy
from ._models import Asset, Chapter, ChapterStatus
from ._polling import wait
from ._ratelimit import RequestPriority
from ._runtime import Runtime

__all__ = ["wait_for_asset", "wait_for_chapter"]


def chapter_done(chapter: Chapter) -> bool:
    """
    Whether waiting for a chapter is over.

    The chapter's own status decides. A "ready" chapter whose newest prompt has no result
    yet is taken as not ready (a status that lags a fresh submission); older prompts may
    never get one (``force`` cancels them), so they do not count. A chapter with no prompt
    has nothing to wait for.
    """
    return chapter.status is ChapterStatus.ERROR or (
        chapter.status is ChapterStatus.READY
        and (not chapter.prompts or chapter.prompts[-1].is_done)
    )


async def wait_for_chapter(
    rt: Runtime,
    project_id: str,
    chapter_id: str,
    timeout: float,
    poll: PollPolicy | None,
    estimate: tuple[float, float] | None,
) -> Chapter:
    """Poll a chapter until it is ready or in error (see the session's method)."""

    async def fetch() -> tuple[Chapter, str, bool]:
        spec = proto.build_get_chapter(project_id, chapter_id)
        raw, payload = await rt.send(spec, priority=RequestPriority.POLL)
        chapter = proto.parse_chapter(raw, payload, project_id)
        return chapter, chapter.status_raw or str(chapter.status), chapter_done(chapter)

    return await wait(rt, fetch, chapter_id, "chapter", timeout, poll, estimate)


async def wait_for_asset(
    rt: Runtime, asset_id: str, timeout: float, poll: PollPolicy | None
) -> Asset:
    """Poll an asset until it is ready or in error (see the session's method)."""

    async def fetch() -> tuple[Asset, str, bool]:
        raw, payload = await rt.send(proto.build_get_asset(asset_id), priority=RequestPriority.POLL)
        asset = proto.parse_asset(raw, payload)
        return asset, asset.state_raw or str(asset.state), asset.state.is_terminal

    return await wait(rt, fetch, asset_id, "asset", timeout, poll, None)
