"""
Testing your own code with FakeBabou: faults, scripted answers, recorded requests.

    python examples/testing_with_fake.py

``publish()`` stands for application code that uses babou_async. The ``test_*`` functions
check it against the bundled simulator, over real loopback sockets, with no key and no
network. In a pytest suite they are ordinary async tests: mark them with
``@pytest.mark.anyio`` (anyio's plugin), or move the ``FakeBabou`` into a fixture. Here a
small runner at the bottom runs them, so the file works on its own.
"""

# Tests assert, as pytest tests do.
# ruff: noqa: S101

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from babou_async import BabouSession, ExportFailedError, PollPolicy, RetryPolicy
from babou_async.testing import FakeBabou, Faults

# -- the code under test -------------------------------------------------------------------


class PublishError(Exception):
    """The video could not be published."""


async def publish(babou: BabouSession, project_id: str, out_dir: Path) -> Path:
    """Export a project, wait for it and save the video; the application's own logic."""
    await babou.start_export(project_id)
    try:
        await babou.wait_for_export(project_id, timeout=30)
    except ExportFailedError as exc:
        raise PublishError(f"render failed: {exc.error}") from exc
    result = await babou.download_export(project_id, out_dir)
    if result.path is None:  # only for the type checker: a successful download has a path
        raise PublishError("no video path")
    return result.path


# -- the tests --------------------------------------------------------------------------


@asynccontextmanager
async def client_for(fake: FakeBabou) -> AsyncIterator[BabouSession]:
    """A session on the simulator that polls and retries quickly, as tests want."""
    async with BabouSession(
        fake.api_key,
        base_url=fake.base_url,
        poll=PollPolicy.fast(),
        retry=RetryPolicy(base_delay=0.01, max_delay=0.1),
    ) as babou:
        yield babou


async def test_publish_survives_faults(tmp_path: Path) -> None:
    """A 429 and cut downloads are ridden through; the file is byte-identical."""
    async with FakeBabou(seed=3, video_size=500_000, faults=Faults(drop_rate=0.5)) as fake:
        project_id = fake.seed_project(chapters=2)
        # A scripted 429: even a POST is safely retried after one (the server refused it).
        fake.inject(
            "POST", f"/projects/{project_id}/export", status=429, headers={"Retry-After": "0"}
        )
        async with client_for(fake) as babou:
            path = await publish(babou, project_id, tmp_path)

        # anyio.Path: no blocking file I/O in the event loop (a blockbuster-proof test).
        assert await anyio.Path(path).read_bytes() == fake.video_bytes(project_id)
        starts = fake.find_requests(method="POST", path="*/export")
        assert [r.status for r in starts] == [429, 200]
        downloads = fake.find_requests(origin="asset")
        assert any(r.dropped for r in downloads)
        # The API key never reaches the download host.
        assert all(r.header("Authorization") is None for r in downloads)


async def test_publish_reports_failed_render(tmp_path: Path) -> None:
    """A failed export becomes the application's own error, with the server's text."""
    async with FakeBabou(seed=2) as fake:
        project_id = fake.seed_project()
        fake.faults.fail_exports = {project_id}
        error: PublishError | None = None
        async with client_for(fake) as babou:
            try:
                await publish(babou, project_id, tmp_path)
            except PublishError as exc:  # with pytest: pytest.raises(PublishError, match=...)
                error = exc
        assert error is not None
        assert "Failed to render chapter" in str(error)
        # Nothing half-written is left behind.
        assert [p async for p in anyio.Path(tmp_path).iterdir()] == []


async def test_publish_retries_a_scripted_outage(tmp_path: Path) -> None:
    """inject() scripts exact answers: here two 503s on the status endpoint."""
    async with FakeBabou(seed=3) as fake:
        project_id = fake.seed_project()
        outage = fake.inject("GET", f"/projects/{project_id}/export", status=503, times=2)
        async with client_for(fake) as babou:
            await publish(babou, project_id, tmp_path)
        assert outage.hits == 2
        statuses = [r.status for r in fake.find_requests(method="GET", path="*/export")]
        assert statuses[:3] == [503, 503, 200]


# -- a minimal runner (pytest does this for you) ---------------------------------------------


def main() -> None:
    tests = [
        test_publish_survives_faults,
        test_publish_reports_failed_render,
        test_publish_retries_a_scripted_outage,
    ]
    for test in tests:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(test(Path(tmp)))
        print(f"ok  {test.__name__}: {test.__doc__}")
    print(f"{len(tests)} passed")


if __name__ == "__main__":
    main()
