"""
``babou demo``: the library's main job, end to end, on the bundled simulator.

:func:`run_demo` starts :class:`~babou_async.testing.FakeBabou` on loopback, builds
projects through the real API calls of :class:`~babou_async.BabouSession` (projects,
chapters, one prompt per chapter, waiting for every chapter concurrently), then exports
them all at once with :meth:`~babou_async.BabouSession.export_many`, downloading each
video as soon as its export completes. No key and no network are needed.

Timings are compressed but keep the shape of the real service: prompts take a second or
two, exports sit in the queue for about a second and render for a few more, and each video
is a few megabytes. A light, recoverable fault mix (a few cut downloads, the odd 429) is on
by default to show that the client rides through them; every project still succeeds.

This module has no terminal code: the command line passes callbacks for its display.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import attrs

from ._callbacks import EventCallback
from ._config import PollPolicy, RetryPolicy
from ._models import ChapterStatus, ExportResult
from ._session import BabouSession
from .testing import FakeBabou, Faults

__all__ = ["DemoReport", "DemoTimings", "run_demo"]

_MB = 1_000_000

#: Chapter names and prompts the demo draws from (names fit the 30-character limit).
_SCENES: tuple[tuple[str, str], ...] = (
    ("Opening", "A slow aerial shot of a coastal city waking up at dawn"),
    ("The problem", "A cluttered desk, a tired founder, a wall of sticky notes"),
    ("The idea", "A whiteboard sketch comes alive and turns into an app screen"),
    ("The team", "Four people laughing around a laptop in a sunny office"),
    ("Product tour", "Close-ups of the dashboard with smooth animated transitions"),
    ("Customers", "Short testimonials framed in warm, natural light"),
    ("Behind the scenes", "Time-lapse of the team building the product overnight"),
    ("Call to action", "The logo on a clean background and the words 'Try it today'"),
)
_TOPICS: tuple[str, ...] = (
    "Launch video",
    "Onboarding tour",
    "Quarterly update",
    "Recruiting reel",
    "Feature teaser",
    "Customer story",
    "Conference promo",
    "Tutorial",
)


@attrs.frozen(kw_only=True)
class DemoTimings:
    """
    Simulated durations of the demo (seconds) and video sizes (bytes).

    Attributes:
        prompt_seconds: How long each prompt takes to render.
        export_queued_seconds: How long an export waits in the queue.
        min_render_seconds: Shortest render of an export; each project's render time is
            drawn between the bounds, so that exports finish one after another.
        max_render_seconds: Longest render.
        min_video_bytes: Smallest video; each project's size is drawn between the bounds.
        max_video_bytes: Largest video.
        bytes_per_second: Download speed of each connection (loopback is otherwise
            instantaneous, which would hide the downloads).
        poll: How often jobs are polled (suited to the durations above).
        retry: Retry policy of the demo's session (short backoffs).
    """

    prompt_seconds: float = 1.5
    export_queued_seconds: float = 1.0
    min_render_seconds: float = 2.0
    max_render_seconds: float = 4.0
    min_video_bytes: int = 2 * _MB
    max_video_bytes: int = 6 * _MB
    bytes_per_second: float = 8 * _MB
    poll: PollPolicy = attrs.field(
        factory=lambda: PollPolicy(initial_delay=0.2, multiplier=1.5, max_delay=1.0)
    )
    retry: RetryPolicy = attrs.field(factory=lambda: RetryPolicy(base_delay=0.2, max_delay=2.0))

    def scaled(self, factor: float) -> DemoTimings:
        """Return these timings with every duration multiplied by ``factor`` (sizes kept)."""
        return attrs.evolve(
            self,
            prompt_seconds=self.prompt_seconds * factor,
            export_queued_seconds=self.export_queued_seconds * factor,
            min_render_seconds=self.min_render_seconds * factor,
            max_render_seconds=self.max_render_seconds * factor,
            bytes_per_second=self.bytes_per_second / factor,
            poll=attrs.evolve(
                self.poll,
                initial_delay=self.poll.initial_delay * factor,
                max_delay=self.poll.max_delay * factor,
            ),
            retry=attrs.evolve(
                self.retry,
                base_delay=self.retry.base_delay * factor,
                max_delay=self.retry.max_delay * factor,
            ),
        )


@attrs.frozen(kw_only=True)
class DemoReport:
    """
    What :func:`run_demo` did.

    Attributes:
        out_dir: Absolute directory holding the videos.
        seed: The simulator's seed (pass it again to replay the same run).
        base_url: Where the simulator listened.
        projects: Project IDs, in creation order.
        chapters: Chapters created in total.
        results: One :class:`ExportResult` per project, in creation order.
        setup_seconds: Creating projects, chapters and prompts and waiting for the prompts.
        export_seconds: Exporting and downloading.
        elapsed: The whole run, simulator start-up included.
        dropped_downloads: Download connections the simulator cut (each one resumed).
        rate_limited: Requests the simulator answered 429 (each one retried).
    """

    out_dir: Path
    seed: int
    base_url: str
    projects: tuple[str, ...]
    chapters: int
    results: tuple[ExportResult, ...]
    setup_seconds: float
    export_seconds: float
    elapsed: float
    dropped_downloads: int = 0
    rate_limited: int = 0

    @property
    def ok(self) -> int:
        """Projects whose video is on disk."""
        return sum(1 for r in self.results if r.ok)

    @property
    def failed(self) -> int:
        """Projects that did not produce a video."""
        return sum(1 for r in self.results if not r.ok)

    @property
    def bytes(self) -> int:
        """Total size of the videos on disk."""
        return sum(r.bytes for r in self.results if r.ok)

    @property
    def files(self) -> tuple[Path, ...]:
        """Paths of the videos on disk."""
        return tuple(r.path for r in self.results if r.ok and r.path is not None)


def _count(count: int, noun: str) -> str:
    """``1 project``, ``2 projects``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _draw(seed: int, project_id: str, what: str) -> float:
    """A stable number in [0, 1) for one project, derived from the seed and its ID."""
    digest = hashlib.sha256(f"{seed}:{what}:{project_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


async def run_demo(
    *,
    projects: int = 12,
    out_dir: str | os.PathLike[str] = "babou-demo",
    seed: int | None = None,
    faults: bool = True,
    timings: DemoTimings | None = None,
    concurrency: int = 32,
    download_concurrency: int = 4,
    progress: EventCallback | None = None,
    note: Callable[[str], object] | None = None,
    stage: Callable[[str], object] | None = None,
) -> DemoReport:
    """
    Run the demo: simulator, projects, prompts, concurrent exports and downloads.

    Args:
        projects: How many projects to create and export (at least 1).
        out_dir: Where the videos go (created if missing; the demo's own videos are
            replaced on a re-run).
        seed: Seeds the simulator and the demo's choices; ``None`` picks one (it is
            reported, to replay the run).
        faults: Inject the light, recoverable fault mix.
        timings: Durations and sizes; default :class:`DemoTimings`.
        concurrency: Exports followed at once.
        download_concurrency: Downloads at once.
        progress: Receives every :class:`~babou_async.ExportEvent` of the export phase.
        note: Receives a line of text at each milestone.
        stage: Receives a short description of the current activity, repeatedly.

    Returns:
        A :class:`DemoReport`; failed projects are in it, not raised.
    """
    if projects < 1:
        msg = f"projects must be an integer >= 1, got {projects!r}"
        raise ValueError(msg)
    timings = timings or DemoTimings()
    seed = secrets.randbelow(1_000_000) if seed is None else seed
    began = time.monotonic()
    directory = await anyio.to_thread.run_sync(Path(os.fspath(out_dir)).resolve)
    fake = _simulator(seed, faults, timings)
    async with (
        fake,
        BabouSession(
            api_key=fake.api_key,
            base_url=fake.base_url,
            poll=timings.poll,
            retry=timings.retry,
        ) as babou,
    ):
        base_url = fake.base_url
        demo = _Demo(babou, seed, timings, note, stage)
        demo.tell(
            f"Simulator listening on {base_url} (seed {seed}"
            f"{', light fault mix' if faults else ''})"
        )
        project_ids, pending = await demo.build(projects, began)
        await demo.settle(pending, began)
        setup_seconds = time.monotonic() - began
        export_began = time.monotonic()
        results = await demo.export(
            project_ids, directory, concurrency, download_concurrency, progress
        )
        export_seconds = time.monotonic() - export_began
        dropped = sum(1 for r in fake.requests if r.origin == "asset" and r.dropped)
        throttled = sum(1 for r in fake.requests if r.status == 429)

    return DemoReport(
        out_dir=directory,
        seed=seed,
        base_url=base_url,
        projects=tuple(project_ids),
        chapters=len(pending),
        results=tuple(results),
        setup_seconds=setup_seconds,
        export_seconds=export_seconds,
        elapsed=time.monotonic() - began,
        dropped_downloads=dropped,
        rate_limited=throttled,
    )


def _simulator(seed: int, faults: bool, t: DemoTimings) -> FakeBabou:
    """The demo's simulator: spread-out render times and sizes, and the fault mix."""
    faults_mix = Faults(slow_bytes_per_second=t.bytes_per_second)
    if faults:  # light and recoverable: some cut downloads, a few quick 429s
        faults_mix.drop_rate = 0.12
        faults_mix.rate_limit_rate = 0.01
        faults_mix.retry_after = round(t.retry.base_delay, 3)
    return FakeBabou(
        seed=seed,
        prompt_seconds=t.prompt_seconds,
        asset_seconds=t.prompt_seconds,
        export_queued_seconds=t.export_queued_seconds,
        # Each project renders for a time of its own, so exports finish spread out.
        export_processing_seconds=lambda pid: (
            t.min_render_seconds
            + (t.max_render_seconds - t.min_render_seconds) * _draw(seed, pid, "render")
        ),
        video_size=lambda pid: (
            t.min_video_bytes
            + int((t.max_video_bytes - t.min_video_bytes) * _draw(seed, pid, "size"))
        ),
        faults=faults_mix,
        record_limit=50_000,
    )


#: A submitted prompt: project, chapter and the server's estimate.
_Pending = tuple[str, str, "tuple[float, float] | None"]


class _Demo:
    """The demo's three phases on one session: build, settle, export."""

    def __init__(
        self,
        babou: BabouSession,
        seed: int,
        timings: DemoTimings,
        note: Callable[[str], object] | None,
        stage: Callable[[str], object] | None,
    ) -> None:
        self.babou = babou
        self.rng = random.Random(seed)  # noqa: S311 - scene choices, not secrets
        self.timings = timings
        self.note = note
        self.stage = stage
        self.limiter = anyio.CapacityLimiter(16)

    def tell(self, text: str) -> None:
        if self.note is not None:
            self.note(text)

    def doing(self, text: str) -> None:
        if self.stage is not None:
            self.stage(text)

    async def build(self, projects: int, began: float) -> tuple[list[str], list[_Pending]]:
        """1. Projects, chapters (rendered in creation order) and their prompts."""
        self.doing(f"creating {_count(projects, 'project')}")
        rng = self.rng
        plans = [rng.sample(_SCENES, rng.choice((2, 3))) for _ in range(projects)]
        topics = [rng.choice(_TOPICS) for _ in range(projects)]
        durations = [[rng.randint(4, 12) for _ in plan] for plan in plans]
        project_ids: list[str] = [""] * projects
        pending: list[_Pending] = []

        async def one(index: int) -> None:
            async with self.limiter:
                project = await self.babou.create_project(
                    f"Demo {index + 1:02d}: {topics[index]}",
                    description="Created by `babou demo` on the bundled simulator.",
                )
                project_ids[index] = project.id
                chapter_ids = []
                for (name, _), duration in zip(plans[index], durations[index], strict=True):
                    chapter = await self.babou.create_chapter(project.id, name, duration=duration)
                    chapter_ids.append(chapter.id)
                for chapter_id, (_, prompt) in zip(chapter_ids, plans[index], strict=True):
                    submitted = await self.babou.submit_prompt(project.id, chapter_id, prompt)
                    pending.append((project.id, chapter_id, submitted.estimated_seconds))

        async with anyio.create_task_group() as tg:
            for index in range(projects):
                tg.start_soon(one, index)
        self.tell(
            f"Created {_count(projects, 'project')} with {_count(len(pending), 'chapter')} "
            f"and submitted {_count(len(pending), 'prompt')} in {time.monotonic() - began:.1f}s"
        )
        return project_ids, pending

    async def settle(self, pending: list[_Pending], began: float) -> None:
        """2. Wait for every chapter at once (``began``: when the demo started)."""
        ready = broken = 0
        self.doing(f"rendering prompts: 0/{_count(len(pending), 'chapter')} ready")

        async def one(project_id: str, chapter_id: str, est: tuple[float, float] | None) -> None:
            nonlocal ready, broken
            async with self.limiter:
                chapter = await self.babou.wait_for_chapter(
                    project_id, chapter_id, timeout=120, estimate=est
                )
            if chapter.status is ChapterStatus.ERROR:
                broken += 1
            else:
                ready += 1
            self.doing(f"rendering prompts: {ready}/{_count(len(pending), 'chapter')} ready")

        async with anyio.create_task_group() as tg:
            for item in pending:
                tg.start_soon(one, *item)
        self.tell(
            f"{_count(ready, 'chapter')} ready"
            + (f" ({broken} failed)" if broken else "")
            + f" after {time.monotonic() - began:.1f}s"
        )

    async def export(
        self,
        project_ids: list[str],
        directory: Path,
        concurrency: int,
        download_concurrency: int,
        progress: EventCallback | None,
    ) -> list[ExportResult]:
        """3. Export everything concurrently, each video downloaded as soon as it is ready."""
        t = self.timings
        self.doing(f"exporting {_count(len(project_ids), 'project')}")
        self.tell(f"Exporting {_count(len(project_ids), 'project')} to {directory}")
        return await self.babou.export_many(
            project_ids,
            directory,
            concurrency=concurrency,
            download_concurrency=download_concurrency,
            timeout=max(60.0, 20 * (t.export_queued_seconds + t.max_render_seconds)),
            overwrite=True,
            progress=progress,
        )
