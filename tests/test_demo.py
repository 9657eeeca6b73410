"""
``babou demo``'s job, in process: run under blockbuster, so any blocking call fails it.

Timings are scaled down tenfold; ``tests/test_cli.py`` runs the real command at full speed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import anyio
import attrs
import pytest

from babou_async import ExportEvent, ExportStatus
from babou_async._demo import DemoTimings, run_demo

pytestmark = pytest.mark.anyio

FAST = DemoTimings().scaled(0.1)


async def test_demo_exports_every_project_to_disk(tmp_path: Path) -> None:
    """Every project is created, rendered, exported and saved; sizes on disk match."""
    events: list[ExportEvent] = []
    notes: list[str] = []
    stages: list[str] = []
    report = await run_demo(
        projects=4,
        out_dir=tmp_path / "videos",
        seed=11,
        timings=FAST,
        progress=events.append,
        note=notes.append,
        stage=stages.append,
    )
    assert (report.ok, report.failed) == (4, 0)
    assert report.out_dir == await anyio.Path(tmp_path / "videos").resolve()
    assert len(report.projects) == len(set(report.projects)) == 4
    assert 8 <= report.chapters <= 12  # 2 or 3 chapters per project
    assert [r.project_id for r in report.results] == list(report.projects)
    for result in report.results:
        assert result.status is ExportStatus.COMPLETED
        assert result.path == report.out_dir / f"{result.project_id}.mp4"
        assert (await anyio.Path(result.path).stat()).st_size == result.bytes
        assert FAST.min_video_bytes <= result.bytes <= FAST.max_video_bytes
    assert report.bytes == sum(r.bytes for r in report.results)
    assert len(report.files) == 4
    assert [p.name async for p in anyio.Path(report.out_dir).glob("*.part")] == []
    kinds = Counter(e.kind for e in events)
    assert kinds["done"] == 4
    assert kinds["status"] >= 4
    assert kinds["download"] >= 4
    assert notes[0].startswith("Simulator listening on http://127.0.0.1:")
    assert any("chapters ready" in stage for stage in stages)
    assert report.elapsed >= report.setup_seconds + report.export_seconds - 0.01


async def test_demo_renders_vary_and_downloads_are_pipelined(tmp_path: Path) -> None:
    """Render times differ per project, and the first video is saved before the last export ends."""
    # Renders spread over 0.3-1.8 s: wide enough to beat the simulator's 1 s estimate floor.
    timings = attrs.evolve(FAST, min_render_seconds=0.3, max_render_seconds=1.8)
    report = await run_demo(projects=5, out_dir=tmp_path, seed=5, faults=False, timings=timings)
    assert report.ok == 5
    completed = sorted(r.completed_at for r in report.results if r.completed_at is not None)
    downloaded = sorted(r.downloaded_at for r in report.results if r.downloaded_at is not None)
    assert len(completed) == len(downloaded) == 5
    assert (completed[-1] - completed[0]).total_seconds() > 0.2
    assert downloaded[0] < completed[-1]
    assert (report.dropped_downloads, report.rate_limited) == (0, 0)


async def test_demo_rerun_replaces_its_own_videos(tmp_path: Path) -> None:
    """The same seed twice into the same directory re-downloads (no stale skip), all ok."""
    first = await run_demo(projects=1, out_dir=tmp_path, seed=3, faults=False, timings=FAST)
    second = await run_demo(projects=1, out_dir=tmp_path, seed=3, faults=False, timings=FAST)
    assert first.projects == second.projects
    assert second.ok == 1
    assert not second.results[0].skipped
    assert second.results[0].bytes == first.results[0].bytes


async def test_demo_rejects_zero_projects(tmp_path: Path) -> None:
    """Asking for no project is a ValueError before anything starts."""
    with pytest.raises(ValueError, match="projects"):
        await run_demo(projects=0, out_dir=tmp_path)


def test_timings_scale_durations_not_sizes() -> None:
    """DemoTimings.scaled multiplies durations and poll delays; sizes stay, speed scales up."""
    base = DemoTimings()
    fast = base.scaled(0.5)
    assert fast.prompt_seconds == base.prompt_seconds / 2
    assert fast.max_render_seconds == base.max_render_seconds / 2
    assert fast.poll.initial_delay == base.poll.initial_delay / 2
    assert fast.retry.max_delay == base.retry.max_delay / 2
    assert fast.bytes_per_second == base.bytes_per_second * 2
    assert fast.max_video_bytes == base.max_video_bytes
