"""
Testing a FastAPI app with the plugin, in-process: docs/testing.md shows this file.

httpx's ``ASGITransport`` calls the app directly, with no server and no socket, but it
does not run the app's lifespan, where the app opens its BabouSession: the ``client``
fixture runs it around the client. ``babou_env`` points ``BabouSession()`` at the
simulator, which ``babou_fake`` gives the test to set up and inspect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from babou_async.testing import FakeBabou

from .conftest import load_example

app = load_example("fastapi_app").app  # in your tests: from myapp import app

# -- the guide's example starts here --


@pytest.fixture
async def client(babou_env: FakeBabou) -> AsyncIterator[httpx.AsyncClient]:
    """The app, its lifespan running, behind an httpx client that calls it directly."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),  # ASGITransport does not run it: we do
        httpx.AsyncClient(transport=transport, base_url="http://app") as client,
    ):
        yield client


@pytest.mark.anyio
async def test_a_finished_video_is_seekable(
    client: httpx.AsyncClient, babou_fake: FakeBabou
) -> None:
    """Start an export through the app, finish it at once, fetch the first 100 bytes."""
    project_id = babou_fake.seed_project()
    started = await client.post(f"/exports/{project_id}")
    assert 202 == started.status_code
    babou_fake.finish_export(project_id)  # no waiting for the render

    response = await client.get(f"/videos/{project_id}.mp4", headers={"Range": "bytes=0-99"})

    assert 206 == response.status_code
    size = babou_fake.video_size(project_id)
    assert f"bytes 0-99/{size}" == response.headers["Content-Range"]
    assert babou_fake.video_bytes(project_id)[:100] == response.content


@pytest.mark.anyio
async def test_the_events_end_at_a_terminal_status(
    client: httpx.AsyncClient, babou_fake: FakeBabou
) -> None:
    """The SSE stream of a finished export is one event, and then the end."""
    project_id = babou_fake.seed_project()
    await client.post(f"/exports/{project_id}")
    babou_fake.finish_export(project_id, failed=True)

    response = await client.get(f"/exports/{project_id}/events")

    assert "text/event-stream" in response.headers["Content-Type"]
    assert 1 == response.text.count("event: status")
    assert '"status": "failed"' in response.text


@pytest.mark.anyio
async def test_unknown_projects_are_404(client: httpx.AsyncClient) -> None:
    """Babou's NotFoundError becomes a 404 (the app's exception handler)."""
    assert 404 == (await client.get("/exports/prj_doesnotexist")).status_code
