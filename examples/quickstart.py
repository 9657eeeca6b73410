"""
Quick start: create a project, render a prompt, export the video and download it.

    python examples/quickstart.py

Without ``BABOU_API_KEY`` in the environment it runs against the bundled simulator
(:class:`babou_async.testing.FakeBabou`) on loopback: no key, no network. With a key it uses
the real API and creates a real project.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from babou_async import BabouSession, ExportFailedError, PollPolicy
from babou_async.testing import FakeBabou


@asynccontextmanager
async def open_session() -> AsyncIterator[BabouSession]:
    """Open a session on the real API when BABOU_API_KEY is set, else on a simulator."""
    if os.environ.get("BABOU_API_KEY"):
        async with BabouSession() as babou:  # key (and BABOU_BASE_URL) from the environment
            yield babou
        return
    async with (
        FakeBabou() as fake,
        # The simulator finishes jobs in a fraction of a second: poll it often.
        BabouSession(fake.api_key, base_url=fake.base_url, poll=PollPolicy.fast()) as babou,
    ):
        print(f"No BABOU_API_KEY: using the simulator at {fake.base_url}")
        yield babou


async def main() -> None:
    async with open_session() as babou:
        project = await babou.create_project("Quick start", description="babou_async example")
        chapter = await babou.create_chapter(project.id, "Opening", duration=10)
        submission = await babou.submit_prompt(
            project.id, chapter.id, "A slow aerial shot of a coastal city waking up at dawn"
        )
        print(f"Prompt {submission.prompt_id} is {submission.status} ({submission.estimated_time})")
        chapter = await babou.wait_for_chapter(
            project.id, chapter.id, estimate=submission.estimated_seconds
        )
        print(f"Chapter {chapter.name!r} is {chapter.status}")

        started = await babou.start_export(project.id)
        print(f"Export {started.status}: about {started.estimated_time}")
        # One item per change of status; the last one is completed or failed.
        async for export in babou.watch_export(project.id, estimate=started.estimated_seconds):
            print(f"  export is {export.status}")

        try:
            result = await babou.download_export(project.id, "videos/")
        except ExportFailedError as exc:
            print(f"The export failed: {exc.error}")
            return
        print(f"Saved {result.bytes:,} bytes to {result.path}")


if __name__ == "__main__":
    asyncio.run(main())
