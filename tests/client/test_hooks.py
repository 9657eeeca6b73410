"""
Observability hooks: each event, sync and async hooks, hooks that raise, and no key anywhere.

Real requests against FakeBabou on loopback; the hooks record what they are told.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from babou_async import (
    BabouSession,
    ConfigurationError,
    DownloadProgressEvent,
    Hooks,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    StatusChangeEvent,
    TransportError,
)
from babou_async.testing import FakeBabou

from ..support import FAST_POLL, fast_retry

pytestmark = pytest.mark.anyio

VIDEO_SIZE = 3 * 1024 * 1024 + 123  # a few progress steps, and an uneven end


class Recorder:
    """Records every event, through a sync hook and an async one."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.async_events: list[Any] = []

    def sync(self, event: object) -> None:
        self.events.append(event)

    async def async_(self, event: object) -> None:
        self.async_events.append(event)

    def hooks(self) -> Hooks:
        both = [self.sync, self.async_]
        return Hooks(
            on_request=both,
            on_response=both,
            on_retry=both,
            on_status_change=both,
            on_download_progress=both,
        )

    def of(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


def session_on(fake: FakeBabou, hooks: Hooks | None, attempts: int = 4) -> BabouSession:
    """A fast session on ``fake`` with ``hooks``."""
    return BabouSession(
        fake.api_key,
        base_url=fake.base_url,
        retry=fast_retry(attempts),
        poll=FAST_POLL,
        hooks=hooks,
    )


async def test_a_lifecycle_tells_every_hook(fake: FakeBabou, tmp_path: Path) -> None:
    """Requests, responses, status changes and progress reach sync and async hooks alike."""
    fake.export_video_size = VIDEO_SIZE
    recorder = Recorder()
    pid = fake.seed_project()
    async with session_on(fake, recorder.hooks()) as babou:
        await babou.start_export(pid)
        await babou.wait_for_export(pid, timeout=30)
        await babou.download_export(pid, tmp_path)
        await babou.list_projects()
    assert recorder.events == recorder.async_events  # same events, same order
    requests = recorder.of(RequestEvent)
    responses = recorder.of(ResponseEvent)
    assert len(requests) == len(responses) == len(fake.requests)
    start = RequestEvent(
        method="POST",
        url=f"{fake.base_url}/projects/{pid}/export",
        attempt=1,
        origin="api",
        project_id=pid,
    )
    assert start == requests[0]
    assert f"{fake.base_url}/projects" == requests[-1].url  # no query (?limit=...)
    assert requests[-1].project_id is None
    assert all(r.status in (200, 201, 206) and r.error is None for r in responses)
    assert all(r.elapsed >= 0 for r in responses)
    downloads = [r for r in requests if r.origin == "download"]
    assert downloads
    assert all(r.url.startswith(fake.asset_base_url) and "?" not in r.url for r in downloads)
    changes = recorder.of(StatusChangeEvent)
    assert [None, *[c.status for c in changes[:-1]]] == [c.previous_status for c in changes]
    assert ("completed", True) == (changes[-1].status, changes[-1].terminal)
    assert {("export", pid, pid)} == {(c.kind, c.resource_id, c.project_id) for c in changes}
    progress = recorder.of(DownloadProgressEvent)
    assert (VIDEO_SIZE, VIDEO_SIZE) == (progress[-1].bytes_done, progress[-1].bytes_total)
    assert len(progress) >= 3  # about one per MiB
    assert all("?" not in p.url for p in progress)


async def test_retries_tell_on_retry_and_each_response(fake: FakeBabou) -> None:
    """Two 503s then a 200: two RetryEvents, three responses, attempts counted."""
    recorder = Recorder()
    pid = fake.seed_project()
    fake.inject("GET", f"/projects/{pid}", status=503, times=2)
    async with session_on(fake, recorder.hooks()) as babou:
        await babou.get_project(pid)
    retries = recorder.of(RetryEvent)
    assert [1, 2] == [r.attempt for r in retries]
    assert all("503" in r.reason and r.delay >= 0 and r.project_id == pid for r in retries)
    assert [503, 503, 200] == [r.status for r in recorder.of(ResponseEvent)]
    assert [1, 2, 3] == [r.attempt for r in recorder.of(RequestEvent)]


async def test_a_request_without_answer_is_a_response_event_with_its_error(
    fake: FakeBabou,
) -> None:
    """A dropped connection ends the request with status None and the TransportError."""
    recorder = Recorder()
    fake.inject("GET", "/projects", status=200, drop=True, times=None)
    async with session_on(fake, recorder.hooks(), attempts=2) as babou:
        with pytest.raises(TransportError):
            await babou.list_projects()
    responses = recorder.of(ResponseEvent)
    assert responses
    assert all(r.status is None and isinstance(r.error, TransportError) for r in responses)


async def test_a_cut_download_tells_on_retry(fake: FakeBabou, tmp_path: Path) -> None:
    """A download request that gets no answer is retried: a RetryEvent of the download."""
    fake.export_video_size = VIDEO_SIZE
    recorder = Recorder()
    pid = fake.seed_project()
    async with session_on(fake, recorder.hooks(), attempts=10) as babou:
        await babou.start_export(pid)
        await babou.wait_for_export(pid, timeout=30)
        # Twice: aiohttp itself resends a GET once after a disconnect.
        fake.inject("GET", "*", status=200, drop=True, origin="asset", times=2)
        result = await babou.download_export(pid, tmp_path)
    assert result.ok
    retries = [r for r in recorder.of(RetryEvent) if r.origin == "download"]
    assert retries
    assert all(r.project_id == pid and "?" not in r.url for r in retries)
    assert VIDEO_SIZE == recorder.of(DownloadProgressEvent)[-1].bytes_done


async def test_chapters_and_assets_tell_their_status_changes(fake: FakeBabou) -> None:
    """wait_for_chapter and wait_for_asset report their jobs' statuses too."""
    recorder = Recorder()
    async with session_on(fake, recorder.hooks()) as babou:
        project = await babou.create_project("Hooks")
        chapter = await babou.create_chapter(project.id, "One")
        await babou.submit_prompt(project.id, chapter.id, "A quiet street")
        await babou.wait_for_chapter(project.id, chapter.id, timeout=30)
        asset = await babou.upload_asset(b"\x89PNG\r\n\x1a\n" + b"0" * 64, content_type="image/png")
        await babou.wait_for_asset(asset.id, timeout=30)
    changes = recorder.of(StatusChangeEvent)
    kinds = {(c.kind, c.resource_id, c.project_id) for c in changes}
    assert {("chapter", chapter.id, project.id), ("asset", asset.id, None)} == kinds
    assert all(c.terminal for c in changes if c.status in ("ready", "error"))


async def test_a_cancelled_request_tells_no_response(fake: FakeBabou) -> None:
    """A request cancelled mid-flight was announced, and no response is made up for it."""
    recorder = Recorder()
    fake.inject("GET", "/projects", status=200, delay=5, times=1)
    async with session_on(fake, recorder.hooks()) as babou:
        with anyio.move_on_after(0.2):
            await babou.list_projects()
    assert 1 == len(recorder.of(RequestEvent))
    assert [] == recorder.of(ResponseEvent)


@pytest.mark.parametrize("style", ["sync", "async"])
async def test_a_hook_that_raises_is_logged_and_ignored(
    fake: FakeBabou, caplog: pytest.LogCaptureFixture, style: str
) -> None:
    """What a hook raises never breaks the request; it is logged on babou_async.callbacks."""

    def broken(event: object) -> None:
        raise RuntimeError("hook bug")

    async def broken_async(event: object) -> None:
        raise RuntimeError("hook bug")

    hook: Callable[[Any], object] = broken if style == "sync" else broken_async
    hooks = Hooks(on_request=[hook], on_response=[hook])
    with caplog.at_level(logging.ERROR, logger="babou_async.callbacks"):
        async with session_on(fake, hooks) as babou:
            assert [] == await babou.list_projects()
    records = [r for r in caplog.records if r.name == "babou_async.callbacks"]
    assert ["on_request", "on_response"] == [r.getMessage().split()[0] for r in records]
    assert all(r.exc_info is not None for r in records)


async def test_no_event_carries_the_key(fake: FakeBabou) -> None:
    """A server echoing the key in its request ID: the events show it redacted."""
    recorder = Recorder()
    fake.inject("GET", "/projects", status=503, headers={"X-Request-Id": fake.api_key}, times=1)
    async with session_on(fake, recorder.hooks()) as babou:
        await babou.list_projects()
    texts = [repr(attrs.asdict(event, recurse=False)) for event in recorder.events]
    assert recorder.of(ResponseEvent)[0].request_id == "[REDACTED]"
    assert not any(fake.api_key in text for text in texts)


async def test_without_hooks_nothing_watches_requests(fake: FakeBabou) -> None:
    """No hooks, no tracer, no DEBUG logging: the runtime builds no probe at all."""
    async with session_on(fake, None) as babou:
        observer = babou._rt.observer
        observer.tracing.off = True  # as without opentelemetry-api
        assert observer.request("GET", "/projects", 1) is None
        assert observer.meter("prj_x", fake.asset_base_url) is None
        assert [] == await babou.list_projects()


def test_hooks_are_sequences_of_callables() -> None:
    """A bare callable, a string or a non-callable entry is refused with a clear message."""

    def hook(event: object) -> None:
        del event

    assert (hook,) == Hooks(on_retry=[hook]).on_retry
    with pytest.raises(TypeError, match="sequence of callables"):
        Hooks(on_retry=hook)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence of callables"):
        Hooks(on_retry="hook")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be callable"):
        Hooks(on_retry=[1])  # type: ignore[list-item]


def test_the_session_refuses_hooks_of_another_type() -> None:
    """hooks= must be a Hooks: a ConfigurationError names it."""
    with pytest.raises(ConfigurationError, match="hooks"):
        BabouSession("sk-bab-" + "k" * 32, hooks={"on_request": []})  # type: ignore[arg-type]
