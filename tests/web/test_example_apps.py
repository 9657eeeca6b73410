"""
The same route tests against both example web apps, over real HTTP on loopback.

Each app runs as a subprocess on its bundled simulator, which seeds three projects ready
to export (8 MiB videos): the first is followed through its events, the second exported
for the video routes, the third left running for the "not finished" answers.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator

import aiohttp
import anyio
import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

VIDEO_SIZE = 8 * 1024 * 1024
TERMINAL = {"completed", "failed"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client (the app's client: a browser, say)."""
    async with aiohttp.ClientSession() as session:
        yield session


async def project_ids(http: aiohttp.ClientSession, app_url: str) -> list[str]:
    """The app's three projects, in their order."""
    async with http.get(f"{app_url}/projects") as response:
        assert 200 == response.status
        ids: list[str] = await response.json()
    return ids


async def events(http: aiohttp.ClientSession, url: str) -> list[dict[str, object]]:
    """The Server-Sent Events of ``url``, read to the end of the stream."""
    found = []
    with anyio.fail_after(60):
        async with http.get(url) as response:
            assert 200 == response.status
            assert response.content_type == "text/event-stream"
            event = None
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    assert "status" == event
                    found.append(json.loads(line.removeprefix("data: ")))
    return found


async def completed(http: aiohttp.ClientSession, app_url: str, project_id: str) -> None:
    """Export ``project_id`` through the app and wait for it to complete."""
    async with http.post(f"{app_url}/exports/{project_id}") as response:
        assert response.status in (202, 409)  # 409: another test started it
    statuses = [e["status"] for e in await events(http, f"{app_url}/exports/{project_id}/events")]
    assert "completed" == statuses[-1]


async def test_projects_lists_the_seeded_projects(
    http: aiohttp.ClientSession, app_url: str
) -> None:
    """GET /projects: a JSON list of the three project IDs."""
    ids = await project_ids(http, app_url)

    assert 3 == len(ids)
    assert all(pid.startswith("prj_") for pid in ids)


async def test_an_export_is_started_then_followed_to_its_end(
    http: aiohttp.ClientSession, app_url: str
) -> None:
    """POST starts (202, then 409 while it runs); the events end at a terminal status."""
    project_id = (await project_ids(http, app_url))[0]

    async with http.post(f"{app_url}/exports/{project_id}") as response:
        assert 202 == response.status
        assert {"project_id": project_id, "status": "queued"}.items() <= (
            await response.json()
        ).items()
    async with http.post(f"{app_url}/exports/{project_id}") as response:
        assert 409 == response.status
    found = await events(http, f"{app_url}/exports/{project_id}/events")
    async with http.get(f"{app_url}/exports/{project_id}") as response:
        status = await response.json()

    statuses = [event["status"] for event in found]
    assert statuses[-1] in TERMINAL
    assert not TERMINAL & set(statuses[:-1])
    assert all(a != b for a, b in itertools.pairwise(statuses))  # transitions
    assert {"project_id": project_id, "status": "completed"}.items() <= status.items()


async def test_the_video_is_served_whole_with_its_length(
    http: aiohttp.ClientSession, app_url: str
) -> None:
    """A full GET: 200, Content-Length matching the body, Accept-Ranges: bytes; HEAD alike."""
    project_id = (await project_ids(http, app_url))[1]
    await completed(http, app_url, project_id)
    url = f"{app_url}/videos/{project_id}.mp4"

    async with http.get(url) as response:
        body = await response.read()
        assert 200 == response.status
        assert str(len(body)) == response.headers["Content-Length"]
        assert "bytes" == response.headers["Accept-Ranges"]
        assert "video/mp4" == response.content_type
        assert "chunked" not in response.headers.get("Transfer-Encoding", "")
    async with http.head(url) as response:
        assert 200 == response.status
        assert str(VIDEO_SIZE) == response.headers["Content-Length"]
        assert b"" == await response.read()

    assert VIDEO_SIZE == len(body)


async def test_a_range_gets_206_with_exactly_its_bytes(
    http: aiohttp.ClientSession, app_url: str
) -> None:
    """Range: bytes=0-99 gets 206, 100 bytes and Content-Range: bytes 0-99/<size>."""
    project_id = (await project_ids(http, app_url))[1]
    await completed(http, app_url, project_id)
    url = f"{app_url}/videos/{project_id}.mp4"
    async with http.get(url) as response:
        whole = await response.read()

    async with http.get(url, headers={"Range": "bytes=0-99"}) as response:
        assert 206 == response.status
        assert f"bytes 0-99/{VIDEO_SIZE}" == response.headers["Content-Range"]
        assert "100" == response.headers["Content-Length"]
        first = await response.read()
    async with http.get(url, headers={"Range": "bytes=-1000"}) as response:
        assert 206 == response.status
        assert (
            f"bytes {VIDEO_SIZE - 1000}-{VIDEO_SIZE - 1}/{VIDEO_SIZE}"
            == (response.headers["Content-Range"])
        )
        last = await response.read()
    async with http.head(url, headers={"Range": "bytes=100-199"}) as response:
        assert (206, f"bytes 100-199/{VIDEO_SIZE}") == (
            response.status,
            response.headers["Content-Range"],
        )

    assert (whole[:100], whole[-1000:]) == (first, last)


async def test_the_redirect_sends_the_client_to_the_signed_url(
    http: aiohttp.ClientSession, app_url: str
) -> None:
    """The alternative to streaming: a 307 to the download host, uncached; it serves the video."""
    project_id = (await project_ids(http, app_url))[1]
    await completed(http, app_url, project_id)
    async with http.get(f"{app_url}/videos/{project_id}.mp4") as response:
        whole = await response.read()

    url = f"{app_url}/videos/{project_id}/redirect"
    async with http.get(url, allow_redirects=False) as response:
        assert 307 == response.status
        assert "no-store" == response.headers["Cache-Control"]
        location = response.headers["Location"]
    async with http.get(url) as response:
        assert whole == await response.read()

    assert not location.startswith(app_url)
    assert "token=" in location


async def test_a_range_outside_the_video_gets_416(
    http: aiohttp.ClientSession, app_url: str
) -> None:
    """A range past the end: 416 with Content-Range: bytes */<size>."""
    project_id = (await project_ids(http, app_url))[1]
    await completed(http, app_url, project_id)

    async with http.get(
        f"{app_url}/videos/{project_id}.mp4", headers={"Range": f"bytes={VIDEO_SIZE}-"}
    ) as response:
        assert 416 == response.status
        assert f"bytes */{VIDEO_SIZE}" == response.headers["Content-Range"]


async def test_unfinished_and_unknown_exports_are_refused(
    http: aiohttp.ClientSession, app_url: str
) -> None:
    """A running export's video: 409; an unknown project: 404; a malformed ID: 400."""
    project_id = (await project_ids(http, app_url))[2]
    async with http.post(f"{app_url}/exports/{project_id}") as response:
        assert 202 == response.status

    async with http.get(f"{app_url}/videos/{project_id}.mp4") as response:
        assert 409 == response.status
    async with http.get(f"{app_url}/videos/{project_id}/redirect") as response:
        assert 409 == response.status
    async with http.get(f"{app_url}/exports/prj_doesnotexist/events") as response:
        assert 404 == response.status
    async with http.get(f"{app_url}/videos/prj_doesnotexist.mp4") as response:
        assert 404 == response.status
    async with http.get(f"{app_url}/exports/not-an-id") as response:
        assert 400 == response.status
