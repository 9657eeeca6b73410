"""
Testing an aiohttp.web app with the plugin, over loopback: docs/testing.md shows this file.

aiohttp's ``TestServer`` serves the app on 127.0.0.1 (a free port) and runs its
``cleanup_ctx``, where the app opens its BabouSession; ``TestClient`` talks to it over
HTTP. ``babou_env`` points ``BabouSession()`` at the simulator, and the marker configures
that simulator for one test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from babou_async.testing import FakeBabou, Faults

from .conftest import load_example

make_app = load_example("aiohttp_app").make_app  # in your tests: from myapp import make_app

# -- the guide's example starts here --


@pytest.fixture
async def client(babou_env: FakeBabou) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The app on a loopback port, its cleanup_ctx run, and an HTTP client for it."""
    async with TestClient(TestServer(make_app())) as client:
        yield client


@pytest.mark.anyio
@pytest.mark.babou(video_size=3_000_000, faults=Faults(drop_rate=0.8))
async def test_the_whole_video_despite_cut_downloads(
    client: TestClient[web.Request, web.Application],
    babou_fake: FakeBabou,
) -> None:
    """Most downloads from Babou are cut: the browser still gets every byte, once."""
    project_id = babou_fake.seed_project()
    assert 202 == (await client.post(f"/exports/{project_id}")).status
    babou_fake.finish_export(project_id)

    response = await client.get(f"/videos/{project_id}.mp4")

    assert 200 == response.status
    assert "3000000" == response.headers["Content-Length"]
    assert babou_fake.video_bytes(project_id) == await response.read()
    assert any(r.dropped for r in babou_fake.find_requests(origin="asset"))


@pytest.mark.anyio
async def test_head_and_unsatisfiable_ranges(
    client: TestClient[web.Request, web.Application],
    babou_fake: FakeBabou,
) -> None:
    """HEAD gives the headers without the body; a range past the end gets 416."""
    project_id = babou_fake.seed_project()
    await client.post(f"/exports/{project_id}")
    babou_fake.finish_export(project_id)
    size = babou_fake.video_size(project_id)

    head = await client.head(f"/videos/{project_id}.mp4")
    past_the_end = await client.get(
        f"/videos/{project_id}.mp4", headers={"Range": f"bytes={size}-"}
    )

    assert (200, str(size), "bytes") == (
        head.status,
        head.headers["Content-Length"],
        head.headers["Accept-Ranges"],
    )
    assert (416, f"bytes */{size}") == (past_the_end.status, past_the_end.headers["Content-Range"])
