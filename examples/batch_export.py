"""
Batch export: export many projects at once and download each video as soon as it is ready.

    python examples/batch_export.py                 # on the simulator, with faults
    BABOU_API_KEY=sk-bab-... python examples/batch_export.py prj_a prj_b ...

:meth:`~babou_async.BabouSession.export_many` starts every export, follows them all and
downloads each finished video while the others are still rendering. One project failing
never affects the others: its result carries the error. Re-running it skips the videos
already complete on disk.

Without ``BABOU_API_KEY`` it seeds projects in the bundled simulator and turns on a few
faults (cut downloads, 429s, one failed render) to show the client riding through them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from babou_async import BabouSession, ExportEvent, PollPolicy, RetryPolicy
from babou_async.testing import FakeBabou, Faults

OUT_DIR = "videos"


@asynccontextmanager
async def open_session() -> AsyncIterator[tuple[BabouSession, list[str], set[str]]]:
    """
    Yield a session, the project IDs to export and those expected to fail.

    The IDs come from the command line, or are seeded in a simulator.
    """
    if os.environ.get("BABOU_API_KEY"):
        async with BabouSession() as babou:
            yield babou, sys.argv[1:], set()
        return
    faults = Faults(drop_rate=0.3, rate_limit_rate=0.05, retry_after=0.2)
    async with FakeBabou(seed=7, video_size=2_000_000, faults=faults) as fake:
        project_ids = [fake.seed_project(f"Launch video {n}", chapters=2) for n in range(1, 7)]
        doomed = {project_ids[3]}
        fake.faults.fail_exports = doomed  # this one's render fails
        print(f"No BABOU_API_KEY: exporting {len(project_ids)} projects from a simulator")
        async with BabouSession(
            fake.api_key,
            base_url=fake.base_url,
            poll=PollPolicy.fast(),
            retry=RetryPolicy(base_delay=0.05, max_delay=0.5),
        ) as babou:
            yield babou, project_ids, doomed


def on_event(event: ExportEvent) -> None:
    """Print status changes and finished projects (a plain function: it must not block)."""
    if event.kind == "status":
        print(f"  {event.project_id}: {event.status}")
    elif event.kind == "done" and event.result is not None:
        result = event.result
        if result.ok:
            print(f"  {event.project_id}: saved {result.bytes:,} bytes")
        else:
            print(f"  {event.project_id}: FAILED ({result.error})")


async def main() -> int:
    # Retries, resumed downloads and refreshed URLs are logged as warnings by "babou_async".
    logging.basicConfig(level=logging.WARNING, format="  (log) %(message)s")
    async with open_session() as (babou, project_ids, expected_failures):
        if not project_ids:
            print("usage: python examples/batch_export.py PRJ...")
            return 2
        results = await babou.export_many(
            project_ids, OUT_DIR, concurrency=8, download_concurrency=3, progress=on_event
        )
    failed = {r.project_id for r in results if not r.ok}
    print(f"{len(results) - len(failed)} of {len(results)} videos in {OUT_DIR}/")
    for result in results:
        if not result.ok:
            print(f"failed: {result.project_id}: {type(result.error).__name__}: {result.error}")
    return 0 if failed <= expected_failures else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
